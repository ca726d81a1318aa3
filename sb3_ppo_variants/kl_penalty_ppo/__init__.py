from sb3_ppo_variants.kl_penalty_ppo.kl_penalty_ppo import KL_ESTIMATORS, KLPenaltyPPO, adapt_beta
from sb3_ppo_variants.kl_penalty_ppo.policies import CnnPolicy, MlpPolicy, MultiInputPolicy

__all__ = ["KL_ESTIMATORS", "CnnPolicy", "KLPenaltyPPO", "MlpPolicy", "MultiInputPolicy", "adapt_beta"]
