from sb3_ppo_variants.clip_ppo.clip_ppo import ClipPPO
from sb3_ppo_variants.clip_ppo.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

__all__ = ["ClipPPO", "CnnPolicy", "MlpPolicy", "MultiInputPolicy"]
