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

from sb3_ppo_variants import REINFORCE, SPO, ClipPPO, KLPenaltyPPO
from tests.conftest import ALGORITHMS

ALL = ALGORITHMS

ACTION_ENVS = {
    "discrete": lambda: IdentityEnv(4),
    "box": lambda: IdentityEnvBox(-1, 1),
    "multidiscrete": lambda: IdentityEnvMultiDiscrete(3),
    "multibinary": lambda: IdentityEnvMultiBinary(3),
}


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("space", sorted(ACTION_ENVS))
def test_action_spaces(make_model, cls, space):
    model = make_model(cls, make_vec_env(ACTION_ENVS[space], n_envs=2)).learn(128)
    for p in model.policy.parameters():
        assert th.isfinite(p).all()


def _assert_trained(model, before: list[th.Tensor]) -> None:
    """The update changed the parameters, and every logged training loss is finite."""
    assert model._n_updates > 0
    assert any(not th.equal(b, p) for b, p in zip(before, model.policy.parameters(), strict=True))
    losses = {k: v for k, v in model.logger.name_to_value.items() if k.startswith("train/") and k.endswith("loss")}
    assert losses and all(np.isfinite(v) for v in losses.values()), losses


def _learn(model, steps: int):
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(steps)
    _assert_trained(model, before)
    return model


#: Pendulum's episodes last 200 steps: REINFORCE without a baseline needs one to end inside its rollout to learn
PENDULUM_ROLLOUT = {ClipPPO: 64, KLPenaltyPPO: 64, REINFORCE: 256, SPO: 64}


@pytest.mark.parametrize("cls", ALL)
def test_gsde(make_model, cls):
    n_steps = PENDULUM_ROLLOUT[cls]
    model = _learn(make_model(cls, "Pendulum-v1", use_sde=True, sde_sample_freq=4, n_steps=n_steps), n_steps)
    assert model.policy.use_sde
    # the exploration matrix's log std is a trained parameter: it moved
    assert not th.equal(model.policy.log_std, th.full_like(model.policy.log_std, model.policy.log_std_init))


@pytest.mark.parametrize("cls", ALL)
def test_multi_input_policy(make_model, cls):
    env = make_vec_env(lambda: SimpleMultiObsEnv(random_start=True), n_envs=2)
    _learn(make_model(cls, env, policy="MultiInputPolicy", n_steps=64), 128)


#: FakeImageEnv's rewards are all 0, so REINFORCE's normalised weights are 0: its entropy bonus makes the gradient
CNN_EXTRA: dict[type, dict] = {
    ClipPPO: dict(batch_size=16),
    KLPenaltyPPO: dict(batch_size=16),
    REINFORCE: dict(ent_coef=0.01),
    SPO: dict(batch_size=16),
}


@pytest.mark.parametrize("cls", ALL)
def test_cnn_policy(make_model, cls):
    env = make_vec_env(lambda: FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True), n_envs=2)
    cnn = dict(features_extractor_kwargs=dict(features_dim=16))
    model = _learn(make_model(cls, env, policy="CnnPolicy", policy_kwargs=cnn, n_steps=32, **CNN_EXTRA[cls]), 64)
    assert type(model.policy.features_extractor).__name__ == "NatureCNN"


@pytest.mark.parametrize("cls", ALL)
def test_save_load_predict(make_model, cls, tmp_path):
    model = make_model(cls, "CartPole-v1").learn(128)
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
def test_callbacks_progress_bar_tensorboard(make_model, cls, tmp_path):
    eval_env = make_vec_env("CartPole-v1", n_envs=1)
    callbacks = [
        EvalCallback(eval_env, eval_freq=64, n_eval_episodes=2, log_path=str(tmp_path / "eval"), warn=False),
        CheckpointCallback(save_freq=64, save_path=str(tmp_path / "ckpt"), name_prefix="m"),
    ]
    model = make_model(cls, "CartPole-v1", tensorboard_log=str(tmp_path / "tb"))
    model.learn(128, callback=callbacks, progress_bar=True)
    assert (tmp_path / "eval" / "evaluations.npz").exists()
    assert list((tmp_path / "ckpt").glob("m_*_steps.zip"))
    assert list((tmp_path / "tb").glob(f"{cls.__name__}_1/events.out.tfevents.*"))


@pytest.mark.integration
@pytest.mark.parametrize("cls", ALL)
def test_vecnormalize_and_subproc(make_model, cls, tmp_path):
    env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=2, vec_env_cls=SubprocVecEnv))
    try:
        model = make_model(cls, env).learn(128)
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
def test_same_seed_is_bit_identical(make_model, cls):
    a = make_model(cls, "CartPole-v1").learn(128)
    b = make_model(cls, "CartPole-v1").learn(128)
    for pa, pb in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert th.equal(pa, pb)


@pytest.mark.parametrize("cls", ALL)
def test_shared_logging_keys(make_model, cls):
    # episodes of 10 steps end inside every rollout (REINFORCE without baseline needs whole episodes)
    model = make_model(cls, make_vec_env(lambda: IdentityEnvBox(-1, 1, ep_length=10), n_envs=2)).learn(3 * 64)
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


def test_clip_ppo_logs_sb3_keys(make_model):
    model = make_model(ClipPPO, "CartPole-v1").learn(3 * 32)
    logged = model.logger.name_to_value
    for key in ("train/value_loss", "train/clip_fraction", "train/clip_range", "train/explained_variance"):
        assert key in logged, key


def test_reinforce_warns_when_no_episode_fits_in_a_rollout(make_model):
    with pytest.warns(UserWarning, match="no episode ended within a rollout of n_steps=32"):
        make_model(REINFORCE, "Pendulum-v1", n_steps=32).learn(64)
