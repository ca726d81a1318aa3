"""The NumPy update against autograd: each loss term's value and gradient, the policy's backward pass, whole
minibatches of every algorithm, and the cases where it must stay off (a replaced loss method, SB3's exact arithmetic,
hooks, policies and modules that are not exactly SB3's)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor

from sb3_ppo_variants import REINFORCE, ClipPPO, KLPenaltyPPO
from sb3_ppo_variants._lean import gate
from sb3_ppo_variants._lean import twins as numpy_losses
from sb3_ppo_variants._lean.adam import ClippedAdamStep
from sb3_ppo_variants._lean.numpy_net import MAX_LAYER_WORK, MAX_PIECES, matmul
from sb3_ppo_variants._lean.numpy_update import numpy_policy_gradient
from sb3_ppo_variants.core import internals, losses
from sb3_ppo_variants.core.algorithm import PolicyGradientAlgorithm
from sb3_ppo_variants.kl_penalty_ppo.kl import closed_form_kl, dist_params
from tests.lean.cases import FUSED, assert_numpy_minibatch_matches_torch, perturbed_model
from tests.lean.cases import UPDATE_POLICIES as POLICIES

EXACT_ADAM = dict(optimizer_kwargs=dict(eps=1e-5, fused=False, foreach=False))


def _grad(fn: Any, *inputs: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """Value of the torch function ``fn`` and its gradient with respect to each input (autograd, float32)."""
    tensors = [th.tensor(x, requires_grad=True) for x in inputs]
    value = fn(*tensors)
    value.backward()
    return float(value.detach()), [
        np.zeros_like(x) if t.grad is None else t.grad.numpy() for x, t in zip(inputs, tensors, strict=True)
    ]


# ---------------------------------------------------------------- the loss terms


def _surrogate_inputs() -> tuple[np.ndarray, np.ndarray]:
    """Ratios on and around every boundary (1 -/+ 0.2, the dual clip 3) with advantages of both signs and zero."""
    ratio = np.array([0.5, 0.8, 0.9, 1.0, 1.2, 1.3, 2.0, 3.0, 4.0, 0.8, 1.2, 3.5, 1.0, 0.7], dtype=np.float32)
    advantages = np.array([1.0, 1.0, -1.0, 0.5, 1.0, -2.0, -1.0, -1.5, -0.5, -1.0, -1.0, 2.0, 0.0, 0.0], dtype=np.float32)
    return ratio, advantages


@pytest.mark.parametrize("clip_range, dual_clip", [(None, None), (0.2, None), (0.2, 3.0), (0.5, 1.5)])
def test_surrogate_loss_and_gradient_match_autograd(clip_range: float | None, dual_clip: float | None) -> None:
    ratio, advantages = _surrogate_inputs()
    expected, (grad_ratio, _) = _grad(lambda r, a: losses.surrogate_loss(r, a, clip_range, dual_clip), ratio, advantages)
    value, grad = numpy_losses.surrogate_loss(ratio, advantages, clip_range, dual_clip)
    assert value == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(grad, grad_ratio, rtol=1e-6, atol=1e-8)
    if clip_range is not None:
        assert numpy_losses.clip_fraction(ratio, clip_range) == pytest.approx(
            float(losses.clip_fraction(th.tensor(ratio), clip_range))
        )
    if dual_clip is not None:
        assert numpy_losses.dual_clip_fraction(ratio, advantages, dual_clip) == pytest.approx(
            float(losses.dual_clip_fraction(th.tensor(ratio), th.tensor(advantages), dual_clip))
        )


#: ratios on and around the boundaries of clip-higher's [1 - 0.2, 1 + 0.28] and SPO's 1 -/+ 0.2, both signs and zero
ASYMMETRIC_RATIO = np.array([0.5, 0.8, 0.8, 1.2, 1.25, 1.28, 1.28, 1.4, 1.4, 4.0, 1.0, 0.7], dtype=np.float32)
ASYMMETRIC_ADV = np.array([1.0, 1.0, -1.0, 1.0, 1.0, 1.0, -1.0, 1.0, -1.0, -0.5, 0.0, -2.0], dtype=np.float32)


@pytest.mark.parametrize("clip_range, dual_clip", [((0.2, 0.28), None), ((0.2, 0.28), 3.0), ((0.1, 0.1), None)])
def test_asymmetric_surrogate_loss_and_gradient_match_autograd(clip_range: Any, dual_clip: float | None) -> None:
    ratio, advantages = ASYMMETRIC_RATIO, ASYMMETRIC_ADV
    expected, (grad_ratio, _) = _grad(lambda r, a: losses.surrogate_loss(r, a, clip_range, dual_clip), ratio, advantages)
    value, grad = numpy_losses.surrogate_loss(ratio, advantages, clip_range, dual_clip)
    assert value == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(grad, grad_ratio, rtol=1e-6, atol=1e-8)
    fractions = losses.clip_fractions(th.tensor(ratio), clip_range)
    assert numpy_losses.clip_fractions(ratio, clip_range) == pytest.approx({k: float(v) for k, v in fractions.items()})


@pytest.mark.parametrize("epsilon", [0.2, 0.05])
def test_spo_loss_and_gradient_match_autograd(epsilon: float) -> None:
    ratio, advantages = ASYMMETRIC_RATIO, ASYMMETRIC_ADV
    expected, (grad_ratio, _) = _grad(lambda r, a: losses.spo_loss(r, a, epsilon), ratio, advantages)
    value, grad = numpy_losses.spo_loss(ratio, advantages, epsilon)
    assert value == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(grad, grad_ratio, rtol=1e-5, atol=1e-7)


def test_dual_clip_without_clip_range_is_refused_as_in_torch() -> None:
    ratio, advantages = _surrogate_inputs()
    with pytest.raises(ValueError, match="needs a clip_range"):
        numpy_losses.surrogate_loss(ratio, advantages, None, 3.0)


@pytest.mark.parametrize("clip_range_vf, form", [(None, "prediction"), (0.5, "prediction"), (0.5, "max")])
def test_value_loss_and_gradient_match_autograd(clip_range_vf: float | None, form: str) -> None:
    # changes of exactly +-0.5 (clamp boundary), ties of the two squared errors, both sides of the return
    old = np.array([0.0, 0.0, 1.0, 1.0, -1.0, 2.0, 0.0, 0.5], dtype=np.float32)
    values = np.array([0.5, -0.5, 2.0, 1.2, -3.0, 2.0, 0.25, 1.5], dtype=np.float32)
    returns = np.array([1.0, 0.0, 1.5, 0.0, -2.0, 2.5, 0.25, 1.0], dtype=np.float32)
    expected, (grad_values, _, _) = _grad(
        lambda v, o, r: losses.value_function_loss(v, o, r, clip_range_vf, form), values, old, returns
    )
    value, grad = numpy_losses.value_function_loss(values, old, returns, clip_range_vf, form)
    assert value == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(grad, grad_values, rtol=1e-6, atol=1e-8)


def test_value_loss_rejects_an_unknown_form() -> None:
    with pytest.raises(ValueError, match="'prediction' or 'max'"):
        numpy_losses.value_function_loss(np.zeros(2, np.float32), np.zeros(2, np.float32), np.ones(2, np.float32), 0.1, "x")


def test_minibatch_advantage_normalisation_matches_torch() -> None:
    advantages = np.random.default_rng(0).normal(3.0, 2.0, 64).astype(np.float32)
    t = th.tensor(advantages)
    np.testing.assert_allclose(
        numpy_losses.normalize_minibatch_advantages(advantages), ((t - t.mean()) / (t.std() + 1e-8)).numpy(), atol=1e-5
    )


# ---------------------------------------------------------------- one-thread products


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [
        ((300, 64), (64, 64)),  # row blocks
        ((64, 512), (512, 64)),  # blocks of the inner dimension (a weight gradient over a long batch)
        ((2000, 256), (256, 256)),  # more than MAX_PIECES pieces: torch
        ((256, 1), (1, 64)),  # inner dimension 1: a broadcast product
        ((16, 8), (8, 4)),  # small: one NumPy call
    ],
)
def test_matmul_pieces_give_the_product(shape_a: tuple[int, int], shape_b: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=shape_a).astype(np.float32)
    b = rng.normal(size=shape_b).astype(np.float32)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_allclose(matmul(a, b), expected, rtol=1e-4, atol=1e-4)
    out = np.empty(expected.shape, dtype=np.float32)
    assert matmul(a, b, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
    # the transposed view, as the weight gradient passes it
    np.testing.assert_allclose(matmul(np.ascontiguousarray(a.T).T, b), expected, rtol=1e-4, atol=1e-4)
    assert MAX_PIECES >= 4 and MAX_LAYER_WORK == 2**18


# ---------------------------------------------------------------- the policy's backward pass


def _policy(name: str) -> ActorCriticPolicy:
    obs_space, action_space, kwargs = POLICIES[name]
    th.manual_seed(0)
    return ActorCriticPolicy(obs_space, action_space, lambda _: 3e-4, **kwargs, **FUSED)  # type: ignore[arg-type]


def _samples(policy: ActorCriticPolicy, n: int) -> tuple[th.Tensor, th.Tensor]:
    policy.observation_space.seed(n)
    policy.action_space.seed(n)
    obs = th.as_tensor(np.stack([policy.observation_space.sample() for _ in range(n)]))
    actions = th.as_tensor(np.stack([policy.action_space.sample() for _ in range(n)]))
    return obs, actions


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_backward_matches_autograd(name: str) -> None:
    """A loss that weighs every per-sample output differently: ``sum(c1 log p + c2 H + c3 V + c4 KL[old || new])``;
    the parameter gradients of the NumPy backward pass against autograd through SB3's ``evaluate_actions``."""
    policy = _policy(name)
    n = 24
    obs, actions = _samples(policy, n)
    rng = np.random.default_rng(2)
    weights = [rng.normal(size=n).astype(np.float32) for _ in range(4)]
    with th.no_grad():  # the "old" distribution: the policy before a perturbation
        old_params = dist_params(policy.get_distribution(obs))
        for parameter in policy.parameters():
            parameter.add_(0.1 * th.randn_like(parameter))

    values, log_prob, entropy = policy.evaluate_actions(obs, actions)
    kl = closed_form_kl(old_params, policy.get_distribution(obs))
    torch_loss = sum((th.tensor(w) * x.flatten()).sum() for w, x in zip(weights, (log_prob, entropy, values, kl), strict=True))
    policy.zero_grad()
    torch_loss.backward()  # type: ignore[union-attr]
    expected = {name: p.grad.clone() for name, p in policy.named_parameters()}  # type: ignore[union-attr]

    gradient = numpy_policy_gradient(policy)
    assert gradient is not None
    np_values, dist = gradient.forward(obs.numpy(), with_values=True)
    np_actions = actions.numpy().astype(np.int64) if isinstance(policy.action_space, spaces.Discrete) else actions.numpy()
    np_log_prob, np_entropy = dist.log_prob(np_actions), dist.entropy()
    np_kl = dist.closed_form_kl(old_params.numpy())
    np.testing.assert_allclose(np_log_prob, log_prob.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np_entropy, entropy.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np_values, values.detach().numpy().flatten(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np_kl, kl.detach().numpy(), rtol=1e-4, atol=1e-6)
    dist.log_prob_backward(np_actions, weights[0])
    dist.entropy_backward(np_entropy, weights[1])
    dist.closed_form_kl_backward(weights[3])
    gradient.grad_values = weights[2]
    gradient.backward()
    for parameter_name, parameter in policy.named_parameters():
        assert parameter.grad is not None, parameter_name
        scale = float(expected[parameter_name].abs().max()) + 1e-3
        np.testing.assert_allclose(
            parameter.grad.numpy(), expected[parameter_name].numpy(), rtol=1e-4, atol=1e-5 * scale, err_msg=parameter_name
        )


def test_a_head_replaced_by_a_sequential_gets_its_whole_backward_pass() -> None:
    """The heads are backpropagated layer by layer, whatever exact layers they hold (here an action head of two
    Linear layers around a Tanh, set on the policy object)."""
    policy = _policy("gaussian_tanh")
    policy.action_net = th.nn.Sequential(th.nn.Linear(64, 16), th.nn.Tanh(), th.nn.Linear(16, 3))
    obs, actions = _samples(policy, 12)
    weights = np.random.default_rng(3).normal(size=12).astype(np.float32)
    _, log_prob, _ = policy.evaluate_actions(obs, actions)
    policy.zero_grad()
    (th.tensor(weights) * log_prob).sum().backward()
    expected = {name: p.grad.clone() for name, p in policy.named_parameters() if p.grad is not None}
    gradient = numpy_policy_gradient(policy)
    assert gradient is not None
    _, dist = gradient.forward(obs.numpy(), with_values=False)
    dist.log_prob_backward(actions.numpy(), weights)
    gradient.backward()
    for name, grad in expected.items():
        parameter = dict(policy.named_parameters())[name]
        np.testing.assert_allclose(parameter.grad.numpy(), grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=name)  # type: ignore[union-attr]


def test_parameters_the_loss_does_not_reach_keep_no_gradient() -> None:
    """As with autograd: without the values in the loss the critic's gradients stay None (Adam then skips them)."""
    policy = _policy("categorical_tanh")
    obs, actions = _samples(policy, 8)
    gradient = numpy_policy_gradient(policy)
    assert gradient is not None
    _, dist = gradient.forward(obs.numpy(), with_values=False)
    dist.log_prob_backward(actions.numpy().astype(np.int64), np.ones(8, np.float32))
    gradient.backward()
    critic = {id(p) for p in [*policy.mlp_extractor.value_net.parameters(), *policy.value_net.parameters()]}
    for parameter in policy.parameters():
        assert (parameter.grad is None) == (id(parameter) in critic)


# ---------------------------------------------------------------- whole minibatches of each algorithm


CASES = [
    (ClipPPO, "CartPole-v1", {}),
    (ClipPPO, "CartPole-v1", dict(ent_coef=0.01, clip_range_vf=0.2, dual_clip=2.0)),
    (ClipPPO, "Pendulum-v1", dict(ent_coef=0.01, clip_range_vf=0.2, value_clip_form="max")),
    (ClipPPO, "Pendulum-v1", dict(use_sde=True, clip_range=None)),
    (ClipPPO, "Pendulum-v1", dict(use_sde=True, ent_coef=0.1, policy_kwargs=dict(full_std=False))),
    (ClipPPO, "CartPole-v1", dict(normalize_advantage=False, policy_kwargs=dict(activation_fn=th.nn.ReLU))),
    (KLPenaltyPPO, "CartPole-v1", {}),
    (KLPenaltyPPO, "Pendulum-v1", dict(ent_coef=0.01)),
    (KLPenaltyPPO, "Pendulum-v1", dict(use_sde=True, clip_range=0.2, dual_clip=3.0)),
    (KLPenaltyPPO, "CartPole-v1", dict(kl_estimator="sample_low_var", clip_range=0.2)),
    (KLPenaltyPPO, "Pendulum-v1", dict(kl_estimator="sample_log_ratio", beta=3.0)),
    (REINFORCE, "CartPole-v1", {}),
    (REINFORCE, "Pendulum-v1", dict(use_baseline=True, ent_coef=0.01)),
]


@pytest.mark.parametrize("cls, env_id, kwargs", CASES, ids=lambda x: getattr(x, "__name__", str(x)))
def test_numpy_minibatch_matches_the_torch_minibatch(cls: type, env_id: str, kwargs: dict[str, Any]) -> None:
    """Loss, logged statistics, approximate KL and every parameter gradient of the NumPy minibatch against the torch
    minibatch and autograd, on the same batch."""
    model = perturbed_model(cls, env_id, **kwargs)
    torch_stats = assert_numpy_minibatch_matches_torch(model, 0.2 if kwargs.get("clip_range_vf") else None)
    if "clip_fraction" in torch_stats:  # the perturbation reached the clipped branch
        assert 0 < float(torch_stats["clip_fraction"][0]) < 1


@pytest.mark.parametrize("cls", [ClipPPO, KLPenaltyPPO, REINFORCE])
def test_default_training_uses_the_numpy_update_and_stays_close_to_torch(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two updates with the defaults run the NumPy update; with it turned off (torch update), the same seed ends at
    parameters equal to float rounding."""
    env_id = "CartPole-v1"
    kwargs: dict[str, Any] = dict(n_steps=256, batch_size=64, n_epochs=2, seed=3, device="cpu")
    used: list[bool] = []
    original = gate._numpy_update_declined

    def spy(algo: PolicyGradientAlgorithm, structure: Any) -> Any:
        reason = original(algo, structure)
        used.append(reason is None)
        return reason

    monkeypatch.setattr(gate, "_numpy_update_declined", spy)
    fast = cls("MlpPolicy", env_id, **kwargs).learn(512)
    assert used == [True, True]
    monkeypatch.setattr(gate, "_numpy_update_declined", lambda algo, structure: "off in this test")
    reference = cls("MlpPolicy", env_id, **kwargs).learn(512)
    for (name, a), b in zip(fast.policy.state_dict().items(), reference.policy.state_dict().values(), strict=True):
        th.testing.assert_close(a, b, rtol=1e-4, atol=1e-4, msg=name)


# ---------------------------------------------------------------- where it stays off


class _OwnLoss(ClipPPO):
    def _policy_loss(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super()._policy_loss(*args, **kwargs)


class _OwnKL(KLPenaltyPPO):
    def _kl(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super()._kl(*args, **kwargs)


class _OwnMinibatch(REINFORCE):
    def _minibatch_loss(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super()._minibatch_loss(*args, **kwargs)


class _OwnPolicy(ActorCriticPolicy):
    pass


class _OwnExtractor(FlattenExtractor):
    pass


class _OwnFlatten(th.nn.Flatten):
    pass


def _numpy_update_of(model: PolicyGradientAlgorithm) -> Any:
    """The NumPy gradient of the update the gate plans for the model (None: the torch update runs)."""
    backend = gate.plan_update(model).backend
    return backend.gradient if backend.name == "numpy" else None


def test_numpy_update_runs_for_the_defaults_of_each_algorithm() -> None:
    for cls in (ClipPPO, KLPenaltyPPO, REINFORCE):
        assert _numpy_update_of(cls("MlpPolicy", "CartPole-v1", n_steps=64, device="cpu")) is not None


@pytest.mark.parametrize(
    "case",
    [
        "policy_loss",
        "kl",
        "minibatch_loss",
        "method_on_object",
        "sb3_numerics",
        "hook",
        "tensor_hook",
        "post_accumulate_hook",
        "unreadable_tensor_hooks",
        "anomaly_detection",
        "frozen_parameter",
        "flatten_module",
        "policy_class",
        "extractor",
    ],
)
def test_numpy_update_stays_off(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replaced loss method (subclass or object), SB3's exact arithmetic, a hook, or any part that is not exactly
    SB3's: the torch update runs, and calls the user's code."""
    cls: type = {"policy_loss": _OwnLoss, "kl": _OwnKL, "minibatch_loss": _OwnMinibatch}.get(case, ClipPPO)
    policy: Any = _OwnPolicy if case == "policy_class" else "MlpPolicy"
    policy_kwargs: dict[str, Any] = {"extractor": dict(features_extractor_class=_OwnExtractor)}.get(case, {})
    numerics = "sb3" if case == "sb3_numerics" else "fast"
    model = cls(policy, "CartPole-v1", n_steps=64, device="cpu", policy_kwargs=policy_kwargs, numerics=numerics)
    if case == "method_on_object":
        model._policy_loss = model._policy_loss  # type: ignore[method-assign]
    if case == "hook":
        model.policy.value_net.register_full_backward_hook(lambda *args: None)
    if case == "tensor_hook":
        model.policy.action_net.weight.register_hook(lambda grad: grad)
    if case == "post_accumulate_hook":
        model.policy.value_net.bias.register_post_accumulate_grad_hook(lambda parameter: None)
    if case == "unreadable_tensor_hooks":  # a torch release that renamed the registry
        monkeypatch.setattr(internals, "has_private", lambda owner, name: name != "_post_accumulate_grad_hooks")
    if case == "flatten_module":  # SB3's FlattenExtractor with its Flatten module replaced: torch calls it
        model.policy.features_extractor.flatten = _OwnFlatten()
        model.policy.pi_features_extractor = model.policy.vf_features_extractor = model.policy.features_extractor
    if case == "frozen_parameter":  # autograd leaves it without a gradient, so Adam does not move it
        model.policy.mlp_extractor.value_net[0].weight.requires_grad_(False)
    if case == "anomaly_detection":
        with th.autograd.set_detect_anomaly(True):
            assert _numpy_update_of(model) is None
        assert _numpy_update_of(model) is not None  # checked at every update: off again once the mode ends
        return
    assert _numpy_update_of(model) is None


@pytest.mark.parametrize("policy_kwargs", [EXACT_ADAM, dict(optimizer_class=th.optim.SGD)], ids=["exact_adam", "sgd"])
def test_the_optimizer_does_not_choose_the_arithmetic(policy_kwargs: dict[str, Any]) -> None:
    """``numerics`` alone chooses: with another Adam implementation or another optimizer the NumPy update still runs
    (it writes ``.grad``; the user's optimizer steps), and ``numerics="sb3"`` turns it off."""
    model = ClipPPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, device="cpu", policy_kwargs=policy_kwargs)
    assert _numpy_update_of(model) is not None
    model.learn(64)
    assert model.logger.name_to_value["train/backend"] == "numpy"
    model.numerics = "sb3"
    assert _numpy_update_of(model) is None


def test_a_gradient_hook_sees_the_torch_update() -> None:
    """With a gradient hook on a parameter, training runs autograd, which calls the hook at every minibatch."""
    model = ClipPPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu")
    seen: list[th.Tensor] = []
    model.policy.action_net.bias.register_hook(lambda grad: seen.append(grad.clone()))  # type: ignore[func-returns-value]
    model.learn(64)
    assert len(seen) == 4


def _flat_gradients(policy: ActorCriticPolicy, values: np.ndarray) -> np.ndarray:
    """Set every parameter's ``.grad`` to a view of one flat array holding ``values`` (the NumPy update's layout)."""
    flat = values.astype(np.float32).copy()
    start = 0
    for parameter in policy.parameters():
        parameter.grad = th.from_numpy(flat[start : start + parameter.numel()].reshape(tuple(parameter.shape)))
        start += parameter.numel()
    return flat


@pytest.mark.parametrize("max_grad_norm", [0.5, 100.0])
def test_numpy_gradient_clipping_matches_clip_grad_norm(max_grad_norm: float) -> None:
    """The direct optimizer step on NumPy-backed gradients: torch's ``clip_grad_norm_`` then fused Adam, twice (the
    second step reuses the step's lists of parameters and states)."""
    policy = _policy("gaussian_tanh")
    reference = _policy("gaussian_tanh")
    step = ClippedAdamStep(policy, policy.optimizer)
    assert step.direct
    rng = np.random.default_rng(5)
    n = sum(p.numel() for p in policy.parameters())
    flat = _flat_gradients(policy, np.zeros(n))
    for _ in range(2):
        flat[...] = rng.normal(size=n)
        start = 0
        for theirs in reference.parameters():
            theirs.grad = th.tensor(flat[start : start + theirs.numel()].reshape(tuple(theirs.shape)))
            start += theirs.numel()
        norm = step(max_grad_norm, flat)
        expected = th.nn.utils.clip_grad_norm_(reference.parameters(), max_grad_norm)
        reference.optimizer.step()
        assert float(norm) == pytest.approx(float(expected), rel=1e-5)
        for ours, theirs in zip(policy.parameters(), reference.parameters(), strict=True):
            th.testing.assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-7)
            th.testing.assert_close(ours.detach(), theirs.detach(), rtol=1e-5, atol=1e-6)


