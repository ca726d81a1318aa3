"""Compatibility matrix with SB3's user-facing API: what a user does with SB3's PPO/A2C works the same with our classes.

Complements ``test_run.py`` (action spaces, policies, callbacks with tensorboard, partial VecNormalize, save/load) and
``test_reliability.py`` (exact resumption, bad files): wrappers (VecFrameStack, a full VecNormalize round trip),
stopping callbacks, ``predict`` shapes and dtypes against SB3's ``PPO``, ``set_env``, ``get/set_parameters``,
policy save/load, tensorboard run numbering, logging, in-memory save/load, ``custom_objects``, gSDE per action space,
and bit-identical reproducibility including the logged losses. Tiny nets, a few rollouts per test.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import (
    BaseCallback,
    CallbackList,
    ConvertCallback,
    EvalCallback,
    StopTrainingOnMaxEpisodes,
    StopTrainingOnRewardThreshold,
)
from stable_baselines3.common.distributions import StateDependentNoiseDistribution
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import (
    IdentityEnv,
    IdentityEnvBox,
    IdentityEnvMultiBinary,
    IdentityEnvMultiDiscrete,
    SimpleMultiObsEnv,
)
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecFrameStack, VecNormalize

from sb3_ppo_variants import REINFORCE, SPO, ClipPPO, KLPenaltyPPO
from tests.conftest import ALGORITHMS, TINY_NET, assert_same_parameters

ALL = ALGORITHMS
N_STEPS = 64
# training keys each class prints with verbose=1 (besides the shared ones)
OWN_LOG_KEYS = {
    ClipPPO: ("clip_fraction", "clip_range", "value_loss", "explained_variance"),
    KLPenaltyPPO: ("beta", "kl_target", "kl_penalty", "value_loss", "explained_variance"),
    REINFORCE: ("valid_fraction", "return_mean", "return_std", "policy_loss"),
    SPO: ("boundary_fraction", "epsilon", "value_loss", "explained_variance"),
}
# adapted training state that must survive a save/load (besides num_timesteps and _n_updates)
STATE = {ClipPPO: (), KLPenaltyPPO: ("current_beta",), REINFORCE: (), SPO: ()}
TINY = TINY_NET


def _cartpole(n_envs=2, seed=0):
    return make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)


def _assert_same_optimizer_state(a: th.optim.Optimizer, b: th.optim.Optimizer) -> None:
    sa, sb = a.state_dict()["state"], b.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for key in sa:
        for name in ("exp_avg", "exp_avg_sq"):
            assert th.equal(sa[key][name], sb[key][name]), (key, name)


class _Recorder(KVWriter):
    """Logger output that keeps every dump (what `log_interval` controls) in memory."""

    def __init__(self) -> None:
        self.dumps: list[dict] = []

    def write(self, key_values, key_excluded, step=0):
        self.dumps.append(dict(key_values))

    def close(self):
        pass


def _recording_logger() -> tuple[Logger, _Recorder]:
    recorder = _Recorder()
    return Logger(folder=None, output_formats=[recorder]), recorder


# ---------------------------------------------------------------------------------------------------- wrappers


@pytest.mark.parametrize("cls", ALL)
def test_vec_frame_stack(make_model, cls):
    env = VecFrameStack(_cartpole(), n_stack=3)
    model = make_model(cls, env).learn(2 * N_STEPS * 2)
    assert model.observation_space.shape == (12,)
    obs = env.reset()
    assert model.predict(obs, deterministic=True)[0].shape == (2,)
    assert model.predict(obs[0], deterministic=True)[0].shape == ()
    assert model.num_timesteps == 2 * N_STEPS * 2


@pytest.mark.parametrize("cls", ALL)
def test_vecnormalize_full_round_trip(make_model, cls, tmp_path):
    train_env = VecNormalize(_cartpole(), gamma=0.99)
    model = make_model(cls, train_env).learn(2 * N_STEPS * 2)
    model.save(tmp_path / "model")
    train_env.save(str(tmp_path / "vecnormalize.pkl"))

    eval_env = VecNormalize.load(str(tmp_path / "vecnormalize.pkl"), _cartpole(n_envs=1, seed=1))
    eval_env.training, eval_env.norm_reward = False, False
    for stats in ("obs_rms", "ret_rms"):
        np.testing.assert_array_equal(getattr(eval_env, stats).mean, getattr(train_env, stats).mean)
        np.testing.assert_array_equal(getattr(eval_env, stats).var, getattr(train_env, stats).var)
    frozen_mean, frozen_count = eval_env.obs_rms.mean.copy(), eval_env.obs_rms.count

    loaded = cls.load(tmp_path / "model", env=eval_env, device="cpu")
    assert loaded.get_vec_normalize_env() is eval_env
    obs = eval_env.reset()
    np.testing.assert_array_equal(obs, eval_env.normalize_obs(eval_env.get_original_obs()))
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    _, reward, _, _ = eval_env.step(loaded.predict(obs, deterministic=True)[0])
    assert reward.tolist() == [1.0]  # norm_reward=False: CartPole's raw reward

    rewards, lengths = evaluate_policy(loaded, eval_env, n_eval_episodes=2, deterministic=True, return_episode_rewards=True)
    assert len(rewards) == len(lengths) == 2
    assert rewards == [float(n) for n in lengths]
    # training=False: evaluation left the statistics alone
    np.testing.assert_array_equal(eval_env.obs_rms.mean, frozen_mean)
    assert eval_env.obs_rms.count == frozen_count
    # and the loaded model trains on with them (normalisation updates resume with training=True)
    eval_env.training = True
    loaded.learn(N_STEPS, reset_num_timesteps=False)
    assert loaded.num_timesteps == model.num_timesteps + N_STEPS
    assert eval_env.obs_rms.count > frozen_count


# ---------------------------------------------------------------------------------------------------- callbacks


class _StopAfter(BaseCallback):
    """Returns False at its ``n``-th ``_on_step`` call; records the names in ``self.locals``."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.calls = n, 0
        self.step_locals: set[str] = set()
        self.rollout_end_locals: set[str] = set()
        self.shapes: dict[str, tuple] = {}

    def _on_step(self) -> bool:
        self.calls += 1
        self.step_locals |= set(self.locals)
        for name in ("actions", "clipped_actions", "new_obs", "rewards", "dones", "values", "log_probs"):
            self.shapes[name] = tuple(np.shape(self.locals[name]))
        assert self.locals["self"] is self.model
        return self.calls < self.n

    def _on_rollout_end(self) -> None:
        self.rollout_end_locals |= set(self.locals)


