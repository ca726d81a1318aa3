"""The recurrent algorithms' rollout buffers: sb3-contrib's, plus the per-step fields our objectives need.

:class:`RecurrentSequenceRolloutBuffer` / :class:`RecurrentDictSequenceRolloutBuffer` subclass sb3-contrib's
``RecurrentRolloutBuffer`` / ``RecurrentDictRolloutBuffer`` and give the same minibatches: the rollout flattened env by
env, cut into sequences at episode starts, at changes of env and at the minibatch's first step, each sequence padded
with zeros to the longest, the LSTM states stored at each sequence's first step, and ``mask`` 1 on the real steps.
Beside those they store, pad and return what the objectives need per step:

- ``old_dist_params``: KLPenaltyPPO's closed-form KL (``dist_params_dim > 0``);
- ``action_masks``: the masked algorithms' legal actions (``mask_dim > 0``).

These two are padded with the values of the sequence's last real step rather than zeros (a zero standard deviation or
a mask with no legal action would make the padded steps' KL or log-probability infinite, and an infinity reaches the
gradient even where no loss term reads it). :class:`RecurrentRewardToGoRolloutBuffer` computes REINFORCE's
normalised reward-to-go over whole episodes instead of GAE, with the steps whose return is unknown (episode
unfinished, no baseline) left out of ``mask``.

The padding is one NumPy gather per field (sb3-contrib pads with one tensor per sequence); the values are the same:
``tests/recurrent/test_buffers.py`` compares them with sb3-contrib's buffer field by field.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.buffers import RecurrentDictRolloutBuffer, RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ppo_variants.core.checks import check_int
from sb3_ppo_variants.reinforce.buffers import NORMALIZATION_MODES, _RewardToGoMixin

#: the per-step fields sb3-contrib's recurrent buffers flatten (``RecurrentRolloutBuffer.get``)
_FIELDS = ("actions", "values", "log_probs", "advantages", "returns", "episode_starts")
_STATES = ("hidden_states_pi", "cell_states_pi", "hidden_states_vf", "cell_states_vf")


class RecurrentSequenceSamples(NamedTuple):
    """sb3-contrib's ``RecurrentRolloutBufferSamples`` (padded sequences, flattened) plus our per-step fields."""

    observations: th.Tensor | TensorDict
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    lstm_states: RNNStates
    episode_starts: th.Tensor
    mask: th.Tensor
    #: the old action distribution's parameters (KLPenaltyPPO's closed form), else None
    old_dist_params: th.Tensor | None = None
    #: the legal actions of each step (the masked algorithms), else None
    action_masks: th.Tensor | None = None


class Sequences:
    """How one minibatch's steps are cut into padded sequences (sb3-contrib's ``create_sequencers``, as indices).

    :param batch_inds: the minibatch's steps, indices into the flattened rollout
    :param starts: whether each flattened step starts an episode or follows a change of env
    """

    def __init__(self, batch_inds: np.ndarray, starts: np.ndarray) -> None:
        seq_start = starts[batch_inds].reshape(-1).astype(bool)
        seq_start[0] = True
        #: the first step of each sequence, as positions in the minibatch
        self.start_positions = np.flatnonzero(seq_start)
        lengths = np.diff(np.append(self.start_positions, len(batch_inds)))
        self.n_seq = len(lengths)
        self.max_length = int(lengths.max())
        offsets = np.arange(self.max_length)
        #: (n_seq * max_length,) True on real steps, False on padding
        self.real = (offsets[None, :] < lengths[:, None]).reshape(-1)
        positions = (self.start_positions[:, None] + np.minimum(offsets[None, :], lengths[:, None] - 1)).reshape(-1)
        #: the flattened-rollout index of each padded position (the padding repeats the sequence's last real step)
        self.indices = batch_inds[positions]

    def pad(self, array: np.ndarray, padding_value: float | None = 0.0) -> np.ndarray:
        """``array[indices]`` of the padded positions, ``padding_value`` on the padding (None: the sequence's last real
        step repeated): ``(n_seq * max_length, ...)``."""
        padded = array.take(self.indices, axis=0)
        if padding_value is not None:
            padded[~self.real] = padding_value
        return padded


