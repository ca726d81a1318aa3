"""One trial: sample hyperparameters, train for the per-trial budget, evaluate periodically, report to the pruner.

**Evaluation schedule.** Every ``eval_freq`` environment steps (counted over all envs) during training, at the
points ``eval_freq, 2*eval_freq, ... < n_timesteps``, the policy is evaluated deterministically for
``n_eval_episodes`` episodes on a separate env; after training, the final model is evaluated once more. The
value is reported at the *scheduled* point, not at the exact step count (which depends on the trial's ``n_steps``),
so that the pruner compares all trials at the same steps.

**Several seeds.** The seeds ``seed, seed+1, ...`` are the same for every trial (common random numbers: the
trials differ only by their hyperparameters) and are trained one after the other. Seed ``k``'s evaluation at point
``t`` is reported at step ``k * n_timesteps + t`` with the value *mean over seeds 0..k of their evaluations at
``t``*. Each step thus has one meaning for every trial (a mean over the same number of seeds at the same point), so
the pruner's comparisons stay fair, and the estimate sharpens as seeds finish. The last report (the last seed's
final evaluation) is the mean over all seeds of the final evaluation, which is the trial's objective value.

A diverging run raises :class:`FloatingPointError` (the algorithms' own check, or a NaN/inf evaluation return); the
study loop records the trial as PRUNED with the reason (:mod:`sb3_ppo_variants.tuning.study`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import gymnasium as gym
import numpy as np
import optuna
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, sync_envs_normalization

from sb3_ppo_variants import ALGOS
from sb3_ppo_variants.workers.processes import kill_point
from sb3_ppo_variants.zoo.samplers import SAMPLERS

logger = logging.getLogger("sb3_ppo_variants.tuning")

#: Offset between a training seed and the seed of its evaluation env.
EVAL_SEED_OFFSET = 10_000


@dataclass(frozen=True)
class TrialSettings:
    """What every trial of a study shares (stored in the study, and checked when a study is continued).

    :param algo: Short name of the algorithm (``clip_ppo``, ``kl_ppo``, ``reinforce``, ``spo``)
    :param env_id: Gymnasium id
    :param n_timesteps: Training budget of one seed of one trial, in environment steps
    :param n_envs: Parallel training environments (DummyVecEnv)
    :param n_seeds: Seeds trained per trial
    :param seed: First seed
    :param eval_freq: Environment steps between evaluations
    :param n_eval_episodes: Episodes per evaluation
    :param hyperparams: Fixed constructor arguments, applied on top of the sampled ones
    :param normalize: Wrap the envs in VecNormalize
    :param policy: Policy name
    :param device: Torch device of the models
    """

    algo: str
    env_id: str
    n_timesteps: int
    n_envs: int
    n_seeds: int
    seed: int
    eval_freq: int
    n_eval_episodes: int
    hyperparams: Mapping[str, Any] = field(default_factory=dict)
    normalize: bool = False
    policy: str = "MlpPolicy"
    device: str = "cpu"

    def eval_points(self) -> list[int]:
        """The scheduled evaluation points of one seed, the final one (``n_timesteps``) included."""
        return [*range(self.eval_freq, self.n_timesteps, self.eval_freq), self.n_timesteps]

    def to_attr(self) -> dict[str, Any]:
        """A JSON description of the settings that change the meaning of a trial's value."""
        attr = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "device"}  # the device changes no value
        return {**attr, "hyperparams": {key: json_safe(value) for key, value in sorted(self.hyperparams.items())}}