@pytest.mark.parametrize("cls", ALL)
def test_eval_callback_with_reward_threshold_stops_training(make_model, cls):
    stop = StopTrainingOnRewardThreshold(reward_threshold=1.0)  # any CartPole episode scores >= 1
    eval_callback = EvalCallback(
        _cartpole(n_envs=1, seed=3), callback_on_new_best=stop, eval_freq=20, n_eval_episodes=2, warn=False
    )
    model = make_model(cls, _cartpole()).learn(10_000, callback=eval_callback)
    assert model.num_timesteps == 20 * 2  # stopped at the first evaluation (eval_freq calls x 2 envs)
    assert eval_callback.best_mean_reward >= 1.0
    assert eval_callback.n_calls == 20


@pytest.mark.parametrize("cls", ALL)
def test_stop_training_on_max_episodes(make_model, cls):
    stop = StopTrainingOnMaxEpisodes(max_episodes=2)
    model = make_model(cls, _cartpole()).learn(10_000, callback=stop)
    assert model.num_timesteps < 10_000
    assert stop.n_episodes >= 2 * 2  # max_episodes per env
    assert len(model.ep_info_buffer) >= 2  # (episodes ending at the stopping step are not added: SB3's order)


@pytest.mark.parametrize("cls", ALL)
def test_custom_callback_stops_early(make_model, cls):
    callback = _StopAfter(7)
    model = make_model(cls, _cartpole()).learn(10_000, callback=callback)
    assert callback.calls == 7
    assert model.num_timesteps == 7 * 2


