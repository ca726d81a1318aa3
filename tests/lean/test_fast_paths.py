"""The lean distribution and optimizer paths against the torch / SB3 code they replace (same numbers, same draws)."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch.distributions import Categorical, Normal
from torch.optim.optimizer import register_optimizer_step_pre_hook

from sb3_ppo_variants._lean.adam import ClippedAdamStep
from sb3_ppo_variants._lean.distributions import LeanCategorical, LeanNormal, action_distribution
from sb3_ppo_variants._lean.modules import run_module
from sb3_ppo_variants._lean.torch_calls import lean_latents


def test_lean_categorical_equals_torch() -> None:
    th.manual_seed(0)
    logits = th.randn(64, 5, requires_grad=True)
    actions = th.randint(0, 5, (64,))
    lean, ref = LeanCategorical(logits), Categorical(logits=logits)
    assert th.equal(lean.logits, ref.logits)
    assert th.equal(lean.probs, ref.probs)
    assert th.equal(lean.log_prob(actions), ref.log_prob(actions))
    assert th.equal(lean.entropy(), ref.entropy())
    assert th.equal(lean.mode, ref.mode)
    assert lean.batch_shape == ref.batch_shape and lean.event_shape == ref.event_shape
    # same random draws
    th.manual_seed(1)
    draws = lean.sample()
    th.manual_seed(1)
    assert th.equal(draws, ref.sample())
    # same gradients
    (grad_lean,) = th.autograd.grad((lean.log_prob(actions) + lean.entropy()).sum(), logits)
    (grad_ref,) = th.autograd.grad((ref.log_prob(actions) + ref.entropy()).sum(), logits)
    assert th.allclose(grad_lean, grad_ref, atol=1e-7)
    # a shape the direct gather does not cover falls back to torch's broadcasting log_prob
    assert th.equal(lean.log_prob(th.tensor([[1], [2]]).expand(2, 64)), ref.log_prob(th.tensor([[1], [2]]).expand(2, 64)))
    # the registered closed-form KL applies (subclass of Categorical)
    other = Categorical(logits=th.randn(64, 5))
    assert th.allclose(th.distributions.kl_divergence(lean, other), th.distributions.kl_divergence(ref, other))


def test_lean_normal_equals_torch() -> None:
    th.manual_seed(0)
    loc, scale = th.randn(32, 3), th.rand(32, 3) + 0.1
    value = th.randn(32, 3)
    lean, ref = LeanNormal(loc, scale), Normal(loc, scale)
    assert th.equal(lean.log_prob(value), ref.log_prob(value))
    assert th.equal(lean.entropy(), ref.entropy())
    assert th.equal(lean.mean, ref.mean) and th.equal(lean.stddev, ref.stddev)
    th.manual_seed(3)
    draws = lean.rsample()
    th.manual_seed(3)
    assert th.equal(draws, ref.rsample())


def _policy(action_space: spaces.Space, **kwargs: object) -> ActorCriticPolicy:
    observation_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
    return ActorCriticPolicy(observation_space, action_space, lambda _: 3e-4, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action_space", "kwargs", "dist_class"),
    [
        (spaces.Discrete(3), {}, CategoricalDistribution),
        (spaces.Box(-1.0, 1.0, (2,), np.float32), {}, DiagGaussianDistribution),
        (spaces.Box(-1.0, 1.0, (2,), np.float32), {"use_sde": True}, StateDependentNoiseDistribution),
        (spaces.Box(-1.0, 1.0, (2,), np.float32), {"use_sde": True, "full_std": False}, StateDependentNoiseDistribution),
        (spaces.MultiDiscrete([2, 3]), {}, MultiCategoricalDistribution),
    ],
)
def test_action_distribution_equals_sb3(action_space: spaces.Space, kwargs: dict, dist_class: type) -> None:
    """Same log-probabilities, entropies, modes, draws and gradients as SB3's ``_get_action_dist_from_latent``."""
    th.manual_seed(0)
    policy = _policy(action_space, **kwargs)
    th.manual_seed(0)
    reference = _policy(action_space, **kwargs)  # identical weights (gSDE's noise tensors cannot be deep-copied)
    if kwargs.get("use_sde"):  # the same exploration matrices in both
        th.manual_seed(5)
        policy.reset_noise(16)
        th.manual_seed(5)
        reference.reset_noise(16)
    obs = th.rand(16, 4) * 2 - 1
    latent = policy.mlp_extractor.forward_actor(policy.extract_features(obs, policy.pi_features_extractor))
    latent_ref = reference.mlp_extractor.forward_actor(reference.extract_features(obs, reference.pi_features_extractor))
    ours = action_distribution(policy, latent)
    sb3 = reference._get_action_dist_from_latent(latent_ref)
    assert type(ours) is dist_class
    th.manual_seed(7)
    actions = ours.get_actions().detach()
    th.manual_seed(7)
    assert th.equal(actions, sb3.get_actions())
    assert th.equal(ours.get_actions(deterministic=True), sb3.get_actions(deterministic=True))
    log_prob, log_prob_ref = ours.log_prob(actions), sb3.log_prob(actions)
    assert th.equal(log_prob, log_prob_ref)
    entropy, entropy_ref = ours.entropy(), sb3.entropy()
    assert entropy is not None and entropy_ref is not None
    assert th.equal(entropy, entropy_ref)
    (log_prob.sum() + entropy.sum()).backward()
    (log_prob_ref.sum() + entropy_ref.sum()).backward()
    for (name, p), p_ref in zip(policy.named_parameters(), reference.parameters(), strict=True):
        assert (p.grad is None) == (p_ref.grad is None), name
        if p.grad is not None:
            assert th.allclose(p.grad, p_ref.grad, atol=1e-6), name


