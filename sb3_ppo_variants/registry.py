"""The algorithms by the short names used on the command lines, in rl_zoo3 and in the config files."""

from __future__ import annotations

from sb3_ppo_variants.clip_ppo import ClipPPO
from sb3_ppo_variants.core.algorithm import PolicyGradientAlgorithm
from sb3_ppo_variants.kl_penalty_ppo import KLPenaltyPPO
from sb3_ppo_variants.masking import MaskableClipPPO, MaskableKLPenaltyPPO, MaskableREINFORCE, MaskableSPO
from sb3_ppo_variants.recurrent.algorithms import RecurrentClipPPO, RecurrentKLPenaltyPPO, RecurrentREINFORCE
from sb3_ppo_variants.recurrent.maskable import (
    MaskableRecurrentClipPPO,
    MaskableRecurrentKLPenaltyPPO,
    MaskableRecurrentREINFORCE,
)
from sb3_ppo_variants.reinforce import REINFORCE
from sb3_ppo_variants.spo import SPO

#: short name -> algorithm class (the unmasked algorithms: the tuning, ablation and zoo-results code iterates these)
ALGOS: dict[str, type[PolicyGradientAlgorithm]] = {
    "clip_ppo": ClipPPO,
    "kl_ppo": KLPenaltyPPO,
    "reinforce": REINFORCE,
    "spo": SPO,
}

#: short name -> masked algorithm class (need an environment with ``action_masks()``; see docs/masking.md)
MASKABLE_ALGOS: dict[str, type[PolicyGradientAlgorithm]] = {
    "clip_ppo_mask": MaskableClipPPO,
    "kl_ppo_mask": MaskableKLPenaltyPPO,
    "reinforce_mask": MaskableREINFORCE,
    "spo_mask": MaskableSPO,
}

#: masked short name -> the unmasked algorithm's short name (same hyperparameters, so the same Optuna sampler)
UNMASKED_NAME: dict[str, str] = {
    "clip_ppo_mask": "clip_ppo",
    "kl_ppo_mask": "kl_ppo",
    "reinforce_mask": "reinforce",
    "spo_mask": "spo",
}

#: short name -> recurrent (LSTM) algorithm class, masked ones included (docs/recurrent.md). Kept out of
#: :data:`ALGOS`: they need a recurrent policy (``MlpLstmPolicy``, ...), which the tuning, ablation and zoo-results
#: code that iterates :data:`ALGOS` with ``MlpPolicy`` does not build, and the masked ones an ``action_masks()`` env.
RECURRENT_ALGOS: dict[str, type[PolicyGradientAlgorithm]] = {
    "clip_ppo_lstm": RecurrentClipPPO,
    "kl_ppo_lstm": RecurrentKLPenaltyPPO,
    "reinforce_lstm": RecurrentREINFORCE,
    "clip_ppo_lstm_mask": MaskableRecurrentClipPPO,
    "kl_ppo_lstm_mask": MaskableRecurrentKLPenaltyPPO,
    "reinforce_lstm_mask": MaskableRecurrentREINFORCE,
}

#: short name -> the name of its Optuna sampler and converter in ``sb3_ppo_variants.zoo.samplers.SAMPLERS`` where
#: that is another algorithm's: a masked variant adds no hyperparameter to search, so it takes the unmasked one's
#: (the recurrent samplers are the memoryless ones without ``recompute_advantage``, which a recurrent policy refuses)
SAMPLER_NAME: dict[str, str] = {
    **UNMASKED_NAME,
    "clip_ppo_lstm_mask": "clip_ppo_lstm",
    "kl_ppo_lstm_mask": "kl_ppo_lstm",
    "reinforce_lstm_mask": "reinforce_lstm",
}

#: every algorithm registered in rl_zoo3 by ``sb3-ppo-variants-zoo``
ZOO_ALGOS: dict[str, type[PolicyGradientAlgorithm]] = {**ALGOS, **MASKABLE_ALGOS, **RECURRENT_ALGOS}