def test_numpy_gradient_clipping_keeps_a_nan_norm() -> None:
    policy = _policy("categorical_tanh")
    n = sum(p.numel() for p in policy.parameters())
    flat = _flat_gradients(policy, np.full(n, np.nan))
    assert not th.isfinite(ClippedAdamStep(policy, policy.optimizer)(0.5, flat))


def test_the_numpy_update_is_rebuilt_when_the_policy_changes_and_its_gradients_are_new_each_update() -> None:
    model = ClipPPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    first = model.policy.action_net.weight.grad
    assert first is not None
    kept = first.clone()
    gradient = _numpy_update_of(model)
    assert _numpy_update_of(model) is gradient  # same policy: the checked structure is reused
    model.learn(64, reset_num_timesteps=False)
    th.testing.assert_close(first, kept)  # a gradient tensor of an earlier update is not overwritten
    assert model.policy.action_net.weight.grad is not first
    # a replaced head: built again, and training uses the new module
    model.policy.action_net = th.nn.Linear(64, 2)
    assert _numpy_update_of(model) is not gradient
    model.learn(64, reset_num_timesteps=False)
    assert model.policy.action_net.weight.grad is not None
    # the cache is not saved
    assert "_fast_path_cache" in model._excluded_save_params()


def test_an_early_stop_leaves_the_gradients_of_the_last_step_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """With target_kl, the minibatch that stops the epoch takes no step; its backward pass does not run either, so
    after training ``.grad`` holds the clipped gradients of the last step taken, as with the torch update."""
    kwargs: dict[str, Any] = dict(n_steps=128, batch_size=32, n_epochs=5, target_kl=0.001, learning_rate=3e-3, seed=1)
    fast = ClipPPO("MlpPolicy", "CartPole-v1", device="cpu", **kwargs).learn(384)
    assert fast._n_updates < 3 * 5  # an epoch stopped early
    monkeypatch.setattr(gate, "_numpy_update_declined", lambda algo, structure: "off in this test")
    reference = ClipPPO("MlpPolicy", "CartPole-v1", device="cpu", **kwargs).learn(384)
    assert reference._n_updates == fast._n_updates
    for (name, ours), theirs in zip(fast.policy.named_parameters(), reference.policy.parameters(), strict=True):
        assert ours.grad is not None and theirs.grad is not None, name
        th.testing.assert_close(ours.grad, theirs.grad, rtol=1e-3, atol=1e-5, msg=name)