@pytest.mark.parametrize("cls", ALL)
def test_callback_locals_are_sb3_ones(make_model, cls):
    """A callback reading ``self.locals`` (infos, dones, rewards, ...) finds what SB3's PPO gives it, same shapes."""
    ours, theirs = _StopAfter(N_STEPS + 3), _StopAfter(N_STEPS + 3)
    make_model(cls, _cartpole()).learn(10_000, callback=ours)
    PPO("MlpPolicy", _cartpole(), n_steps=N_STEPS, batch_size=32, n_epochs=1, policy_kwargs=TINY, device="cpu").learn(
        10_000, callback=theirs
    )
    # `idx`, `done`: leftovers of SB3's loop over the envs for time-limit bootstrapping (the previous step's last env),
    # not data a callback can use; that loop is the `_bootstrap_truncations` hook here
    for theirs_names, ours_names in (
        (theirs.step_locals, ours.step_locals),
        (theirs.rollout_end_locals, ours.rollout_end_locals),
    ):
        missing = theirs_names - ours_names - {"idx", "done"}
        assert not missing, missing
    assert ours.shapes == theirs.shapes


@pytest.mark.parametrize("cls", ALL)
def test_callback_list_and_function_callback(make_model, cls):
    counter, stopper = _StopAfter(10**9), _StopAfter(5)
    function_calls = []

    def function_callback(locals_, globals_):
        function_calls.append(locals_["self"].num_timesteps)
        return True

    model = make_model(cls, _cartpole()).learn(10_000, callback=CallbackList([counter, stopper]))
    assert model.num_timesteps == 5 * 2 and counter.calls == stopper.calls == 5
    # a plain list becomes a CallbackList; as in SB3, its functions must be wrapped (a lone function is wrapped for you)
    model.learn(N_STEPS * 2, callback=[ConvertCallback(function_callback), counter])
    assert function_calls == list(range(2, N_STEPS * 2 + 1, 2))
    assert counter.calls == 5 + N_STEPS


@pytest.mark.parametrize("cls", ALL)
def test_function_callback_stops_early(make_model, cls):
    calls = []

    def stop_after_three(locals_, globals_):
        calls.append(1)
        return len(calls) < 3

    model = make_model(cls, _cartpole()).learn(10_000, callback=stop_after_three)
    assert len(calls) == 3 and model.num_timesteps == 3 * 2


# ---------------------------------------------------------------------------------------------------- evaluate, predict


@pytest.mark.parametrize("cls", ALL)
def test_evaluate_policy_episode_rewards(make_model, cls):
    model = make_model(cls, _cartpole()).learn(N_STEPS * 2)
    rewards, lengths = evaluate_policy(model, _cartpole(n_envs=2, seed=5), n_eval_episodes=3, return_episode_rewards=True)
    assert isinstance(rewards, list) and isinstance(lengths, list)
    assert len(rewards) == len(lengths) == 3
    assert all(isinstance(n, int) and n > 0 for n in lengths)
    assert rewards == [float(n) for n in lengths]  # CartPole: +1 per step
    mean, std = evaluate_policy(model, _cartpole(n_envs=1, seed=5), n_eval_episodes=2)
    assert np.isfinite(mean) and np.isfinite(std)


PREDICT_ENVS = {
    "discrete": (lambda: IdentityEnv(4), "MlpPolicy"),
    "box": (lambda: IdentityEnvBox(-1, 1), "MlpPolicy"),
    "multidiscrete": (lambda: IdentityEnvMultiDiscrete(3), "MlpPolicy"),
    "multibinary": (lambda: IdentityEnvMultiBinary(3), "MlpPolicy"),
    "dict": (lambda: SimpleMultiObsEnv(random_start=True), "MultiInputPolicy"),
}
PREDICT_POLICY_KWARGS = dict(net_arch=[16], features_extractor_kwargs=dict(cnn_output_dim=8))


