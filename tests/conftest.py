"""Test configuration: one torch thread (2 shared cores), CPU only, and the shared short-run model factory."""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch as th
from hypothesis import HealthCheck, settings
from stable_baselines3.common.logger import configure

from sb3_ppo_variants import REINFORCE, SPO, ClipPPO, KLPenaltyPPO

#: per-class settings of a short run (no if/elif on classes in the tests). REINFORCE without a baseline learns only
#: from episodes that end inside a rollout: 64 steps hold several CartPole episodes of a random policy.
SHORT_RUN: dict[type, dict[str, Any]] = {
    ClipPPO: dict(n_steps=64, batch_size=32, n_epochs=2),
    KLPenaltyPPO: dict(n_steps=64, batch_size=32, n_epochs=2),
    REINFORCE: dict(n_steps=64),
    SPO: dict(n_steps=64, batch_size=32, n_epochs=2),
}
#: a tiny network: the tests check behaviour, not learning
TINY_NET = dict(net_arch=[16])
#: our unmasked algorithms, for tests parametrised over all of them
ALGORITHMS = (ClipPPO, KLPenaltyPPO, REINFORCE, SPO)


def assert_same_parameters(a: Any, b: Any) -> None:
    """Two models (or two policies) hold bit-identical parameters, named in the failure."""
    policy_a, policy_b = getattr(a, "policy", a), getattr(b, "policy", b)
    for (name, pa), pb in zip(policy_a.state_dict().items(), policy_b.state_dict().values(), strict=True):
        assert th.equal(pa, pb), name


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


def assert_same_next_update(model: Any, loaded: Any) -> None:
    """``model`` and ``loaded`` (e.g. saved and loaded again), given one new rollout of ``model``, make exactly the
    same update: identical parameters and update count afterwards (and, for KLPenaltyPPO, the same adapted beta)."""
    model.set_logger(configure(None, [""]))
    loaded.set_logger(configure(None, [""]))
    model._last_obs = model.get_env().reset()
    callback = model._init_callback(None)
    model.collect_rollouts(model.get_env(), callback, model.rollout_buffer, model.n_steps)
    loaded.rollout_buffer = copy.deepcopy(model.rollout_buffer)
    for m in (model, loaded):
        np.random.seed(7)
        m.train()
    for (name, pa), pb in zip(model.policy.named_parameters(), loaded.policy.parameters(), strict=True):
        assert th.equal(pa, pb), name
    for attribute in ("_n_updates", "current_beta"):
        assert getattr(model, attribute, None) == getattr(loaded, attribute, None), attribute


# Hypothesis (the differential tests, tests/core/test_differential.py): a small default run, a deeper one for CI.
# HYPOTHESIS_PROFILE=ci selects the deeper one. No example database: the failing example is printed instead.
settings.register_profile(
    "default", max_examples=10, deadline=None, database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", max_examples=100, deadline=None, database=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
