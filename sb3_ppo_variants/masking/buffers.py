"""Rollout buffers of the masked algorithms: sb3-contrib's maskable buffers, with our torch-side minibatch sampling.

- :class:`MaskableTensorRolloutBuffer` / :class:`MaskableDictTensorRolloutBuffer`: sb3-contrib's
  ``MaskableRolloutBuffer`` / ``MaskableDictRolloutBuffer`` (the same stored masks, the same ``get()`` and random
  permutation), whose minibatches are gathered in torch (:mod:`sb3_ppo_variants.common.buffers`). MaskableClipPPO's.
- :class:`MaskableDistParamsRolloutBuffer` (+ Dict): also KLPenaltyPPO's old distribution parameters (the masked
  logits), for the closed-form KL. MaskableKLPenaltyPPO's.
- :class:`MaskableRewardToGoRolloutBuffer` (+ Dict): REINFORCE's normalised reward-to-go, with the masks.
  MaskableREINFORCE's.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.buffers import (
    MaskableDictRolloutBuffer,
    MaskableDictRolloutBufferSamples,
    MaskableRolloutBuffer,
    MaskableRolloutBufferSamples,
)
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ppo_variants.common.buffers import _TensorSamplingMixin
from sb3_ppo_variants.kl_penalty_ppo.buffers import _DistParamsMixin
from sb3_ppo_variants.reinforce.buffers import _RewardToGoMixin


class MaskableDistParamsRolloutBufferSamples(NamedTuple):
    """sb3-contrib's ``MaskableRolloutBufferSamples`` plus the old distribution's parameters."""

    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    action_masks: th.Tensor
    old_dist_params: th.Tensor


class MaskableDictDistParamsRolloutBufferSamples(NamedTuple):
    """sb3-contrib's ``MaskableDictRolloutBufferSamples`` plus the old distribution's parameters."""

    observations: TensorDict
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    action_masks: th.Tensor
    old_dist_params: th.Tensor


class _MaskTensorsMixin(_TensorSamplingMixin):
    """Torch-side sampling of the maskable buffers: ``action_masks`` is one more per-sample field."""

    _extra_fields: tuple[str, ...] = ("action_masks",)

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> Any:
        # SB3's and sb3-contrib's rollout buffers do not normalise (they ignore ``env``); neither do we, so that the
        # extra fields are not appended twice to the maskable samples.
        return super()._get_samples(batch_inds, None)

    def reset(self) -> None:
        self._drop_tensors()
        super().reset()  # type: ignore[misc]


class MaskableTensorRolloutBuffer(_MaskTensorsMixin, MaskableRolloutBuffer):
    """sb3-contrib's :class:`~sb3_contrib.common.maskable.buffers.MaskableRolloutBuffer`, sampling in torch.

    Parameters are those of ``MaskableRolloutBuffer``; samples are ``MaskableRolloutBufferSamples``.
    """

    _samples_class: type = MaskableRolloutBufferSamples


class MaskableDictTensorRolloutBuffer(_MaskTensorsMixin, MaskableDictRolloutBuffer):
    """sb3-contrib's :class:`~sb3_contrib.common.maskable.buffers.MaskableDictRolloutBuffer`, sampling in torch."""

    _samples_class: type = MaskableDictRolloutBufferSamples


class MaskableDistParamsRolloutBuffer(_DistParamsMixin, MaskableTensorRolloutBuffer):  # type: ignore[misc]
    """:class:`MaskableTensorRolloutBuffer` that also keeps the (masked) distribution parameters of each sample.

    :param dist_params_dim: floats per sample (the logits: the mask's width)
    Other parameters are those of sb3-contrib's ``MaskableRolloutBuffer``.
    """

    _extra_fields = ("action_masks", "dist_params")
    _samples_class = MaskableDistParamsRolloutBufferSamples

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        dist_params_dim: int = 1,
    ):
        self._init_dist_params(dist_params_dim)
        super().__init__(buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs)


class MaskableDictDistParamsRolloutBuffer(_DistParamsMixin, MaskableDictTensorRolloutBuffer):  # type: ignore[misc]
    """:class:`MaskableDistParamsRolloutBuffer` for Dict observation spaces."""

    _extra_fields = ("action_masks", "dist_params")
    _samples_class = MaskableDictDistParamsRolloutBufferSamples

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        dist_params_dim: int = 1,
    ):
        self._init_dist_params(dist_params_dim)
        super().__init__(buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs)


class _MaskedRewardToGoMixin(_RewardToGoMixin):
    """REINFORCE's ``get()`` flattens its own list of fields (it samples only the valid steps): add the masks to it."""

    action_masks: np.ndarray

    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        if not self.generator_ready:
            self.action_masks = self.swap_and_flatten(self.action_masks)  # type: ignore[attr-defined]
        yield from super().get(batch_size)


class MaskableRewardToGoRolloutBuffer(_MaskedRewardToGoMixin, MaskableTensorRolloutBuffer):  # type: ignore[misc]
    """REINFORCE's :class:`~sb3_ppo_variants.reinforce.buffers.RewardToGoRolloutBuffer` with sb3-contrib's masks.

    :param normalize: ``"batch"`` (default), ``"timestep"`` or ``"none"``
    :param bootstrap: bootstrap unfinished episodes with the critic's value (only with a learned baseline)
    Other parameters are those of sb3-contrib's ``MaskableRolloutBuffer``; ``gae_lambda`` is unused.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        normalize: str = "batch",
        bootstrap: bool = False,
    ):
        self._setup_reward_to_go(normalize, bootstrap)
        super().__init__(buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs)


class MaskableDictRewardToGoRolloutBuffer(_MaskedRewardToGoMixin, MaskableDictTensorRolloutBuffer):  # type: ignore[misc]
    """:class:`MaskableRewardToGoRolloutBuffer` for Dict observation spaces."""

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        gae_lambda: float = 1,
        gamma: float = 0.99,
        n_envs: int = 1,
        normalize: str = "batch",
        bootstrap: bool = False,
    ):
        self._setup_reward_to_go(normalize, bootstrap)
        super().__init__(buffer_size, observation_space, action_space, device, gae_lambda, gamma, n_envs)
