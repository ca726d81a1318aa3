"""rl_zoo3 integration: registration, Optuna samplers and converters, the ``sb3-ppo-variants-zoo`` command.

- :func:`register_zoo` makes ``clip_ppo``, ``kl_ppo``, ``reinforce`` and ``spo`` and their masked (``_mask``)
  variants, and the recurrent (``_lstm``) and masked recurrent (``_lstm_mask``) variants of the first three known to
  rl_zoo3 (algorithms, samplers, converters); :mod:`sb3_ppo_variants.zoo.cli` (``sb3-ppo-variants-zoo``,
  ``python -m sb3_ppo_variants.zoo``) calls it and then runs rl_zoo3's own train/enjoy/... code.
- :mod:`sb3_ppo_variants.zoo.samplers` holds the samplers and converters; they need Optuna only, not rl_zoo3.
- :func:`zoo_config` locates the hyperparameter files shipped with the package (the repository's top-level
  ``zoo_configs/<algo>.yml``, installed as ``sb3_ppo_variants.zoo_configs``).

Importing this package does not import rl_zoo3; :func:`register_zoo` does.
"""

from sb3_ppo_variants.zoo.registration import register_zoo, zoo_config
from sb3_ppo_variants.zoo.samplers import (
    CONVERTERS,
    SAMPLERS,
    convert_clip_ppo_lstm_params,
    convert_clip_ppo_params,
    convert_kl_ppo_lstm_params,
    convert_kl_ppo_params,
    convert_reinforce_params,
    convert_spo_params,
    rollout_search_space,
    sample_clip_ppo_lstm_params,
    sample_clip_ppo_params,
    sample_kl_ppo_lstm_params,
    sample_kl_ppo_params,
    sample_reinforce_params,
    sample_spo_params,
)

#: The environments every ``zoo_configs/<algo>.yml`` has a tuned or starting entry for (what the tuned-results
#: table of docs/zoo.md covers), in the order of rl_zoo3's benchmark table.
CONFIG_ENVS: tuple[str, ...] = (
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCar-v0",
    "Pendulum-v1",
    "LunarLander-v3",
    "LunarLanderContinuous-v3",
    "BipedalWalker-v3",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
)


def rl_zoo3_env_id(env_id: str) -> str:
    """The id under which rl_zoo3's own hyperparameter files (2.9.2) list ``env_id``'s entry: they have the MuJoCo
    tasks at -v4 only, our configs at -v5 (with the -v4 entries' values)."""
    return env_id.replace("-v5", "-v4")


__all__ = [
    "CONFIG_ENVS",
    "CONVERTERS",
    "SAMPLERS",
    "convert_clip_ppo_lstm_params",
    "convert_clip_ppo_params",
    "convert_kl_ppo_lstm_params",
    "convert_kl_ppo_params",
    "convert_reinforce_params",
    "convert_spo_params",
    "register_zoo",
    "rl_zoo3_env_id",
    "rollout_search_space",
    "sample_clip_ppo_lstm_params",
    "sample_clip_ppo_params",
    "sample_kl_ppo_lstm_params",
    "sample_kl_ppo_params",
    "sample_reinforce_params",
    "sample_spo_params",
    "zoo_config",
]
