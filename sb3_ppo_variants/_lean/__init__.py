"""The fast wing: every speed path of the package, behind one gate.

The core (:mod:`sb3_ppo_variants.core`) imports only the three entry points below. Each fast path here is a twin of
code in the core or in SB3 and runs only where the gate (:mod:`sb3_ppo_variants._lean.gate`) finds that the objects
it stands in for are exactly the known ones; otherwise the core's own torch code runs, which calls SB3's public
methods. Nothing here is needed to read what an algorithm computes.
"""

from __future__ import annotations

from typing import Any

import torch as th

from sb3_ppo_variants._lean.adam import with_fast_optimizer
from sb3_ppo_variants._lean.gate import Plan, plan_rollout, plan_update


def policy_kwargs_for(numerics: str, policy_kwargs: dict[str, Any], device: th.device) -> dict[str, Any]:
    """The ``policy_kwargs`` the policy is built with: with ``numerics="fast"`` Adam's fused kernel where the user
    chose no implementation (:func:`~sb3_ppo_variants._lean.adam.with_fast_optimizer`); with ``"sb3"`` the user's."""
    return with_fast_optimizer(policy_kwargs, device) if numerics == "fast" else policy_kwargs


__all__ = ["Plan", "plan_rollout", "plan_update", "policy_kwargs_for"]
