"""Everything a user does with SB3's PPO/A2C works with our classes (short runs, tiny nets)."""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import (
    FakeImageEnv,
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecNormalize

from sb3_ppo_variants import REINFORCE, ClipPPO, KLPenaltyPPO

ALL = (ClipPPO, KLPenaltyPPO, REINFORCE)
# per-class settings for short runs (no if/elif on classes in the tests)
KWARGS = {
    ClipPPO: dict(n_steps=32, batch_size=16, n_epochs=2),
    KLPenaltyPPO: dict(n_steps=32, batch_size=16, n_epochs=2),
    REINFORCE: dict(n_steps=32),
}
TINY = dict(net_arch=dict(pi=[16], vf=[16]))

ACTION_ENVS = {
    "discrete": lambda: IdentityEnv(4),
    "box": lambda: IdentityEnvBox(-1, 1),
    "multidiscrete": lambda: IdentityEnvMultiDiscrete(3),
    "multibinary": lambda: IdentityEnvMultiBinary(3),
}


def _model(cls, env, **extra):
    kwargs = {**KWARGS[cls], "policy_kwargs": TINY, "seed": 0, "device": "cpu", **extra}
    policy = kwargs.pop("policy", "MlpPolicy")
    return cls(policy, env, **kwargs)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("space", sorted(ACTION_ENVS))
def test_action_spaces(cls, space):
    model = _model(cls, make_vec_env(ACTION_ENVS[space], n_envs=2)).learn(128)
    for p in model.policy.parameters():
        assert th.isfinite(p).all()


@pytest.mark.parametrize("cls", ALL)
def test_gsde(cls):
    model = _model(cls, "Pendulum-v1", use_sde=True, sde_sample_freq=4).learn(128)
    assert model.policy.use_sde


@pytest.mark.parametrize("cls", ALL)
def test_multi_input_policy(cls):
    env = make_vec_env(lambda: SimpleMultiObsEnv(random_start=True), n_envs=2)
    _model(cls, env, policy="MultiInputPolicy").learn(128)


@pytest.mark.parametrize("cls", ALL)
def test_cnn_policy(cls):
    env = make_vec_env(lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True), n_envs=2)
    model = cls(
        "CnnPolicy",
        env,
        **{**KWARGS[cls], "seed": 0, "device": "cpu", "policy_kwargs": dict(features_extractor_kwargs=dict(features_dim=16))},
    )
    model.learn(64)


@pytest.mark.parametrize("cls", ALL)
def test_save_load_predict(cls, tmp_path):
    model = _model(cls, "CartPole-v1").learn(128)
    obs = model.get_env().reset()
    action, _ = model.predict(obs, deterministic=True)
    model.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", env=model.get_env(), device="cpu")
    assert type(loaded) is cls
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], action)
    for pa, pb in zip(model.policy.parameters(), loaded.policy.parameters(), strict=True):
        assert th.equal(pa, pb)
    # optimizer state (Adam moments) comes back too
    sa, sb = model.policy.optimizer.state_dict(), loaded.policy.optimizer.state_dict()
    for key in sa["state"]:
        assert th.equal(sa["state"][key]["exp_avg"], sb["state"][key]["exp_avg"])
    assert loaded.num_timesteps == model.num_timesteps and loaded._n_updates == model._n_updates
    loaded.learn(64, reset_num_timesteps=False)
    assert loaded.num_timesteps == model.num_timesteps + 64


@pytest.mark.parametrize("cls", ALL)
def test_callbacks_progress_bar_tensorboard(cls, tmp_path):
    eval_env = make_vec_env("CartPole-v1", n_envs=1)
    callbacks = [
        EvalCallback(eval_env, eval_freq=64, n_eval_episodes=2, log_path=str(tmp_path / "eval"), warn=False),
        CheckpointCallback(save_freq=64, save_path=str(tmp_path / "ckpt"), name_prefix="m"),
    ]
    model = _model(cls, "CartPole-v1", tensorboard_log=str(tmp_path / "tb"))
    model.learn(128, callback=callbacks, progress_bar=True)
    assert (tmp_path / "eval" / "evaluations.npz").exists()
    assert list((tmp_path / "ckpt").glob("m_*_steps.zip"))
    assert list((tmp_path / "tb").glob(f"{cls.__name__}_1/events.out.tfevents.*"))


@pytest.mark.parametrize("cls", ALL)
def test_vecnormalize_and_subproc(cls, tmp_path):
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, vec_env_cls=SubprocVecEnv))
    try:
        model = _model(cls, env).learn(128)
        env.save(str(tmp_path / "stats.pkl"))
        eval_env = VecNormalize.load(
            str(tmp_path / "stats.pkl"), DummyVecEnv([lambda: __import__("gymnasium").make("Pendulum-v1")])
        )
        eval_env.training, eval_env.norm_reward = False, False
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=1)
        assert np.isfinite(mean)
    finally:
        env.close()


@pytest.mark.parametrize("cls", ALL)
def test_same_seed_is_bit_identical(cls):
    a = _model(cls, "CartPole-v1").learn(128)
    b = _model(cls, "CartPole-v1").learn(128)
    for pa, pb in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert th.equal(pa, pb)


@pytest.mark.parametrize("cls", ALL)
def test_shared_logging_keys(cls):
    # episodes of 10 steps end inside every rollout (REINFORCE without baseline needs whole episodes)
    model = _model(cls, make_vec_env(lambda: IdentityEnvBox(-1, 1, ep_length=10), n_envs=2)).learn(3 * 64)
    logged = model.logger.name_to_value
    for key in (
        "train/policy_gradient_loss",
        "train/entropy_loss",
        "train/approx_kl",
        "train/loss",
        "train/n_updates",
        "train/std",
    ):
        assert key in logged, key


def test_clip_ppo_logs_sb3_keys():
    model = _model(ClipPPO, "CartPole-v1").learn(3 * 32)
    logged = model.logger.name_to_value
    for key in ("train/value_loss", "train/clip_fraction", "train/clip_range", "train/explained_variance"):
        assert key in logged, key


def test_reinforce_warns_when_no_episode_fits_in_a_rollout():
    with pytest.warns(UserWarning, match="no episode ended within a rollout of n_steps=32"):
        _model(REINFORCE, "Pendulum-v1").learn(64)
