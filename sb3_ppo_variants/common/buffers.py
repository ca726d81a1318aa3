"""Rollout buffers shared by all our algorithms: SB3's, sampling minibatches in torch.

:class:`TensorRolloutBuffer` / :class:`DictTensorRolloutBuffer` are SB3's ``RolloutBuffer`` / ``DictRolloutBuffer``
with the same values; each algorithm's own buffers (KLPenaltyPPO's distribution parameters, REINFORCE's
reward-to-go) subclass them in the algorithm's folder.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.type_aliases import DictRolloutBufferSamples, RolloutBufferSamples
from stable_baselines3.common.vec_env import VecNormalize


class _TensorSamplingMixin:
    """Minibatches indexed in torch from tensors built once per rollout, instead of numpy per minibatch.

    SB3's ``_get_samples`` indexes every numpy field and copies it into a new tensor for each minibatch (two copies
    per field). Here each flattened field becomes one tensor when the first minibatch is drawn (on the CPU it shares
    the numpy memory), and a minibatch is a torch gather. The values are the same; ``reset()`` drops the tensors.
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
        def as_tensor(array: np.ndarray, flat: bool = False) -> th.Tensor:
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
        index = th.as_tensor(batch_inds, device=self.device)
        observations = tensors["observations"]
        if isinstance(observations, dict):
            observations = {key: obs[index] for key, obs in observations.items()}
        else:
            observations = observations[index]
        return self._samples_class(
            observations,
            tensors["actions"][index],
            tensors["values"][index],
            tensors["log_probs"][index],
            tensors["advantages"][index],
            tensors["returns"][index],
            *(tensors[name][index] for name in self._extra_fields),
        )


class TensorRolloutBuffer(_TensorSamplingMixin, RolloutBuffer):
    """SB3's :class:`~stable_baselines3.common.buffers.RolloutBuffer`, sampling minibatches in torch (same values).

    The default buffer of our algorithms for non-Dict observations; parameters are those of SB3's ``RolloutBuffer``.
    """

    def reset(self) -> None:
        self._drop_tensors()
        super().reset()


class DictTensorRolloutBuffer(_TensorSamplingMixin, DictRolloutBuffer):
    """SB3's :class:`~stable_baselines3.common.buffers.DictRolloutBuffer`, sampling minibatches in torch."""

    _samples_class: type = DictRolloutBufferSamples

    def reset(self) -> None:
        self._drop_tensors()
        super().reset()


#: Buffers that lived here in release 0.1.0: files saved by it name them in this module (pickled rollout_buffer_class)
_MOVED = {
    "DistParamsRolloutBuffer": "sb3_ppo_variants.kl_penalty_ppo.buffers",
    "DictDistParamsRolloutBuffer": "sb3_ppo_variants.kl_penalty_ppo.buffers",
    "RewardToGoRolloutBuffer": "sb3_ppo_variants.reinforce.buffers",
    "DictRewardToGoRolloutBuffer": "sb3_ppo_variants.reinforce.buffers",
}


def __getattr__(name: str) -> Any:
    """The buffers that moved to their algorithm's folder, under their old address (so old model files load)."""
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
