"""The SB3 MLP policies the NumPy-path tests run on (shared by the rollout-step and update tests)."""

from __future__ import annotations

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

#: the default optimizer of our algorithms: the fused Adam kernel
FUSED = dict(optimizer_kwargs=dict(eps=1e-5, fused=True))
BOX_OBS = spaces.Box(-2.0, 2.0, (5,), np.float32)

POLICIES = {
    "gaussian_tanh": (BOX_OBS, spaces.Box(-1.0, 1.0, (3,), np.float32), {}),
    "categorical_relu_separate": (
        BOX_OBS,
        spaces.Discrete(4),
        dict(net_arch=dict(pi=[32], vf=[16, 16]), activation_fn=th.nn.ReLU, share_features_extractor=False),
    ),
    "gsde": (BOX_OBS, spaces.Box(-1.0, 1.0, (2,), np.float32), dict(use_sde=True, log_std_init=-1.0)),
    "gsde_diagonal_std_no_hidden": (
        BOX_OBS,
        spaces.Box(-1.0, 1.0, (3,), np.float32),
        dict(use_sde=True, full_std=False, net_arch=[]),
    ),
    "gaussian_2d_obs_no_hidden": (
        spaces.Box(-1.0, 1.0, (2, 3), np.float64),
        spaces.Box(-1.0, 1.0, (2,), np.float32),
        dict(net_arch=[], log_std_init=-0.7),
    ),
}
#: the update tests add a categorical policy with SB3's default MLP
UPDATE_POLICIES = {**POLICIES, "categorical_tanh": (BOX_OBS, spaces.Discrete(3), {})}


def make_policy(name: str, **extra: object) -> ActorCriticPolicy:
    """The policy of ``POLICIES[name]``, seeded, with the fused Adam."""
    obs_space, action_space, kwargs = POLICIES[name]
    th.manual_seed(0)
    return ActorCriticPolicy(obs_space, action_space, lambda _: 3e-4, **{**kwargs, **FUSED, **extra})  # type: ignore[arg-type]
