"""Invalid-action masking for ClipPPO, KLPenaltyPPO, REINFORCE and SPO, on sb3-contrib's maskable machinery.

See ``docs/masking.md``: :class:`MaskableClipPPO`, :class:`MaskableKLPenaltyPPO`, :class:`MaskableREINFORCE`,
:class:`MaskableSPO`.
"""

from sb3_ppo_variants.masking.algorithms import (
    MaskableAlgorithmMixin,
    MaskableClipPPO,
    MaskableKLPenaltyPPO,
    MaskablePolicyError,
    MaskableREINFORCE,
    MaskableSPO,
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
    "MaskableSPO",
]