class _ScaledTanh(th.nn.Tanh):
    """A subclass of an exact class: run_module must call it (its own forward), not torch.tanh."""

    def forward(self, input: th.Tensor) -> th.Tensor:
        return 2.0 * th.tanh(input)


@pytest.mark.parametrize(
    "module",
    [
        th.nn.Linear(4, 3),
        th.nn.Tanh(),
        th.nn.ReLU(),
        th.nn.ReLU(inplace=True),
        th.nn.Flatten(),
        th.nn.Flatten(start_dim=0),
        th.nn.Sequential(th.nn.Linear(4, 8), th.nn.ReLU(), th.nn.Linear(8, 8), th.nn.Tanh(), th.nn.ELU()),
        FlattenExtractor(spaces.Box(-1.0, 1.0, (4,), np.float32)),
        _ScaledTanh(),
        th.nn.Sequential(th.nn.Linear(4, 4), _ScaledTanh()),
    ],
    ids=lambda module: type(module).__name__,
)
def test_run_module_equals_calling_the_module(module: th.nn.Module) -> None:
    """Bit for bit the output and the gradients of ``module(x)``; other classes (ELU, subclasses) are called."""
    x = th.linspace(-2.0, 2.0, 24).reshape(6, 4).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    reference = copy.deepcopy(module)
    out, out_ref = run_module(module, x.clone()), reference(x_ref.clone())
    assert th.equal(out, out_ref)
    if isinstance(module, _ScaledTanh):
        assert th.equal(out, 2.0 * th.tanh(x))
    out.sum().backward()
    out_ref.sum().backward()
    assert th.equal(x.grad, x_ref.grad)
    for p, p_ref in zip(module.parameters(), reference.parameters(), strict=True):
        assert th.equal(p.grad, p_ref.grad)


