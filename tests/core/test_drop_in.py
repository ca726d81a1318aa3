"""The drop-in contract: a user's SB3 code behaves the same with our classes as with SB3's ``PPO``/``A2C``.

Each test runs our class and SB3's with the same seed and compares what a user can observe: the rollout buffer,
the logged losses, the parameters, the predictions, what ``save`` stores, warnings and error texts. The fast paths
must turn themselves off for anything that is not exactly SB3's (policy overrides, hooks, missing torch internals).
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.policies import ActorCriticPolicy
from torch.distributions import Categorical

import sb3_ppo_variants._lean.distributions as distributions_module
from sb3_ppo_variants import REINFORCE, ClipPPO, KLPenaltyPPO
from sb3_ppo_variants._lean import gate
from sb3_ppo_variants._lean.adam import ClippedAdamStep, fused_adam_available
from sb3_ppo_variants._lean.structure import PolicyStructure
from sb3_ppo_variants.core import internals
from sb3_ppo_variants.reinforce.buffers import RewardToGoRolloutBuffer
from tests.conftest import TINY_NET, assert_same_next_update, assert_same_parameters

DATA = Path(__file__).resolve().parents[1] / "data"
N_STEPS = 32
#: SB3's exact Adam arithmetic (no fused kernel), so that ours and SB3's can be compared bit for bit
EXACT_ADAM = dict(optimizer_kwargs=dict(eps=1e-5, fused=False, foreach=False))
#: our classes' switch to SB3's arithmetic (the fused Adam and the NumPy paths off)
SB3_NUMERICS = dict(numerics="sb3")
TINY = TINY_NET
OURS = (ClipPPO, KLPenaltyPPO, REINFORCE)
#: each of ours, SB3's algorithm it stands in for, and the settings under which their computations coincide:
#: ClipPPO = PPO; KLPenaltyPPO and PPO share rollouts, value loss and entropy (one epoch, one minibatch);
#: REINFORCE with a baseline and A2C with gae_lambda=1 share rollouts, returns, value loss and entropy
PAIRS: dict[type, tuple[type, dict[str, Any], dict[str, Any]]] = {
    ClipPPO: (PPO, dict(batch_size=16, n_epochs=2), dict(batch_size=16, n_epochs=2)),
    KLPenaltyPPO: (PPO, dict(batch_size=N_STEPS, n_epochs=1), dict(batch_size=N_STEPS, n_epochs=1)),
    REINFORCE: (A2C, dict(use_baseline=True), dict(gae_lambda=1.0, normalize_advantage=False)),
}
BUFFER_FIELDS = ("actions", "values", "log_probs", "returns")


# ---------------------------------------------------------------------- policy subclasses overriding one method


def _forward(self, obs, deterministic=False):
    actions, values, log_prob = ActorCriticPolicy.forward(self, obs, deterministic)
    return actions, th.full_like(values, 1.0), log_prob  # constant values (the example)


def _evaluate_actions(self, obs, actions):
    values, log_prob, entropy = ActorCriticPolicy.evaluate_actions(self, obs, actions)
    return values + 1.0, log_prob, 2.0 * entropy


def _predict_values(self, obs):
    return ActorCriticPolicy.predict_values(self, obs) + 1.0


def _get_distribution(self, obs):
    distribution = ActorCriticPolicy.get_distribution(self, obs)
    distribution.distribution = Categorical(logits=-distribution.distribution.logits)
    return distribution


def _extract_features(self, obs, features_extractor=None):
    return 0.5 * ActorCriticPolicy.extract_features(self, obs, features_extractor)


def _predict(self, observation, deterministic=False):
    return 1 - ActorCriticPolicy._predict(self, observation, deterministic)


OVERRIDES = {
    "forward": _forward,
    "evaluate_actions": _evaluate_actions,
    "predict_values": _predict_values,
    "get_distribution": _get_distribution,
    "extract_features": _extract_features,
    "_predict": _predict,
}


def _policy_class(method: str | None) -> type[ActorCriticPolicy]:
    if method is None:
        return ActorCriticPolicy
    return type(f"Overrides_{method}", (ActorCriticPolicy,), {method: OVERRIDES[method]})


def _observed(model: Any) -> dict[str, Any]:
    """What a user can observe after one rollout and one update."""
    buffer = model.rollout_buffer
    observed = {name: np.asarray(buffer.__dict__[name], dtype=np.float64).reshape(-1) for name in BUFFER_FIELDS}
    for key in ("train/value_loss", "train/entropy_loss"):
        observed[key] = model.logger.name_to_value[key]
    obs = np.linspace(-0.05, 0.05, 4 * 6, dtype=np.float32).reshape(6, 4)
    observed["predict"] = model.predict(obs, deterministic=True)[0].astype(np.float64)
    return observed


def _lean(policy: Any) -> bool:
    """Whether the gate lets the lean calls stand in for the policy's methods."""
    return gate.not_exact_reason(policy, PolicyStructure(policy)) is None


