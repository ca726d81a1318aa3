"""Policy-loss terms of the PPO paper (Schulman et al. 2017, arXiv 1707.06347) and of its successors, as plain
functions.

They take per-sample tensors and return the quantity to *minimise* (the negated surrogate objective),
so that each reads like its equation and can be checked against hand-computed values.
"""

from __future__ import annotations

import torch as th
from torch.nn import functional as F

#: a clip range as the losses take it: one epsilon (symmetric, SB3's), or the pair ``(eps_low, eps_high)``
ClipRange = float | tuple[float, float]


def clip_bounds(clip_range: ClipRange) -> tuple[float, float]:
    """The interval ``[1 - eps_low, 1 + eps_high]`` the ratio is clipped to (one epsilon: ``[1 - eps, 1 + eps]``)."""
    if isinstance(clip_range, tuple):
        low, high = clip_range
        return 1 - low, 1 + high
    return 1 - clip_range, 1 + clip_range


def surrogate_loss(
    ratio: th.Tensor, advantages: th.Tensor, clip_range: ClipRange | None, dual_clip: float | None = None
) -> th.Tensor:
    """``-mean(L)`` with L the clipped surrogate, or the unclipped one when ``clip_range`` is None.

    - clipped (paper eq. 7): ``L^CLIP_t = min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)``
    - asymmetric ("clip-higher", DAPO: Yu et al. 2025, arXiv 2503.14476), ``clip_range=(eps_low, eps_high)``:
      ``min(r_t A_t, clip(r_t, 1 - eps_low, 1 + eps_high) A_t)``; ``(eps, eps)`` is the symmetric clip
    - unclipped (paper eq. 6, "no clipping or penalty"): ``L^CPI_t = r_t A_t``
    - dual-clip (Ye et al. 2020, "Mastering Complex Control in MOBA Games with Deep RL", arXiv 1912.09729;
      Tianshou's ``dual_clip``), ``c = dual_clip > 1``: ``max(L^CLIP_t, c A_t)`` where ``A_t < 0``, ``L^CLIP_t``
      elsewhere. It bounds the objective of a negative advantage at ``c A_t`` when the ratio grows large
      (``r_t > c``), where ``L^CLIP`` is unbounded.
    """
    pg_loss1 = advantages * ratio
    if clip_range is None:
        if dual_clip is not None:
            raise ValueError("dual-clip applies on top of the clipped surrogate: it needs a clip_range")
        return -pg_loss1.mean()
    pg_loss2 = advantages * th.clamp(ratio, *clip_bounds(clip_range))
    objective = th.min(pg_loss1, pg_loss2)
    if dual_clip is not None:
        objective = th.where(advantages < 0, th.max(objective, dual_clip * advantages), objective)
    return -objective.mean()


def dual_clip_fraction(ratio: th.Tensor, advantages: th.Tensor, dual_clip: float) -> th.Tensor:
    """Fraction of samples where the dual clip is active, ``A_t < 0`` and ``r_t > c`` (detached, for logging)."""
    with th.no_grad():
        return ((advantages < 0) & (ratio > dual_clip)).float().mean()


def value_function_loss(
    values: th.Tensor,
    old_values: th.Tensor,
    returns: th.Tensor,
    clip_range_vf: float | None,
    form: str = "prediction",
) -> th.Tensor:
    """The value-function loss (to minimise), plain or clipped around the old value ``V_old``.

    With ``V_clip = V_old + clip(V - V_old, -eps_vf, eps_vf)`` and the return ``R``:

    - ``clip_range_vf=None``: ``mean((R - V)^2)``;
    - ``form="prediction"`` (SB3): ``mean((R - V_clip)^2)``; the gradient is 0 wherever the clip is active;
    - ``form="max"`` (OpenAI baselines ``ppo2``, CleanRL ``clip_vloss``, rsl_rl, Tianshou ``value_clip``):
      ``mean(max((V - R)^2, (V_clip - R)^2))``, pessimistic: where the clipped error is the larger one, it is kept
      (zero gradient), otherwise the unclipped error is kept (full gradient).

    No factor 1/2, as in SB3 (baselines and CleanRL multiply by 0.5: their ``vf_coef=0.5`` is ``vf_coef=0.25`` here).
    """
    if clip_range_vf is None:
        return F.mse_loss(returns, values)
    values_clipped = old_values + th.clamp(values - old_values, -clip_range_vf, clip_range_vf)
    if form == "prediction":
        return F.mse_loss(returns, values_clipped)
    if form == "max":
        return th.max((values - returns) ** 2, (values_clipped - returns) ** 2).mean()
    raise ValueError(f"unknown value-clipping form {form!r}; expected 'prediction' or 'max'")


def clip_fraction(ratio: th.Tensor, clip_range: float) -> th.Tensor:
    """Fraction of samples whose ratio lies outside ``[1 - eps, 1 + eps]`` (detached, for logging)."""
    with th.no_grad():
        return (th.abs(ratio - 1) > clip_range).float().mean()


def clip_fractions(ratio: th.Tensor, clip_range: tuple[float, float]) -> dict[str, th.Tensor]:
    """For ``clip_range=(eps_low, eps_high)``: the fraction of samples below ``1 - eps_low`` (``clip_fraction_low``),
    above ``1 + eps_high`` (``clip_fraction_high``) and outside the interval (``clip_fraction``, their sum) (detached,
    for logging). With ``eps_low == eps_high`` ``clip_fraction`` is :func:`clip_fraction`'s value."""
    low, high = clip_range
    with th.no_grad():
        change = ratio - 1
        below = (change < -low).float().mean()
        above = (change > high).float().mean()
        return {"clip_fraction": below + above, "clip_fraction_low": below, "clip_fraction_high": above}


def spo_loss(ratio: th.Tensor, advantages: th.Tensor, epsilon: float) -> th.Tensor:
    """``-mean(L^SPO)``, Simple Policy Optimization's objective (Xie et al., ICML 2025, arXiv 2401.16025):

    ``L^SPO_t = r_t A_t - |A_t| / (2 eps) * (r_t - 1)^2``.

    For each sample the objective is a concave parabola in ``r_t`` whose maximum lies at ``r_t = 1 + sign(A_t) eps``,
    the boundary of PPO's clip; past it the gradient pushes the ratio back (PPO's clip only stops pushing).
    The fraction of samples past that boundary is :func:`clip_fraction` with ``eps``.
    """
    return -(advantages * ratio - advantages.abs() / (2 * epsilon) * (ratio - 1) ** 2).mean()


def kl_penalty_loss(
    ratio: th.Tensor,
    advantages: th.Tensor,
    kl: th.Tensor,
    beta: float,
    clip_range: float | None = None,
    dual_clip: float | None = None,
) -> th.Tensor:
    """``-mean(r_t A_t - beta * KL_t)`` (paper eq. 8); with ``clip_range`` the clipped surrogate (and with ``dual_clip``
    the dual-clipped one) replaces ``r_t A_t``."""
    return surrogate_loss(ratio, advantages, clip_range, dual_clip) + beta * kl.mean()


def reinforce_loss(log_prob: th.Tensor, weights: th.Tensor) -> th.Tensor:
    """``-mean(log pi(a_t|s_t) * G_t)``: its gradient is minus the REINFORCE estimate ``E[grad log pi * G]``."""
    return -(log_prob * weights).mean()