@pytest.mark.parametrize("share_features_extractor", [True, False])
@pytest.mark.parametrize("activation_fn", [th.nn.Tanh, th.nn.ReLU])
def test_lean_latents_equal_sb3s_forward(share_features_extractor: bool, activation_fn: type) -> None:
    """The lean MLP pass gives exactly the latent codes and values of SB3's ``forward``/``get_distribution``."""
    th.manual_seed(0)
    policy = _policy(
        spaces.Discrete(3),
        share_features_extractor=share_features_extractor,
        activation_fn=activation_fn,
        net_arch=dict(pi=[32, 16], vf=[8]),
    )
    obs = th.rand(16, 4) * 2 - 1
    features = policy.extract_features(obs)
    pi_features, vf_features = (features, features) if share_features_extractor else features
    latent_pi, values = lean_latents(policy, obs, with_values=True)
    assert th.equal(latent_pi, policy.mlp_extractor.forward_actor(pi_features))
    assert values is not None and th.equal(values, policy.value_net(policy.mlp_extractor.forward_critic(vf_features)))
    actor_only, no_values = lean_latents(policy, obs, with_values=False)
    assert no_values is None and th.equal(actor_only, latent_pi)
    assert th.equal(policy.predict_values(obs), values)


def test_policy_class_overriding_the_distribution_keeps_its_own() -> None:
    class Custom(ActorCriticPolicy):
        def _get_action_dist_from_latent(self, latent_pi: th.Tensor):  # type: ignore[no-untyped-def]
            self.custom_called = True
            return super()._get_action_dist_from_latent(latent_pi)

    observation_space = spaces.Box(-1.0, 1.0, (4,), np.float32)
    policy = Custom(observation_space, spaces.Discrete(2), lambda _: 3e-4)
    distribution = action_distribution(policy, th.zeros(3, 64))
    assert policy.custom_called
    assert type(distribution.distribution) is Categorical  # type: ignore[attr-defined]


def _trained_pair(fused: bool) -> tuple[ActorCriticPolicy, ActorCriticPolicy]:
    th.manual_seed(0)
    optimizer_kwargs = {"eps": 1e-5, "fused": True} if fused else {"eps": 1e-5}
    policy = _policy(spaces.Discrete(3), optimizer_kwargs=optimizer_kwargs)
    return policy, copy.deepcopy(policy)


def _loss(policy: ActorCriticPolicy, obs: th.Tensor, scale: float, critic: bool = True) -> th.Tensor:
    """A loss of the policy's log-probabilities, plus the value head's output when ``critic``."""
    values, log_prob, _ = policy.evaluate_actions(obs, th.zeros(len(obs)))
    return scale * (log_prob.mean() + values.pow(2).mean()) if critic else scale * log_prob.mean()


@pytest.mark.parametrize("max_grad_norm", [0.5, 1e9])
def test_clipped_adam_step_equals_clip_grad_norm_and_adam(max_grad_norm: float) -> None:
    """Bit-identical to ``clip_grad_norm_(foreach=True)`` + fused ``Adam.step()``, incl. the optimizer state."""
    ours, reference = _trained_pair(fused=True)
    step = ClippedAdamStep(ours, ours.optimizer)
    assert step.direct
    reference_params = list(reference.parameters())
    for i in range(5):
        obs = th.rand(32, 4) * 2 - 1
        for g in ours.optimizer.param_groups:
            g["lr"] = 1e-3 / (i + 1)  # a schedule
        for g in reference.optimizer.param_groups:
            g["lr"] = 1e-3 / (i + 1)
        step.zero_grad()
        _loss(ours, obs, 1000.0).backward()
        norm = step(max_grad_norm)
        reference.optimizer.zero_grad()
        _loss(reference, obs, 1000.0).backward()
        norm_ref = th.nn.utils.clip_grad_norm_(reference_params, max_grad_norm, foreach=True)
        reference.optimizer.step()
        assert th.equal(norm, norm_ref)
    for p, p_ref in zip(ours.parameters(), reference.parameters(), strict=True):
        assert th.equal(p, p_ref)
    state, state_ref = ours.optimizer.state_dict(), reference.optimizer.state_dict()
    assert state["param_groups"] == state_ref["param_groups"]
    for key in state_ref["state"]:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert th.equal(state["state"][key][name], state_ref["state"][key][name]), (key, name)