class _SequenceMixin:
    """Our per-step fields and the gathered padding, on top of sb3-contrib's recurrent buffer."""

    buffer_size: int
    n_envs: int
    pos: int
    full: bool
    generator_ready: bool
    device: th.device
    observations: Any
    episode_starts: np.ndarray
    obs_shape: Any
    dist_params_dim: int
    mask_dim: int
    dist_params: np.ndarray
    action_masks: np.ndarray

    def _init_fields(self, dist_params_dim: int, mask_dim: int) -> None:
        self.dist_params_dim = check_int("dist_params_dim", dist_params_dim, minimum=0)
        self.mask_dim = check_int("mask_dim", mask_dim, minimum=0)

    def _extra_fields(self) -> list[tuple[str, str]]:
        """(name of the stored array, name of the samples field) of our per-step fields."""
        fields = []
        if self.dist_params_dim:
            fields.append(("dist_params", "old_dist_params"))
        if self.mask_dim:
            fields.append(("action_masks", "action_masks"))
        return fields

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self.dist_params = np.zeros((self.buffer_size, self.n_envs, self.dist_params_dim), dtype=np.float32)
        self.action_masks = np.ones((self.buffer_size, self.n_envs, self.mask_dim), dtype=np.float32)

    def add(
        self,
        *args: Any,
        dist_params: th.Tensor | None = None,
        action_masks: np.ndarray | None = None,
        **kwargs: Any,
    ) -> None:
        """sb3-contrib's ``add(obs, action, reward, episode_start, value, log_prob, lstm_states=...)``, and the
        step's ``dist_params`` (required when the buffer stores them) and ``action_masks`` (None: all legal)."""
        if self.dist_params_dim:
            if dist_params is None:
                raise ValueError("This rollout buffer stores the old action distribution: pass `dist_params` to add()")
            self.dist_params[self.pos] = dist_params.reshape(self.n_envs, self.dist_params_dim).cpu().numpy()
        if self.mask_dim and action_masks is not None:
            self.action_masks[self.pos] = np.asarray(action_masks).reshape(self.n_envs, self.mask_dim)
        super().add(*args, **kwargs)  # type: ignore[misc]

    # ------------------------------------------------------------------ sampling

    def _flatten(self) -> None:
        """Once per rollout: every field flattened env by env (sb3-contrib's order), the LSTM states as
        ``(n_envs * n_steps, n_layers, hidden)``."""
        for name in _STATES:
            self.__dict__[name] = self.swap_and_flatten(self.__dict__[name].swapaxes(1, 2))  # type: ignore[attr-defined]
        for name in (*_FIELDS, *(stored for stored, _ in self._extra_fields())):
            self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])  # type: ignore[attr-defined]
        if isinstance(self.observations, dict):
            self.observations = {key: self.swap_and_flatten(obs) for key, obs in self.observations.items()}  # type: ignore[attr-defined]
        else:
            self.observations = self.swap_and_flatten(self.observations)  # type: ignore[attr-defined]
        self.generator_ready = True

    def _env_change(self) -> np.ndarray:
        """1.0 on each env's first step of the rollout, flattened (sb3-contrib's ``env_change``)."""
        env_change = np.zeros((self.buffer_size, self.n_envs), dtype=np.float32)
        env_change[0, :] = 1.0
        return self.swap_and_flatten(env_change)  # type: ignore[attr-defined,no-any-return]

    def get(self, batch_size: int | None = None) -> Generator[RecurrentSequenceSamples, None, None]:
        """Minibatches of ``batch_size`` consecutive steps (before padding) starting at a random step, as sb3-contrib's
        ``RecurrentRolloutBuffer.get`` (the same random draw, the same minibatches); all steps when None."""
        assert self.full, "Rollout buffer must be full before sampling from it"
        if not self.generator_ready:
            self._flatten()
        n_samples = self.buffer_size * self.n_envs
        size = n_samples if batch_size is None else batch_size
        split_index = np.random.randint(n_samples)
        indices = np.concatenate((np.arange(split_index, n_samples), np.arange(split_index)))
        env_change = self._env_change()
        for start in range(0, n_samples, size):
            samples = self._get_samples(indices[start : start + size], env_change)
            if bool(samples.mask.any()):  # REINFORCE: a minibatch of unknown returns only has nothing to learn from
                yield samples

    def samples_in_order(self) -> RecurrentSequenceSamples:
        """All steps in storage order as one padded batch (no random draw): the whole-rollout means."""
        assert self.generator_ready, "call after get() has flattened the rollout"
        return self._get_samples(np.arange(self.buffer_size * self.n_envs), self._env_change())

    def _loss_mask(self) -> np.ndarray:
        """1.0 on the flattened steps a loss may read (all of them; REINFORCE: the ones with a known return)."""
        return np.ones(self.buffer_size * self.n_envs, dtype=np.float32)

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env_change: np.ndarray, env: VecNormalize | None = None
    ) -> RecurrentSequenceSamples:
        """The minibatch ``batch_inds`` as padded sequences; a sequence starts at each episode start and at each
        ``env_change`` (:meth:`_env_change`, sb3-contrib's argument)."""
        seq = Sequences(batch_inds, np.logical_or(env_change, self.episode_starts))
        first = batch_inds[seq.start_positions]

        def states(name: str) -> th.Tensor:
            # (n_seq, n_layers, hidden) -> (n_layers, n_seq, hidden)
            return th.from_numpy(np.ascontiguousarray(self.__dict__[name][first].swapaxes(0, 1))).to(self.device)

        def pad(array: np.ndarray, padding_value: float | None = 0.0) -> th.Tensor:
            return th.from_numpy(seq.pad(array, padding_value)).to(self.device)

        if isinstance(self.observations, dict):
            observations: Any = {key: pad(obs) for key, obs in self.observations.items()}
        else:
            observations = pad(self.observations).reshape((-1, *self.obs_shape))
        flat = {name: pad(self.__dict__[name]).flatten() for name in ("values", "log_probs", "advantages", "returns")}
        extras = {field: pad(self.__dict__[name], padding_value=None) for name, field in self._extra_fields()}
        return RecurrentSequenceSamples(
            observations=observations,
            actions=pad(self.__dict__["actions"]),
            old_values=flat["values"],
            old_log_prob=flat["log_probs"],
            advantages=flat["advantages"],
            returns=flat["returns"],
            lstm_states=RNNStates(
                (states("hidden_states_pi"), states("cell_states_pi")),
                (states("hidden_states_vf"), states("cell_states_vf")),
            ),
            episode_starts=pad(self.episode_starts).flatten(),
            mask=pad(self._loss_mask()).flatten(),
            **extras,
        )


