"""Every registered NumPy twin against the torch method it stands in for: value, statistics and gradients.

The registry (:data:`sb3_ppo_variants._lean.twins.TWINS`) is the list the gate trusts; this test walks it, so a twin
registered without a case here fails, and each case runs the torch method through autograd and the twin through the
NumPy backward pass on the same minibatch of a model whose ratios spread over every clipping branch.
"""

from __future__ import annotations

from typing import Any

import pytest

from sb3_ppo_variants import ClipPPO
from sb3_ppo_variants._lean import gate, twins
from tests.lean.cases import assert_numpy_minibatch_matches_torch, perturbed_model

#: settings per twin owner that reach each branch of its twin (the minibatch twin is in every case)
CASES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "sb3_ppo_variants.core.algorithm:PolicyGradientAlgorithm": [
        ("CartPole-v1", dict(ent_coef=0.01, clip_range_vf=0.2)),
        ("Pendulum-v1", dict(ent_coef=0.01, clip_range_vf=0.2, value_clip_form="max", normalize_advantage=False)),
    ],
    "sb3_ppo_variants.clip_ppo.clip_ppo:ClipPPO": [
        ("CartPole-v1", dict(dual_clip=2.0)),
        ("Pendulum-v1", dict(use_sde=True, clip_range=None)),
        ("CartPole-v1", dict(clip_range=(0.1, 0.3))),
        ("Pendulum-v1", dict(clip_range=(0.2, 0.28), dual_clip=3.0)),
    ],
    "sb3_ppo_variants.kl_penalty_ppo.kl_penalty_ppo:KLPenaltyPPO": [
        ("CartPole-v1", {}),
        ("Pendulum-v1", dict(use_sde=True, clip_range=0.2, dual_clip=3.0)),
        ("CartPole-v1", dict(kl_estimator="sample_low_var")),
        ("Pendulum-v1", dict(kl_estimator="sample_log_ratio")),
    ],
    "sb3_ppo_variants.spo.spo:SPO": [
        ("CartPole-v1", {}),
        ("Pendulum-v1", dict(use_sde=True, epsilon=0.1, ent_coef=0.01)),
    ],
    "sb3_ppo_variants.reinforce.reinforce:REINFORCE": [
        ("CartPole-v1", {}),
        ("Pendulum-v1", dict(use_baseline=True, ent_coef=0.01)),
    ],
}
PARAMS = [
    pytest.param(twin, env_id, kwargs, id=f"{twin.owner.split(':')[1]}-{env_id}-{i}")
    for twin in twins.TWINS
    for i, (env_id, kwargs) in enumerate(CASES.get(twin.owner, [("missing", {})]))
]


def test_every_registered_twin_has_cases_and_stands_in_for_real_methods() -> None:
    assert {twin.owner for twin in twins.TWINS} == set(CASES)
    for twin in twins.TWINS:
        for name, function in twin.replaced().items():
            assert callable(function), name


@pytest.mark.parametrize("twin, env_id, kwargs", PARAMS)
def test_twin_equals_autograd_on_the_torch_method(twin: twins.Twin, env_id: str, kwargs: dict[str, Any]) -> None:
    assert env_id != "missing", f"no test case for the twin of {twin.owner}"
    owner = twin.owner_class()
    cls = owner if twin is not twins.MINIBATCH_TWIN else ClipPPO  # the minibatch twin on a concrete algorithm
    model = perturbed_model(cls, env_id, **kwargs)
    assert twin.stands_in_for(model)
    assert_numpy_minibatch_matches_torch(model, 0.2 if kwargs.get("clip_range_vf") else None)


def test_a_subclass_replacing_a_replaced_method_loses_its_twin() -> None:
    """KLPenaltyPPO's twin stands in for ``_kl`` too: a subclass with its own ``_kl`` gets the torch update."""
    from sb3_ppo_variants import KLPenaltyPPO

    class OwnKL(KLPenaltyPPO):
        def _kl(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            return super()._kl(*args, **kwargs)

    model = OwnKL("MlpPolicy", "CartPole-v1", n_steps=64, device="cpu")
    assert twins.policy_loss_twin(model) is None
    plan = gate.plan_update(model)
    assert plan.name == "torch-lean" and any("no NumPy twin" in reason for reason in plan.declined)
