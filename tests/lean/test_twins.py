"""Every registered NumPy twin against the torch method it stands in for: value, statistics and gradients.

The registry (:data:`sb3_ppo_variants._lean.twins.TWINS`) is the list the gate trusts; this test walks it, so a twin
registered without a case here fails, and each case runs the torch method through autograd and the twin through the
NumPy backward pass on the same minibatch of a model whose ratios spread over every clipping branch.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest
import torch as th

from sb3_ppo_variants._lean import gate, twins
from sb3_ppo_variants.core.backends import PolicyCalls

#: settings per twin owner that reach each branch of its twin (the minibatch twin is in every case)
CASES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "sb3_ppo_variants.core.algorithm:PolicyGradientAlgorithm": [
        ("CartPole-v1", dict(ent_coef=0.01, clip_range_vf=0.2)),
        ("Pendulum-v1", dict(ent_coef=0.01, clip_range_vf=0.2, value_clip_form="max", normalize_advantage=False)),
    ],
    "sb3_ppo_variants.clip_ppo.clip_ppo:ClipPPO": [
        ("CartPole-v1", dict(dual_clip=2.0)),
        ("Pendulum-v1", dict(use_sde=True, clip_range=None)),
    ],
    "sb3_ppo_variants.kl_penalty_ppo.kl_penalty_ppo:KLPenaltyPPO": [
        ("CartPole-v1", {}),
        ("Pendulum-v1", dict(use_sde=True, clip_range=0.2, dual_clip=3.0)),
        ("CartPole-v1", dict(kl_estimator="sample_low_var")),
        ("Pendulum-v1", dict(kl_estimator="sample_log_ratio")),
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
    cls = owner if twin is not twins.MINIBATCH_TWIN else __import__("sb3_ppo_variants").ClipPPO
    n_steps = 256 if cls.__name__ == "REINFORCE" else 64
    model = cls("MlpPolicy", env_id, n_steps=n_steps, batch_size=32, seed=0, device="cpu", **kwargs)
    model.learn(n_steps)
    with th.no_grad():  # move the policy so that the ratios spread over every branch
        for parameter in model.policy.parameters():
            parameter.add_(0.3 * th.randn_like(parameter))
    model.policy.set_training_mode(True)
    model._on_update_start()
    assert twin.stands_in_for(model)
    backend = gate.plan_update(model).backend
    assert backend.name == "numpy"
    clip_range_vf = 0.2 if kwargs.get("clip_range_vf") else None
    batch = next(iter(model.rollout_buffer.get(32)))

    torch_stats: dict[str, list[Any]] = defaultdict(list)
    model.policy.zero_grad(set_to_none=True)
    loss, approx_kl = model._minibatch_loss(batch, PolicyCalls(model.policy), clip_range_vf, torch_stats)
    loss.backward()
    expected = {name: None if p.grad is None else p.grad.clone() for name, p in model.policy.named_parameters()}

    numpy_stats: dict[str, list[Any]] = defaultdict(list)
    np_loss, np_approx_kl = backend.loss(batch, clip_range_vf, numpy_stats)
    backend.backward()

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
