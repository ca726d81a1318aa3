"""The loss terms of :mod:`sb3_ppo_variants.common.losses` in NumPy, each with its gradient.

Each function returns the value of the torch function of the same name in :mod:`~sb3_ppo_variants.common.losses`
(the quantity to minimise, a mean over the minibatch) and its gradient with respect to the per-sample input, for the
NumPy update (:mod:`sb3_ppo_variants.common.numpy_update`). The gradients follow torch's conventions where the math
leaves a choice: ``minimum``/``maximum`` of two equal values give each half of the gradient, and ``clamp`` passes the
gradient on its boundaries. ``tests/test_numpy_update.py`` checks every value and gradient against autograd, on
inputs that hit every branch and tie.
"""

from __future__ import annotations

import numpy as np


def _min_grads(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The share of the gradient of ``minimum(a, b)`` that goes to ``a`` and to ``b`` (torch: half each on a tie)."""
    to_a = np.where(a < b, 1.0, np.where(a == b, 0.5, 0.0)).astype(a.dtype)
    return to_a, 1 - to_a


def _clamp(x: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """``clamp(x, low, high)`` and where it passes the gradient (``low <= x <= high``, as torch)."""
    return np.clip(x, low, high), ((x >= low) & (x <= high)).astype(x.dtype)


def surrogate_loss(
    ratio: np.ndarray, advantages: np.ndarray, clip_range: float | None, dual_clip: float | None = None
) -> tuple[float, np.ndarray]:
    """:func:`sb3_ppo_variants.common.losses.surrogate_loss` and its gradient with respect to ``ratio``."""
    n = len(ratio)
    if clip_range is None:
        if dual_clip is not None:
            raise ValueError("dual-clip applies on top of the clipped surrogate: it needs a clip_range")
        return float(-(advantages * ratio).mean()), -advantages / n
    unclipped = advantages * ratio
    clipped_ratio, passes = _clamp(ratio, 1 - clip_range, 1 + clip_range)
    clipped = advantages * clipped_ratio
    objective = np.minimum(unclipped, clipped)
    to_unclipped, to_clipped = _min_grads(unclipped, clipped)
    grad_objective = np.ones_like(ratio)
    if dual_clip is not None:
        bound = dual_clip * advantages
        # maximum(objective, bound) where A < 0: the objective's share is the minimum's share of -objective
        to_objective, _ = _min_grads(-objective, -bound)
        negative = advantages < 0
        objective = np.where(negative, np.maximum(objective, bound), objective)
        grad_objective = np.where(negative, to_objective, grad_objective)
    grad_ratio = grad_objective * advantages * (to_unclipped + to_clipped * passes)
    return float(-objective.mean()), -grad_ratio / n


def value_function_loss(
    values: np.ndarray,
    old_values: np.ndarray,
    returns: np.ndarray,
    clip_range_vf: float | None,
    form: str = "prediction",
) -> tuple[float, np.ndarray]:
    """:func:`sb3_ppo_variants.common.losses.value_function_loss` and its gradient with respect to ``values``."""
    n = len(values)
    if clip_range_vf is None:
        error = values - returns
        return float((error * error).mean()), 2 * error / n
    change, passes = _clamp(values - old_values, -clip_range_vf, clip_range_vf)
    clipped_error = old_values + change - returns
    if form == "prediction":
        return float((clipped_error * clipped_error).mean()), 2 * clipped_error * passes / n
    if form == "max":
        error = values - returns
        squared, clipped_squared = error * error, clipped_error * clipped_error
        # maximum(a, b) = -minimum(-a, -b): the same split of the gradient
        to_plain, to_clipped = _min_grads(-squared, -clipped_squared)
        grad = 2 * (to_plain * error + to_clipped * clipped_error * passes) / n
        return float(np.maximum(squared, clipped_squared).mean()), grad
    raise ValueError(f"unknown value-clipping form {form!r}; expected 'prediction' or 'max'")


def clip_fraction(ratio: np.ndarray, clip_range: float) -> float:
    """:func:`sb3_ppo_variants.common.losses.clip_fraction`."""
    return float((np.abs(ratio - 1) > clip_range).mean())


def dual_clip_fraction(ratio: np.ndarray, advantages: np.ndarray, dual_clip: float) -> float:
    """:func:`sb3_ppo_variants.common.losses.dual_clip_fraction`."""
    return float(((advantages < 0) & (ratio > dual_clip)).mean())


def normalize_minibatch_advantages(advantages: np.ndarray) -> np.ndarray:
    """``(A - mean(A)) / (std(A) + 1e-8)`` with torch's default unbiased ``std``, as the torch loop normalises."""
    centered = advantages - advantages.mean()
    std = np.sqrt(np.dot(centered, centered) / np.float32(len(advantages) - 1))
    return centered / (std + np.float32(1e-8))
