"""Nothing is lost, bad files and bad environments fail clearly, extreme settings train or stop with a message."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO

from sb3_ppo_variants import REINFORCE, SPO, ClipPPO, KLPenaltyPPO
from sb3_ppo_variants._lean import twins
from tests.conftest import ALGORITHMS, SHORT_RUN, assert_same_next_update

ALL = ALGORITHMS
# overrides of conftest's short-run settings: three epochs, the default network, REINFORCE's learning rate
KWARGS = {
    ClipPPO: dict(n_epochs=3, policy_kwargs=None),
    KLPenaltyPPO: dict(n_epochs=3, kl_target=0.001, policy_kwargs=None),
    REINFORCE: dict(learning_rate="lin_0.01", policy_kwargs=None),
    SPO: dict(n_epochs=3, policy_kwargs=None),
}


@pytest.mark.parametrize("cls", ALL)
def test_loaded_model_makes_exactly_the_same_update(make_model, cls, tmp_path):
    """Original and loaded model, fed the same rollout batch, end with identical parameters and state."""
    model = make_model(cls, **KWARGS[cls]).learn(3 * 64)
    model.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", env=model.get_env(), device="cpu")
    assert loaded._current_progress_remaining == model._current_progress_remaining
    assert_same_next_update(model, loaded)


@pytest.mark.parametrize("cls", ALL)
def test_bad_model_files(make_model, cls, tmp_path):
    not_a_model = tmp_path / "junk.zip"
    not_a_model.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"wasn't a zip-file: not a saved model"):
        cls.load(not_a_model)
    make_model(cls, **KWARGS[cls]).save(tmp_path / "good")
    data = (tmp_path / "good.zip").read_bytes()
    (tmp_path / "truncated.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        cls.load(tmp_path / "truncated.zip")
    with pytest.raises(FileNotFoundError, match="No model file"):
        cls.load(tmp_path / "missing.zip")


def test_model_of_another_class_is_refused(make_model, tmp_path):
    make_model(KLPenaltyPPO, **KWARGS[KLPenaltyPPO]).save(tmp_path / "kl")
    with pytest.raises(ValueError, match=r"holds a KLPenaltyPPO model, not a ClipPPO one: load it with KLPenaltyPPO.load\(\)"):
        ClipPPO.load(tmp_path / "kl")
    assert type(KLPenaltyPPO.load(tmp_path / "kl")) is KLPenaltyPPO


def test_sb3_ppo_file_loads_into_clip_ppo_with_a_warning(tmp_path):
    PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32).save(tmp_path / "sb3")
    with pytest.warns(UserWarning, match="not saved by sb3-ppo-variants"):
        model = ClipPPO.load(tmp_path / "sb3")
    assert type(model) is ClipPPO


class _BadEnv(gym.Env):
    """Returns a NaN reward or observation after a few steps."""

    observation_space = spaces.Box(-10, 10, (2,))
    action_space = spaces.Discrete(2)

    def __init__(self, bad="reward"):
        self.bad, self.t = bad, 0

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.zeros(2, dtype=np.float32)
        reward = 1.0
        if self.t == 5:
            if self.bad == "reward":
                reward = float("inf")
            else:
                obs[0] = np.nan
        return obs, reward, self.t >= 20, False, {}


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("bad", ["reward", "observation"])
def test_non_finite_env_output_is_caught(make_model, cls, bad):
    model = make_model(cls, _BadEnv(bad), **KWARGS[cls])
    with pytest.raises(ValueError, match=f"non-finite {bad} at timestep 4"):
        model.learn(128)


@pytest.mark.parametrize("cls", ALL)
def test_huge_rewards_train_without_nan(make_model, cls):
    class _HugeReward(gym.Wrapper):
        def step(self, action):
            obs, reward, terminated, truncated, info = self.env.step(action)
            return obs, reward * 1e6, terminated, truncated, info

    model = make_model(cls, _HugeReward(gym.make("CartPole-v1")), **KWARGS[cls]).learn(4 * 64)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


def test_tiny_kl_target_keeps_beta_finite_and_bounded(make_model):
    model = make_model(
        KLPenaltyPPO, **{**KWARGS[KLPenaltyPPO], "kl_target": 1e-12, "learning_rate": 1e-2, "beta_max": 1e3}
    ).learn(30 * 64)
    assert model.current_beta == 1e3  # doubled at every update up to the bound, never inf
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


@pytest.mark.parametrize("cls", ALL)
def test_absurd_learning_rate_trains_or_stops_with_a_message(make_model, cls):
    model = make_model(cls, **{**KWARGS[cls], "learning_rate": 1e6, "max_grad_norm": 1e10})
    try:
        model.learn(10 * 64)
    except FloatingPointError as exc:
        assert "training diverged" in str(exc) and "learning_rate" in str(exc)
    else:
        assert all(th.isfinite(p).all() for p in model.policy.parameters())


class _NaNLossPPO(ClipPPO):
    """A ClipPPO whose policy loss turns NaN: stands in for a diverging run."""

    def _policy_loss(self, *args, **kwargs):
        loss, extra = super()._policy_loss(*args, **kwargs)
        return loss * float("nan"), extra


def test_divergence_message_names_the_update():
    model = _NaNLossPPO("MlpPolicy", "CartPole-v1", **{**SHORT_RUN[ClipPPO], **KWARGS[ClipPPO]}, seed=0)
    with pytest.raises(
        FloatingPointError,
        match=r"training diverged at update 3 \(timestep 64\): a loss, gradient or network parameter is NaN or inf",
    ):
        model.learn(2 * 64)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("user_setting", [True, False])
def test_global_distribution_validation_is_left_as_the_user_set_it(make_model, cls, user_setting):
    previous = th.distributions.Distribution._validate_args
    th.distributions.Distribution.set_default_validate_args(user_setting)
    seen_in_callback = []

    def callback(locals_, globals_):
        seen_in_callback.append(th.distributions.Distribution._validate_args)
        return True

    try:
        make_model(cls, **KWARGS[cls]).learn(2 * 64, callback=callback)
        assert th.distributions.Distribution._validate_args is user_setting
        assert set(seen_in_callback) == {user_setting}  # user code inside learn() sees the user's setting too
    finally:
        th.distributions.Distribution.set_default_validate_args(previous)


class _NaNLossREINFORCE(REINFORCE):
    """A REINFORCE whose torch loss turns NaN (the NumPy update then stays off: the loss is overridden)."""

    def _policy_loss(self, *args, **kwargs):
        loss, extra = super()._policy_loss(*args, **kwargs)
        return loss * float("nan"), extra


def _nan_reinforce_twin(*args):
    """REINFORCE's registered NumPy twin with its loss and gradient turned NaN."""
    loss, grad, extra = twins.reinforce_policy_loss(*args)
    return loss * float("nan"), grad * float("nan"), extra


@pytest.mark.parametrize("update", ["torch", "numpy"])
def test_divergence_of_a_one_step_update_is_caught(update, monkeypatch):
    """One gradient step per update (the norms are read one by one there): the first NaN update stops training."""
    cls = _NaNLossREINFORCE
    if update == "numpy":  # the NumPy update runs REINFORCE's registered twin, made NaN here
        cls = REINFORCE
        nan_twin = twins.Twin("sb3_ppo_variants.reinforce.reinforce:REINFORCE", ("_policy_loss",), _nan_reinforce_twin)
        monkeypatch.setattr(twins, "POLICY_LOSS_TWINS", (nan_twin,))
    model = cls("MlpPolicy", "CartPole-v1", n_steps=256, use_baseline=True, seed=0, device="cpu")
    with pytest.raises(FloatingPointError, match=r"training diverged at update 1 \(timestep 256\)"):
        model.learn(3 * 256)