def _batch(observations):
    if isinstance(observations[0], dict):
        return {key: np.stack([obs[key] for obs in observations]) for key in observations[0]}
    return np.stack(observations)


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("space", sorted(PREDICT_ENVS))
def test_predict_shapes_and_dtypes_match_sb3_ppo(make_model, cls, space):
    make_env, policy = PREDICT_ENVS[space]
    env = make_env()
    policy_kwargs = PREDICT_POLICY_KWARGS if policy == "MultiInputPolicy" else TINY
    ours = make_model(cls, make_env(), policy=policy, policy_kwargs=policy_kwargs)
    sb3 = PPO(policy, make_env(), n_steps=N_STEPS, batch_size=32, policy_kwargs=policy_kwargs, seed=0, device="cpu")
    env.observation_space.seed(0)
    single = env.observation_space.sample()
    batch = _batch([env.observation_space.sample() for _ in range(3)])
    for obs in (single, batch):
        for deterministic in (True, False):
            action, state = ours.predict(obs, deterministic=deterministic)
            expected, _ = sb3.predict(obs, deterministic=deterministic)
            assert state is None
            assert isinstance(action, np.ndarray)
            assert action.shape == expected.shape and action.dtype == expected.dtype, (obs, deterministic)
            assert env.action_space.contains(action) if obs is single else all(env.action_space.contains(a) for a in action)
    # with SB3's network weights, our deterministic actions are SB3's
    ours.policy.load_state_dict(sb3.policy.state_dict())
    for obs in (single, batch):
        np.testing.assert_array_equal(ours.predict(obs, deterministic=True)[0], sb3.predict(obs, deterministic=True)[0])


# ---------------------------------------------------------------------------------------------------- set_env, parameters


@pytest.mark.parametrize("cls", ALL)
def test_set_env_same_spaces_continues_training(make_model, cls):
    model = make_model(cls, _cartpole()).learn(N_STEPS * 2)
    new_env = _cartpole(seed=42)
    model.set_env(new_env)
    assert model.get_env() is new_env and model._last_obs is None  # force_reset: the new env is reset
    model.learn(N_STEPS * 2, reset_num_timesteps=False)
    assert model.num_timesteps == 2 * N_STEPS * 2
    assert model._n_updates == model.n_epochs * 2


@pytest.mark.parametrize("cls", ALL)
def test_set_env_other_number_of_envs_is_refused_as_in_sb3_and_load_takes_it(make_model, cls, tmp_path):
    model = make_model(cls, _cartpole(n_envs=2)).learn(N_STEPS * 2)
    with pytest.raises(
        AssertionError, match=r"number of environments .* \(4 != 2\).*" + cls.__name__ + r"\.load\(path, env\)"
    ):
        model.set_env(_cartpole(n_envs=4))
    with pytest.raises(ValueError, match="Observation spaces do not match"):
        model.set_env(make_vec_env("Pendulum-v1", n_envs=2))
    # the route SB3's message gives: save, then load with the new env
    model.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", env=_cartpole(n_envs=4), device="cpu")
    assert loaded.n_envs == 4
    loaded.learn(N_STEPS * 4, reset_num_timesteps=False)
    assert loaded.num_timesteps == N_STEPS * 2 + N_STEPS * 4
    assert loaded.rollout_buffer.n_envs == 4


