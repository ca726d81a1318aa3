"""Rollout buffers shared by all our algorithms: SB3's, gathering each minibatch with one copy per field.

:class:`TensorRolloutBuffer` / :class:`DictTensorRolloutBuffer` are SB3's ``RolloutBuffer`` / ``DictRolloutBuffer``
with the same values; each algorithm's own buffers (KLPenaltyPPO's distribution parameters, REINFORCE's
reward-to-go) subclass them in the algorithm's folder.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import DictRolloutBufferSamples, RolloutBufferSamples
from stable_baselines3.common.vec_env import VecNormalize


def samples_in_order(buffer: RolloutBuffer, chunk: int) -> Iterator[Any]:
    """The buffer's (already flattened) samples in storage order, ``chunk`` at a time (env-major, as SB3 flattens)."""
    n_samples = buffer.buffer_size * buffer.n_envs
    for start in range(0, n_samples, chunk):
        yield buffer._get_samples(np.arange(start, min(start + chunk, n_samples)))


class _TensorSamplingMixin:
    """Minibatches gathered with one copy per field, from arrays prepared once per rollout.

    SB3's ``_get_samples`` indexes every numpy field and copies it into a new tensor for each minibatch (two copies
    per field). Here each flattened field is prepared when the first minibatch is drawn (on the CPU: a contiguous
    NumPy array, and a minibatch is ``np.take`` wrapped by ``th.from_numpy``; on another device: one tensor there,
    and a minibatch is a torch gather). The values are the same; ``reset()`` drops the prepared fields.
    Subclasses name extra per-sample fields in ``_extra_fields`` and the samples type in ``_samples_class``.
    """

    _extra_fields: tuple[str, ...] = ()
    _samples_class: type = RolloutBufferSamples
    _tensors: dict[str, Any] | None = None
    device: th.device
    observations: Any

    def _drop_tensors(self) -> None:
        self._tensors = None

    def _build_tensors(self) -> dict[str, Any]:
        on_cpu = th.device(self.device).type == "cpu"

        def as_tensor(array: np.ndarray, flat: bool = False) -> Any:
            if on_cpu:  # kept as NumPy arrays: a NumPy gather and th.from_numpy beat a torch gather at these sizes
                array = np.ascontiguousarray(array)
                return array.reshape(-1) if flat else array
            tensor = th.as_tensor(array, device=self.device)
            return tensor.reshape(-1) if flat else tensor

        tensors: dict[str, Any] = {
            "observations": (
                {key: as_tensor(obs) for key, obs in self.observations.items()}
                if isinstance(self.observations, dict)
                else as_tensor(self.observations)
            ),
            # actions are stored with the action space's dtype (int8 for MultiBinary); SB3 samples them as float32
            "actions": as_tensor(self.__dict__["actions"].astype(np.float32, copy=False)),
        }
        for name in ("values", "log_probs", "advantages", "returns"):
            tensors[name] = as_tensor(self.__dict__[name], flat=True)
        for name in self._extra_fields:
            tensors[name] = as_tensor(self.__dict__[name])
        return tensors

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> Any:
        if env is not None:  # normalising with a VecNormalize happens in numpy: SB3's path
            samples = super()._get_samples(batch_inds, env)  # type: ignore[misc]
            extras = [self.to_torch(self.__dict__[name][batch_inds]) for name in self._extra_fields]  # type: ignore[attr-defined]
            return self._samples_class(*samples, *extras)
        if self._tensors is None:
            self._tensors = self._build_tensors()
        tensors = self._tensors
        if isinstance(tensors["actions"], np.ndarray):  # on the CPU: gathered in NumPy, shared with torch

            def take(array: np.ndarray) -> th.Tensor:
                return th.from_numpy(array.take(batch_inds, axis=0))

        else:
            index = th.as_tensor(batch_inds, device=self.device)

            def take(array: th.Tensor) -> th.Tensor:  # type: ignore[misc]
                return array[index]

        observations = tensors["observations"]
        if isinstance(observations, dict):
            observations = {key: take(obs) for key, obs in observations.items()}
        else:
            observations = take(observations)
        return self._samples_class(
            observations,
            take(tensors["actions"]),
            take(tensors["values"]),
            take(tensors["log_probs"]),
            take(tensors["advantages"]),
            take(tensors["returns"]),
            *(take(tensors[name]) for name in self._extra_fields),
        )


class TensorRolloutBuffer(_TensorSamplingMixin, RolloutBuffer):
    """SB3's :class:`~stable_baselines3.common.buffers.RolloutBuffer`, gathering minibatches with one copy (same values).

    The default buffer of our algorithms for non-Dict observations; parameters are those of SB3's ``RolloutBuffer``.
    ``add`` stores the same values as SB3's with one copy per field instead of two or three.
    """

    def reset(self) -> None:
        self._drop_tensors()
        super().reset()

    def add(self, *args: Any, **kwargs: Any) -> None:
        """SB3's ``RolloutBuffer.add(obs, action, reward, episode_start, value, log_prob)``.

        Where the next ``add`` up the class hierarchy is SB3's own (not, e.g., sb3-contrib's maskable buffer's, which
        also stores masks), the fields are written directly: the assignment into the float32 arrays makes the one copy
        (and cast) that SB3's ``np.array(...)`` and ``tensor.clone().cpu().numpy()`` are followed by.
        """
        if kwargs or len(args) != 6 or not _plain_add(type(self)):
            super().add(*args, **kwargs)
            return
        obs, action, reward, episode_start, value, log_prob = args
        if len(log_prob.shape) == 0:
            log_prob = log_prob.reshape(-1, 1)
        if isinstance(self.observation_space, spaces.Discrete):
            obs = obs.reshape((self.n_envs, *self.obs_shape))
        pos = self.pos
        self.observations[pos] = obs
        self.actions[pos] = action.reshape((self.n_envs, self.action_dim))
        self.rewards[pos] = reward
        self.episode_starts[pos] = episode_start
        self.values[pos] = value.cpu().numpy().reshape(-1)
        self.log_probs[pos] = log_prob.cpu().numpy()
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True


@functools.cache
def _plain_add(cls: type) -> bool:
    """Whether the ``add`` that :class:`TensorRolloutBuffer` defers to in ``cls``'s hierarchy is SB3's own."""
    after = cls.__mro__[cls.__mro__.index(TensorRolloutBuffer) + 1 :]
    following = next(klass.__dict__["add"] for klass in after if "add" in klass.__dict__)
    return following is RolloutBuffer.add


class DictTensorRolloutBuffer(_TensorSamplingMixin, DictRolloutBuffer):
    """SB3's :class:`~stable_baselines3.common.buffers.DictRolloutBuffer`, gathering minibatches with one copy."""

    _samples_class: type = DictRolloutBufferSamples

    def reset(self) -> None:
        self._drop_tensors()
        super().reset()
