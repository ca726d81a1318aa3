"""The lean policy calls of the masked algorithms, for sb3-contrib's exact maskable policies.

The fast-path rule (:mod:`sb3_ppo_variants._lean.structure`) applies unchanged: the lean path runs only when
the policy's class is exactly sb3-contrib's :class:`~sb3_contrib.common.maskable.policies.MaskableActorCriticPolicy`,
``MaskableActorCriticCnnPolicy`` or ``MaskableMultiInputActorCriticPolicy``, none of its methods is replaced on the
object itself, its action distribution is exactly one of sb3-contrib's maskable categoricals, no module hook is
registered, and the only extra argument of the call is ``action_masks``. Otherwise the public calls run:
``policy(obs, action_masks=...)`` in rollouts and ``policy.evaluate_actions(obs, actions, action_masks=...)`` in
training, as ``MaskablePPO`` does.

The lean path computes what those methods compute, with the same arithmetic: the same modules in the same order
(:func:`~sb3_ppo_variants._lean.torch_calls.lean_latents`), and :class:`LeanMaskableCategorical` in place of
sb3-contrib's ``MaskableCategorical``, which builds a torch ``Categorical`` twice per call (once for the raw logits,
once more for the masked ones). It normalises the logits, replaces the illegal ones by -1e8 and normalises again, as
``MaskableCategorical`` does, so the log-probabilities, the entropy and the random draws are the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from sb3_contrib.common.maskable.distributions import (
    MaskableBernoulliDistribution,
    MaskableCategorical,
    MaskableCategoricalDistribution,
    MaskableMultiCategoricalDistribution,
)
from sb3_contrib.common.maskable.policies import (
    MaskableActorCriticCnnPolicy,
    MaskableActorCriticPolicy,
    MaskableMultiInputActorCriticPolicy,
)
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs

from sb3_ppo_variants._lean.distributions import LeanCategorical, lean_distributions_available
from sb3_ppo_variants._lean.modules import run_module
from sb3_ppo_variants._lean.structure import REPLACED_METHODS, PolicyStructure, has_module_hooks
from sb3_ppo_variants._lean.torch_calls import LeanPolicyCalls, lean_latents
from sb3_ppo_variants.core.backends import PolicyCalls, PolicyOutputs

#: sb3-contrib's policy classes the lean path stands in for (exact classes: a subclass takes the public path).
SB3_CONTRIB_MASKABLE_POLICY_CLASSES: tuple[type[BasePolicy], ...] = (
    MaskableActorCriticPolicy,
    MaskableActorCriticCnnPolicy,
    MaskableMultiInputActorCriticPolicy,
)
#: sb3-contrib's maskable distributions the lean path builds (exact classes).
SB3_CONTRIB_MASKABLE_DISTRIBUTIONS = (
    MaskableCategoricalDistribution,
    MaskableMultiCategoricalDistribution,
    MaskableBernoulliDistribution,
)
#: the logit sb3-contrib's MaskableCategorical gives an illegal action
ILLEGAL_LOGIT = -1e8


class LeanMaskableCategorical(LeanCategorical, MaskableCategorical):
    """sb3-contrib's ``MaskableCategorical(logits=...)`` with ``apply_masking(masks)``, built without torch's generic
    constructor: ``logits - logsumexp``, illegal entries set to -1e8, normalised again (``masks=None``: the second
    normalisation only, as sb3-contrib's); its masked entropy (illegal entries contribute 0)."""

    def __init__(self, logits: th.Tensor, masks: th.Tensor | np.ndarray | None) -> None:
        normalised = logits - logits.logsumexp(dim=-1, keepdim=True)
        self._original_logits = normalised
        if masks is None:
            self.masks = None
        else:
            self.masks = th.as_tensor(masks, dtype=th.bool, device=logits.device).reshape(normalised.shape)
            normalised = th.where(self.masks, normalised, th.tensor(ILLEGAL_LOGIT, dtype=logits.dtype, device=logits.device))
        LeanCategorical.__init__(self, normalised)

    def entropy(self) -> th.Tensor:
        """sb3-contrib's masked entropy: ``-sum(p log p)`` over the legal entries (torch's formula without masks)."""
        if self.masks is None:
            return LeanCategorical.entropy(self)
        p_log_p = self.logits * self.probs
        return -th.where(self.masks, p_log_p, th.zeros((), dtype=p_log_p.dtype, device=p_log_p.device)).sum(-1)


def is_exact_sb3_contrib_maskable_policy(policy: BasePolicy, structure: PolicyStructure | None = None) -> bool:
    """Whether the lean path may stand in for the maskable policy's methods (the rule in the module docstring);
    ``structure``: the policy's :class:`~sb3_ppo_variants._lean.structure.PolicyStructure` if already read."""
    return (
        type(policy) in SB3_CONTRIB_MASKABLE_POLICY_CLASSES
        and not any(name in vars(policy) for name in REPLACED_METHODS)
        and type(getattr(policy, "action_dist", None)) in SB3_CONTRIB_MASKABLE_DISTRIBUTIONS
        and not (structure.module_hooks if structure is not None else has_module_hooks(policy))
        and lean_distributions_available()
    )


def masked_action_distribution(policy: Any, latent_pi: th.Tensor, masks: Any) -> Distribution:
    """sb3-contrib's ``policy._get_action_dist_from_latent(latent_pi)`` then ``apply_masking(masks)``, built lean."""
    dist = policy.action_dist
    logits = run_module(policy.action_net, latent_pi)
    if isinstance(dist, MaskableCategoricalDistribution):
        dist.distribution = LeanMaskableCategorical(logits.view(-1, dist.action_dim), masks)
        return dist
    sizes = list(dist.action_dims)
    logits = logits.view(-1, sum(sizes))
    split_masks: list[Any] = [None] * len(sizes)
    if masks is not None:
        split_masks = list(th.split(th.as_tensor(masks, device=logits.device).view(-1, sum(sizes)), sizes, dim=1))
    dist.distributions = [
        LeanMaskableCategorical(chunk, mask) for chunk, mask in zip(th.split(logits, sizes, dim=1), split_masks, strict=True)
    ]
    return dist


class LeanMaskablePolicyCalls(LeanPolicyCalls):
    """The lean twin of :class:`~sb3_ppo_variants.core.backends.PolicyCalls` for sb3-contrib's exact maskable
    policies (:func:`is_exact_sb3_contrib_maskable_policy`): calls whose only extra argument is ``action_masks`` run
    lean, any other takes SB3's public call."""

    name = "lean"

    def act(self, obs: PyTorchObs, with_values: bool, **policy_kwargs: Any) -> PolicyOutputs:
        if not set(policy_kwargs) <= {"action_masks"}:
            return PolicyCalls.act(self, obs, with_values, **policy_kwargs)
        latent_pi, values = lean_latents(self.policy, obs, with_values)
        distribution = masked_action_distribution(self.policy, latent_pi, policy_kwargs.get("action_masks"))
        actions = distribution.get_actions()
        return PolicyOutputs(values, distribution.log_prob(actions), distribution, actions=actions)

    def evaluate(
        self, obs: PyTorchObs, actions: th.Tensor, with_values: bool, entropy_grad: bool, **policy_kwargs: Any
    ) -> PolicyOutputs:
        if not set(policy_kwargs) <= {"action_masks"}:
            return PolicyCalls.evaluate(self, obs, actions, with_values, entropy_grad, **policy_kwargs)
        latent_pi, values = lean_latents(self.policy, obs, with_values)
        distribution = masked_action_distribution(self.policy, latent_pi, policy_kwargs.get("action_masks"))
        log_prob = distribution.log_prob(actions)
        with th.set_grad_enabled(entropy_grad and th.is_grad_enabled()):
            entropy = distribution.entropy()
        return PolicyOutputs(values, log_prob, distribution, entropy=entropy)
