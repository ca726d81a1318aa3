"""Embedded, tested hyperparameters: what ``python -m sb3_ppo_variants`` and the learning checks train with.

Each :class:`Preset` is one (algorithm, environment) pair with the number of envs, the training budget and
the constructor arguments. The ClipPPO/KLPenaltyPPO values are rl-baselines3-zoo's tuned PPO settings
(``rl_zoo3/hyperparams/ppo.yml``, rl_zoo3 2.9.2); KLPenaltyPPO replaces clipping by the paper's adaptive
penalty (beta 1, d_targ 0.01). The same values are in ``zoo_configs/*.yml``; a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from sb3_ppo_variants.common.base import PolicyGradientAlgorithm


@dataclass(frozen=True)
class Preset:
    """Hyperparameters of one algorithm on one environment.

    :param algo: short name (``clip_ppo``, ``kl_ppo``, ``reinforce``)
    :param env_id: Gymnasium id
    :param n_envs: parallel environments (DummyVecEnv)
    :param n_timesteps: training budget in environment steps
    :param hyperparams: constructor keyword arguments (``lin_<x>`` strings are linear schedules)
    :param normalize: wrap the env in VecNormalize
    :param source: where the values come from
    """

    algo: str
    env_id: str
    n_envs: int
    n_timesteps: int
    hyperparams: dict[str, Any] = field(default_factory=dict)
    normalize: bool = False
    source: str = ""

    def make_env(self, seed: int | None = None) -> VecEnv:
        """The training VecEnv (VecNormalize-wrapped when ``normalize``)."""
        env: VecEnv = make_vec_env(self.env_id, n_envs=self.n_envs, seed=seed)
        return VecNormalize(env) if self.normalize else env

    def make_model(self, seed: int | None = None, env: VecEnv | None = None, **overrides: Any) -> PolicyGradientAlgorithm:
        """A fresh model with these hyperparameters (``overrides`` take precedence)."""
        from sb3_ppo_variants import ALGOS

        kwargs = {"policy": "MlpPolicy", **self.hyperparams, **overrides}
        policy = kwargs.pop("policy")
        return ALGOS[self.algo](policy, env if env is not None else self.make_env(seed), seed=seed, **kwargs)


_ZOO_PPO = "rl_zoo3 2.9.2 hyperparams/ppo.yml (tuned PPO)"

_CARTPOLE_PPO = dict(
    n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0, learning_rate="lin_0.001"
)
_PENDULUM_PPO = dict(
    n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0, learning_rate=1e-3, use_sde=True, sde_sample_freq=4
)

PRESETS: dict[tuple[str, str], Preset] = {
    ("clip_ppo", "CartPole-v1"): Preset(
        "clip_ppo", "CartPole-v1", 8, 100_000, {**_CARTPOLE_PPO, "clip_range": "lin_0.2"}, source=_ZOO_PPO
    ),
    ("clip_ppo", "Pendulum-v1"): Preset(
        "clip_ppo", "Pendulum-v1", 4, 100_000, {**_PENDULUM_PPO, "clip_range": 0.2}, source=_ZOO_PPO
    ),
    ("kl_ppo", "CartPole-v1"): Preset(
        "kl_ppo",
        "CartPole-v1",
        8,
        100_000,
        # 10 epochs instead of the zoo's 20: without clipping, 20 left one seed of three collapsing late
        {**_CARTPOLE_PPO, "n_epochs": 10, "beta": 1.0, "kl_target": 0.01},
        source=_ZOO_PPO + ", KL penalty",
    ),
    ("kl_ppo", "Pendulum-v1"): Preset(
        "kl_ppo",
        "Pendulum-v1",
        4,
        100_000,
        {**_PENDULUM_PPO, "beta": 1.0, "kl_target": 0.01},
        source=_ZOO_PPO + ", KL penalty",
    ),
    # ours (a search over 3 seeds); vf_coef matters only with use_baseline=True, where the value loss on raw returns
    # would otherwise take most of the clipped gradient
    ("reinforce", "CartPole-v1"): Preset(
        "reinforce",
        "CartPole-v1",
        8,
        300_000,
        dict(n_steps=512, learning_rate="lin_0.005", gamma=0.99, max_grad_norm=1.0, vf_coef=0.01),
        source="ours, tuned on 3 seeds",
    ),
    ("reinforce", "Acrobot-v1"): Preset(
        "reinforce",
        "Acrobot-v1",
        16,
        500_000,
        dict(n_steps=32, learning_rate="lin_0.002", gamma=0.99, max_grad_norm=1.0, use_baseline=True, vf_coef=0.01),
        normalize=True,
        source="ours, tuned on 3 seeds",
    ),
}


def get_preset(algo: str, env_id: str) -> Preset:
    """The preset of ``algo`` on ``env_id``; a KeyError lists the available pairs."""
    try:
        return PRESETS[(algo, env_id)]
    except KeyError:
        available = ", ".join(f"{a}/{e}" for a, e in sorted(PRESETS))
        raise KeyError(f"No preset for algo={algo!r}, env={env_id!r}; available: {available}") from None
