"""sb3-ppo-variants: the PPO paper's policy-gradient objectives as Stable-Baselines3 algorithms."""

from sb3_ppo_variants.clip_ppo import ClipPPO

__version__ = "0.1.0"

__all__ = ["ClipPPO", "__version__"]
