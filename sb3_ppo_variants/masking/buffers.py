"""Rollout buffers of the masked algorithms: sb3-contrib's maskable buffers, with our torch-side minibatch sampling.

Each class subclasses sb3-contrib's ``MaskableRolloutBuffer`` / ``MaskableDictRolloutBuffer`` (which store the masks
given to ``add(..., action_masks=...)`` and flatten them in ``get()``) and the package's buffer of the same algorithm,
whose ``__init__``, sampling and extra fields it keeps:

- :class:`MaskableTensorRolloutBuffer` (+ Dict): sb3-contrib's buffer with the minibatches gathered in torch
  (:mod:`sb3_ppo_variants.core.buffers`); the same values, the same random permutation. MaskableClipPPO's.
- :class:`MaskableDistParamsRolloutBuffer` (+ Dict): also KLPenaltyPPO's old distribution parameters (here the masked
  log-probabilities), for the closed-form KL. MaskableKLPenaltyPPO's.
- :class:`MaskableRewardToGoRolloutBuffer` (+ Dict): REINFORCE's normalised reward-to-go, with the masks.
  MaskableREINFORCE's.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from sb3_contrib.common.maskable.buffers import (
    MaskableDictRolloutBuffer,
    MaskableDictRolloutBufferSamples,
    MaskableRolloutBuffer,
    MaskableRolloutBufferSamples,
)
from stable_baselines3.common.type_aliases import TensorDict
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ppo_variants.core.buffers import DictTensorRolloutBuffer, TensorRolloutBuffer
from sb3_ppo_variants.kl_penalty_ppo.buffers import DictDistParamsRolloutBuffer, DistParamsRolloutBuffer
from sb3_ppo_variants.reinforce.buffers import DictRewardToGoRolloutBuffer, RewardToGoRolloutBuffer


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


class _MaskSamplesMixin:
    """``action_masks`` is one more per-sample field of the torch-side sampling."""

    _extra_fields: tuple[str, ...] = ("action_masks",)

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> Any:
        # SB3's and sb3-contrib's rollout buffers do not normalise (they ignore ``env``); neither do we, so that the
        # extra fields are not appended twice to sb3-contrib's samples.
        return super()._get_samples(batch_inds, None)  # type: ignore[misc]


class MaskableTensorRolloutBuffer(_MaskSamplesMixin, TensorRolloutBuffer, MaskableRolloutBuffer):
    """sb3-contrib's :class:`~sb3_contrib.common.maskable.buffers.MaskableRolloutBuffer`, sampling in torch.

    Parameters are those of ``MaskableRolloutBuffer``; samples are ``MaskableRolloutBufferSamples``.
    """

    _samples_class: type = MaskableRolloutBufferSamples


class MaskableDictTensorRolloutBuffer(_MaskSamplesMixin, DictTensorRolloutBuffer, MaskableDictRolloutBuffer):
    """sb3-contrib's :class:`~sb3_contrib.common.maskable.buffers.MaskableDictRolloutBuffer`, sampling in torch."""

    _samples_class: type = MaskableDictRolloutBufferSamples


class MaskableDistParamsRolloutBuffer(_MaskSamplesMixin, DistParamsRolloutBuffer, MaskableRolloutBuffer):
    """KLPenaltyPPO's :class:`~sb3_ppo_variants.kl_penalty_ppo.buffers.DistParamsRolloutBuffer` with sb3-contrib's
    masks; ``dist_params_dim`` is the mask's width (the masked log-probabilities)."""

    _extra_fields = ("action_masks", "dist_params")
    _samples_class = MaskableDistParamsRolloutBufferSamples  # type: ignore[assignment]


class MaskableDictDistParamsRolloutBuffer(_MaskSamplesMixin, DictDistParamsRolloutBuffer, MaskableDictRolloutBuffer):
    """:class:`MaskableDistParamsRolloutBuffer` for Dict observation spaces."""

    _extra_fields = ("action_masks", "dist_params")
    _samples_class = MaskableDictDistParamsRolloutBufferSamples  # type: ignore[assignment]


class _MaskedRewardToGoMixin(_MaskSamplesMixin):
    """REINFORCE's ``get()`` flattens its own list of fields (it samples only the valid steps): add the masks to it."""

    action_masks: np.ndarray
    generator_ready: bool

    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        if not self.generator_ready:
            self.action_masks = self.swap_and_flatten(self.action_masks)  # type: ignore[attr-defined]
        yield from super().get(batch_size)  # type: ignore[misc]


class MaskableRewardToGoRolloutBuffer(_MaskedRewardToGoMixin, RewardToGoRolloutBuffer, MaskableRolloutBuffer):
    """REINFORCE's :class:`~sb3_ppo_variants.reinforce.buffers.RewardToGoRolloutBuffer` with sb3-contrib's masks
    (its parameters: ``normalize``, ``bootstrap`` and those of ``MaskableRolloutBuffer``)."""

    _samples_class: type = MaskableRolloutBufferSamples


class MaskableDictRewardToGoRolloutBuffer(_MaskedRewardToGoMixin, DictRewardToGoRolloutBuffer, MaskableDictRolloutBuffer):
    """:class:`MaskableRewardToGoRolloutBuffer` for Dict observation spaces."""

    _samples_class: type = MaskableDictRolloutBufferSamples
