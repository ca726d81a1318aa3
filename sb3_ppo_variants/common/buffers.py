"""The rollout buffers under the module path that files saved by releases 0.1.0 and 0.2.0 name.

A saved model pickles its ``rollout_buffer_class`` by module path; the buffers now live in
:mod:`sb3_ppo_variants.core.buffers` and in their algorithm's folder. This module resolves the old names, so that
those files load.
"""

from __future__ import annotations

import importlib
from typing import Any

#: old name -> the module that holds it now
_MOVED = {
    "TensorRolloutBuffer": "sb3_ppo_variants.core.buffers",
    "DictTensorRolloutBuffer": "sb3_ppo_variants.core.buffers",
    "DistParamsRolloutBuffer": "sb3_ppo_variants.kl_penalty_ppo.buffers",
    "DictDistParamsRolloutBuffer": "sb3_ppo_variants.kl_penalty_ppo.buffers",
    "RewardToGoRolloutBuffer": "sb3_ppo_variants.reinforce.buffers",
    "DictRewardToGoRolloutBuffer": "sb3_ppo_variants.reinforce.buffers",
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
