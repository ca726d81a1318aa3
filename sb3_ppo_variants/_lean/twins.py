"""The NumPy twins of the torch losses, each registered against the torch method it stands in for.

A *twin* computes what a torch loss method computes (the value to minimise, a mean over the minibatch, and the same
logged statistics) together with its gradient with respect to the per-sample quantities the NumPy backward pass
starts from (:mod:`sb3_ppo_variants._lean.numpy_update`). :data:`TWINS` pairs each twin with the torch method(s) it
replaces, named by their defining class; the gate runs the NumPy update only where the algorithm's methods *are*
those functions (a subclass or an object that replaces one of them gets the torch update, which calls it).
``tests/lean/test_twins.py`` checks every registered pair, value and gradient, against autograd.

The gradients follow torch's conventions where the math leaves a choice: ``minimum``/``maximum`` of two equal values
give each half of the gradient, and ``clamp`` passes the gradient on its boundaries. The loss functions below are the
twins of the pure functions of :mod:`sb3_ppo_variants.core.losses` of the same name.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces

from sb3_ppo_variants._lean.numpy_dists import NumpyDistribution
from sb3_ppo_variants.core.losses import ClipRange, clip_bounds


def _min_grads(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The share of the gradient of ``minimum(a, b)`` that goes to ``a`` and to ``b`` (torch: half each on a tie)."""
    to_a = np.where(a < b, 1.0, np.where(a == b, 0.5, 0.0)).astype(a.dtype)
    return to_a, 1 - to_a


