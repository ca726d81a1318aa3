"""Policy-loss terms of the PPO paper (Schulman et al. 2017, arXiv 1707.06347), as plain functions.

They take per-sample tensors and return the quantity to *minimise* (the negated surrogate objective),
so that each reads like its equation and can be checked against hand-computed values.
"""

from __future__ import annotations

import torch as th


def surrogate_loss(ratio: th.Tensor, advantages: th.Tensor, clip_range: float | None) -> th.Tensor:
    """``-mean(L)`` with L the clipped surrogate, or the unclipped one when ``clip_range`` is None.

    - clipped (paper eq. 7): ``L^CLIP_t = min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)``
    - unclipped (paper eq. 6, "no clipping or penalty"): ``L^CPI_t = r_t A_t``
    """
    pg_loss1 = advantages * ratio
    if clip_range is None:
        return -pg_loss1.mean()
    pg_loss2 = advantages * th.clamp(ratio, 1 - clip_range, 1 + clip_range)
    return -th.min(pg_loss1, pg_loss2).mean()


def clip_fraction(ratio: th.Tensor, clip_range: float) -> th.Tensor:
    """Fraction of samples whose ratio lies outside ``[1 - eps, 1 + eps]`` (detached, for logging)."""
    with th.no_grad():
        return (th.abs(ratio - 1) > clip_range).float().mean()


def kl_penalty_loss(
    ratio: th.Tensor,
    advantages: th.Tensor,
    kl: th.Tensor,
    beta: float,
    clip_range: float | None = None,
) -> th.Tensor:
    """``-mean(r_t A_t - beta * KL_t)`` (paper eq. 8); with ``clip_range`` the clipped surrogate replaces ``r_t A_t``."""
    return surrogate_loss(ratio, advantages, clip_range) + beta * kl.mean()


def reinforce_loss(log_prob: th.Tensor, weights: th.Tensor) -> th.Tensor:
    """``-mean(log pi(a_t|s_t) * G_t)``: its gradient is minus the REINFORCE estimate ``E[grad log pi * G]``."""
    return -(log_prob * weights).mean()
