"""Environment adapters: :class:`GymnasiumVecEnv` lets any SB3 algorithm train on ``gymnasium.make_vec(...)``."""

from sb3_ppo_variants.envs.vec_env import GymnasiumVecEnv, make_gymnasium_vec_env

__all__ = ["GymnasiumVecEnv", "make_gymnasium_vec_env"]
