"""Controls that other PPO libraries define, as plain functions (the shared loop calls them).

- :func:`adapt_learning_rate`: the KL-adaptive learning rate of rsl_rl (``schedule="adaptive"``, its default, so
  every Isaac Lab PPO config uses it) and SBX (``KlAdaptiveLR``);
- :func:`normalize_advantages`: advantage normalisation, applied per minibatch (SB3) or over the whole batch
  (rsl_rl's default, RLlib);
- :func:`compute_gae`: generalised advantage estimation (Schulman et al. 2016, arXiv 1506.02438, eq. 16), used to
  recompute the advantages with the current critic before each epoch (Tianshou's ``recompute_advantage``).

Dual-clip and the value-loss forms are loss terms: see :mod:`sb3_ppo_variants.core.losses`. ``docs/controls.md``
describes each control with its source and formula.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.utils import obs_as_tensor

from sb3_ppo_variants.core.buffers import samples_in_order

#: When the KL-adaptive learning rate adapts: after each minibatch step (rsl_rl, SBX) or once per update.
ADAPTIVE_LR_EVERY = ("minibatch", "update")
#: How ``clip_range_vf`` clips the value loss: SB3's (clip the prediction, then MSE) or the max form of OpenAI
#: baselines / CleanRL / rsl_rl / Tianshou.
VALUE_CLIP_FORMS = ("prediction", "max")
#: Over which samples the advantages are normalised (when ``normalize_advantage``): each minibatch (SB3) or the
#: whole batch of the update (rsl_rl, RLlib).
ADVANTAGE_SCOPES = ("minibatch", "batch")

#: Defaults of the adaptive learning rate, rsl_rl's constants (``ppo.py``: 2.0, 1.5, 1e-5, 1e-2).
ADAPTIVE_LR_DEFAULTS = {"kl_margin": 2.0, "factor": 1.5, "lr_min": 1e-5, "lr_max": 1e-2}

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, th.Tensor)


def kl_band(kl: float, target: float, band: float) -> int:
    """Where a measured KL lies against ``target``: 1 above ``target * band`` (or non-finite: a diverging update),
    -1 below ``target / band``, 0 inside. The test of both adaptive rules: KLPenaltyPPO's beta and the learning rate."""
    if not math.isfinite(kl) or kl > target * band:
        return 1
    return -1 if kl < target / band else 0


def adapt_learning_rate(
    learning_rate: float,
    kl: float,
    target_kl: float,
    kl_margin: float = 2.0,
    factor: float = 1.5,
    lr_min: float = 1e-5,
    lr_max: float = 1e-2,
) -> float:
    """The next learning rate from the KL measured between the rollout policy and the current one.

    rsl_rl's rule (``PPO.update``, ``schedule="adaptive"``), with its constants as defaults:

    - ``kl > target_kl * kl_margin``: ``learning_rate / factor``;
    - ``kl < target_kl / kl_margin``: ``learning_rate * factor``;
    - otherwise unchanged;

    the result is clamped to ``[lr_min, lr_max]``. A non-finite ``kl`` (a diverging update) lowers the rate, the
    safe direction, instead of propagating NaN. rsl_rl increases only when also ``kl > 0``; SBX's ``KlAdaptiveLR``
    and this function do not have that condition (with the sample estimate used here, the first minibatch of an
    update has ``kl == 0`` exactly, where rsl_rl's closed form with its ``+1e-5`` inside the log gives a small
    positive value and increases the rate as well).
    """
    band = kl_band(kl, target_kl, kl_margin)
    if band > 0:
        learning_rate = learning_rate / factor
    elif band < 0:
        learning_rate = learning_rate * factor
    return float(min(max(learning_rate, lr_min), lr_max))


def normalize_advantages(advantages: ArrayOrTensor, eps: float = 1e-8) -> ArrayOrTensor:
    """``(A - mean(A)) / (std(A) + eps)``, with the sample standard deviation (n - 1), as SB3 and rsl_rl compute it."""
    if isinstance(advantages, th.Tensor):
        return (advantages - advantages.mean()) / (advantages.std() + eps)
    return ((advantages - advantages.mean()) / (advantages.std(ddof=1) + eps)).astype(advantages.dtype, copy=False)


