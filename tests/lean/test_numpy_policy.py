"""The NumPy rollout step against SB3's ``policy.forward``: same draws, same numbers up to float rounding, and the
cases where it must stay off (not an exact SB3 part, SB3's exact arithmetic requested, hooks, large batches)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import FlattenExtractor

from sb3_ppo_variants import REINFORCE, ClipPPO, KLPenaltyPPO
from sb3_ppo_variants._lean import gate
from sb3_ppo_variants._lean.numpy_rollout import MAX_LAYER_WORK, numpy_rollout_step
from sb3_ppo_variants.kl_penalty_ppo.kl import dist_params
from tests.lean.cases import BOX_OBS, FUSED, POLICIES
from tests.lean.cases import make_policy as _policy

EXACT_ADAM = dict(optimizer_kwargs=dict(eps=1e-5, fused=False, foreach=False))


def _obs(policy: ActorCriticPolicy, n: int) -> th.Tensor:
    policy.observation_space.seed(n)
    return th.as_tensor(np.stack([policy.observation_space.sample() for _ in range(n)]))


@pytest.mark.parametrize("name", sorted(POLICIES))
@pytest.mark.parametrize("n_envs", [1, 8])
def test_numpy_step_matches_sb3_forward(name: str, n_envs: int) -> None:
    policy = _policy(name)
    step = numpy_rollout_step(policy)
    assert step is not None
    obs = _obs(policy, n_envs)
    for seed in range(5):
        if policy.use_sde:  # one exploration matrix per env (or one for a single env), sampled by torch
            th.manual_seed(100 + seed)
            policy.reset_noise(n_envs)
        th.manual_seed(seed)
        actions, values, log_prob, distribution, flat_params = step.act(obs, with_values=True)
        state_after_numpy = th.get_rng_state()
        th.manual_seed(seed)
        with th.no_grad():
            ref_actions, ref_values, ref_log_prob = policy(obs)
        # the same random numbers were drawn, and as many
        assert th.equal(state_after_numpy, th.get_rng_state())
        assert actions.dtype == ref_actions.dtype and actions.shape == ref_actions.shape
        if actions.dtype == th.int64:
            assert th.equal(actions, ref_actions)
        else:
            th.testing.assert_close(actions, ref_actions, rtol=1e-5, atol=1e-6)
        th.testing.assert_close(values, ref_values, rtol=1e-5, atol=1e-6)
        th.testing.assert_close(log_prob, ref_log_prob, rtol=1e-5, atol=1e-5)
        # the torch distribution built on demand (KLPenaltyPPO stores its parameters) is the policy's
        with th.no_grad():
            reference = policy.get_distribution(obs)
        th.testing.assert_close(dist_params(distribution()), dist_params(reference), rtol=1e-5, atol=1e-5)
        # and its flat parameters are what KLPenaltyPPO stores (dist_params' layout)
        th.testing.assert_close(flat_params(), dist_params(reference), rtol=1e-5, atol=1e-5)


def test_numpy_step_without_critic_skips_values() -> None:
    policy = _policy("gaussian_tanh")
    step = numpy_rollout_step(policy)
    assert step is not None
    actions, values, log_prob, _, _ = step.act(_obs(policy, 3), with_values=False)
    assert values is None and actions.shape == (3, 3) and log_prob.shape == (3,)


def test_numpy_step_sees_in_place_parameter_changes() -> None:
    """The step reads the parameters' own memory: an in-place change (an optimizer step, load_state_dict) shows."""
    policy = _policy("gaussian_tanh")
    step = numpy_rollout_step(policy)
    assert step is not None
    obs = _obs(policy, 2)
    with th.no_grad():
        policy.value_net.bias.add_(1.5)
        policy.mlp_extractor.policy_net[0].weight.mul_(-0.5)
    _, values, _, _, _ = step.act(obs, with_values=True)
    th.manual_seed(3)
    actions, _, _, _, _ = step.act(obs, with_values=True)
    th.manual_seed(3)
    with th.no_grad():
        ref_actions, ref_values, _ = policy(obs)
    th.testing.assert_close(values, ref_values, rtol=1e-5, atol=1e-6)
    th.testing.assert_close(actions, ref_actions, rtol=1e-5, atol=1e-6)


class _SubclassPolicy(ActorCriticPolicy):
    pass


class _Extractor(FlattenExtractor):
    pass


