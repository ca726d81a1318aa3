"""Gymnasium ids for sb3-contrib's invalid-action test environments, so that rl_zoo3 can make them by name.

``InvalidActionDiscrete-v0`` is ``InvalidActionEnvDiscrete(dim=20, n_invalid_actions=10)`` and
``InvalidActionMultiDiscrete-v0`` is ``InvalidActionEnvMultiDiscrete(dims=[5, 10], n_invalid_actions=6)``: 100 steps
per episode, reward 1 per correct action, ``action_masks()`` gives the legal actions (the settings of
``docs/masking.md``'s figures). :func:`register_masking_envs` is called by ``sb3-ppo-variants-zoo``.
"""

from __future__ import annotations

import gymnasium as gym

MASKING_ENVS: dict[str, tuple[str, dict]] = {
    "InvalidActionDiscrete-v0": (
        "sb3_contrib.common.envs.invalid_actions_env:InvalidActionEnvDiscrete",
        {"dim": 20, "n_invalid_actions": 10},
    ),
    "InvalidActionMultiDiscrete-v0": (
        "sb3_contrib.common.envs.invalid_actions_env:InvalidActionEnvMultiDiscrete",
        {"dims": [5, 10], "n_invalid_actions": 6},
    ),
}


def register_masking_envs() -> None:
    """Register the ids of :data:`MASKING_ENVS` in gymnasium (idempotent)."""
    for env_id, (entry_point, kwargs) in MASKING_ENVS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, kwargs=kwargs)