def test_clipped_adam_step_skips_parameters_without_gradient() -> None:
    """Parameters that got no gradient (REINFORCE's unused critic) are left alone, as Adam.step does."""
    ours, reference = _trained_pair(fused=True)
    step = ClippedAdamStep(ours, ours.optimizer)
    obs = th.rand(32, 4)
    step.zero_grad()
    _loss(ours, obs, 1.0, critic=False).backward()
    step(0.5)
    reference.optimizer.zero_grad(set_to_none=True)
    _loss(reference, obs, 1.0, critic=False).backward()
    th.nn.utils.clip_grad_norm_(list(reference.parameters()), 0.5, foreach=True)
    reference.optimizer.step()
    assert len(ours.optimizer.state) == len(reference.optimizer.state) < len(list(ours.parameters()))
    for p, p_ref in zip(ours.parameters(), reference.parameters(), strict=True):
        assert th.equal(p, p_ref)


def test_clipped_adam_step_falls_back_for_other_optimizers() -> None:
    ours, _ = _trained_pair(fused=False)
    assert not ClippedAdamStep(ours, ours.optimizer).direct
    sgd = th.optim.SGD(ours.parameters(), lr=0.1)
    assert not ClippedAdamStep(ours, sgd).direct
    step = ClippedAdamStep(ours, sgd)
    before = [p.detach().clone() for p in ours.parameters()]
    step.zero_grad()
    _loss(ours, th.rand(8, 4), 1.0).backward()
    assert th.isfinite(step(0.5))
    assert any(not th.equal(b, p) for b, p in zip(before, ours.parameters(), strict=True))


def test_clipped_adam_step_falls_back_when_hooks_are_registered() -> None:
    ours, _ = _trained_pair(fused=True)
    calls: list[int] = []
    ours.optimizer.register_step_post_hook(lambda *_: calls.append(1))
    step = ClippedAdamStep(ours, ours.optimizer)
    assert not step.direct
    step.zero_grad()
    _loss(ours, th.rand(8, 4), 1.0).backward()
    step(0.5)
    assert calls == [1]


def test_clipped_adam_step_falls_back_when_a_global_hook_is_registered() -> None:
    """``register_optimizer_step_pre_hook`` hooks (for every optimizer) run only through ``Optimizer.step``."""
    ours, _ = _trained_pair(fused=True)
    assert ClippedAdamStep(ours, ours.optimizer).direct
    calls: list[int] = []
    handle = register_optimizer_step_pre_hook(lambda *_: calls.append(1))
    try:
        step = ClippedAdamStep(ours, ours.optimizer)
        assert not step.direct
        step.zero_grad()
        _loss(ours, th.rand(8, 4), 1.0).backward()
        step(0.5)
    finally:
        handle.remove()
    assert calls == [1]
    assert ClippedAdamStep(ours, ours.optimizer).direct


def test_trained_model_state_loads_into_a_plain_adam() -> None:
    """The direct path leaves an optimizer state that torch's own Adam continues from exactly."""
    from sb3_ppo_variants import ClipPPO

    model = ClipPPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=64, batch_size=32, n_epochs=2, seed=0)
    model.learn(128)
    state = model.policy.optimizer.state_dict()
    assert all(int(s["step"]) == 8 for s in state["state"].values())
    plain = th.optim.Adam(model.policy.parameters(), lr=3e-4, eps=1e-5, fused=True)
    plain.load_state_dict(state)
    assert th.equal(plain.state_dict()["state"][0]["exp_avg"], state["state"][0]["exp_avg"])


def test_set_training_mode_switches_every_module_and_honours_overrides() -> None:
    """The flags are set directly on every module (what ``nn.Module.train`` does); a ``set_training_mode`` replaced on
    the policy object, or a module with its own ``train``, is called every time, as SB3's loop calls it."""
    from sb3_ppo_variants._lean.structure import set_training_mode

    policy = _policy(spaces.Discrete(2))
    set_training_mode(policy, False)
    assert not any(module.training for module in policy.modules())
    policy.mlp_extractor.policy_net.train()  # one submodule switched back by someone else
    set_training_mode(policy, False)
    assert not any(module.training for module in policy.modules())
    set_training_mode(policy, True)
    assert all(module.training for module in policy.modules())

    calls: list[bool] = []
    original = policy.set_training_mode
    policy.set_training_mode = lambda mode: (calls.append(mode), original(mode))  # type: ignore[method-assign]
    set_training_mode(policy, True)
    set_training_mode(policy, False)
    assert calls == [True, False] and not any(module.training for module in policy.modules())
    del policy.set_training_mode

    class OwnTrain(th.nn.Tanh):
        def train(self, mode: bool = True) -> OwnTrain:
            calls.append(mode)
            return super().train(mode)

    calls.clear()
    policy.mlp_extractor.policy_net[1] = OwnTrain()
    set_training_mode(policy, True)
    assert calls == [True] and all(module.training for module in policy.modules())


