"""The lean recurrent calls: sb3-contrib's recurrent ``forward``/``evaluate_actions``, one LSTM call per minibatch.

sb3-contrib's ``RecurrentActorCriticPolicy._process_sequence`` runs the LSTM one time step at a time whenever a
minibatch holds an episode start anywhere, which is nearly always. Yet its buffer cuts the sequences at every episode
start, so a reset can only fall on a sequence's *first* step; and resetting there is the same as starting that
sequence from zero states. :func:`lstm_sequences` therefore zeroes the first states where a sequence starts an episode
and runs the whole padded batch through the LSTM in one call (the padding sits after each sequence's real steps, so
it cannot reach them). Where an episode start falls inside a sequence (a user's buffer that does not cut there), the
policy's own ``_process_sequence`` runs.

One call over ``L`` steps and ``L`` calls of one step compute the same recurrence, but torch's LSTM computes the input
projections of all steps in one matrix product: the float rounding may differ. So the one-call path runs only with
``numerics="fast"``; with ``"sb3"`` training keeps sb3-contrib's step loop. A rollout step is one time step either
way: the states scaled by ``1 - episode_start`` (sb3-contrib's reset, exact where no episode starts) and one call,
the same numbers as the policy's (tested bit for bit).

:class:`LeanRecurrentPolicyCalls` stands in for :class:`~sb3_ppo_variants.recurrent.calls.RecurrentPolicyCalls` only
for sb3-contrib's exact recurrent classes and our masked one (:func:`not_exact_recurrent_reason`), with the modules
run as :mod:`~sb3_ppo_variants._lean.torch_calls` runs them and the lean distributions.
"""

from __future__ import annotations

from typing import Any

import torch as th
from sb3_contrib.common.recurrent.policies import (
    RecurrentActorCriticCnnPolicy,
    RecurrentActorCriticPolicy,
    RecurrentMultiInputActorCriticPolicy,
)
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.type_aliases import PyTorchObs
from torch import nn

from sb3_ppo_variants._lean.distributions import action_distribution
from sb3_ppo_variants._lean.maskable import masked_action_distribution
from sb3_ppo_variants._lean.modules import run_module
from sb3_ppo_variants._lean.structure import REPLACED_METHODS, PolicyStructure, set_training_mode
from sb3_ppo_variants._lean.torch_calls import _features, _mlp_half
from sb3_ppo_variants.core.backends import PolicyOutputs
from sb3_ppo_variants.recurrent.calls import RecurrentPolicyCalls
from sb3_ppo_variants.recurrent.policies import MaskableRecurrentActorCriticPolicy

#: the classes whose methods the lean calls stand in for
RECURRENT_POLICY_CLASSES: tuple[type[RecurrentActorCriticPolicy], ...] = (
    RecurrentActorCriticPolicy,
    RecurrentActorCriticCnnPolicy,
    RecurrentMultiInputActorCriticPolicy,
    MaskableRecurrentActorCriticPolicy,
)
#: the recurrent policy's methods the lean calls replace, beside the memoryless ones
RECURRENT_REPLACED_METHODS = (*REPLACED_METHODS, "_process_sequence", "_predict")


def not_exact_recurrent_reason(policy: Any, structure: PolicyStructure) -> str | None:
    """Why the lean recurrent calls may not stand in for the policy's methods (None: they may)."""
    if type(policy) not in RECURRENT_POLICY_CLASSES:
        return f"the policy's class {type(policy).__name__} is not exactly one of sb3-contrib's recurrent policies"
    replaced = [name for name in RECURRENT_REPLACED_METHODS if name in vars(policy)]
    if replaced:
        return f"the policy object replaces {', '.join(replaced)}"
    if structure.module_hooks:
        return "a forward/backward hook is registered on a module of the policy (or for all modules)"
    if type(policy.lstm_actor) is not nn.LSTM or (policy.lstm_critic is not None and type(policy.lstm_critic) is not nn.LSTM):
        return "an LSTM of the policy is not torch's nn.LSTM"
    return None


def lstm_sequences(
    features: th.Tensor, states: tuple[th.Tensor, ...], episode_starts: th.Tensor, lstm: nn.LSTM, whole: bool
) -> tuple[th.Tensor, Any]:
    """sb3-contrib's ``_process_sequence(features, states, episode_starts, lstm)``: the LSTM's outputs ``(padded batch,
    hidden)`` and last states, in one LSTM call where episode starts fall on first steps only (see the module
    docstring; ``whole``: allowed for sequences longer than one step)."""
    n_seq = states[0].shape[1]
    sequence = features.reshape((n_seq, -1, lstm.input_size)).swapaxes(0, 1)
    starts = episode_starts.reshape((n_seq, -1))
    if sequence.shape[0] > 1 and (not whole or bool(starts[:, 1:].any())):
        return RecurrentActorCriticPolicy._process_sequence(features, states, episode_starts, lstm)  # type: ignore[arg-type]
    keep = (1.0 - starts[:, 0]).view(1, n_seq, 1)
    output, new_states = lstm(sequence, (keep * states[0], keep * states[1]))
    return th.flatten(output.transpose(0, 1), start_dim=0, end_dim=1), new_states