def _run(cls: type, method: str | None, kwargs: dict[str, Any]) -> Any:
    if cls in OURS:
        kwargs = {**kwargs, **SB3_NUMERICS}
    model = cls(
        _policy_class(method),
        "CartPole-v1",
        n_steps=N_STEPS,
        seed=3,
        device="cpu",
        policy_kwargs={**TINY, **EXACT_ADAM},
        **kwargs,
    )
    return model.learn(N_STEPS)


@pytest.mark.parametrize("method", [None, *sorted(OVERRIDES)])
@pytest.mark.parametrize("cls", OURS, ids=lambda c: c.__name__)
def test_policy_override_changes_ours_as_it_changes_sb3s(cls: type, method: str | None) -> None:
    """method None: SB3's own policy; otherwise a subclass overriding that method."""
    sb3_class, our_kwargs, sb3_kwargs = PAIRS[cls]
    ours, sb3 = _observed(_run(cls, method, our_kwargs)), _observed(_run(sb3_class, method, sb3_kwargs))
    if method is not None:
        plain = _observed(_run(cls, None, our_kwargs))
        assert any(not np.allclose(plain[key], ours[key]) for key in ours), "the override changed nothing: a vacuous test"
    for key, value in ours.items():
        np.testing.assert_allclose(value, sb3[key], rtol=1e-5, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("method", sorted(OVERRIDES))
def test_clip_ppo_with_an_overriding_policy_trains_exactly_as_ppo(method: str) -> None:
    kwargs = dict(batch_size=16, n_epochs=3, n_steps=N_STEPS, seed=5, device="cpu", policy_kwargs={**TINY, **EXACT_ADAM})
    ours = ClipPPO(_policy_class(method), "CartPole-v1", **SB3_NUMERICS, **kwargs).learn(3 * N_STEPS)
    sb3 = PPO(_policy_class(method), "CartPole-v1", **kwargs).learn(3 * N_STEPS)
    for (name, a), b in zip(ours.policy.named_parameters(), sb3.policy.parameters(), strict=True):
        assert th.equal(a, b), name


def _count_calls(model: Any) -> dict[str, int]:
    counts = {"policy": 0, "action_net": 0}
    model.policy.register_forward_hook(lambda *_: counts.__setitem__("policy", counts["policy"] + 1))
    model.policy.action_net.register_forward_hook(lambda *_: counts.__setitem__("action_net", counts["action_net"] + 1))
    return counts


def test_module_hooks_are_called_as_in_sb3_and_turn_the_fast_path_off() -> None:
    kwargs = dict(batch_size=16, n_epochs=2, n_steps=N_STEPS, seed=1, device="cpu", policy_kwargs={**TINY, **EXACT_ADAM})
    # each model is built and trained before the next (they share torch's global random state)
    ours = ClipPPO("MlpPolicy", "CartPole-v1", **SB3_NUMERICS, **kwargs)
    assert _lean(ours.policy)
    ours_counts = _count_calls(ours)
    assert not _lean(ours.policy)
    ours.learn(2 * N_STEPS)
    sb3 = PPO("MlpPolicy", "CartPole-v1", **kwargs)
    sb3_counts = _count_calls(sb3)
    sb3.learn(2 * N_STEPS)
    assert ours_counts == sb3_counts and ours_counts["policy"] >= 2 * N_STEPS
    for a, b in zip(ours.policy.parameters(), sb3.policy.parameters(), strict=True):
        assert th.equal(a, b)


def test_a_global_module_hook_turns_the_fast_path_off() -> None:
    model = ClipPPO("MlpPolicy", "CartPole-v1", policy_kwargs=TINY, device="cpu")
    handle = th.nn.modules.module.register_module_forward_hook(lambda *_: None)
    try:
        assert not _lean(model.policy)
    finally:
        handle.remove()
    assert _lean(model.policy)


# ---------------------------------------------------------------------- private internals: capability checks


def _train_pendulum(cls: type, **policy_kwargs: Any) -> Any:
    """Two gSDE updates on Pendulum-v1 (``cls``: ClipPPO or SB3's PPO, same seed and settings; SB3's exact Adam
    arithmetic for ClipPPO means ``numerics="sb3"``)."""
    exact = cls is ClipPPO and policy_kwargs == EXACT_ADAM
    return cls(
        "MlpPolicy",
        "Pendulum-v1",
        n_steps=N_STEPS,
        batch_size=16,
        n_epochs=2,
        seed=2,
        device="cpu",
        use_sde=True,
        policy_kwargs={**TINY, **policy_kwargs},
        **(SB3_NUMERICS if exact else {}),
    ).learn(2 * N_STEPS)


def _train_clip_ppo(**policy_kwargs: Any) -> ClipPPO:
    return _train_pendulum(ClipPPO, **policy_kwargs)


def _train_ppo(**policy_kwargs: Any) -> PPO:
    return _train_pendulum(PPO, **policy_kwargs)


def _hide(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make :func:`internals.private` answer None for these attribute names (a release that renamed them)."""
    original = internals.private
    monkeypatch.setattr(internals, "private", lambda owner, name: None if name in names else original(owner, name))


def test_without_the_fused_adam_kernel_the_optimizer_is_sb3s(monkeypatch: pytest.MonkeyPatch) -> None:
    fused_adam_available.cache_clear()
    _hide(monkeypatch, "_fused_adam_")
    # this compares the optimizer bit for bit: the NumPy rollout step and update (numerics="fast") kept off
    monkeypatch.setattr(gate, "_numpy_declined", lambda algo, structure: "off in this test")
    try:
        ours = _train_clip_ppo()
        group = ours.policy.optimizer.param_groups[0]
        assert not group["fused"]
        assert not ClippedAdamStep(ours.policy, ours.policy.optimizer).direct
        assert_same_parameters(ours, _train_ppo())  # SB3's own Adam: bit-identical
    finally:
        fused_adam_available.cache_clear()


@pytest.mark.parametrize(
    "names",
    [
        ("_foreach_norm",),
        ("_foreach_mul_", "_foreach_add_"),
        ("_optimizer_step_pre_hooks",),
        ("_global_optimizer_post_hooks",),
    ],
)
def test_without_a_kernel_or_hook_registry_the_step_is_sb3s(monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]) -> None:
    fused = dict(optimizer_kwargs=dict(eps=1e-5, fused=True))
    reference = _train_ppo(**fused)  # SB3's clip_grad_norm_ + fused Adam.step()
    assert ClippedAdamStep(reference.policy, reference.policy.optimizer).direct
    _hide(monkeypatch, *names)
    # this compares the optimizer step bit for bit: keep the rollouts and the loss SB3's torch computation (with
    # fused Adam the NumPy rollout step and the NumPy update would run, whose rounding tests/lean/test_numpy_policy.py and
    # tests/lean/test_numpy_update.py check)
    monkeypatch.setattr(gate, "_numpy_declined", lambda algo, structure: "off in this test")
    ours = _train_clip_ppo()
    assert not ClippedAdamStep(ours.policy, ours.policy.optimizer).direct
    assert_same_parameters(ours, reference)


@pytest.mark.parametrize("names", [("_forward_hooks",), ("_global_backward_hooks",)])
def test_without_a_module_hook_registry_the_policy_calls_are_sb3s(
    monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]
) -> None:
    _hide(monkeypatch, *names)
    ours = _train_clip_ppo(**EXACT_ADAM)
    assert not _lean(ours.policy)
    assert_same_parameters(ours, _train_ppo(**EXACT_ADAM))


def test_without_the_validation_flag_validation_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "_validate_args")
    previous = th.distributions.Distribution._validate_args
    th.distributions.Distribution.set_default_validate_args(True)
    try:
        with distributions_module.no_distribution_validation():
            assert th.distributions.Distribution._validate_args is True
        assert_same_parameters(_train_clip_ppo(**EXACT_ADAM), _train_ppo(**EXACT_ADAM))
    finally:
        th.distributions.Distribution.set_default_validate_args(previous)


def test_lean_distributions_check_themselves_and_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    assert distributions_module.lean_distributions_available()
    # a torch release whose Categorical needs another private attribute: the self-check notices
    original_init = distributions_module.LeanCategorical.__init__

    def broken_init(self, logits):  # type: ignore[no-untyped-def]
        original_init(self, logits)
        del self._num_events

    monkeypatch.setattr(distributions_module.LeanCategorical, "__init__", broken_init)
    assert not distributions_module.lean_distributions_available.__wrapped__()
    monkeypatch.undo()
    # with the lean classes off, SB3's construction runs and training equals SB3's
    monkeypatch.setattr(distributions_module, "lean_distributions_available", lambda: False)
    assert_same_parameters(_train_clip_ppo(**EXACT_ADAM), _train_ppo(**EXACT_ADAM))


# ---------------------------------------------------------------------- save / load: what the user passed


def _stored_policy_kwargs(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("data"))["policy_kwargs"]


@pytest.mark.parametrize("with_kwargs", [True, False])
@pytest.mark.parametrize("cls", OURS, ids=lambda c: c.__name__)
def test_load_with_the_original_policy_kwargs_then_continue(cls: type, with_kwargs: bool, tmp_path: Path) -> None:
    policy_kwargs = dict(net_arch=[8])
    model = cls("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, seed=0, device="cpu", policy_kwargs=policy_kwargs)
    model.learn(128)
    assert model.policy_kwargs == policy_kwargs  # the fused-Adam choice is not written into what the user passed
    model.save(tmp_path / "model.zip")
    stored = _stored_policy_kwargs(tmp_path / "model.zip")
    assert set(stored) == {"net_arch"}, stored
    extra = {"policy_kwargs": dict(net_arch=[8])} if with_kwargs else {}
    loaded = cls.load(tmp_path / "model.zip", env=model.get_env(), device="cpu", **extra)
    assert loaded.policy_kwargs == policy_kwargs
    assert loaded.policy.optimizer.param_groups[0]["fused"]  # the policy still gets the fused kernel
    assert_same_next_update(model, loaded)
    with pytest.raises(ValueError, match="The specified policy kwargs do not equal the stored policy kwargs"):
        cls.load(tmp_path / "model.zip", device="cpu", policy_kwargs=dict(net_arch=[4]))


SAVED_BUFFERS = {
    "clip_ppo": "TensorRolloutBuffer",
    "kl_ppo": "DistParamsRolloutBuffer",
    "reinforce": "RewardToGoRolloutBuffer",
}


@pytest.mark.skipif(
    int(np.__version__.split(".")[0]) < 2,
    reason="the fixtures were saved with NumPy 2, whose pickles (numpy._core) NumPy 1 cannot read (as with SB3's files)",
)
@pytest.mark.parametrize("name", sorted(SAVED_BUFFERS))
def test_a_model_saved_by_release_0_1_0_loads_and_continues(name: str) -> None:
    from sb3_ppo_variants import ALGOS

    cls = ALGOS[name]
    path = DATA / f"{name}_release_0_1_0.zip"
    for extra in ({}, {"policy_kwargs": dict(net_arch=[8])}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = cls.load(path, env=None, device="cpu", **extra)
        assert not [str(w.message) for w in caught if "deserialize" in str(w.message)]
        assert model.rollout_buffer_class.__name__ == SAVED_BUFFERS[name]
        assert model.num_timesteps == 64 and model.policy.optimizer.param_groups[0]["fused"]
    # the policy_kwargs it was built with are accepted, and from then on they are what is stored
    model = cls.load(path, device="cpu", policy_kwargs=dict(net_arch=[8]))
    assert model.policy_kwargs == dict(net_arch=[8])
    model.set_env(make_vec_env("CartPole-v1"))
    model.learn(N_STEPS, reset_num_timesteps=False)
    assert model.num_timesteps == 64 + N_STEPS


# ---------------------------------------------------------------------- rollout buffers, batch sizes, error texts


class ScaledRewardBuffer(RolloutBuffer):
    """A user's buffer that changes the returns: SB3 and ours must both use it."""

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        self.rewards *= 0.5
        super().compute_returns_and_advantage(last_values, dones)


@pytest.mark.parametrize("buffer_class", [RolloutBuffer, ScaledRewardBuffer])
def test_clip_ppo_with_a_users_buffer_trains_exactly_as_ppo(buffer_class: type) -> None:
    kwargs = dict(
        n_steps=N_STEPS,
        batch_size=16,
        n_epochs=2,
        seed=4,
        device="cpu",
        policy_kwargs={**TINY, **EXACT_ADAM},
        rollout_buffer_class=buffer_class,
    )
    ours = ClipPPO("MlpPolicy", "CartPole-v1", **SB3_NUMERICS, **kwargs).learn(2 * N_STEPS)
    sb3 = PPO("MlpPolicy", "CartPole-v1", **kwargs).learn(2 * N_STEPS)
    assert type(ours.rollout_buffer) is buffer_class
    np.testing.assert_array_equal(ours.rollout_buffer.returns, sb3.rollout_buffer.returns)
    assert_same_parameters(ours, sb3)


def test_kl_penalty_with_a_sample_estimator_takes_any_buffer() -> None:
    model = KLPenaltyPPO(
        "MlpPolicy",
        "CartPole-v1",
        n_steps=N_STEPS,
        batch_size=16,
        kl_estimator="sample_low_var",
        rollout_buffer_class=RolloutBuffer,
    )
    model.learn(N_STEPS)
    assert type(model.rollout_buffer) is RolloutBuffer and np.isfinite(model.logger.name_to_value["train/kl"])


@pytest.mark.parametrize(
    ("cls", "kwargs", "required"),
    [
        (REINFORCE, {}, "RewardToGoRolloutBuffer"),
        (KLPenaltyPPO, {}, "DistParamsRolloutBuffer"),
    ],
)
def test_a_buffer_the_algorithm_cannot_use_is_refused_at_construction(cls: type, kwargs: dict, required: str) -> None:
    with pytest.raises(ValueError, match=rf"`rollout_buffer_class` must be a subclass of [\w.]+\.{required}") as info:
        cls("MlpPolicy", "CartPole-v1", rollout_buffer_class=RolloutBuffer, **kwargs)
    assert cls.__name__ in str(info.value) and "got RolloutBuffer" in str(info.value)


def test_reinforce_with_a_reward_to_go_subclass_trains() -> None:
    class Mine(RewardToGoRolloutBuffer):
        pass

    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=64, rollout_buffer_class=Mine, rollout_buffer_kwargs={}).learn(64)
    assert type(model.rollout_buffer) is Mine and model.rollout_buffer.normalize == "batch"
    assert model.rollout_buffer_kwargs == {}  # what the user passed is what is kept and saved
    with pytest.raises(ValueError, match="`rollout_buffer_kwargs` must not set normalize: REINFORCE passes them itself"):
        REINFORCE("MlpPolicy", "CartPole-v1", rollout_buffer_kwargs={"normalize": "none"})


@pytest.mark.parametrize("cls", OURS, ids=lambda c: c.__name__)
def test_a_buffer_of_the_wrong_observation_kind_is_refused(cls: type) -> None:
    with pytest.raises(ValueError, match="with a Dict observation space, `rollout_buffer_class` must be a DictRolloutBuffer"):
        cls("MultiInputPolicy", SimpleMultiObsEnv(), rollout_buffer_class=RolloutBuffer)
    with pytest.raises(ValueError, match="with a non-Dict observation space, `rollout_buffer_class` must be a RolloutBuffer"):
        cls("MlpPolicy", "CartPole-v1", rollout_buffer_class=DictRolloutBuffer)


@pytest.mark.parametrize("cls", OURS, ids=lambda c: c.__name__)
def test_batch_larger_than_the_rollout_warns_as_sb3_and_trains(cls: type) -> None:
    """rl_zoo3's ppo.yml relies on this (e.g. MountainCarContinuous: batch_size 256 > n_steps 8 * n_envs 1)."""
    with pytest.warns(UserWarning, match="You have specified a mini-batch size of 256") as record:
        model = cls("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=256, n_epochs=2, seed=0, device="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no more warnings in training
        model.learn(128)
    assert model._n_updates == 2 * 2  # two updates of two epochs, one (whole-rollout) minibatch each
    if cls is ClipPPO:
        with pytest.warns(UserWarning) as sb3_record:
            PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=256, n_epochs=2, seed=0, device="cpu")
        assert str(record[0].message) == str(sb3_record[0].message)


def test_batch_larger_than_the_rollout_is_ppos_computation() -> None:
    kwargs = dict(n_steps=16, batch_size=64, n_epochs=3, seed=0, device="cpu", policy_kwargs={**TINY, **EXACT_ADAM})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = ClipPPO("MlpPolicy", "CartPole-v1", **SB3_NUMERICS, **kwargs).learn(48)
        sb3 = PPO("MlpPolicy", "CartPole-v1", **kwargs).learn(48)
    assert_same_parameters(ours, sb3)


def test_sb3_error_wording_is_kept(tmp_path: Path) -> None:
    not_a_zip = tmp_path / "model.zip"
    not_a_zip.write_text("hello")
    with pytest.raises(ValueError, match=r"wasn't a zip-file"):
        ClipPPO.load(not_a_zip)
    with pytest.raises(FileNotFoundError, match="No such file or directory"):
        ClipPPO.load(tmp_path / "missing")
    with pytest.raises(ValueError, match="`batch_size` must be greater than 1") as info:
        ClipPPO("MlpPolicy", "CartPole-v1", batch_size=1)
    assert "stable-baselines3/issues/440" in str(info.value)
    with pytest.raises(ValueError, match=r"`n_steps \* n_envs` must be greater than 1"):
        ClipPPO("MlpPolicy", "CartPole-v1", n_steps=1, batch_size=2)


def test_batched_truncation_bootstrap_equals_sb3s_per_env_calls() -> None:
    """Several envs truncated at the same step share one predict_values call: SB3's rewards and parameters."""
    kwargs = dict(n_steps=N_STEPS, batch_size=32, n_epochs=2, seed=6, device="cpu", policy_kwargs={**TINY, **EXACT_ADAM})
    # 10-step episodes: CartPole's random policy rarely falls that early, so the 4 envs truncate together
    env_kwargs = dict(max_episode_steps=10)
    simultaneous: list[int] = []

    def count_truncations(locals_: dict[str, Any], globals_: dict[str, Any]) -> bool:
        simultaneous.append(sum(bool(info.get("TimeLimit.truncated")) for info in locals_["infos"]))
        return True

    ours = ClipPPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=4, seed=1, env_kwargs=env_kwargs), **SB3_NUMERICS, **kwargs)
    ours.learn(2 * 4 * N_STEPS, callback=count_truncations)
    sb3 = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=4, seed=1, env_kwargs=env_kwargs), **kwargs)
    sb3.learn(2 * 4 * N_STEPS)
    assert max(simultaneous) >= 2  # the batched path ran
    np.testing.assert_allclose(ours.rollout_buffer.rewards, sb3.rollout_buffer.rewards, rtol=0, atol=1e-6)
    for a, b in zip(ours.policy.parameters(), sb3.policy.parameters(), strict=True):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=0, atol=1e-6)


def test_a_method_replaced_on_the_policy_object_turns_the_fast_path_off() -> None:
    model = ClipPPO("MlpPolicy", "CartPole-v1", policy_kwargs=TINY, device="cpu")
    assert _lean(model.policy)
    original = model.policy.forward
    model.policy.forward = lambda obs, deterministic=False: original(obs, deterministic)  # type: ignore[method-assign]
    assert not _lean(model.policy)