@pytest.mark.parametrize(
    "obs_space, action_space",
    [
        (spaces.Box(-1.0, 1.0, (3,), np.float32), spaces.Box(-1.0, 1.0, (2,), np.float32)),
        (spaces.Discrete(5), spaces.Discrete(3)),
        (spaces.Box(0, 255, (2, 2), np.uint8), spaces.MultiDiscrete([2, 3])),
    ],
)
def test_tensor_buffer_add_stores_what_sb3_stores(obs_space: spaces.Space, action_space: spaces.Space) -> None:
    """TensorRolloutBuffer's direct ``add`` against SB3's RolloutBuffer.add: the same arrays, bit for bit."""
    from stable_baselines3.common.buffers import RolloutBuffer

    from sb3_ppo_variants.core.buffers import TensorRolloutBuffer

    n_envs = 3
    ours = TensorRolloutBuffer(4, obs_space, action_space, n_envs=n_envs)
    sb3 = RolloutBuffer(4, obs_space, action_space, n_envs=n_envs)
    rng = np.random.default_rng(0)
    obs_space.seed(1)
    action_space.seed(2)
    for _ in range(4):
        obs = np.stack([obs_space.sample() for _ in range(n_envs)]).astype(np.float64)  # cast on the way in
        action = np.stack([action_space.sample() for _ in range(n_envs)])
        reward, start = rng.normal(size=n_envs), rng.random(n_envs) < 0.3
        value, log_prob = th.randn(n_envs, 1), th.randn(n_envs)
        for buffer in (ours, sb3):
            buffer.add(obs, action, reward, start, value, log_prob)
    assert ours.full and ours.pos == sb3.pos
    for field in ("observations", "actions", "rewards", "episode_starts", "values", "log_probs"):
        theirs = getattr(sb3, field)
        assert getattr(ours, field).dtype == theirs.dtype
        np.testing.assert_array_equal(getattr(ours, field), theirs)


# ------------------------------------------------------------------ one walk per rollout / update: PolicyStructure


@pytest.mark.parametrize(
    "kwargs",
    [{}, dict(share_features_extractor=False), dict(net_arch=dict(pi=[8], vf=[])), dict(net_arch=[])],
)
def test_policy_structure_reads_what_the_public_walks_give(kwargs: dict) -> None:
    """The one walk gives ``modules()`` and ``parameters()`` in their order, each object once (a module and a
    parameter registered twice included), and the hooks, frozen parameters and own ``train`` methods it finds."""
    from sb3_ppo_variants._lean.structure import MODULE_HOOK_REGISTRIES, PolicyStructure

    policy = _policy(spaces.Discrete(3), **kwargs)
    policy.again = policy.action_net  # the same module under a second name
    policy.mlp_extractor.tied = policy.action_net.weight  # the same parameter under a second name
    structure = PolicyStructure(policy)
    assert [id(m) for m in structure.modules] == [id(m) for m in policy.modules()]
    assert [id(p) for p in structure.parameters] == [id(p) for p in policy.parameters()]
    # the walk spells the per-module hook registries out
    assert MODULE_HOOK_REGISTRIES == ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
    for name in MODULE_HOOK_REGISTRIES:  # each one it reads is seen
        registry = getattr(policy.mlp_extractor, name)
        registry[12345] = lambda *args: None
        assert PolicyStructure(policy).module_hooks
        del registry[12345]
    assert not (structure.module_hooks or structure.tensor_hooks or structure.frozen or structure.own_train)

    handle = policy.value_net.register_forward_pre_hook(lambda *args: None)
    assert PolicyStructure(policy).module_hooks
    handle.remove()
    handle = th.nn.modules.module.register_module_full_backward_hook(lambda *args: None)
    assert PolicyStructure(policy).module_hooks
    handle.remove()
    handle = policy.action_net.bias.register_hook(lambda grad: grad)
    assert PolicyStructure(policy).tensor_hooks
    handle.remove()
    policy.value_net.bias.requires_grad_(False)
    assert PolicyStructure(policy).frozen
    policy.value_net.bias.requires_grad_(True)
    policy.value_net.train = lambda mode=True: policy.value_net  # type: ignore[method-assign]
    assert PolicyStructure(policy).own_train
    del policy.value_net.train
    assert not (PolicyStructure(policy).module_hooks or PolicyStructure(policy).own_train)


