"""Invalid-action masking for ClipPPO, KLPenaltyPPO and REINFORCE, on sb3-contrib's maskable machinery.

See ``docs/masking.md``: :class:`MaskableClipPPO`, :class:`MaskableKLPenaltyPPO`, :class:`MaskableREINFORCE`.
"""

from sb3_ppo_variants.masking.algorithms import (
    MaskableAlgorithmMixin,
    MaskableClipPPO,
    MaskableKLPenaltyPPO,
    MaskableREINFORCE,
)

__all__ = ["MaskableAlgorithmMixin", "MaskableClipPPO", "MaskableKLPenaltyPPO", "MaskableREINFORCE"]
