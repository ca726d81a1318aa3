"""The 0.2.0 import path of the Gymnasium vector-env adapter: use :mod:`sb3_ppo_variants.envs` instead."""

import warnings

from sb3_ppo_variants.envs.vec_env import GymnasiumVecEnv, make_gymnasium_vec_env

warnings.warn(
    "sb3_ppo_variants.common.vec_env moved to sb3_ppo_variants.envs (import GymnasiumVecEnv and make_gymnasium_vec_env "
    "from there); this alias will be removed in a later release",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["GymnasiumVecEnv", "make_gymnasium_vec_env"]
