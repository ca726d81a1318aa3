"""MaskableRecurrentClipPPO, MaskableRecurrentKLPenaltyPPO, MaskableRecurrentREINFORCE, MaskableRecurrentSPO: memory
and action masking at once.

Each is composed of the two feature mixins and the algorithm, with no third copy of either feature:
:class:`~sb3_ppo_variants.recurrent.algorithms.RecurrentAlgorithmMixin` (LSTM states through rollouts and padded
sequences in training) and :class:`~sb3_ppo_variants.masking.algorithms.MaskableAlgorithmMixin` (the environment's
``action_masks()`` at each step, stored and passed to the policy again in training). What is left here is where the
two meet: the policy (:class:`~sb3_ppo_variants.recurrent.policies.MaskableRecurrentActorCriticPolicy`) and the buffer
(:class:`~sb3_ppo_variants.recurrent.buffers.RecurrentSequenceRolloutBuffer` with ``mask_dim``: the masks stored
beside the hidden states and padded with the sequences).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import BasePolicy

from sb3_ppo_variants.clip_ppo import ClipPPO
from sb3_ppo_variants.masking import MaskableKLPenaltyPPO, MaskableREINFORCE, MaskableSPO
from sb3_ppo_variants.masking.algorithms import MaskableAlgorithmMixin
from sb3_ppo_variants.masking.masks import mask_dim
from sb3_ppo_variants.recurrent.algorithms import RecurrentAlgorithmMixin, RecurrentPPODefaults, _RecurrentKLMixin
from sb3_ppo_variants.recurrent.buffers import RecurrentDictRewardToGoRolloutBuffer, RecurrentRewardToGoRolloutBuffer
from sb3_ppo_variants.recurrent.policies import (
    MaskableCnnLstmPolicy,
    MaskableMlpLstmPolicy,
    MaskableMultiInputLstmPolicy,
    MaskableRecurrentActorCriticPolicy,
)


class _MaskableRecurrentMixin:
    """Where masking meets recurrence: the masked LSTM policy, and a buffer that stores both (put it first)."""

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpLstmPolicy": MaskableMlpLstmPolicy,
        "CnnLstmPolicy": MaskableCnnLstmPolicy,
        "MultiInputLstmPolicy": MaskableMultiInputLstmPolicy,
    }
    policy_base: ClassVar[type[BasePolicy]] = MaskableRecurrentActorCriticPolicy
    _maskable_policy: ClassVar[type[BasePolicy]] = MaskableRecurrentActorCriticPolicy
    action_space: Any

    def _required_rollout_buffer(self, dict_obs: bool) -> type[RolloutBuffer] | None:
        return self._default_recurrent_buffer(dict_obs)  # type: ignore[attr-defined,no-any-return]

    def _required_rollout_buffer_reason(self) -> str:
        return "(it stores each step's LSTM states and action masks, and pads both with the sequences)"

    def _rollout_buffer_extra_kwargs(self) -> dict[str, Any]:
        return {**super()._rollout_buffer_extra_kwargs(), "mask_dim": mask_dim(self.action_space)}  # type: ignore[misc]

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The action among the legal ones of ``action_masks`` and the next LSTM state: the parameters of
        :meth:`RecurrentAlgorithmMixin.predict` and of the masked algorithms' ``predict``."""
        return super().predict(observation, state, episode_start, deterministic, action_masks=action_masks)  # type: ignore[misc,no-any-return]


class MaskableRecurrentClipPPO(  # type: ignore[misc]
    RecurrentPPODefaults, _MaskableRecurrentMixin, RecurrentAlgorithmMixin, MaskableAlgorithmMixin, ClipPPO
):
    """:class:`~sb3_ppo_variants.recurrent.RecurrentClipPPO` with invalid-action masking.

    Parameters are RecurrentClipPPO's; ``policy`` is a
    :class:`~sb3_ppo_variants.recurrent.policies.MaskableRecurrentActorCriticPolicy` (``"MlpLstmPolicy"``,
    ``"CnnLstmPolicy"``, ``"MultiInputLstmPolicy"``); ``learn(..., use_masking=True)`` and
    ``predict(obs, state, episode_start, deterministic, action_masks)``.
    """


class MaskableRecurrentKLPenaltyPPO(  # type: ignore[misc]
    RecurrentPPODefaults, _MaskableRecurrentMixin, _RecurrentKLMixin, RecurrentAlgorithmMixin, MaskableKLPenaltyPPO
):
    """:class:`~sb3_ppo_variants.recurrent.RecurrentKLPenaltyPPO` with invalid-action masking: the closed-form KL over
    the legal actions of each real step. Parameters are RecurrentKLPenaltyPPO's; ``policy`` as
    :class:`MaskableRecurrentClipPPO`'s."""


class MaskableRecurrentREINFORCE(_MaskableRecurrentMixin, RecurrentAlgorithmMixin, MaskableREINFORCE):  # type: ignore[misc]
    """:class:`~sb3_ppo_variants.recurrent.RecurrentREINFORCE` with invalid-action masking. Parameters are
    RecurrentREINFORCE's; ``policy`` as :class:`MaskableRecurrentClipPPO`'s."""

    def _default_recurrent_buffer(self, dict_obs: bool) -> type[RolloutBuffer]:
        return RecurrentDictRewardToGoRolloutBuffer if dict_obs else RecurrentRewardToGoRolloutBuffer


class MaskableRecurrentSPO(RecurrentPPODefaults, _MaskableRecurrentMixin, RecurrentAlgorithmMixin, MaskableSPO):  # type: ignore[misc]
    """:class:`~sb3_ppo_variants.recurrent.RecurrentSPO` with invalid-action masking. Parameters are RecurrentSPO's;
    ``policy`` as :class:`MaskableRecurrentClipPPO`'s."""
