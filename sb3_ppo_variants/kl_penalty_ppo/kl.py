"""Per-sample parameters of SB3 action distributions and the KL divergence between them.

KLPenaltyPPO needs KL[pi_old(.|s), pi_theta(.|s)] for every sample of a batch. The old distribution is
kept as a flat float tensor of parameters per sample (stored next to SB3's rollout buffer), and the
closed form is computed from those parameters and the new SB3 distribution object:

- Categorical / MultiCategorical: the normalised log-probabilities of each (sub-)categorical;
- Bernoulli (MultiBinary): the logits of each independent Bernoulli;
- diagonal Gaussian and gSDE: the mean and the standard deviation of each action dimension
  (for gSDE the per-sample standard deviation ``sqrt(latent_sde**2 @ exp(log_std)**2)``, so the KL is
  that of the Gaussian the actions were actually drawn from). With ``squash_output`` the actions pass
  through tanh, an invertible map, which leaves the KL unchanged.

The two sample estimators use only the stored actions' log-probabilities, with
``log r = log pi_theta(a|s) - log pi_old(a|s)`` (J. Schulman, "Approximating KL divergence", 2020):
``k1 = -log r`` (unbiased, high variance, can be negative) and ``k3 = (r - 1) - log r`` (unbiased,
low variance, never negative).
"""

from __future__ import annotations

import numpy as np
import torch as th
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
)

#: SB3 distribution classes with a closed-form KL here (subclasses included, e.g. SquashedDiagGaussian).
CLOSED_FORM_DISTRIBUTIONS: tuple[type[Distribution], ...] = (
    CategoricalDistribution,
    MultiCategoricalDistribution,
    BernoulliDistribution,
    DiagGaussianDistribution,
    StateDependentNoiseDistribution,
)


def has_closed_form_kl(distribution: Distribution) -> bool:
    """Whether :func:`closed_form_kl` supports this SB3 distribution."""
    return isinstance(distribution, CLOSED_FORM_DISTRIBUTIONS)


def dist_params_dim(action_space: spaces.Space) -> int:
    """Number of floats per sample that :func:`dist_params` returns for SB3's distribution of this action space."""
    if isinstance(action_space, spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, spaces.MultiDiscrete):
        return int(np.sum(action_space.nvec))
    if isinstance(action_space, spaces.MultiBinary):
        return int(np.prod(action_space.shape))
    if isinstance(action_space, spaces.Box):
        return 2 * int(np.prod(action_space.shape))
    raise TypeError(f"No closed-form KL for the action space {action_space}")


def dist_params(distribution: Distribution) -> th.Tensor:
    """Flat per-sample parameters of a built SB3 distribution, shape ``(batch, dist_params_dim)``."""
    if isinstance(distribution, CategoricalDistribution):
        return distribution.distribution.logits
    if isinstance(distribution, MultiCategoricalDistribution):
        return th.cat([d.logits for d in distribution.distribution], dim=1)
    if isinstance(distribution, BernoulliDistribution):
        return distribution.distribution.logits
    if isinstance(distribution, (DiagGaussianDistribution, StateDependentNoiseDistribution)):
        return th.cat(_gaussian_params(distribution), dim=1)
    raise TypeError(f"No closed-form KL for the action distribution {type(distribution).__name__}")


def _gaussian_params(distribution: DiagGaussianDistribution | StateDependentNoiseDistribution) -> tuple[th.Tensor, th.Tensor]:
    """Mean and standard deviation of a built SB3 Gaussian (or gSDE) distribution, each ``(batch, action_dim)``."""
    normal = distribution.distribution
    mean, std = normal.mean, normal.stddev
    if mean.dim() == 1:
        mean, std = mean.unsqueeze(-1), std.unsqueeze(-1)
    # the std of DiagGaussian is state independent and broadcast: expand it to one row per sample
    return mean, std.expand_as(mean)


def _categorical_kl(old_logits: th.Tensor, new_log_probs: th.Tensor) -> th.Tensor:
    old_log_probs = F.log_softmax(old_logits, dim=-1)
    return (old_log_probs.exp() * (old_log_probs - new_log_probs)).sum(dim=-1)


def closed_form_kl(old_params: th.Tensor, new: Distribution) -> th.Tensor:
    """KL[old || new] per sample, ``old`` given by :func:`dist_params`, ``new`` a built SB3 distribution.

    :return: a tensor of shape ``(batch,)``, summed over action dimensions (independent factors).
    """
    if isinstance(new, CategoricalDistribution):
        return _categorical_kl(old_params, new.distribution.logits)
    if isinstance(new, MultiCategoricalDistribution):
        chunks = th.split(old_params, list(new.action_dims), dim=1)
        return th.stack([_categorical_kl(o, d.logits) for o, d in zip(chunks, new.distribution, strict=True)], dim=1).sum(
            dim=1
        )
    if isinstance(new, BernoulliDistribution):
        new_logits = new.distribution.logits
        # KL(p||q) = p log(p/q) + (1-p) log((1-p)/(1-q)), with log p = logsigmoid(l), log(1-p) = logsigmoid(-l)
        p = th.sigmoid(old_params)
        kl = p * (F.logsigmoid(old_params) - F.logsigmoid(new_logits)) + (1 - p) * (
            F.logsigmoid(-old_params) - F.logsigmoid(-new_logits)
        )
        return kl.sum(dim=1)
    if isinstance(new, (DiagGaussianDistribution, StateDependentNoiseDistribution)):
        old_mean, old_std = old_params.chunk(2, dim=1)
        new_mean, new_std = _gaussian_params(new)  # the values dist_params(new) would store, without the concatenation
        # KL(N(m1, s1) || N(m2, s2)) = log(s2/s1) + (s1^2 + (m1-m2)^2) / (2 s2^2) - 1/2, per dimension
        var_ratio = (old_std / new_std).pow(2)
        kl = 0.5 * (var_ratio + ((old_mean - new_mean) / new_std).pow(2) - 1.0 - var_ratio.log())
        return kl.sum(dim=1)
    raise TypeError(f"No closed-form KL for the action distribution {type(new).__name__}")


def sample_kl_k1(log_ratio: th.Tensor) -> th.Tensor:
    """Unbiased sample estimate of KL[old || new] from ``log r = log pi_new(a) - log pi_old(a)``, a ~ pi_old."""
    return -log_ratio


def sample_kl_k3(log_ratio: th.Tensor) -> th.Tensor:
    """Unbiased, low-variance, non-negative estimate ``(r - 1) - log r`` of KL[old || new], a ~ pi_old."""
    return th.expm1(log_ratio) - log_ratio