class RecurrentSequenceRolloutBuffer(_SequenceMixin, RecurrentRolloutBuffer):  # type: ignore[misc]  # get() and _get_samples() give our samples
    """sb3-contrib's :class:`~sb3_contrib.common.recurrent.buffers.RecurrentRolloutBuffer` (same minibatches), storing
    the old distribution's parameters and the action masks too where asked.

    Parameters are those of ``RecurrentRolloutBuffer``, and:

    :param dist_params_dim: floats of the old action distribution stored per step (0: none)
    :param mask_dim: entries of the action mask stored per step (0: none)
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden_state_shape: tuple[int, int, int, int],
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        dist_params_dim: int = 0,
        mask_dim: int = 0,
    ):
        self._init_fields(dist_params_dim, mask_dim)
        super().__init__(buffer_size, observation_space, action_space, hidden_state_shape, device, gae_lambda, gamma, n_envs)


class RecurrentDictSequenceRolloutBuffer(_SequenceMixin, RecurrentDictRolloutBuffer):  # type: ignore[misc]  # get() and _get_samples() give our samples
    """:class:`RecurrentSequenceRolloutBuffer` for Dict observation spaces (sb3-contrib's
    ``RecurrentDictRolloutBuffer``)."""

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        hidden_state_shape: tuple[int, int, int, int],
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        dist_params_dim: int = 0,
        mask_dim: int = 0,
    ):
        self._init_fields(dist_params_dim, mask_dim)
        super().__init__(buffer_size, observation_space, action_space, hidden_state_shape, device, gae_lambda, gamma, n_envs)


class _RecurrentRewardToGoMixin(_RewardToGoMixin):
    """REINFORCE's reward-to-go (:class:`~sb3_ppo_variants.reinforce.buffers.RewardToGoRolloutBuffer`'s computation)
    in whole sequences: the steps of unknown return stay in the sequences (the LSTM runs through them in order) and
    are left out of ``mask``."""

    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        if not self.generator_ready:
            self.valid = self.swap_and_flatten(self.valid)  # type: ignore[attr-defined]
        yield from _SequenceMixin.get(self, batch_size)  # type: ignore[arg-type]

    def _loss_mask(self) -> np.ndarray:
        return self.valid.reshape(-1).astype(np.float32)


class RecurrentRewardToGoRolloutBuffer(_RecurrentRewardToGoMixin, RecurrentSequenceRolloutBuffer):  # type: ignore[misc]  # get() and _get_samples() give our samples
    """The recurrent REINFORCE's buffer: normalised discounted reward-to-go (see
    :class:`~sb3_ppo_variants.reinforce.buffers.RewardToGoRolloutBuffer`) in padded sequences.

    Parameters are those of :class:`RecurrentSequenceRolloutBuffer`, and ``normalize`` (one of
    ``NORMALIZATION_MODES``) and ``bootstrap`` as the memoryless buffer's.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden_state_shape: tuple[int, int, int, int],
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        dist_params_dim: int = 0,
        mask_dim: int = 0,
        normalize: str = "batch",
        bootstrap: bool = False,
    ):
        self._setup_reward_to_go(normalize, bootstrap)
        super().__init__(
            buffer_size, observation_space, action_space, hidden_state_shape, device, gae_lambda, gamma, n_envs,
            dist_params_dim, mask_dim,
        )  # fmt: skip


class RecurrentDictRewardToGoRolloutBuffer(_RecurrentRewardToGoMixin, RecurrentDictSequenceRolloutBuffer):  # type: ignore[misc]  # get() and _get_samples() give our samples
    """:class:`RecurrentRewardToGoRolloutBuffer` for Dict observation spaces."""

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        hidden_state_shape: tuple[int, int, int, int],
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        dist_params_dim: int = 0,
        mask_dim: int = 0,
        normalize: str = "batch",
        bootstrap: bool = False,
    ):
        self._setup_reward_to_go(normalize, bootstrap)
        super().__init__(
            buffer_size, observation_space, action_space, hidden_state_shape, device, gae_lambda, gamma, n_envs,
            dist_params_dim, mask_dim,
        )  # fmt: skip


__all__ = [
    "NORMALIZATION_MODES",
    "RecurrentDictRewardToGoRolloutBuffer",
    "RecurrentDictSequenceRolloutBuffer",
    "RecurrentRewardToGoRolloutBuffer",
    "RecurrentSequenceRolloutBuffer",
    "RecurrentSequenceSamples",
    "Sequences",
]
