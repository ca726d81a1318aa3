"""Invalid-action masking for ClipPPO, KLPenaltyPPO and REINFORCE, on sb3-contrib's maskable machinery.

See ``docs/masking.md``: :class:`MaskableClipPPO`, :class:`MaskableKLPenaltyPPO`, :class:`MaskableREINFORCE`.
"""

from sb3_ppo_variants.masking.algorithms import (
    MaskableAlgorithmMixin,
    MaskableClipPPO,
    MaskableKLPenaltyPPO,
    MaskablePolicyError,
    MaskableREINFORCE,
)
from sb3_ppo_variants.masking.masks import ActionMaskError, ActionMaskTypeError

__all__ = [
    "ActionMaskError",
    "ActionMaskTypeError",
    "MaskableAlgorithmMixin",
    "MaskableClipPPO",
    "MaskableKLPenaltyPPO",
    "MaskablePolicyError",
    "MaskableREINFORCE",
]
