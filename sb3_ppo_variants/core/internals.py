"""The one way our fast paths read private internals of torch, SB3 and Optuna.

A fast path that relies on a private attribute first asks :func:`private` for it; where a release renamed or removed
it, the answer is None and the fast path turns itself off, so the public path (SB3's or torch's own calls) runs
instead of training breaking. Tests simulate a missing internal by patching this function.
"""

from __future__ import annotations

from typing import Any


def private(owner: Any, name: str) -> Any:
    """``owner.<name>`` (a private attribute of a torch/SB3/Optuna module, class or object), or None if absent."""
    return getattr(owner, name, None)


def has_private(owner: Any, name: str) -> bool:
    """Whether ``owner.<name>`` exists (a private registry that may hold None when empty, as torch's tensor hooks)."""
    return hasattr(owner, name)
