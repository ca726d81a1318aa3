"""Test configuration: one torch thread (2 shared cores), CPU only, and the shared short-run model factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch as th

from sb3_ppo_variants import REINFORCE, ClipPPO, KLPenaltyPPO

#: per-class settings of a short run (no if/elif on classes in the tests). REINFORCE without a baseline learns only
#: from episodes that end inside a rollout: 64 steps hold several CartPole episodes of a random policy.
SHORT_RUN: dict[type, dict[str, Any]] = {
    ClipPPO: dict(n_steps=64, batch_size=32, n_epochs=2),
    KLPenaltyPPO: dict(n_steps=64, batch_size=32, n_epochs=2),
    REINFORCE: dict(n_steps=64),
}
#: a tiny network: the tests check behaviour, not learning
TINY_NET = dict(net_arch=[16])


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    previous = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(previous)


@pytest.fixture
def make_model() -> Callable[..., Any]:
    """``make_model(cls, env="CartPole-v1", **overrides)``: a model of one of our classes with :data:`SHORT_RUN`'s
    settings, :data:`TINY_NET`, seed 0, on the CPU; ``overrides`` (``policy=...`` included) take precedence."""

    def make(cls: type, env: Any = "CartPole-v1", **overrides: Any) -> Any:
        kwargs = {**SHORT_RUN[cls], "policy_kwargs": TINY_NET, "seed": 0, "device": "cpu", **overrides}
        policy = kwargs.pop("policy", "MlpPolicy")
        return cls(policy, env, **kwargs)

    return make
