"""REINFORCE's rollout buffers: the discounted reward-to-go inside each episode instead of GAE, normalised."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer

from sb3_ppo_variants.core.buffers import DictTensorRolloutBuffer, TensorRolloutBuffer
from sb3_ppo_variants.core.checks import check_choice

NORMALIZATION_MODES = ("batch", "timestep", "none")


def normalize(values: np.ndarray, valid: np.ndarray, mode: str) -> np.ndarray:
    """Normalise ``values`` (shape ``(n_steps, n_envs)``) over the entries where ``valid`` is True.

    ``mode``: ``"batch"`` uses one mean and std over all valid entries; ``"timestep"`` one per row
    (time step) across the parallel envs; ``"none"`` returns the values unchanged. Where the std of a
    group is 0 (all values equal, or a single value), the normalised values are 0. Invalid entries are 0.
    Computed in float64.
    """
    check_choice("normalize", mode, NORMALIZATION_MODES)
    values = np.asarray(values, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    out = np.zeros_like(values)
    if mode == "none":
        out[valid] = values[valid]
        return out
    groups = [(slice(None), slice(None))] if mode == "batch" else [(t, slice(None)) for t in range(values.shape[0])]
    for group in groups:
        block, mask = values[group], valid[group]
        if not mask.any():
            continue
        selected = block[mask]
        mean, std = mean_std(selected)
        # identical values give a std of exactly 0 or a rounding residue far below the values' scale
        if std <= 1e-8 * max(1.0, abs(mean)):
            continue
        normalized = np.zeros_like(block)
        normalized[mask] = (selected - mean) / std
        out[group] = normalized
    return out


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """``values.mean()`` and ``values.std()`` of a 1-D float64 array, computed with NumPy's own operations in NumPy's
    order (the same bits: a test compares them), in four calls instead of NumPy's two dozen Python-level steps."""
    count = len(values)
    mean = np.add.reduce(values) / count
    deviation = values - mean
    return float(mean), float(np.sqrt(np.add.reduce(deviation * deviation) / count))


class _RewardToGoMixin:
    """Reward-to-go, validity mask and normalised weights; shared by the plain and the Dict buffer.

    After :meth:`compute_returns_and_advantage`:

    - ``returns[t]`` is the discounted reward-to-go ``sum_{t' >= t} gamma^(t'-t) r_t'`` inside the episode
      (the critic's regression target when there is a baseline);
    - ``valid[t]`` is False for steps whose episode is still running at the end of the rollout and that
      cannot be bootstrapped (no baseline): their reward-to-go is unknown, so they are left out of the loss;
    - ``advantages[t]`` is the policy-gradient weight, ``G_t`` (no baseline) or ``G_t - V(s_t)`` (baseline),
      normalised according to ``normalize``.
    """

    rewards: np.ndarray
    returns: np.ndarray
    values: np.ndarray
    advantages: np.ndarray
    episode_starts: np.ndarray
    buffer_size: int
    n_envs: int
    gamma: float
    generator_ready: bool
    full: bool
    observations: Any
    normalize: str
    bootstrap: bool
    valid: np.ndarray
    return_mean: float
    return_std: float
    valid_fraction: float

    def _setup_reward_to_go(self, normalize: str, bootstrap: bool) -> None:
        self.normalize = check_choice("normalize", normalize, NORMALIZATION_MODES)
        self.bootstrap = bool(bootstrap)
        self.return_mean = self.return_std = float("nan")
        self.valid_fraction = 1.0

    def reset(self) -> None:
        self.valid = np.ones((self.buffer_size, self.n_envs), dtype=bool)
        super().reset()  # type: ignore[misc]

    def get(self, batch_size: int | None = None) -> Generator[Any, None, None]:
        """Minibatches over the valid samples only, in a random order (all of them when ``batch_size`` is None)."""
        assert self.full, "The rollout buffer must be full before sampling from it"
        if not self.generator_ready:
            if isinstance(self.observations, dict):
                for key, obs in self.observations.items():
                    self.observations[key] = self.swap_and_flatten(obs)  # type: ignore[attr-defined]
            else:
                self.observations = self.swap_and_flatten(self.observations)  # type: ignore[attr-defined]
            for name in ("actions", "values", "log_probs", "advantages", "returns", "valid"):
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])  # type: ignore[attr-defined]
            self.generator_ready = True
        yield from _minibatches(self, self._valid_indices(), batch_size)  # type: ignore[arg-type]

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        """Fill ``returns``, ``valid`` and ``advantages`` (see the class docstring).

        :param last_values: V(s_T) of the observation after the last step (used only with ``bootstrap``)
        :param dones: whether the last step ended its episode
        """
        dones = np.asarray(dones, dtype=np.float64)
        if self.bootstrap:
            running = last_values.clone().cpu().numpy().flatten().astype(np.float64) * (1.0 - dones)
            running_valid = np.ones(self.n_envs, dtype=bool)
        else:
            running = np.zeros(self.n_envs, dtype=np.float64)
            running_valid = dones.astype(bool)
        returns = np.zeros((self.buffer_size, self.n_envs), dtype=np.float64)
        episode_ends = self.episode_starts[1:].astype(bool)  # row t: the episode ended after step t
        for step in reversed(range(self.buffer_size)):
            if step < self.buffer_size - 1:
                ended = episode_ends[step]
                running = np.where(ended, 0.0, running)
                running_valid = running_valid | ended
            running = self.rewards[step] + self.gamma * running
            returns[step] = running
            self.valid[step] = running_valid
        self.returns = returns.astype(np.float32)
        weights = returns - self.values if self.bootstrap else returns
        self.advantages = normalize(weights, self.valid, self.normalize).astype(np.float32)
        valid_count = int(np.count_nonzero(self.valid))
        self.valid_fraction = valid_count / self.valid.size
        if valid_count:
            self.return_mean, self.return_std = mean_std(returns[self.valid])
        else:
            self.return_mean = self.return_std = float("nan")

    def _valid_indices(self) -> np.ndarray:
        """Indices of the valid samples in random order; call after the fields were flattened."""
        indices = np.flatnonzero(self.valid.reshape(-1))
        return indices[np.random.permutation(len(indices))]


class RewardToGoRolloutBuffer(_RewardToGoMixin, TensorRolloutBuffer):
    """Rollout buffer for REINFORCE: normalised discounted reward-to-go instead of GAE.

    Episode ends: a termination or a time-limit truncation ends the reward-to-go (with a baseline the
    algorithm has already added ``gamma * V(terminal obs)`` to the reward of a truncated step, as SB3 does).
    An episode still running at the end of the rollout is bootstrapped with ``V(s_T)`` when ``bootstrap``
    (learned baseline), otherwise its steps are marked invalid and :meth:`get` leaves them out.

    Parameters are those of SB3's ``RolloutBuffer`` (``gae_lambda`` is unused), and:

    :param normalize: ``"batch"`` (default), ``"timestep"`` (per step across the parallel envs) or ``"none"``
    :param bootstrap: bootstrap unfinished episodes with the critic's value (only with a learned baseline)
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


class DictRewardToGoRolloutBuffer(_RewardToGoMixin, DictTensorRolloutBuffer):
    """:class:`RewardToGoRolloutBuffer` for Dict observation spaces."""

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


def _minibatches(buffer: RolloutBuffer, indices: np.ndarray, batch_size: int | None) -> Generator[Any, None, None]:
    if len(indices) == 0:
        return
    size = len(indices) if batch_size is None else batch_size
    for start in range(0, len(indices), size):
        yield buffer._get_samples(indices[start : start + size])