@pytest.mark.parametrize("cls", ALL)
def test_get_set_parameters(make_model, cls, tmp_path):
    source = make_model(cls, _cartpole()).learn(N_STEPS * 2)
    params = source.get_parameters()
    assert set(params) == {"policy", "policy.optimizer"}
    obs = source.get_env().reset()

    target = make_model(cls, _cartpole(), seed=1)
    target.set_parameters(params, exact_match=True, device="cpu")
    assert_same_parameters(source.policy, target.policy)
    _assert_same_optimizer_state(source.policy.optimizer, target.policy.optimizer)
    np.testing.assert_array_equal(target.predict(obs, deterministic=True)[0], source.predict(obs, deterministic=True)[0])

    # exact_match: a missing object or a missing tensor is refused; exact_match=False loads what is there
    without_optimizer = {"policy": params["policy"]}
    with pytest.raises(ValueError, match="Names of parameters do not match"):
        make_model(cls, _cartpole(), seed=2).set_parameters(without_optimizer, exact_match=True)
    partial = make_model(cls, _cartpole(), seed=2)
    partial.set_parameters(without_optimizer, exact_match=False)
    assert_same_parameters(source.policy, partial.policy)
    last_key = list(params["policy"])[-1]
    missing_tensor = {"policy": {k: v for k, v in params["policy"].items() if k != last_key}}
    with pytest.raises(RuntimeError, match="Missing key"):
        make_model(cls, _cartpole(), seed=2).set_parameters(missing_tensor, exact_match=True)
    other = make_model(cls, _cartpole(), seed=2)
    kept = other.policy.state_dict()[last_key].clone()
    other.set_parameters(missing_tensor, exact_match=False)
    assert th.equal(other.policy.state_dict()[last_key], kept)

    # from a model file of the same class
    source.save(tmp_path / "source")
    from_file = make_model(cls, _cartpole(), seed=3)
    from_file.set_parameters(str(tmp_path / "source.zip"), device="cpu")
    assert_same_parameters(source.policy, from_file.policy)
    from_file.learn(N_STEPS * 2)  # and it trains on from there