class LeanRecurrentPolicyCalls(RecurrentPolicyCalls):
    """The lean twin of :class:`~sb3_ppo_variants.recurrent.calls.RecurrentPolicyCalls`.

    :param policy: the policy (the gate checked :func:`not_exact_recurrent_reason`)
    :param structure: its :class:`~sb3_ppo_variants._lean.structure.PolicyStructure` of this rollout or update
    :param whole_sequences: one LSTM call per minibatch in training (``numerics="fast"``)
    """

    name = "lean"
    inference_mode = True

    def __init__(self, policy: Any, structure: PolicyStructure, whole_sequences: bool) -> None:
        super().__init__(policy)
        self.structure = structure
        self.whole_sequences = whole_sequences

    def set_training_mode(self, mode: bool) -> None:
        set_training_mode(self.policy, mode, self.structure)

    def _run(
        self, obs: PyTorchObs, lstm_states: RNNStates, episode_starts: th.Tensor, with_values: bool, action_masks: Any
    ) -> tuple[Any, th.Tensor | None, RNNStates]:
        """The distribution, the values (``with_values``) and the new states, as the policy's ``forward``."""
        policy = self.policy
        whole = self.whole_sequences
        if policy.share_features_extractor:
            pi_features = vf_features = _features(policy, obs, policy.pi_features_extractor)
        else:
            pi_features = _features(policy, obs, policy.pi_features_extractor)
            vf_features = _features(policy, obs, policy.vf_features_extractor)
        latent_pi, states_pi = lstm_sequences(pi_features, lstm_states.pi, episode_starts, policy.lstm_actor, whole)
        values = None
        states_vf: Any = states_pi
        if policy.lstm_critic is not None:
            if with_values:
                latent_vf, states_vf = lstm_sequences(vf_features, lstm_states.vf, episode_starts, policy.lstm_critic, whole)
        elif policy.shared_lstm:
            latent_vf = latent_pi.detach()
            states_vf = (states_pi[0].detach(), states_pi[1].detach())
        elif with_values:
            latent_vf = run_module(policy.critic, vf_features)
        if with_values:
            values = run_module(policy.value_net, _mlp_half(policy, latent_vf, "value_net"))
        latent_pi = _mlp_half(policy, latent_pi, "policy_net")
        if isinstance(policy, MaskableRecurrentActorCriticPolicy):
            distribution = masked_action_distribution(policy, latent_pi, action_masks)
        else:
            distribution = action_distribution(policy, latent_pi)
        return distribution, values, RNNStates(states_pi, states_vf)

    def act(  # type: ignore[override]
        self, obs: PyTorchObs, with_values: bool, lstm_states: Any, episode_starts: th.Tensor, **policy_kwargs: Any
    ) -> PolicyOutputs:
        if not set(policy_kwargs) <= {"action_masks"}:
            return super().act(obs, with_values, lstm_states, episode_starts, **policy_kwargs)
        # the critic's states are carried for the next step even where its values are not used
        distribution, values, states = self._run(obs, lstm_states, episode_starts, True, policy_kwargs.get("action_masks"))
        actions = distribution.get_actions()
        log_prob = distribution.log_prob(actions)
        actions = actions.reshape((-1, *self.policy.action_space.shape))
        return PolicyOutputs(values if with_values else None, log_prob, distribution, actions=actions, states=states)

    def evaluate(  # type: ignore[override]
        self,
        obs: PyTorchObs,
        actions: th.Tensor,
        with_values: bool,
        entropy_grad: bool,
        lstm_states: Any,
        episode_starts: th.Tensor,
        mask: th.Tensor,
        **policy_kwargs: Any,
    ) -> PolicyOutputs:
        if not set(policy_kwargs) <= {"action_masks"}:
            return super().evaluate(
                obs, actions, with_values, entropy_grad, lstm_states, episode_starts, mask, **policy_kwargs
            )
        distribution, values, _ = self._run(obs, lstm_states, episode_starts, with_values, policy_kwargs.get("action_masks"))
        log_prob = distribution.log_prob(actions)[mask]
        # with a zero entropy coefficient the entropy is only logged: no graph, no backward through it
        with th.set_grad_enabled(entropy_grad and th.is_grad_enabled()):
            entropy = distribution.entropy()
        return PolicyOutputs(
            None if values is None else values[mask],
            log_prob,
            distribution,
            entropy=None if entropy is None else entropy[mask],
        )