def json_safe(value: Any) -> Any:
    """``value`` as JSON: non-finite floats, classes and other objects as strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def env_info(env_id: str) -> tuple[int, str]:
    """``(n_actions, default policy)`` of an environment, as rl_zoo3 computes ``n_actions`` for its samplers.

    :raises ValueError: naming ``env_id`` if Gymnasium does not know it
    """
    try:
        env = gym.make(env_id)
    except gym.error.Error as exc:
        raise ValueError(f"`env_id` {env_id!r} is not a registered Gymnasium environment: {exc}") from None
    try:
        action_space, observation_space = env.action_space, env.observation_space
    finally:
        env.close()
    if isinstance(action_space, spaces.Discrete):
        n_actions = int(action_space.n)
    elif action_space.shape:
        n_actions = int(action_space.shape[0])
    else:
        n_actions = 1
    policy = "MultiInputPolicy" if isinstance(observation_space, spaces.Dict) else "MlpPolicy"
    return n_actions, policy


class TrialEvalCallback(BaseCallback):
    """Evaluates at the scheduled points during training and reports to the trial; stops training when pruned.

    :param trial: The Optuna trial
    :param eval_env: The evaluation env (its VecNormalize statistics, if any, are synced from the training env)
    :param settings: The study's settings (evaluation schedule and episodes)
    :param seed_index: Which of the trial's seeds is training
    :param history: Evaluation returns of the seeds already trained, by point index; extended for this seed
    """

    def __init__(
        self,
        trial: optuna.Trial,
        eval_env: VecEnv,
        settings: TrialSettings,
        seed_index: int,
        history: list[list[float]],
    ) -> None:
        super().__init__()
        self.trial = trial
        self.eval_env = eval_env
        self.settings = settings
        self.seed_index = seed_index
        self.history = history
        self.points = settings.eval_points()[:-1]  # the final evaluation is done after learn()
        self.returns: list[float] = []
        self.pruned_at: int | None = None

    def evaluate(self) -> float:
        """Mean deterministic return over ``n_eval_episodes`` episodes of the current policy."""
        train_env = self.model.get_env()
        if isinstance(train_env, VecNormalize):
            sync_envs_normalization(train_env, self.eval_env)
        episode_mean, _ = evaluate_policy(
            self.model, self.eval_env, n_eval_episodes=self.settings.n_eval_episodes, deterministic=True, warn=False
        )
        mean_return = float(episode_mean)  # type: ignore[arg-type]  # a float unless return_episode_rewards=True
        if not math.isfinite(mean_return):
            raise FloatingPointError(
                f"training diverged: the evaluation return is {mean_return} at step {self.num_timesteps} "
                f"(seed {self.settings.seed + self.seed_index})"
            )
        return mean_return

    def record(self, value: float, check_prune: bool = True) -> bool:
        """Report the evaluation at the next scheduled point; return False when the trial should be pruned."""
        index = len(self.returns)
        if index >= len(self.settings.eval_points()):
            raise RuntimeError(f"more evaluations than scheduled points ({self.settings.eval_points()})")
        self.returns.append(value)
        point = self.settings.eval_points()[index]
        seeds = [runs[index] for runs in self.history] + [value]
        step = self.seed_index * self.settings.n_timesteps + point
        self.trial.report(float(np.mean(seeds)), step)
        kill_point("mid-trial")
        if check_prune and self.trial.should_prune():
            self.pruned_at = step
            return False
        return True

    def _on_step(self) -> bool:
        index = len(self.returns)
        if index < len(self.points) and self.num_timesteps >= self.points[index]:
            return self.record(self.evaluate())
        return True


class Objective:
    """The objective of a study: ``objective(trial) -> mean final evaluation return over the seeds``.

    :param settings: The study's settings
    """

    def __init__(self, settings: TrialSettings) -> None:
        self.settings = settings
        self.n_actions, _ = env_info(settings.env_id)

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's constructor arguments: our sampler's values, then the fixed ``hyperparams`` on top."""
        sampler = SAMPLERS[self.settings.algo]
        hyperparams = sampler(trial, self.n_actions, self.settings.n_envs, {})
        hyperparams.update(self.settings.hyperparams)
        return hyperparams

    def _make_env(self, seed: int, n_envs: int, training: bool) -> VecEnv:
        env: VecEnv = make_vec_env(self.settings.env_id, n_envs=n_envs, seed=seed)
        if self.settings.normalize:
            env = VecNormalize(env, training=training, norm_reward=training)
        return env

    def train_seed(
        self, trial: optuna.Trial, hyperparams: dict[str, Any], seed_index: int, history: list[list[float]]
    ) -> None:
        """Train and evaluate one seed, appending its evaluation returns to ``history``.

        :raises optuna.TrialPruned: when the pruner stops the trial
        :raises FloatingPointError: when training diverges
        """
        settings = self.settings
        seed = settings.seed + seed_index
        env = self._make_env(seed, settings.n_envs, training=True)
        eval_env = self._make_env(seed + EVAL_SEED_OFFSET, 1, training=False)
        try:
            model = ALGOS[settings.algo](settings.policy, env, seed=seed, device=settings.device, verbose=0, **hyperparams)
            callback = TrialEvalCallback(trial, eval_env, settings, seed_index, history)
            model.learn(settings.n_timesteps, callback=callback)
            if callback.pruned_at is None:
                if len(callback.returns) != len(callback.points):  # cannot happen with eval_freq >= n_envs
                    raise RuntimeError(f"missed evaluations: {len(callback.returns)} of {len(callback.points)} done")
                last_seed = seed_index == settings.n_seeds - 1
                callback.record(callback.evaluate(), check_prune=not last_seed)
            if callback.pruned_at is not None:
                raise optuna.TrialPruned(f"pruned at step {callback.pruned_at} by the pruner")
            history.append(callback.returns)
        finally:
            env.close()
            eval_env.close()

    def __call__(self, trial: optuna.Trial) -> float:
        """Run the trial; return the mean over seeds of the final evaluation return."""
        hyperparams = self.sample(trial)
        rollout = hyperparams.get("n_steps", 2048) * self.settings.n_envs
        logger.info("[trial %d] start: %s", trial.number, format_hyperparams(hyperparams))
        if rollout > self.settings.n_timesteps:
            logger.warning(
                "[trial %d] the rollout (n_steps * n_envs = %d) is longer than the per-trial budget (%d steps): "
                "the trial makes a single update",
                trial.number,
                rollout,
                self.settings.n_timesteps,
            )
        history: list[list[float]] = []
        for seed_index in range(self.settings.n_seeds):
            self.train_seed(trial, hyperparams, seed_index, history)
        finals = [runs[-1] for runs in history]
        trial.set_user_attr("final_returns", finals)
        return float(np.mean(finals))


def format_hyperparams(hyperparams: Mapping[str, Any]) -> str:
    """A compact one-line rendering of constructor arguments, for log lines."""
    parts = []
    for key, value in hyperparams.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.3g}")
        elif key == "policy_kwargs" and isinstance(value, Mapping):
            inner = ", ".join(
                f"{k}={getattr(v, '__name__', v)}" if k == "activation_fn" else f"{k}={v}" for k, v in value.items()
            )
            parts.append(f"policy_kwargs=({inner})")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)
