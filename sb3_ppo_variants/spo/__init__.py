from sb3_ppo_variants.spo.policies import CnnPolicy, MlpPolicy, MultiInputPolicy
from sb3_ppo_variants.spo.spo import SPO

__all__ = ["SPO", "CnnPolicy", "MlpPolicy", "MultiInputPolicy"]
