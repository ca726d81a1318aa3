"""Lean construction of SB3's action distributions: the same numbers and random draws, fewer calls.

Every ``torch.distributions`` object re-derives its batch shape and normalises its parameters through generic code,
a noticeable share of a small MLP's step. :func:`action_distribution` is SB3's ``policy._get_action_dist_from_latent``
for the exact classes :class:`~stable_baselines3.common.distributions.CategoricalDistribution`,
:class:`~stable_baselines3.common.distributions.DiagGaussianDistribution` and
:class:`~stable_baselines3.common.distributions.StateDependentNoiseDistribution` (gSDE), whose ``distribution``
attribute becomes a :class:`LeanCategorical` / :class:`LeanNormal`. These are subclasses of torch's ``Categorical`` /
``Normal`` with the same parameters and the same arithmetic for the normalised logits, the probabilities, the samples,
``log_prob`` and ``entropy`` (so the random draws and the sampled actions are those of SB3), built without torch's
generic constructor. Any other distribution, or a policy class that overrides ``_get_action_dist_from_latent``, goes
through SB3's method (see :mod:`sb3_ppo_variants.common.policies` for when the fast paths run at all).
"""

from __future__ import annotations

import torch as th
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy
from torch.distributions import Categorical, Normal


class LeanCategorical(Categorical):
    """``Categorical(logits=...)`` for a ``(batch, n)`` logits tensor, built without torch's generic constructor.

    Same normalisation (``logits - logsumexp``), same ``probs`` (softmax, computed on first use), same sampling;
    ``log_prob`` gathers the stored actions' log-probabilities directly and ``entropy`` is torch's formula.
    """

    def __init__(self, logits: th.Tensor) -> None:
        self.logits = logits - logits.logsumexp(dim=-1, keepdim=True)
        self._param = self.logits
        self._num_events = logits.shape[-1]
        self._batch_shape = logits.shape[:-1]
        self._event_shape = th.Size()

    def log_prob(self, value: th.Tensor) -> th.Tensor:
        """Log-probability of the actions ``value`` (shape ``(batch,)``)."""
        if value.shape != self._batch_shape:
            return super().log_prob(value)
        return self.logits.gather(-1, value.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> th.Tensor:
        """Entropy per sample (torch's formula: ``-sum(p * clamp(log p))``)."""
        logits = th.clamp(self.logits, min=th.finfo(self.logits.dtype).min)
        return -(logits * self.probs).sum(-1)


class LeanNormal(Normal):
    """``Normal(loc, scale)`` for two tensors of the same shape, built without torch's generic constructor
    (argument broadcasting and batch-shape bookkeeping); torch's own ``log_prob``, ``entropy`` and sampling."""

    def __init__(self, loc: th.Tensor, scale: th.Tensor) -> None:
        self.loc = loc
        self.scale = scale
        self._batch_shape = loc.shape
        self._event_shape = th.Size()


def action_distribution(policy: ActorCriticPolicy, latent_pi: th.Tensor) -> Distribution:
    """SB3's ``policy._get_action_dist_from_latent(latent_pi)``, with the lean torch distributions where they apply."""
    dist = policy.action_dist
    if type(policy)._get_action_dist_from_latent is ActorCriticPolicy._get_action_dist_from_latent:
        dist_type = type(dist)
        if dist_type is CategoricalDistribution:
            dist.distribution = LeanCategorical(policy.action_net(latent_pi))  # type: ignore[attr-defined]
            return dist
        if dist_type is DiagGaussianDistribution:
            mean = policy.action_net(latent_pi)
            # SB3: Normal(mean, ones_like(mean) * exp(log_std))
            dist.distribution = LeanNormal(mean, th.ones_like(mean) * policy.log_std.exp())  # type: ignore[attr-defined]
            return dist
        if dist_type is StateDependentNoiseDistribution:
            assert isinstance(dist, StateDependentNoiseDistribution)
            mean = policy.action_net(latent_pi)
            # SB3's proba_distribution: std of a_j = sqrt(sum_i latent_i^2 * sigma_ij^2 + eps)
            dist._latent_sde = latent_pi if dist.learn_features else latent_pi.detach()
            variance = th.mm(dist._latent_sde**2, dist.get_std(policy.log_std) ** 2)
            dist.distribution = LeanNormal(mean, th.sqrt(variance + dist.epsilon))
            return dist
    return policy._get_action_dist_from_latent(latent_pi)
