"""sb3-ppo-variants: the PPO paper's policy-gradient objectives as Stable-Baselines3 algorithms.

- :class:`ClipPPO`: the clipped surrogate (``clip_range=None``: the unclipped surrogate)
- :class:`KLPenaltyPPO`: the adaptive (or fixed) KL penalty
- :class:`REINFORCE`: normalised reward-to-go policy gradient, optional learned baseline
- :class:`SPO`: Simple Policy Optimization, the ratio's quadratic penalty in place of the clip
- :class:`MaskableClipPPO`, :class:`MaskableKLPenaltyPPO`, :class:`MaskableREINFORCE`, :class:`MaskableSPO`: the same
  with invalid-action masking (sb3-contrib's maskable policies, buffers and ``action_masks()`` environments)
- :class:`RecurrentClipPPO`, :class:`RecurrentKLPenaltyPPO`, :class:`RecurrentREINFORCE`: the same with an LSTM policy
  (sb3-contrib's recurrent policies and buffers), and :class:`MaskableRecurrentClipPPO`,
  :class:`MaskableRecurrentKLPenaltyPPO`, :class:`MaskableRecurrentREINFORCE` with masking as well; the same for SPO
  (:class:`RecurrentSPO`, :class:`MaskableRecurrentSPO`)
"""

from sb3_ppo_variants.clip_ppo import ClipPPO
from sb3_ppo_variants.kl_penalty_ppo import KLPenaltyPPO
from sb3_ppo_variants.masking import MaskableClipPPO, MaskableKLPenaltyPPO, MaskableREINFORCE, MaskableSPO
from sb3_ppo_variants.recurrent.algorithms import (
    RecurrentClipPPO,
    RecurrentKLPenaltyPPO,
    RecurrentREINFORCE,
    RecurrentSPO,
)
from sb3_ppo_variants.recurrent.maskable import (
    MaskableRecurrentClipPPO,
    MaskableRecurrentKLPenaltyPPO,
    MaskableRecurrentREINFORCE,
    MaskableRecurrentSPO,
)
from sb3_ppo_variants.registry import ALGOS
from sb3_ppo_variants.reinforce import REINFORCE
from sb3_ppo_variants.spo import SPO

__version__ = "0.2.0"

__all__ = [
    "ALGOS",
    "REINFORCE",
    "SPO",
    "ClipPPO",
    "KLPenaltyPPO",
    "MaskableClipPPO",
    "MaskableKLPenaltyPPO",
    "MaskableREINFORCE",
    "MaskableRecurrentClipPPO",
    "MaskableRecurrentKLPenaltyPPO",
    "MaskableRecurrentREINFORCE",
    "MaskableRecurrentSPO",
    "MaskableSPO",
    "RecurrentClipPPO",
    "RecurrentKLPenaltyPPO",
    "RecurrentREINFORCE",
    "RecurrentSPO",
    "__version__",
]
