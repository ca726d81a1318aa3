"""The SB3 MLP policies the NumPy-path tests run on (shared by the rollout-step and update tests)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_ppo_variants._lean import gate
from sb3_ppo_variants.core.backends import PolicyCalls

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


def perturbed_model(cls: type, env_id: str, **kwargs: Any) -> Any:
    """A model after one rollout, with its parameters moved so that the ratios spread over every clipping branch."""
    n_steps = 256 if cls.__name__ == "REINFORCE" else 64
    model = cls("MlpPolicy", env_id, n_steps=n_steps, batch_size=32, seed=0, device="cpu", **kwargs)
    model.learn(n_steps)
    with th.no_grad():
        for parameter in model.policy.parameters():
            parameter.add_(0.3 * th.randn_like(parameter))
    model.policy.set_training_mode(True)
    model._on_update_start()
    return model


def assert_numpy_minibatch_matches_torch(model: Any, clip_range_vf: float | None) -> dict[str, list[Any]]:
    """On one minibatch of ``model``'s buffer: the loss, logged statistics, approximate KL and every parameter
    gradient of the gate's NumPy update against the core's torch minibatch loss on SB3's public calls and autograd.
    Returns the torch statistics."""
    backend = gate.plan_update(model).backend
    assert backend.name == "numpy"
    batch = next(iter(model.rollout_buffer.get(32)))
    torch_stats: dict[str, list[Any]] = defaultdict(list)
    numpy_stats: dict[str, list[Any]] = defaultdict(list)

    model.policy.zero_grad(set_to_none=True)
    loss, approx_kl = model._minibatch_loss(batch, PolicyCalls(model.policy), clip_range_vf, torch_stats)
    loss.backward()
    expected = {name: None if p.grad is None else p.grad.clone() for name, p in model.policy.named_parameters()}
    np_loss, np_approx_kl = backend.loss(batch, clip_range_vf, numpy_stats)
    backend.backward()  # as the update loop runs it, after the early-stop check

    assert float(np_loss) == pytest.approx(float(loss.detach()), rel=1e-4, abs=1e-5)
    assert float(np_approx_kl) == pytest.approx(float(approx_kl), rel=1e-3, abs=1e-6)
    assert torch_stats.keys() == numpy_stats.keys()
    for key, values in torch_stats.items():
        assert float(numpy_stats[key][0]) == pytest.approx(float(values[0]), rel=1e-4, abs=1e-5), key
    for name, parameter in model.policy.named_parameters():
        if expected[name] is None:
            assert parameter.grad is None, name
            continue
        assert parameter.grad is not None, name
        scale = float(expected[name].abs().max()) + 1e-3  # type: ignore[union-attr]
        np.testing.assert_allclose(
            parameter.grad.numpy(),
            expected[name].numpy(),
            rtol=1e-3,
            atol=1e-4 * scale,
            err_msg=name,  # type: ignore[union-attr]
        )
    return torch_stats