def _clamp(x: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """``clamp(x, low, high)`` and where it passes the gradient (``low <= x <= high``, as torch)."""
    return np.clip(x, low, high), ((x >= low) & (x <= high)).astype(x.dtype)


def surrogate_loss(
    ratio: np.ndarray, advantages: np.ndarray, clip_range: ClipRange | None, dual_clip: float | None = None
) -> tuple[float, np.ndarray]:
    """:func:`sb3_ppo_variants.core.losses.surrogate_loss` and its gradient with respect to ``ratio``."""
    n = len(ratio)
    if clip_range is None:
        if dual_clip is not None:
            raise ValueError("dual-clip applies on top of the clipped surrogate: it needs a clip_range")
        return float(-(advantages * ratio).mean()), -advantages / n
    unclipped = advantages * ratio
    clipped_ratio, passes = _clamp(ratio, *clip_bounds(clip_range))
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
    """:func:`sb3_ppo_variants.core.losses.value_function_loss` and its gradient with respect to ``values``."""
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
    """:func:`sb3_ppo_variants.core.losses.clip_fraction`."""
    return float((np.abs(ratio - 1) > clip_range).mean())


def clip_fractions(ratio: np.ndarray, clip_range: tuple[float, float]) -> dict[str, float]:
    """:func:`sb3_ppo_variants.core.losses.clip_fractions`."""
    low, high = clip_range
    change = ratio - 1
    below, above = float((change < -low).mean()), float((change > high).mean())
    return {"clip_fraction": below + above, "clip_fraction_low": below, "clip_fraction_high": above}


def spo_loss(ratio: np.ndarray, advantages: np.ndarray, epsilon: float) -> tuple[float, np.ndarray]:
    """:func:`sb3_ppo_variants.core.losses.spo_loss` and its gradient with respect to ``ratio``:
    ``d L^SPO / d r = A - |A| (r - 1) / eps``."""
    change, magnitude = ratio - 1, np.abs(advantages)
    objective = advantages * ratio - magnitude / (2 * epsilon) * (change * change)
    return float(-objective.mean()), -(advantages - magnitude * change / epsilon) / len(ratio)


def dual_clip_fraction(ratio: np.ndarray, advantages: np.ndarray, dual_clip: float) -> float:
    """:func:`sb3_ppo_variants.core.losses.dual_clip_fraction`."""
    return float(((advantages < 0) & (ratio > dual_clip)).mean())


def normalize_minibatch_advantages(advantages: np.ndarray) -> np.ndarray:
    """``(A - mean(A)) / (std(A) + 1e-8)`` with torch's default unbiased ``std``, as the torch loop normalises."""
    centered = advantages - advantages.mean()
    std = np.sqrt(np.dot(centered, centered) / np.float32(len(advantages) - 1))
    return centered / (std + np.float32(1e-8))


def reinforce_loss(log_prob: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray]:
    """:func:`sb3_ppo_variants.core.losses.reinforce_loss` and its gradient with respect to ``log_prob``."""
    return -float((log_prob * weights).mean()), -weights / len(weights)


def sample_kl(log_ratio: np.ndarray, estimator: str) -> tuple[np.ndarray, np.ndarray]:
    """The sample KL estimates of :mod:`sb3_ppo_variants.kl_penalty_ppo.kl` per sample and their derivative with
    respect to ``log_ratio``: ``k3 = expm1(x) - x`` (derivative ``expm1(x)``) or ``k1 = -x`` (derivative -1)."""
    if estimator == "sample_low_var":
        return np.expm1(log_ratio) - log_ratio, np.expm1(log_ratio)
    return -log_ratio, np.full_like(log_ratio, -1.0)


# ---------------------------------------------------------------------------------------------------- the twins

#: a policy-loss twin: ``(algorithm, batch, dist, log_prob, ratio, advantages) -> (loss, d loss / d log_prob,
#: statistics)``; a gradient with respect to the distribution itself goes through ``dist``'s ``*_backward`` methods
PolicyLossTwin = Callable[[Any, Any, NumpyDistribution, np.ndarray, np.ndarray, np.ndarray], tuple[float, np.ndarray, dict]]


def clip_ppo_policy_loss(
    algo: Any, batch: Any, dist: NumpyDistribution, log_prob: np.ndarray, ratio: np.ndarray, advantages: np.ndarray
) -> tuple[float, np.ndarray, dict[str, float]]:
    """Twin of ``ClipPPO._policy_loss``: the clipped (dual-clipped, unclipped) surrogate and the clip fractions."""
    clip_range = algo._current_clip_range
    loss, grad_ratio = surrogate_loss(ratio, advantages, clip_range, algo.dual_clip)
    return loss, grad_ratio * ratio, _clip_statistics(ratio, advantages, clip_range, algo.dual_clip)  # dr/dlog_prob = r


def kl_penalty_policy_loss(
    algo: Any, batch: Any, dist: NumpyDistribution, log_prob: np.ndarray, ratio: np.ndarray, advantages: np.ndarray
) -> tuple[float, np.ndarray, dict[str, float]]:
    """Twin of ``KLPenaltyPPO._policy_loss`` and ``_kl``: the (clipped) surrogate plus ``beta * mean(KL)`` with the
    configured estimator."""
    beta, n, clip_range = algo._update_beta, len(ratio), algo._current_clip_range
    loss, grad_ratio = surrogate_loss(ratio, advantages, clip_range, algo.dual_clip)
    grad_log_prob = grad_ratio * ratio  # d ratio / d log_prob = ratio
    grad_kl = np.float32(beta / n)  # of beta * mean(KL)
    if algo.kl_estimator == "closed_form":
        kl = dist.closed_form_kl(batch.old_dist_params)
        dist.closed_form_kl_backward(np.full(n, grad_kl, dtype=np.float32))
    else:
        kl, grad_kl_log_ratio = sample_kl(log_prob - batch.old_log_prob, algo.kl_estimator)
        grad_log_prob = grad_log_prob + grad_kl * grad_kl_log_ratio
    penalty = float(beta * kl.mean())
    extra = {"kl_penalty": penalty, **_clip_statistics(ratio, advantages, clip_range, algo.dual_clip)}
    return loss + penalty, grad_log_prob, extra


def spo_policy_loss(
    algo: Any, batch: Any, dist: NumpyDistribution, log_prob: np.ndarray, ratio: np.ndarray, advantages: np.ndarray
) -> tuple[float, np.ndarray, dict[str, float]]:
    """Twin of ``SPO._policy_loss``: SPO's penalised surrogate and the fraction of ratios past ``1 +- eps``."""
    epsilon = algo._current_epsilon
    loss, grad_ratio = spo_loss(ratio, advantages, epsilon)
    return loss, grad_ratio * ratio, {"boundary_fraction": clip_fraction(ratio, epsilon)}  # dr/dlog_prob = r


def reinforce_policy_loss(
    algo: Any, batch: Any, dist: NumpyDistribution, log_prob: np.ndarray, ratio: np.ndarray, advantages: np.ndarray
) -> tuple[float, np.ndarray, dict[str, float]]:
    """Twin of ``REINFORCE._policy_loss``: ``-mean(log pi * G)``."""
    loss, grad = reinforce_loss(log_prob, advantages)
    return loss, grad, {"policy_loss": loss}


def _clip_statistics(
    ratio: np.ndarray, advantages: np.ndarray, clip_range: ClipRange | None, dual_clip: float | None
) -> dict[str, float]:
    if clip_range is None:
        return {}
    if isinstance(clip_range, tuple):
        extra = clip_fractions(ratio, clip_range)
    else:
        extra = {"clip_fraction": clip_fraction(ratio, clip_range)}
    if dual_clip is not None:
        extra["dual_clip_fraction"] = dual_clip_fraction(ratio, advantages, dual_clip)
    return extra


def minibatch_loss(
    algo: Any,
    policy_loss: PolicyLossTwin,
    batch: Any,
    gradient: Any,
    clip_range_vf: float | None,
    stats: dict[str, list[Any]],
) -> tuple[th.Tensor, th.Tensor]:
    """Twin of the core's ``PolicyGradientAlgorithm._minibatch_loss``: the same loss (policy term from
    ``policy_loss``, entropy bonus, value loss), statistics and approximate KL, with the per-sample gradients kept in
    ``gradient`` (a :class:`~sb3_ppo_variants._lean.numpy_update.NumpyPolicyGradient`) for its backward pass."""
    values, dist = gradient.forward(batch.observations, with_values=algo.uses_critic)
    discrete = isinstance(algo.action_space, spaces.Discrete)
    actions = batch.actions.reshape(-1).astype(np.int64) if discrete else batch.actions
    log_prob = dist.log_prob(actions)

    advantages = batch.advantages
    if algo.normalize_advantage and algo.normalize_advantage_scope == "minibatch" and len(advantages) > 1:
        advantages = normalize_minibatch_advantages(advantages)
    log_ratio = log_prob - batch.old_log_prob
    ratio = np.exp(log_ratio)
    policy_term, grad_log_prob, extra_stats = policy_loss(algo, batch, dist, log_prob, ratio, advantages)
    dist.log_prob_backward(actions, grad_log_prob)

    entropy = dist.entropy()
    entropy_loss = -float(entropy.mean())
    loss = policy_term
    if algo.ent_coef != 0:
        loss += algo.ent_coef * entropy_loss
        dist.entropy_backward(entropy, np.full_like(entropy, -algo.ent_coef / len(entropy)))
    if values is not None:
        value_loss, grad_values = value_function_loss(
            values, batch.old_values, batch.returns, clip_range_vf, algo.value_clip_form
        )
        loss += algo.vf_coef * value_loss
        gradient.grad_values = grad_values * algo.vf_coef
        stats["value_loss"].append(value_loss)

    # the statistics as floats (the core averages them in float64, as SB3 averages its .item() values)
    stats["policy_gradient_loss"].append(policy_term)
    stats["entropy_loss"].append(entropy_loss)
    for key, value in extra_stats.items():
        stats[key].append(value)
    approx_kl_div = float(((ratio - 1) - log_ratio).mean())
    return th.tensor(loss), th.tensor(approx_kl_div)


# ---------------------------------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Twin:
    """A NumPy twin and the torch methods it stands in for.

    :param owner: the class that defines the torch methods, ``"module:Class"`` (imported on first use)
    :param methods: the names of the torch methods the twin replaces (the first is the one it is the twin of)
    :param twin: the NumPy function
    """

    owner: str
    methods: tuple[str, ...]
    twin: Callable[..., Any]

    def owner_class(self) -> type:
        module, name = self.owner.split(":")
        return getattr(importlib.import_module(module), name)

    def replaced(self) -> dict[str, Any]:
        """The torch functions this twin stands in for, by method name (read once: a method replaced on the owner
        class later is then not the registered one, and the torch update runs)."""
        return _replaced(self)

    def stands_in_for(self, algo: Any) -> bool:
        """Whether every method it replaces is, on ``algo``, exactly the registered torch function (not overridden
        in a subclass, not replaced on the object)."""
        attributes, cls = vars(algo), type(algo)
        return all(
            name not in attributes and getattr(cls, name, None) is function for name, function in self.replaced().items()
        )


@functools.cache
def _replaced(twin: Twin) -> dict[str, Any]:
    owner = twin.owner_class()
    return {name: getattr(owner, name) for name in twin.methods}


#: the twin of the core's minibatch loss (value loss, entropy bonus, minibatch advantage normalisation, approx. KL);
#: the policy methods the NumPy forward stands in for are checked by the gate (the policy is exactly SB3's)
MINIBATCH_TWIN = Twin(
    "sb3_ppo_variants.core.algorithm:PolicyGradientAlgorithm",
    ("_minibatch_loss", "_minibatch_policy_kwargs"),
    minibatch_loss,
)
#: the policy-loss twins, one per algorithm that has one
POLICY_LOSS_TWINS: tuple[Twin, ...] = (
    Twin("sb3_ppo_variants.clip_ppo.clip_ppo:ClipPPO", ("_policy_loss",), clip_ppo_policy_loss),
    Twin("sb3_ppo_variants.kl_penalty_ppo.kl_penalty_ppo:KLPenaltyPPO", ("_policy_loss", "_kl"), kl_penalty_policy_loss),
    Twin("sb3_ppo_variants.reinforce.reinforce:REINFORCE", ("_policy_loss",), reinforce_policy_loss),
    Twin("sb3_ppo_variants.spo.spo:SPO", ("_policy_loss",), spo_policy_loss),
)
#: every registered twin
TWINS: tuple[Twin, ...] = (MINIBATCH_TWIN, *POLICY_LOSS_TWINS)


def policy_loss_twin(algo: Any) -> Twin | None:
    """The registered policy-loss twin that stands in for ``algo``'s policy loss, or None."""
    return next((twin for twin in POLICY_LOSS_TWINS if twin.stands_in_for(algo)), None)


def bound_minibatch_loss(algo: Any, policy_twin: Twin) -> Callable[..., tuple[th.Tensor, th.Tensor]]:
    """:func:`minibatch_loss` for ``algo`` with its policy-loss twin: ``(batch, gradient, clip_range_vf, stats)``."""
    return functools.partial(minibatch_loss, algo, policy_twin.twin)