@pytest.mark.parametrize("cls", ALL)
def test_policy_save_load(make_model, cls, tmp_path):
    model = make_model(cls, _cartpole()).learn(N_STEPS * 2)
    model.policy.save(tmp_path / "policy.pth")
    policy = ActorCriticPolicy.load(tmp_path / "policy.pth", device="cpu")
    assert type(policy) is type(model.policy)
    assert_same_parameters(model.policy, policy)
    obs = np.stack([model.observation_space.sample() for _ in range(8)])
    np.testing.assert_array_equal(policy.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    with th.no_grad():
        probs = policy.get_distribution(th.as_tensor(obs)).distribution.probs
        assert th.equal(probs, model.policy.get_distribution(th.as_tensor(obs)).distribution.probs)


@pytest.mark.parametrize("cls", ALL)
def test_explicit_cpu_device(make_model, cls, tmp_path):
    model = make_model(cls, _cartpole(), device="cpu").learn(N_STEPS * 2)
    assert model.device == th.device("cpu")
    assert all(p.device.type == "cpu" for p in model.policy.parameters())
    assert th.device(model.rollout_buffer.device).type == "cpu"
    model.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", device="cpu")
    assert loaded.device == th.device("cpu") and all(p.device.type == "cpu" for p in loaded.policy.parameters())


# ---------------------------------------------------------------------------------------------------- logging


@pytest.mark.parametrize("cls", ALL)
def test_tensorboard_run_numbering_as_in_sb3(make_model, cls, tmp_path):
    def run_dirs(algo, root):
        algo.learn(N_STEPS, tb_log_name="run")
        algo.learn(N_STEPS, tb_log_name="run", reset_num_timesteps=False)  # continues run_1
        algo.learn(N_STEPS, tb_log_name="run")  # a new run: run_2
        algo.learn(N_STEPS, tb_log_name="run", reset_num_timesteps=False)  # continues run_2
        algo.learn(N_STEPS, tb_log_name="other", reset_num_timesteps=False)  # SB3 names this other_0
        return sorted(p.name for p in root.iterdir())

    ours = make_model(cls, _cartpole(n_envs=1), tensorboard_log=str(tmp_path / "ours"))
    sb3 = PPO(
        "MlpPolicy",
        _cartpole(n_envs=1),
        **dict(n_steps=N_STEPS, batch_size=32, n_epochs=1, policy_kwargs=TINY, device="cpu"),
        tensorboard_log=str(tmp_path / "sb3"),
    )
    expected = run_dirs(sb3, tmp_path / "sb3")
    assert expected == ["other_0", "run_1", "run_2"]
    assert run_dirs(ours, tmp_path / "ours") == expected
    assert ours.num_timesteps == sb3.num_timesteps == 3 * N_STEPS  # run_2, its continuation, other_0's continuation
    assert list((tmp_path / "ours" / "run_1").glob("events.out.tfevents.*"))


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("log_interval", [1, 2])
def test_log_interval(make_model, cls, log_interval):
    model = make_model(cls, _cartpole(n_envs=1))
    logger, recorder = _recording_logger()
    model.set_logger(logger)
    model.learn(4 * N_STEPS, log_interval=log_interval)
    iterations = [dump["time/iterations"] for dump in recorder.dumps]
    assert iterations == list(range(log_interval, 5, log_interval))
    assert [dump["time/total_timesteps"] for dump in recorder.dumps] == [i * N_STEPS for i in iterations]
    # training values are dumped from the second iteration on (SB3 dumps before each update)
    assert "train/policy_gradient_loss" in recorder.dumps[-1]


@pytest.mark.parametrize("cls", ALL)
def test_verbose_output(make_model, cls, capsys):
    make_model(cls, _cartpole(n_envs=1), verbose=1).learn(3 * N_STEPS)
    out = capsys.readouterr().out
    assert "Using cpu device" in out
    for key in (
        "train/",
        "policy_gradient_loss",
        "entropy_loss",
        "approx_kl",
        "n_updates",
        "loss",
        "rollout/",
        "ep_rew_mean",
        "total_timesteps",
        "fps",
        *OWN_LOG_KEYS[cls],
    ):
        assert key in out, key


# ---------------------------------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("cls", ALL)
def test_save_load_bytes_buffer(make_model, cls):
    model = make_model(cls, _cartpole()).learn(2 * N_STEPS * 2)
    buffer = io.BytesIO()
    model.save(buffer)
    buffer.seek(0)
    loaded = cls.load(buffer, env=_cartpole(), device="cpu")
    assert type(loaded) is cls
    assert_same_parameters(model.policy, loaded.policy)
    _assert_same_optimizer_state(model.policy.optimizer, loaded.policy.optimizer)
    for attribute in ("num_timesteps", "_n_updates", *STATE[cls]):
        assert getattr(loaded, attribute) == getattr(model, attribute), attribute
    loaded.learn(N_STEPS * 2, reset_num_timesteps=False)


@pytest.mark.parametrize("cls", ALL)
def test_load_custom_objects(make_model, cls, tmp_path):
    make_model(cls, _cartpole()).learn(N_STEPS * 2).save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", env=_cartpole(), device="cpu", custom_objects={"learning_rate": 0.0})
    assert loaded.learning_rate == 0.0 and loaded.lr_schedule(1.0) == 0.0
    before = {k: v.clone() for k, v in loaded.policy.state_dict().items()}
    loaded.learn(N_STEPS * 2, reset_num_timesteps=False)
    assert all(group["lr"] == 0.0 for group in loaded.policy.optimizer.param_groups)
    for key, value in loaded.policy.state_dict().items():
        assert th.equal(value, before[key]), key  # a zero learning rate leaves every parameter as it was


@pytest.mark.parametrize("cls", ALL)
def test_load_without_env(make_model, cls, tmp_path):
    model = make_model(cls, _cartpole()).learn(N_STEPS * 2)
    model.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", device="cpu")
    assert loaded.env is None and loaded.get_env() is None
    obs = model.get_env().reset()
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    # learn() without an env: the error SB3's PPO raises (an AssertionError on `self.env is not None`)
    sb3 = PPO("MlpPolicy", "CartPole-v1", n_steps=N_STEPS, batch_size=32, policy_kwargs=TINY, device="cpu")
    sb3.save(tmp_path / "sb3")
    sb3_loaded = PPO.load(tmp_path / "sb3", device="cpu")
    with pytest.raises(AssertionError) as sb3_error:
        sb3_loaded.learn(N_STEPS)
    with pytest.raises(type(sb3_error.value)):
        loaded.learn(N_STEPS, reset_num_timesteps=False)
    loaded.set_env(_cartpole())
    loaded.learn(N_STEPS * 2, reset_num_timesteps=False)
    assert loaded.num_timesteps == 2 * N_STEPS * 2


# ---------------------------------------------------------------------------------------------------- gSDE by action space

SDE_ENVS = {
    "box": lambda: IdentityEnvBox(-1, 1, ep_length=10),
    "discrete": lambda: IdentityEnv(4, ep_length=10),
    "multidiscrete": lambda: IdentityEnvMultiDiscrete(3, ep_length=10),
    "multibinary": lambda: IdentityEnvMultiBinary(3, ep_length=10),
}
SDE_VALID = {"box"}


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize("space", sorted(SDE_ENVS))
def test_gsde_only_for_box(make_model, cls, space):
    env = make_vec_env(SDE_ENVS[space], n_envs=2)
    if space not in SDE_VALID:
        with pytest.raises(ValueError, match=r"gSDE.*can only be used with continuous actions"):
            make_model(cls, env, use_sde=True)
        return
    for squash_output in (False, True):
        model = make_model(
            cls, env, use_sde=True, sde_sample_freq=4, policy_kwargs=dict(net_arch=[16], squash_output=squash_output)
        )
        assert isinstance(model.policy.action_dist, StateDependentNoiseDistribution)
        model.learn(2 * N_STEPS * 2)
        assert all(th.isfinite(p).all() for p in model.policy.parameters())
        actions, _ = model.predict(env.reset(), deterministic=False)
        assert actions.shape == (2, 1) and np.all(np.abs(actions) <= 1)


# ---------------------------------------------------------------------------------------------------- reproducibility


def _trained(make_model, cls, seed):
    model = make_model(cls, _cartpole(seed=seed), seed=seed)
    logger, recorder = _recording_logger()
    model.set_logger(logger)
    model.learn(4 * N_STEPS * 2)
    # dumps happen before each update: the last update's values are still in the logger
    logged = [*recorder.dumps, dict(model.logger.name_to_value)]
    values = [{k: v for k, v in dump.items() if not k.startswith("time/")} for dump in logged]
    return model, values


def _same(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("cls", ALL)
def test_reproducible_parameters_and_logged_losses(make_model, cls):
    a, logged_a = _trained(make_model, cls, seed=0)
    b, logged_b = _trained(make_model, cls, seed=0)
    c, logged_c = _trained(make_model, cls, seed=1)
    assert_same_parameters(a.policy, b.policy)
    _assert_same_optimizer_state(a.policy.optimizer, b.policy.optimizer)
    assert any(k.startswith("train/") and "loss" in k for k in logged_a[-1])
    assert len(logged_a) == len(logged_b) == 5
    for dump_a, dump_b in zip(logged_a, logged_b, strict=True):
        assert dump_a.keys() == dump_b.keys()
        for key in dump_a:
            assert _same(dump_a[key], dump_b[key]), (key, dump_a[key], dump_b[key])
    # another seed: other parameters and other losses
    assert any(not th.equal(pa, pc) for pa, pc in zip(a.policy.parameters(), c.policy.parameters(), strict=True))
    losses_a = [(k, v) for dump in logged_a for k, v in dump.items() if k.startswith("train/") and "loss" in k]
    losses_c = [(k, v) for dump in logged_c for k, v in dump.items() if k.startswith("train/") and "loss" in k]
    assert losses_a != losses_c
