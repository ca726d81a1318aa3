"""RecurrentClipPPO, RecurrentKLPenaltyPPO, RecurrentREINFORCE, RecurrentSPO: our objectives with an LSTM policy.

Each is its memoryless algorithm (same loss, same shared rollout and update loop) combined with
:class:`RecurrentAlgorithmMixin`, which plugs sb3-contrib's recurrent machinery into the loop's hooks:

- the policy is sb3-contrib's :class:`~sb3_contrib.common.recurrent.policies.RecurrentActorCriticPolicy` (aliases
  ``MlpLstmPolicy``, ``CnnLstmPolicy``, ``MultiInputLstmPolicy`` as in ``RecurrentPPO``, with its ``lstm_hidden_size``,
  ``n_lstm_layers``, ``shared_lstm``, ``enable_critic_lstm`` options);
- in rollouts the LSTM states are carried from step to step and across rollouts (``RNNStates``), reset by the
  policy where an episode starts, stored with each step (the state *before* it), and a time-limit truncation is
  bootstrapped with the critic's state of that env, as ``RecurrentPPO`` does;
- in training each minibatch is a set of padded sequences (sb3-contrib's ``RecurrentRolloutBuffer`` or our
  subclass of it, :mod:`sb3_ppo_variants.recurrent.buffers`); the policy runs over whole sequences and every loss
  term is averaged over the real steps only (:class:`~sb3_ppo_variants.recurrent.calls.RealSteps`);
- ``predict(obs, state, episode_start, deterministic)`` as ``RecurrentPPO``'s, so that SB3's ``evaluate_policy`` and
  rl_zoo3's ``enjoy`` work unchanged.

The names are sb3-contrib's pattern (``RecurrentPPO``): ``Recurrent`` + the algorithm's name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.buffers import RecurrentDictRolloutBuffer, RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from sb3_contrib.ppo_recurrent.policies import CnnLstmPolicy, MlpLstmPolicy, MultiInputLstmPolicy
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from sb3_ppo_variants.clip_ppo import ClipPPO
from sb3_ppo_variants.core.backends import PolicyOutputs
from sb3_ppo_variants.kl_penalty_ppo import KLPenaltyPPO
from sb3_ppo_variants.recurrent.buffers import (
    RecurrentDictRewardToGoRolloutBuffer,
    RecurrentDictSequenceRolloutBuffer,
    RecurrentRewardToGoRolloutBuffer,
    RecurrentSequenceRolloutBuffer,
)
from sb3_ppo_variants.recurrent.calls import RealSteps, RecurrentPolicyCalls
from sb3_ppo_variants.recurrent.states import check_recurrent_predict
from sb3_ppo_variants.reinforce import REINFORCE
from sb3_ppo_variants.spo import SPO


class RecurrentAlgorithmMixin:
    """Recurrent (LSTM) policies for an algorithm of the shared loop (put it first in the bases).

    Every option of the memoryless algorithm keeps its meaning, except ``recompute_advantage`` (it would evaluate the
    critic on the whole rollout without the hidden states): refused at construction.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpLstmPolicy": MlpLstmPolicy,
        "CnnLstmPolicy": CnnLstmPolicy,
        "MultiInputLstmPolicy": MultiInputLstmPolicy,
    }
    policy_base: ClassVar[type[BasePolicy]] = RecurrentActorCriticPolicy
    #: the public calls the gate falls back to (or finds the lean twin of)
    _public_calls: ClassVar[type] = RecurrentPolicyCalls
    #: ``episode_starts`` goes to the policy call; the buffer stores the episode starts itself
    _call_only_kwargs: ClassVar[tuple[str, ...]] = ("episode_starts",)

    policy: Any
    device: th.device
    n_envs: int
    n_steps: int
    rollout_buffer: Any
    rollout_buffer_class: type[RolloutBuffer] | None
    observation_space: spaces.Space
    _last_episode_starts: Any
    #: the LSTM states after the last rollout step (each env's), not saved (as RecurrentPPO)
    _last_lstm_states: RNNStates | None = None

    def _setup_model(self) -> None:
        owner = type(self).__name__
        if getattr(self, "recompute_advantage", False):
            raise ValueError(
                f"{owner}: `recompute_advantage=True` is not available with a recurrent policy (it evaluates the "
                "critic on the whole rollout without the LSTM states); use recompute_advantage=False"
            )
        if self.rollout_buffer_class is None:
            self.rollout_buffer_class = self._default_recurrent_buffer(isinstance(self.observation_space, spaces.Dict))
        super()._setup_model()  # type: ignore[misc]
        if not isinstance(self.policy, RecurrentActorCriticPolicy):  # a class whose instances are not one
            raise ValueError(f"{owner}: Policy must subclass RecurrentActorCriticPolicy, got {type(self.policy).__name__}")
        lstm = self.policy.lstm_actor
        shape = (lstm.num_layers, self.n_envs, lstm.hidden_size)

        def zeros() -> th.Tensor:
            return th.zeros(shape, device=self.device)

        self._last_lstm_states = RNNStates((zeros(), zeros()), (zeros(), zeros()))

    def _default_recurrent_buffer(self, dict_obs: bool) -> type[RolloutBuffer]:
        """The rollout buffer used when the user gives none."""
        return RecurrentDictSequenceRolloutBuffer if dict_obs else RecurrentSequenceRolloutBuffer

    def _required_rollout_buffer(self, dict_obs: bool) -> type[RolloutBuffer] | None:
        return RecurrentDictRolloutBuffer if dict_obs else RecurrentRolloutBuffer

    def _required_rollout_buffer_reason(self) -> str:
        return "(it stores each step's LSTM states and gives minibatches of padded sequences)"

    def _rollout_buffer_extra_kwargs(self) -> dict[str, Any]:
        lstm = self.policy.lstm_actor
        shape = (self.n_steps, lstm.num_layers, self.n_envs, lstm.hidden_size)
        return {**super()._rollout_buffer_extra_kwargs(), "hidden_state_shape": shape}  # type: ignore[misc]

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_last_lstm_states"]  # type: ignore[misc]

    # ------------------------------------------------------------------ rollouts

    def _rollout_policy_kwargs(self, env: VecEnv) -> dict[str, Any]:
        """The LSTM states before this step (also stored with it) and the episode starts (the policy resets the
        states there), beside the algorithm's own arguments."""
        episode_starts = th.tensor(self._last_episode_starts, dtype=th.float32, device=self.device)
        kwargs = super()._rollout_policy_kwargs(env)  # type: ignore[misc]
        return {**kwargs, "lstm_states": self._last_lstm_states, "episode_starts": episode_starts}

    def _after_policy_step(self, outputs: PolicyOutputs) -> None:
        self._last_lstm_states = outputs.states

    def _terminal_values(self, observations: list[Any], envs: list[int]) -> th.Tensor:
        """V(terminal observation) with the critic's LSTM state of each truncated env after the step (RecurrentPPO)."""
        assert self._last_lstm_states is not None
        hidden, cell = self._last_lstm_states.vf
        values = []
        not_started = th.zeros(1, dtype=th.float32, device=self.device)
        with th.no_grad():
            for observation, env in zip(observations, envs, strict=True):
                obs_tensor = self.policy.obs_to_tensor(observation)[0]
                state = (hidden[:, env : env + 1, :].contiguous(), cell[:, env : env + 1, :].contiguous())
                values.append(self.policy.predict_values(obs_tensor, state, not_started)[0])
        return th.cat(values)

    def _last_values(self, observations: Any, dones: np.ndarray) -> th.Tensor:
        assert self._last_lstm_states is not None
        episode_starts = th.tensor(dones, dtype=th.float32, device=self.device)
        obs_tensor = obs_as_tensor(observations, self.device)
        return self.policy.predict_values(obs_tensor, self._last_lstm_states.vf, episode_starts)  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ training

    def _minibatch_loss(self, batch: Any, calls: Any, clip_range_vf: float | None, stats: Any) -> Any:
        """The loop's minibatch loss on the real steps of the padded sequences (:class:`RealSteps`)."""
        return super()._minibatch_loss(RealSteps(batch), calls, clip_range_vf, stats)  # type: ignore[misc]

    def _minibatch_policy_kwargs(self, batch: Any) -> dict[str, Any]:
        """The sequences' first LSTM states, their episode starts and the real steps, beside the algorithm's own."""
        kwargs = super()._minibatch_policy_kwargs(batch)  # type: ignore[misc]
        return {**kwargs, "lstm_states": batch.lstm_states, "episode_starts": batch.episode_starts, "mask": batch.mask}

    def _batch_mean(self, per_sample: Any) -> float:
        """The mean of ``per_sample`` over the real steps of the whole rollout, in order, as whole sequences."""
        buffer = self.rollout_buffer
        with th.no_grad():
            if hasattr(buffer, "samples_in_order"):
                padded = buffer.samples_in_order()
            else:  # a user's sb3-contrib buffer: its public get(), without moving NumPy's random stream
                random_state = np.random.get_state()
                padded = next(buffer.get(None))
                np.random.set_state(random_state)
            batch = RealSteps(padded)
            actions = batch.actions.long().flatten() if isinstance(self.action_space, spaces.Discrete) else batch.actions  # type: ignore[attr-defined]
            outputs = RecurrentPolicyCalls(self.policy).evaluate(
                batch.observations, actions, with_values=False, entropy_grad=False, **self._minibatch_policy_kwargs(batch)
            )
            values = per_sample(batch, outputs.log_prob, lambda: outputs.distribution)
        return float(values.mean())

    # ------------------------------------------------------------------ public interface of RecurrentPPO

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        **kwargs: Any,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The policy's action for ``observation`` and its next LSTM state, as ``RecurrentPPO.predict``.

        :param observation: the observation(s), one per env
        :param state: the LSTM (hidden, cell) state returned by the previous call, each ``(n_lstm_layers, n_envs,
            lstm_hidden_size)``; None at the first call (zeros)
        :param episode_start: one bool per env, True where a new episode starts (the state is reset there); None:
            no episode starts
        :param deterministic: the most likely action instead of a sample
        :return: the action(s) and the next state, to pass to the next call
        """
        check_recurrent_predict(type(self).__name__, self.policy, self.observation_space, observation, state, episode_start)
        return super().predict(observation, state, episode_start, deterministic, **kwargs)  # type: ignore[misc,no-any-return]


class _RecurrentKLMixin:
    """KLPenaltyPPO's closed-form KL under recurrence: computed with the padded batch's distribution and the stored old
    distribution of every padded step, then read on the real steps."""

    kl_estimator: str

    def _kl(self, batch: Any, log_prob: th.Tensor, distribution: Any) -> th.Tensor:
        kl = super()._kl(batch, log_prob, distribution)  # type: ignore[misc]
        return kl[batch.mask] if self.kl_estimator == "closed_form" else kl  # type: ignore[no-any-return]

    def _required_rollout_buffer(self, dict_obs: bool) -> type[RolloutBuffer] | None:
        if self.kl_estimator == "closed_form":
            return RecurrentDictSequenceRolloutBuffer if dict_obs else RecurrentSequenceRolloutBuffer
        return super()._required_rollout_buffer(dict_obs)  # type: ignore[misc,no-any-return]

    def _required_rollout_buffer_reason(self) -> str:
        if self.kl_estimator == "closed_form":
            return "(it stores each step's LSTM states and, for the closed-form KL, the old action distribution)"
        return super()._required_rollout_buffer_reason()  # type: ignore[misc,no-any-return]


class RecurrentPPODefaults:
    """``RecurrentPPO``'s defaults where they differ from PPO's (``n_steps=128``, ``batch_size=128``), for the recurrent
    PPO-family classes (put it first in the bases); every other parameter is the algorithm's."""

    def __init__(
        self,
        policy: str | type[RecurrentActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 128,
        batch_size: int | None = 128,
        **kwargs: Any,
    ):
        super().__init__(policy, env, learning_rate=learning_rate, n_steps=n_steps, batch_size=batch_size, **kwargs)  # type: ignore[call-arg]


class RecurrentClipPPO(RecurrentPPODefaults, RecurrentAlgorithmMixin, ClipPPO):
    """:class:`~sb3_ppo_variants.ClipPPO` with an LSTM policy: sb3-contrib's ``RecurrentPPO`` on our loop.

    Parameters are ClipPPO's, with ``RecurrentPPO``'s defaults where they differ (``n_steps=128``,
    ``batch_size=128``: a minibatch is ``batch_size`` consecutive steps before padding); ``policy`` is a
    ``RecurrentActorCriticPolicy`` (``"MlpLstmPolicy"``, ``"CnnLstmPolicy"``, ``"MultiInputLstmPolicy"``). With the same
    arguments, seed and ``numerics="sb3"``, it computes what ``RecurrentPPO`` computes (up to float rounding).
    """


class RecurrentKLPenaltyPPO(RecurrentPPODefaults, _RecurrentKLMixin, RecurrentAlgorithmMixin, KLPenaltyPPO):
    """:class:`~sb3_ppo_variants.KLPenaltyPPO` with an LSTM policy.

    The KL against the old distribution is read per real step (the closed form from the distribution stored with each
    step), and beta follows the paper's rule once per update, from the mean KL over the rollout's real steps.
    Parameters are KLPenaltyPPO's, with ``RecurrentPPO``'s ``n_steps=128`` and ``batch_size=128``; ``policy`` is a
    ``RecurrentActorCriticPolicy``.
    """

    def _default_recurrent_buffer(self, dict_obs: bool) -> type[RolloutBuffer]:
        return RecurrentDictSequenceRolloutBuffer if dict_obs else RecurrentSequenceRolloutBuffer


class RecurrentREINFORCE(RecurrentAlgorithmMixin, REINFORCE):
    """:class:`~sb3_ppo_variants.REINFORCE` with an LSTM policy: the normalised reward-to-go of whole episodes, one
    gradient step per rollout by default, the LSTM run over each env's steps in order.

    Parameters are REINFORCE's (its defaults too); ``policy`` is a ``RecurrentActorCriticPolicy``. Without a baseline
    the critic's LSTM is still built by the policy (``enable_critic_lstm=True`` is sb3-contrib's default) but never
    trained; pass ``policy_kwargs=dict(enable_critic_lstm=False)`` to leave it out.
    """

    def _default_recurrent_buffer(self, dict_obs: bool) -> type[RolloutBuffer]:
        return RecurrentDictRewardToGoRolloutBuffer if dict_obs else RecurrentRewardToGoRolloutBuffer

    def _required_rollout_buffer(self, dict_obs: bool) -> type[RolloutBuffer] | None:
        return self._default_recurrent_buffer(dict_obs)

    def _required_rollout_buffer_reason(self) -> str:
        return "(REINFORCE's normalised reward-to-go in padded sequences, with the LSTM states of each step)"


class RecurrentSPO(RecurrentPPODefaults, RecurrentAlgorithmMixin, SPO):
    """:class:`~sb3_ppo_variants.SPO` with an LSTM policy: SPO's quadratic penalty on the ratio, averaged over the real
    steps of the padded sequences. Parameters are SPO's, with ``RecurrentPPO``'s ``n_steps=128`` and
    ``batch_size=128``; ``policy`` is a ``RecurrentActorCriticPolicy``.
    """