@pytest.mark.parametrize(
    "case",
    ["subclass", "elu", "gsde_expln", "gsde_squashed", "custom_extractor", "image", "multi_discrete", "float64"],
)
def test_numpy_step_stays_off_for_other_parts(case: str) -> None:
    """Anything but the exact classes it computes keeps the torch path (which calls them)."""
    box_action = spaces.Box(-1.0, 1.0, (2,), np.float32)
    lr = lambda _: 3e-4  # noqa: E731
    if case == "subclass":
        policy = _SubclassPolicy(BOX_OBS, box_action, lr)
    elif case == "elu":
        policy = ActorCriticPolicy(BOX_OBS, box_action, lr, activation_fn=th.nn.ELU)
    elif case == "gsde_expln":
        policy = ActorCriticPolicy(BOX_OBS, box_action, lr, use_sde=True, use_expln=True)
    elif case == "gsde_squashed":
        policy = ActorCriticPolicy(BOX_OBS, box_action, lr, use_sde=True, squash_output=True)
    elif case == "custom_extractor":
        policy = ActorCriticPolicy(BOX_OBS, box_action, lr, features_extractor_class=_Extractor)
    elif case == "image":
        image = spaces.Box(0, 255, (16, 16, 3), np.uint8)
        policy = ActorCriticPolicy(image, box_action, lr)
    elif case == "multi_discrete":
        policy = ActorCriticPolicy(BOX_OBS, spaces.MultiDiscrete([2, 3]), lr)
    else:
        policy = ActorCriticPolicy(BOX_OBS, box_action, lr).double()
    assert numpy_rollout_step(policy) is None


def test_image_space_without_normalisation_is_computed() -> None:
    """A uint8 image observation with ``normalize_images=False`` is only cast to float (SB3's preprocess_obs)."""
    image = spaces.Box(0, 255, (4, 4, 1), np.uint8)
    policy = ActorCriticPolicy(image, spaces.Discrete(3), lambda _: 3e-4, normalize_images=False)
    step = numpy_rollout_step(policy)
    assert step is not None
    obs = _obs(policy, 2)
    _, values, _, _, _ = step.act(obs, with_values=True)
    with th.no_grad():
        th.testing.assert_close(values, policy.predict_values(obs), rtol=1e-5, atol=1e-5)


def _planned_step(model: Any) -> Any:
    """The NumPy rollout step the gate plans for the model's next rollout (None: the torch calls run)."""
    return getattr(gate.plan_rollout(model).backend, "numpy_step", None)


def test_exact_arithmetic_hooks_and_large_batches_keep_torch() -> None:
    # SB3's arithmetic asked for (numerics="sb3"): the rollout stays bit for bit SB3's, on the lean torch calls
    exact = ClipPPO("MlpPolicy", "CartPole-v1", numerics="sb3", device="cpu")
    assert gate.plan_rollout(exact).name == "lean" and _planned_step(exact) is None
    # the default: the NumPy step runs, whatever Adam implementation the user chose
    model = ClipPPO("MlpPolicy", "CartPole-v1", policy_kwargs=dict(net_arch=[64], activation_fn=th.nn.ReLU, **EXACT_ADAM))
    policy = model.policy
    step = _planned_step(model)
    assert step is not None
    # a module hook turns the lean path, the NumPy step included, off
    handle = policy.action_net.register_forward_hook(lambda *args: None)
    try:
        assert _planned_step(model) is None and gate.plan_rollout(model).name == "sb3"
    finally:
        handle.remove()
    # a batch above the single-thread size runs in torch
    rows = MAX_LAYER_WORK // step.widest
    assert step.applies(_obs(policy, rows)) and not step.applies(_obs(policy, rows + 1))


