"""KLPenaltyPPO's rollout buffers: SB3's, plus the parameters of the action distribution that produced each sample.

:class:`DistParamsRolloutBuffer` / :class:`DictDistParamsRolloutBuffer` keep the old distribution's parameters (see
:mod:`sb3_ppo_variants.kl_penalty_ppo.kl`) beside each sample, so that the closed-form KL[pi_old, pi_theta] needs no
second forward pass through a frozen copy of the policy (the pattern sb3-contrib's MaskablePPO uses for its masks).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import TensorDict

from sb3_ppo_variants.core.buffers import DictTensorRolloutBuffer, TensorRolloutBuffer
from sb3_ppo_variants.core.checks import check_int


class DistParamsRolloutBufferSamples(NamedTuple):
    """SB3's ``RolloutBufferSamples`` plus the old distribution's parameters."""

    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    old_dist_params: th.Tensor


class DictDistParamsRolloutBufferSamples(NamedTuple):
    """SB3's ``DictRolloutBufferSamples`` plus the old distribution's parameters."""

    observations: TensorDict
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    old_dist_params: th.Tensor


class _DistParamsMixin:
    """Stores ``dist_params`` (float32, ``dist_params_dim`` per sample) beside the usual fields."""

    _extra_fields: tuple[str, ...] = ("dist_params",)
    dist_params_dim: int
    dist_params: np.ndarray
    buffer_size: int
    n_envs: int
    pos: int
    generator_ready: bool

    def _init_dist_params(self, dist_params_dim: int) -> None:
        self.dist_params_dim = check_int("dist_params_dim", dist_params_dim, minimum=1)

    def reset(self) -> None:
        self.dist_params = np.zeros((self.buffer_size, self.n_envs, self.dist_params_dim), dtype=np.float32)
        super().reset()  # type: ignore[misc]

    def add(self, *args: Any, dist_params: th.Tensor | None = None, **kwargs: Any) -> None:
        if dist_params is None:
            raise ValueError("This rollout buffer stores the old action distribution: pass `dist_params` to add()")
        # before the parent's add() advances self.pos
        self.dist_params[self.pos] = dist_params.reshape(self.n_envs, self.dist_params_dim).cpu().numpy()
        super().add(*args, **kwargs)  # type: ignore[misc]

    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        if not self.generator_ready:
            self.dist_params = self.swap_and_flatten(self.dist_params)  # type: ignore[attr-defined]
        yield from super().get(batch_size)  # type: ignore[misc]


class DistParamsRolloutBuffer(_DistParamsMixin, TensorRolloutBuffer):
    """Rollout buffer that also keeps the parameters of the action distribution that produced each sample.

    Parameters are those of SB3's ``RolloutBuffer``, and:

    :param dist_params_dim: floats per sample (see :func:`~sb3_ppo_variants.kl_penalty_ppo.kl.dist_params_dim`)
    """

    _samples_class = DistParamsRolloutBufferSamples

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


class DictDistParamsRolloutBuffer(_DistParamsMixin, DictTensorRolloutBuffer):
    """:class:`DistParamsRolloutBuffer` for Dict observation spaces."""

    _samples_class = DictDistParamsRolloutBufferSamples

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
