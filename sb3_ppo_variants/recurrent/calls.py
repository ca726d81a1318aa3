"""How the shared loop talks to a recurrent policy: sb3-contrib's public calls, and the real steps of a padded batch.

:class:`RecurrentPolicyCalls` is the recurrent counterpart of :class:`~sb3_ppo_variants.core.backends.PolicyCalls`:
``policy(obs, lstm_states, episode_starts)`` in rollouts (as ``RecurrentPPO.collect_rollouts``) and
``policy.evaluate_actions(obs, actions, lstm_states, episode_starts)`` in training (as ``RecurrentPPO.train``). The
fast wing's gate may hand back its lean twin instead (:mod:`sb3_ppo_variants._lean.recurrent`).

A training minibatch is a set of padded sequences. The policy runs over the padded sequences (an LSTM needs them
whole); the loss reads the real steps only: :class:`RealSteps` is the minibatch as the loss sees it, and the
calls return the policy's per-step outputs on the real steps. That is how ``RecurrentPPO`` averages (``x[mask]``), so
every objective of the loop is averaged over the real steps without a line of its own.
"""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.type_aliases import PyTorchObs

from sb3_ppo_variants.core.backends import PolicyCalls, PolicyOutputs

#: the fields of a recurrent minibatch that are per-step targets of the loss, read on the real steps only
TARGET_FIELDS = ("old_values", "old_log_prob", "advantages", "returns")


class RealSteps:
    """A padded recurrent minibatch as the loss reads it.

    The policy's inputs stay padded (``observations``, ``actions``, ``lstm_states``, ``episode_starts``, the action
    masks), as do the fields read together with the action distribution (``old_dist_params``): the distribution of a
    padded batch covers the padded steps. The per-step targets (:data:`TARGET_FIELDS`) are those of the real steps.

    :param batch: the buffer's samples, with a ``mask`` (1 on the real steps)
    """

    def __init__(self, batch: Any) -> None:
        #: the buffer's samples, padded
        self.padded = batch
        #: True on the real steps of the padded batch (``RecurrentPPO``: ``mask > 1e-8``)
        self.mask: th.Tensor = batch.mask > 1e-8
        for name in TARGET_FIELDS:
            setattr(self, name, getattr(batch, name)[self.mask])

    def __getattr__(self, name: str) -> Any:
        if name == "padded":  # not set yet (e.g. while unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.padded, name)


class RecurrentPolicyCalls(PolicyCalls):
    """sb3-contrib's public recurrent policy calls, for one rollout or one update.

    :param policy: the algorithm's ``RecurrentActorCriticPolicy``
    """

    def act(  # type: ignore[override]
        self, obs: PyTorchObs, with_values: bool, lstm_states: Any, episode_starts: th.Tensor, **policy_kwargs: Any
    ) -> PolicyOutputs:
        """One rollout step: ``policy(obs, lstm_states, episode_starts)``; the new states in ``outputs.states``."""
        actions, values, log_prob, states = self.policy(obs, lstm_states, episode_starts, **policy_kwargs)
        policy = self.policy

        def distribution() -> Any:
            return policy.get_distribution(obs, lstm_states.pi, episode_starts, **policy_kwargs)[0]

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
        """``policy.evaluate_actions(obs, actions, lstm_states, episode_starts)`` over the padded sequences, as
        ``RecurrentPPO.train``; values, log-probabilities and entropy of the real steps (``mask``). The distribution
        (on first use, by ``policy.get_distribution``) is the padded batch's."""
        values, log_prob, entropy = self.policy.evaluate_actions(obs, actions, lstm_states, episode_starts, **policy_kwargs)
        policy = self.policy

        def distribution() -> Any:
            return policy.get_distribution(obs, lstm_states.pi, episode_starts, **policy_kwargs)[0]

        return PolicyOutputs(
            values[mask] if with_values else None,
            log_prob[mask],
            distribution,
            entropy=None if entropy is None else entropy[mask],
        )