@pytest.mark.parametrize("cls", [ClipPPO, KLPenaltyPPO, REINFORCE])
def test_algorithms_roll_out_with_the_numpy_step(cls: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """The default algorithms use the NumPy step in their rollouts (and train on what it stored)."""
    calls: list[int] = []
    original = gate._numpy_step

    def spy(*args: Any) -> Any:
        step = original(*args)
        calls.append(step is not None)
        return step

    monkeypatch.setattr(gate, "_numpy_step", spy)
    env_id = "CartPole-v1" if cls is REINFORCE else "Pendulum-v1"  # REINFORCE needs episodes that end in a rollout
    model = cls("MlpPolicy", env_id, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(128)
    assert calls and all(calls)
    assert np.isfinite(model.rollout_buffer.log_probs).all()


def test_default_rollouts_stay_close_to_sb3() -> None:
    """Same seed, SB3's PPO and ClipPPO's default (fused Adam, NumPy rollouts): the stored rollout agrees to float
    rounding (the equivalence test checks the parameters after three updates)."""
    kwargs = dict(n_steps=64, batch_size=32, n_epochs=2, seed=4, device="cpu")
    ours = ClipPPO("MlpPolicy", "Pendulum-v1", **kwargs).learn(64)  # type: ignore[arg-type]
    sb3 = PPO("MlpPolicy", "Pendulum-v1", **kwargs).learn(64)  # type: ignore[arg-type]
    for field in ("observations", "actions", "values", "log_probs", "rewards"):
        np.testing.assert_allclose(
            getattr(ours.rollout_buffer, field), getattr(sb3.rollout_buffer, field), rtol=1e-4, atol=1e-5
        )


# ------------------------------------------------------------------ categorical draws: torch.multinomial's numbers


def test_the_exponential_draw_check_holds_on_this_torch_and_leaves_the_generator_alone() -> None:
    from sb3_ppo_variants._lean import numpy_rollout as numpy_policy

    th.manual_seed(11)
    state = th.get_rng_state()
    assert numpy_policy._check_exponential_draws()
    assert th.equal(th.get_rng_state(), state)  # forked: the user's generator is where it was


@pytest.mark.parametrize("rows, n_actions", [(1, 2), (8, 2), (5, 7), (300, 3)])
def test_categorical_draws_are_torch_multinomials(rows: int, n_actions: int) -> None:
    """The step's categorical draws against ``torch.multinomial(probs, 1, True)`` (what ``Categorical.sample``
    calls) on the same generator state, many times: the same actions, and the generator left at the same place."""
    policy = ActorCriticPolicy(BOX_OBS, spaces.Discrete(n_actions), lambda _: 3e-4, **FUSED)  # type: ignore[arg-type]
    step = numpy_rollout_step(policy)
    assert step is not None
    rng = np.random.default_rng(rows)
    for trial in range(20):
        probs = rng.dirichlet(np.full(n_actions, 0.3), size=rows).astype(np.float32)
        th.manual_seed(trial)
        expected = th.multinomial(th.from_numpy(probs), 1, True).T.reshape(-1)
        after = th.get_rng_state()
        th.manual_seed(trial)
        drawn = step._categorical_draw(probs)
        assert drawn.dtype == np.int64
        np.testing.assert_array_equal(drawn, expected.numpy())
        assert th.equal(th.get_rng_state(), after)


def test_categorical_draws_fall_back_to_torch_multinomial(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the check fails (another torch), ``torch.multinomial`` itself draws; NaN probabilities (a diverged
    policy) raise torch's own error."""
    from sb3_ppo_variants._lean import numpy_rollout as numpy_policy

    policy = ActorCriticPolicy(BOX_OBS, spaces.Discrete(3), lambda _: 3e-4, **FUSED)  # type: ignore[arg-type]
    step = numpy_rollout_step(policy)
    assert step is not None
    calls: list[tuple] = []
    original = th.multinomial
    monkeypatch.setattr(th, "multinomial", lambda *args: (calls.append(args), original(*args))[1])
    probs = np.full((4, 3), 1 / 3, dtype=np.float32)
    step._categorical_draw(probs)
    assert calls == []
    monkeypatch.setattr(numpy_policy, "_EXPONENTIAL_DRAWS", False)
    th.manual_seed(0)
    drawn = step._categorical_draw(probs)
    assert len(calls) == 1
    th.manual_seed(0)
    np.testing.assert_array_equal(drawn, original(th.from_numpy(probs), 1, True).T.reshape(-1).numpy())
    monkeypatch.setattr(numpy_policy, "_EXPONENTIAL_DRAWS", True)
    probs[2, 1] = np.nan
    with pytest.raises(RuntimeError, match="probability tensor contains either `inf`, `nan` or element < 0"):
        step._categorical_draw(probs)


def test_a_rollout_takes_the_actions_sb3s_policy_takes() -> None:
    """A whole rollout of REINFORCE on CartPole (8 envs) with the NumPy step against SB3's ``policy.forward`` under
    the same seed: every stored action is the same."""
    from stable_baselines3.common.env_util import make_vec_env

    actions = []
    for numpy_step in (True, False):
        env = make_vec_env("CartPole-v1", n_envs=8, seed=3)
        model = REINFORCE("MlpPolicy", env, n_steps=64, seed=3, device="cpu")
        if not numpy_step:
            model.numerics = "sb3"  # the lean torch calls: SB3's forward, bit for bit
        model.learn(64 * 8)
        actions.append(model.rollout_buffer.actions.copy())
    np.testing.assert_array_equal(actions[0], actions[1])


def test_the_kept_draw_tensors_work_in_and_out_of_inference_mode() -> None:
    """The step is kept between rollouts (which run under inference mode); its refilled tensors must also be
    usable outside it."""
    for name in ("categorical_relu_separate", "gaussian_tanh"):
        policy = _policy(name)
        step = numpy_rollout_step(policy)
        assert step is not None
        obs = _obs(policy, 3)
        with th.inference_mode():
            step.act(obs, with_values=True)
        step.act(obs, with_values=True)
