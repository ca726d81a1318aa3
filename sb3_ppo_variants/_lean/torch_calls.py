"""The lean policy calls: SB3's ``forward``/``evaluate_actions``/``get_distribution`` computed without their overhead.

:class:`LeanPolicyCalls` stands in for the core's :class:`~sb3_ppo_variants.core.backends.PolicyCalls` where the
policy is exactly SB3's (:func:`~sb3_ppo_variants._lean.structure.is_exact_sb3_policy`): the same modules compute in
the same order, called through :func:`~sb3_ppo_variants._lean.modules.run_module`, and the distribution is built by
:func:`~sb3_ppo_variants._lean.distributions.action_distribution`: the same numbers and random draws as SB3's methods
(tested bit for bit). The critic is skipped when not needed, the entropy computed without a graph when it is only
logged, and the rollouts run under ``torch.inference_mode``. Where the gate allows it (``numerics="fast"``), a rollout
step of SB3's ``MlpPolicy`` runs in NumPy instead (:mod:`~sb3_ppo_variants._lean.numpy_rollout`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import MlpExtractor
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn

from sb3_ppo_variants._lean.distributions import action_distribution
from sb3_ppo_variants._lean.modules import run_module
from sb3_ppo_variants._lean.numpy_rollout import NumpyRolloutStep
from sb3_ppo_variants._lean.structure import PolicyStructure, set_training_mode
from sb3_ppo_variants.core.backends import PolicyCalls, PolicyOutputs


def _features(policy: Any, obs: PyTorchObs, extractor: nn.Module) -> th.Tensor:
    """SB3's ``BasePolicy.extract_features(obs, extractor)``: the preprocessed observation through the extractor."""
    preprocessed = preprocess_obs(obs, policy.observation_space, normalize_images=policy.normalize_images)
    return run_module(extractor, preprocessed)  # type: ignore[arg-type]


def _mlp_half(policy: Any, features: th.Tensor, half: str) -> th.Tensor:
    """SB3's ``mlp_extractor.forward_actor`` (``half="policy_net"``) or ``forward_critic`` (``"value_net"``)."""
    extractor = policy.mlp_extractor
    if type(extractor) is not MlpExtractor:
        return extractor.forward_actor(features) if half == "policy_net" else extractor.forward_critic(features)
    return run_module(getattr(extractor, half), features)


def lean_latents(policy: Any, obs: PyTorchObs, with_values: bool) -> tuple[th.Tensor, th.Tensor | None]:
    """The actor's latent code and (``with_values``) the values, as SB3's ``forward``/``evaluate_actions`` (with values)
    or ``get_distribution`` (without) compute them, in one pass (exact classes: SB3's, or sb3-contrib's maskable
    policies, which compute them the same way)."""
    if not with_values or policy.share_features_extractor:
        # shared extractor: SB3 extracts the features once for both halves; get_distribution uses the actor's
        pi_features = vf_features = _features(policy, obs, policy.pi_features_extractor)
    else:
        pi_features = _features(policy, obs, policy.pi_features_extractor)
        vf_features = _features(policy, obs, policy.vf_features_extractor)
    latent_pi = _mlp_half(policy, pi_features, "policy_net")
    if not with_values:
        return latent_pi, None
    return latent_pi, run_module(policy.value_net, _mlp_half(policy, vf_features, "value_net"))


def _lean_outputs(policy: ActorCriticPolicy, obs: PyTorchObs, with_values: bool) -> tuple[Distribution, th.Tensor | None]:
    latent_pi, values = lean_latents(policy, obs, with_values)
    return action_distribution(policy, latent_pi), values


class LeanPolicyCalls(PolicyCalls):
    """The lean twin of :class:`~sb3_ppo_variants.core.backends.PolicyCalls` for an exact SB3 policy.

    :param policy: the policy (the gate checked it is exactly SB3's)
    :param structure: its :class:`~sb3_ppo_variants._lean.structure.PolicyStructure` of this rollout or update
    :param numpy_step: the NumPy rollout step where the gate allows it, else None
    """

    name = "lean"
    inference_mode = True

    def __init__(self, policy: Any, structure: PolicyStructure, numpy_step: NumpyRolloutStep | None = None) -> None:
        super().__init__(policy)
        self.structure = structure
        self.numpy_step = numpy_step
        if numpy_step is not None:
            self.name = "numpy"

    def set_training_mode(self, mode: bool) -> None:
        set_training_mode(self.policy, mode, self.structure)

    def act(self, obs: PyTorchObs, with_values: bool, **policy_kwargs: Any) -> PolicyOutputs:
        if policy_kwargs:  # e.g. action_masks= for a policy that is not maskable: SB3's own call
            return super().act(obs, with_values, **policy_kwargs)
        numpy_step = self.numpy_step
        if numpy_step is not None and isinstance(obs, th.Tensor) and numpy_step.applies(obs):
            actions, values, log_prob, build_distribution, flat_params = numpy_step.act(obs, with_values)
            return PolicyOutputs(values, log_prob, build_distribution, actions=actions, flat_params=flat_params)
        distribution, values = _lean_outputs(self.policy, obs, with_values)
        actions = distribution.get_actions()
        return PolicyOutputs(values, distribution.log_prob(actions), distribution, actions=actions)

    def evaluate(
        self, obs: PyTorchObs, actions: th.Tensor, with_values: bool, entropy_grad: bool, **policy_kwargs: Any
    ) -> PolicyOutputs:
        if policy_kwargs:
            return super().evaluate(obs, actions, with_values, entropy_grad, **policy_kwargs)
        distribution, values = _lean_outputs(self.policy, obs, with_values)
        log_prob = distribution.log_prob(actions)
        # with a zero entropy coefficient the entropy is only logged: no graph, no backward through it
        with th.set_grad_enabled(entropy_grad and th.is_grad_enabled()):
            entropy = distribution.entropy()
        return PolicyOutputs(values, log_prob, distribution, entropy=entropy)

    def terminal_values(self, observations: list[Any]) -> th.Tensor:
        """One ``predict_values`` call for all the terminal observations of a step (the same values)."""
        if len(observations) == 1:
            return super().terminal_values(observations)
        batch = _stack_observations(observations)
        with th.no_grad():
            return self.policy.predict_values(self.policy.obs_to_tensor(batch)[0])[:, 0]


def _stack_observations(observations: list[Any]) -> Any:
    """A batch of single-env observations (arrays, or dicts of arrays) with a leading batch dimension."""
    if isinstance(observations[0], dict):
        return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}
    return np.stack(observations)
