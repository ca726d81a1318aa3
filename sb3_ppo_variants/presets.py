"""Ready-to-train settings read from the rl_zoo3 hyperparameter files shipped in the package (``zoo_configs/<algo>.yml``).

A :class:`Preset` is one (algorithm, environment) entry of those files: the number of envs, the training budget,
VecNormalize and the constructor arguments. ``python -m sb3_ppo_variants`` and the learning checks train with them,
so the YAML files are the one place where the settings live. :data:`PRESET_PAIRS` lists the pairs with a tested
return threshold (``benchmarks/learning.py``); :func:`get_preset` reads any entry of the files.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from sb3_ppo_variants.core.algorithm import PolicyGradientAlgorithm

#: Keys of a config entry that describe the run rather than the algorithm (rl_zoo3's meaning).
RUN_KEYS = ("n_envs", "n_timesteps", "normalize")

#: The (algo, env) pairs the demo and the learning checks train.
PRESET_PAIRS: tuple[tuple[str, str], ...] = (
    ("clip_ppo", "CartPole-v1"),
    ("clip_ppo", "Pendulum-v1"),
    ("kl_ppo", "CartPole-v1"),
    ("kl_ppo", "Pendulum-v1"),
    ("reinforce", "CartPole-v1"),
    ("reinforce", "Acrobot-v1"),
    ("clip_ppo", "LunarLander-v3"),
    ("spo", "CartPole-v1"),
    ("spo", "Pendulum-v1"),
    ("spo", "LunarLander-v3"),
)


@dataclass(frozen=True)
class Preset:
    """Hyperparameters of one algorithm on one environment, as an entry of ``zoo_configs/<algo>.yml``.

    :param algo: short name (``clip_ppo``, ``kl_ppo``, ``reinforce``, ``spo``)
    :param env_id: Gymnasium id
    :param n_envs: parallel environments (DummyVecEnv)
    :param n_timesteps: training budget in environment steps
    :param hyperparams: constructor keyword arguments (``lin_<x>`` strings are linear schedules)
    :param normalize: wrap the env in VecNormalize
    :param policy: the policy (an alias such as ``MlpPolicy``)
    :param source: the file the entry comes from
    """

    algo: str
    env_id: str
    n_envs: int
    n_timesteps: int
    hyperparams: dict[str, Any] = field(default_factory=dict)
    normalize: bool = False
    policy: str = "MlpPolicy"
    source: str = ""

    def make_env(self, seed: int | None = None) -> VecEnv:
        """The training VecEnv (VecNormalize-wrapped when ``normalize``)."""
        env: VecEnv = make_vec_env(self.env_id, n_envs=self.n_envs, seed=seed)
        return VecNormalize(env) if self.normalize else env

    def make_model(self, seed: int | None = None, env: VecEnv | None = None, **overrides: Any) -> PolicyGradientAlgorithm:
        """A fresh model with these hyperparameters (``overrides`` take precedence)."""
        from sb3_ppo_variants.registry import ALGOS

        kwargs = {**self.hyperparams, **overrides}
        policy = kwargs.pop("policy", self.policy)
        return ALGOS[self.algo](policy, env if env is not None else self.make_env(seed), seed=seed, **kwargs)


@functools.cache
def _config(algo: str) -> dict[str, Any]:
    import yaml

    from sb3_ppo_variants.zoo.registration import zoo_config

    return yaml.safe_load(zoo_config(algo).read_text())


def get_preset(algo: str, env_id: str) -> Preset:
    """The entry for ``env_id`` of ``zoo_configs/<algo>.yml`` as a :class:`Preset`.

    :raises KeyError: if the file has no such entry (the message lists the entries it has)
    :raises ValueError: if the entry uses keys only rl_zoo3 can interpret (strings of Python code, wrappers)
    """
    config = _config(algo)
    if env_id not in config or env_id == "default":
        available = ", ".join(key for key in config if key not in ("default", "atari"))
        raise KeyError(f"No entry for env={env_id!r} in zoo_configs/{algo}.yml; it has: {available}") from None
    entry = dict(config[env_id])
    code = sorted(key for key in ("policy_kwargs", "env_wrapper", "callback", "vec_env_wrapper") if key in entry)
    if code:
        raise ValueError(
            f"zoo_configs/{algo}.yml's {env_id} entry sets {', '.join(code)}: train it with `sb3-ppo-variants-zoo train`, "
            "which interprets them as rl_zoo3 does"
        )
    return Preset(
        algo,
        env_id,
        n_envs=int(entry.pop("n_envs", 1)),
        n_timesteps=int(entry.pop("n_timesteps")),
        normalize=bool(entry.pop("normalize", False)),
        policy=entry.pop("policy", "MlpPolicy"),
        hyperparams=entry,
        source=f"zoo_configs/{algo}.yml",
    )