def test_policy_structure_without_readable_registries_takes_torchs_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """A renamed registry (a torch release): the walk falls back to ``modules()``/``parameters()``, and a hook
    registry that cannot be read counts as a hook (the public path runs)."""
    from sb3_ppo_variants._lean.structure import PolicyStructure, is_exact_sb3_policy
    from sb3_ppo_variants.core import internals

    policy = _policy(spaces.Discrete(3))
    original = internals.private
    for hidden in ("_modules", "_parameters", "_forward_hooks"):
        monkeypatch.setattr(
            internals, "private", lambda owner, name, hidden=hidden: None if name == hidden else original(owner, name)
        )
        structure = PolicyStructure(policy)
        assert [id(m) for m in structure.modules] == [id(m) for m in policy.modules()]
        assert [id(p) for p in structure.parameters] == [id(p) for p in policy.parameters()]
        assert structure.module_hooks == (hidden == "_forward_hooks")
        assert is_exact_sb3_policy(policy, structure) == (hidden != "_forward_hooks")


def test_policy_structure_key_changes_with_what_the_fast_paths_build_on() -> None:
    from sb3_ppo_variants._lean.structure import PolicyStructure

    policy = _policy(spaces.Discrete(3))
    key = PolicyStructure(policy).key
    with th.no_grad():
        policy.action_net.weight.mul_(2.0)  # in place: the same memory, the same key
    assert PolicyStructure(policy).key == key
    policy.action_net.weight.data = policy.action_net.weight.data.clone()  # new memory
    assert PolicyStructure(policy).key != key
    key = PolicyStructure(policy).key
    policy.value_net = th.nn.Linear(64, 1)  # a replaced module
    assert PolicyStructure(policy).key != key
    key = PolicyStructure(policy).key
    policy.action_dist = type(policy.action_dist)(3)  # a replaced distribution object
    assert PolicyStructure(policy).key != key


def test_the_numpy_rollout_step_is_kept_while_the_structure_is_the_same() -> None:
    """Across rollouts the NumPy step is built once; ``param.data = ...`` (new memory, which its views would miss)
    or a replaced module build it again, and the actions then follow the new parameters."""
    from sb3_ppo_variants import ClipPPO
    from sb3_ppo_variants._lean.gate import plan_rollout

    def numpy_step(model: ClipPPO) -> Any:
        return plan_rollout(model).backend.numpy_step

    model = ClipPPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(32)
    step = numpy_step(model)
    assert step is not None
    assert numpy_step(model) is step
    model.learn(32, reset_num_timesteps=False)
    assert numpy_step(model) is step

    # new memory for the action head: all logits of action 1 made far larger, so every draw is action 1
    weight, bias = model.policy.action_net.weight, model.policy.action_net.bias
    new_bias = bias.detach().clone()
    new_bias[1] = 1e3
    bias.data = new_bias
    rebuilt = numpy_step(model)
    assert rebuilt is not None and rebuilt is not step
    obs = th.as_tensor(np.zeros((4, 4), dtype=np.float32))
    actions = rebuilt.act(obs, with_values=False)[0]
    assert actions.tolist() == [1, 1, 1, 1]
    assert weight is model.policy.action_net.weight
