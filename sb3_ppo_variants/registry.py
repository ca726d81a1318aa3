"""The algorithms by the short names used on the command lines, in rl_zoo3 and in the config files."""

from __future__ import annotations

from sb3_ppo_variants.clip_ppo import ClipPPO
from sb3_ppo_variants.common.base import PolicyGradientAlgorithm
from sb3_ppo_variants.kl_penalty_ppo import KLPenaltyPPO
from sb3_ppo_variants.reinforce import REINFORCE

#: short name -> algorithm class
ALGOS: dict[str, type[PolicyGradientAlgorithm]] = {"clip_ppo": ClipPPO, "kl_ppo": KLPenaltyPPO, "reinforce": REINFORCE}