def compute_gae(
    rewards: np.ndarray,
    values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    last_dones: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Advantages and TD(lambda) returns of a rollout, arrays of shape ``(n_steps, n_envs)``.

    ``delta_t = r_t + gamma * V(s_{t+1}) * (1 - done_{t+1}) - V(s_t)`` and
    ``A_t = delta_t + gamma * lambda * (1 - done_{t+1}) * A_{t+1}`` (GAE, Schulman et al. 2016, eq. 16, with the
    episode ends of a vectorised rollout as SB3 stores them: ``episode_starts[t + 1]`` says that ``s_{t+1}`` begins a
    new episode, ``last_dones`` the same for the observation after the last step); returns ``R_t = A_t + V(s_t)``.

    :param rewards: r_t (time-limit truncations already bootstrapped into them, as SB3 does)
    :param values: V(s_t)
    :param episode_starts: 1 where s_t is the first observation of an episode
    :param last_values: V of the observation after the last step, shape ``(n_envs,)``
    :param last_dones: whether that observation begins a new episode, shape ``(n_envs,)``
    :return: ``(advantages, returns)``, float32
    """
    n_steps = rewards.shape[0]
    advantages = np.zeros_like(rewards, dtype=np.float32)
    next_advantage = np.zeros(rewards.shape[1:], dtype=np.float32)
    for step in reversed(range(n_steps)):
        if step == n_steps - 1:
            next_non_terminal = 1.0 - np.asarray(last_dones, dtype=np.float32)
            next_values = np.asarray(last_values, dtype=np.float32)
        else:
            next_non_terminal = 1.0 - episode_starts[step + 1]
            next_values = values[step + 1]
        delta = rewards[step] + gamma * next_values * next_non_terminal - values[step]
        next_advantage = delta + gamma * gae_lambda * next_non_terminal * next_advantage
        advantages[step] = next_advantage
    return advantages, (advantages + values).astype(np.float32)


# ---------------------------------------------------------------------------------------------- on the rollout buffer


def drop_cached_tensors(buffer: RolloutBuffer) -> None:
    """Our buffers keep prepared copies of the flattened fields: drop them after the NumPy arrays were rewritten."""
    drop = getattr(buffer, "_drop_tensors", None)
    if drop is not None:
        drop()


def batch_mean(
    policy: Any,
    buffer: RolloutBuffer,
    chunk: int,
    discrete: bool,
    policy_kwargs_of: Callable[[Any], dict[str, Any]],
    per_sample: Callable[[Any, th.Tensor, Any], th.Tensor],
) -> float:
    """The mean of ``per_sample(batch, log_prob, distribution)`` over the whole (flattened) buffer, under the current
    policy and without gradient: the approximate KL of the adaptive learning rate, KLPenaltyPPO's KL of the beta rule.

    :param chunk: samples per policy call
    :param policy_kwargs_of: the extra keyword arguments of the policy call on a batch (the masked algorithms' masks)
    """
    total, count = 0.0, 0
    with th.no_grad():
        for batch in samples_in_order(buffer, chunk):
            actions = batch.actions.long().flatten() if discrete else batch.actions
            distribution = policy.get_distribution(batch.observations, **policy_kwargs_of(batch))
            values = per_sample(batch, distribution.log_prob(actions), distribution)
            total += float(values.sum())
            count += len(values)
    return total / count


def approx_kl_per_sample(batch: Any, log_prob: th.Tensor, distribution: Any) -> th.Tensor:
    """SB3's ``train/approx_kl`` estimator per sample: ``(r - 1) - log r``, ``r`` the new over the rollout probability."""
    log_ratio = log_prob - batch.old_log_prob
    return (th.exp(log_ratio) - 1) - log_ratio


def normalize_batch_advantages(buffer: RolloutBuffer) -> None:
    """``normalize_advantage_scope="batch"``: normalise the advantages of the whole rollout, in the buffer."""
    buffer.advantages[...] = normalize_advantages(buffer.advantages)
    drop_cached_tensors(buffer)


def recompute_advantages(
    policy: Any,
    buffer: RolloutBuffer,
    chunk: int,
    last_obs: Any,
    last_episode_starts: np.ndarray,
    truncations: list[tuple[int, int, Any, float]],
    gamma: float,
    gae_lambda: float,
) -> None:
    """``recompute_advantage``: the critic's values of the whole batch, then GAE with them (Tianshou), in the buffer.

    As in Tianshou, the recomputed values also become the ``old_values`` of value clipping. Truncated episodes had
    ``gamma * V(terminal observation)`` added to their last reward during the rollout (SB3's treatment); that value is
    recomputed too, from ``truncations`` (step, env, terminal observation tensor, reward before bootstrapping). The
    old log-probabilities stay those of the rollout policy.
    """
    assert buffer.generator_ready, "recompute after the first epoch, once the buffer is flattened"
    n_steps, n_envs = buffer.buffer_size, buffer.n_envs
    with th.no_grad():
        flat_values = th.cat(
            [policy.predict_values(batch.observations).flatten() for batch in samples_in_order(buffer, chunk)]
        )
        last_values = policy.predict_values(obs_as_tensor(last_obs, policy.device))
        for step, env, terminal_obs, raw_reward in truncations:
            buffer.rewards[step, env] = raw_reward + gamma * float(policy.predict_values(terminal_obs)[0])
    # the flattened buffer is env-major (SB3's swap_and_flatten): index env * n_steps + step
    values = flat_values.cpu().numpy().reshape(n_envs, n_steps).T.copy()
    advantages, returns = compute_gae(
        buffer.rewards,
        values,
        buffer.episode_starts,
        last_values.flatten().cpu().numpy(),
        np.asarray(last_episode_starts),
        gamma,
        gae_lambda,
    )
    buffer.values[...] = values.T.reshape(buffer.values.shape)
    buffer.advantages[...] = advantages.T.reshape(buffer.advantages.shape)
    buffer.returns[...] = returns.T.reshape(buffer.returns.shape)
    drop_cached_tensors(buffer)
