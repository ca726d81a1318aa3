"""Recurrent (LSTM) variants of our algorithms, on sb3-contrib's recurrent policies and buffers (``docs/recurrent.md``).

:class:`RecurrentClipPPO`, :class:`RecurrentKLPenaltyPPO`, :class:`RecurrentREINFORCE`, :class:`RecurrentSPO`, and with
invalid-action masking :class:`MaskableRecurrentClipPPO`, :class:`MaskableRecurrentKLPenaltyPPO`,
:class:`MaskableRecurrentREINFORCE`, :class:`MaskableRecurrentSPO`.
The classes are loaded on first access: the fast wing reads this package's calls and policies while the algorithms
it serves are still being imported.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RecurrentClipPPO": "algorithms",
    "RecurrentKLPenaltyPPO": "algorithms",
    "RecurrentREINFORCE": "algorithms",
    "RecurrentSPO": "algorithms",
    "RecurrentAlgorithmMixin": "algorithms",
    "MaskableRecurrentClipPPO": "maskable",
    "MaskableRecurrentKLPenaltyPPO": "maskable",
    "MaskableRecurrentREINFORCE": "maskable",
    "MaskableRecurrentSPO": "maskable",
    "MaskableRecurrentActorCriticPolicy": "policies",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
