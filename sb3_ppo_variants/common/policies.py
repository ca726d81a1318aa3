"""Calls into the policy: SB3's public methods, or a leaner equivalent where the policy is exactly SB3's."""

from __future__ import annotations

import torch as th
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs

from sb3_ppo_variants.common.distributions import action_distribution


def set_training_mode(policy: BasePolicy, mode: bool) -> None:
    """``policy.set_training_mode(mode)``, skipped when every module already is in that mode.

    ``nn.Module.train()`` walks the module tree through ``__setattr__`` (about 0.4 ms for SB3's MLP policy): called at
    every rollout and every update, that is a few percent of a short-rollout algorithm's time.
    """
    if any(module.training != mode for module in policy.modules()):
        policy.set_training_mode(mode)


def policy_outputs(policy: ActorCriticPolicy, obs: PyTorchObs, with_values: bool) -> tuple[Distribution, th.Tensor | None]:
    """Action distribution and (optionally) value of ``obs``, in one pass through the networks.

    The same computation as SB3's ``ActorCriticPolicy.forward``/``evaluate_actions``/``get_distribution``, but
    returning the distribution object (KLPenaltyPPO needs it), skipping the critic when it is not used, and building
    the distribution with :func:`~sb3_ppo_variants.common.distributions.action_distribution`.
    """
    if not with_values:
        if type(policy).get_distribution is not ActorCriticPolicy.get_distribution:
            return policy.get_distribution(obs), None
        pi_only = BasePolicy.extract_features(policy, obs, policy.pi_features_extractor)
        return action_distribution(policy, policy.mlp_extractor.forward_actor(pi_only)), None
    features = policy.extract_features(obs)
    if policy.share_features_extractor:
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:
        pi_features, vf_features = features
        latent_pi = policy.mlp_extractor.forward_actor(pi_features)
        latent_vf = policy.mlp_extractor.forward_critic(vf_features)
    return action_distribution(policy, latent_pi), policy.value_net(latent_vf)
