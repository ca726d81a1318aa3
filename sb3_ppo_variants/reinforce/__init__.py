from sb3_ppo_variants.reinforce.policies import CnnPolicy, MlpPolicy, MultiInputPolicy
from sb3_ppo_variants.reinforce.reinforce import REINFORCE

__all__ = ["REINFORCE", "CnnPolicy", "MlpPolicy", "MultiInputPolicy"]
