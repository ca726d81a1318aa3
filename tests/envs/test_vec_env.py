"""GymnasiumVecEnv gives SB3 what DummyVecEnv gives, for every autoreset mode, and SB3 trains on it.

The reference is a ``DummyVecEnv`` of ``Monitor(gym.make(...))`` environments with the same seeds: observations,
rewards, dones, ``terminal_observation``, ``TimeLimit.truncated`` and episode statistics must be equal at every step,
over enough steps for both terminations and time-limit truncations (CartPole with ``max_episode_steps=15``).
Gymnasium's native ``CartPoleVectorEnv`` has other random draws than ``gym.make`` environments; it is checked against
itself: the adapter must give what the native environment gives, minus its reset steps, without advancing the other
environments.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
from gymnasium.vector import AutoresetMode, VectorEnv
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

from sb3_ppo_variants import REINFORCE, ClipPPO, KLPenaltyPPO
from sb3_ppo_variants.envs.vec_env import GymnasiumVecEnv, make_gymnasium_vec_env

N_ENVS = 4
MAX_STEPS = 15  # a random CartPole policy both falls (terminated) and lasts 15 steps (truncated) often
SEED = 3


def _dict_obs(env: gym.Env) -> gym.Env:
    """CartPole with a Dict observation (the adapter's dict paths)."""
    box = env.observation_space
    assert isinstance(box, spaces.Box)
    x = spaces.Box(box.low[:2], box.high[:2], dtype=np.float32)
    space = spaces.Dict({"x": x, "a": spaces.Box(box.low[2:], box.high[2:], dtype=np.float32)})
    return gym.wrappers.TransformObservation(env, lambda obs: {"x": obs[:2], "a": obs[2:]}, space)


def _dummy(n_envs: int = N_ENVS, max_steps: int = MAX_STEPS, wrapper: Any = None) -> DummyVecEnv:
    def make() -> gym.Env:
        env = gym.make("CartPole-v1", max_episode_steps=max_steps)
        return Monitor(wrapper(env) if wrapper else env)

    return DummyVecEnv([make for _ in range(n_envs)])


def _ours(mode: AutoresetMode, vectorizer: str = "sync", n_envs: int = N_ENVS, max_steps: int = MAX_STEPS, **kwargs: Any):
    return make_gymnasium_vec_env(
        "CartPole-v1",
        n_envs,
        vectorization_mode=vectorizer,
        vector_kwargs={"autoreset_mode": mode},
        max_episode_steps=max_steps,
        **kwargs,
    )


def _assert_obs_equal(a: Any, b: Any) -> None:
    if isinstance(a, dict):
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
            assert a[key].dtype == b[key].dtype
    else:
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


def _compare_runs(reference, ours, steps: int = 250) -> tuple[int, int]:
    """Step both with the same random actions; every output must agree. Returns (terminations, truncations)."""
    reference.seed(SEED)
    ours.seed(SEED)
    _assert_obs_equal(reference.reset(), ours.reset())
    assert ours.reset_infos == reference.reset_infos
    rng = np.random.default_rng(0)
    terminations = truncations = 0
    for _ in range(steps):
        actions = rng.integers(0, 2, size=reference.num_envs)
        obs_ref, rew_ref, done_ref, infos_ref = reference.step(actions)
        obs, rew, done, infos = ours.step(actions)
        _assert_obs_equal(obs_ref, obs)
        np.testing.assert_array_equal(rew_ref, rew)
        assert rew.dtype == rew_ref.dtype == np.float32
        np.testing.assert_array_equal(done_ref, done)
        for info_ref, info in zip(infos_ref, infos, strict=True):
            assert set(info_ref) == set(info)
            assert info_ref["TimeLimit.truncated"] == info["TimeLimit.truncated"]
            if "terminal_observation" in info_ref:
                _assert_obs_equal(info_ref["terminal_observation"], info["terminal_observation"])
                truncations += info["TimeLimit.truncated"]
                terminations += not info["TimeLimit.truncated"]
            if "episode" in info_ref:  # "t" is wall-clock time
                assert (info_ref["episode"]["r"], info_ref["episode"]["l"]) == (info["episode"]["r"], info["episode"]["l"])
        assert ours.reset_infos == reference.reset_infos
    return terminations, truncations


@pytest.mark.parametrize(
    "mode, vectorizer",
    [(mode, "sync") for mode in AutoresetMode] + [(AutoresetMode.NEXT_STEP, "async"), (AutoresetMode.SAME_STEP, "async")],
    ids=lambda value: getattr(value, "name", value),
)
def test_same_steps_as_dummy_vec_env(mode, vectorizer):
    reference, ours = _dummy(), _ours(mode, vectorizer)
    try:
        assert ours.autoreset_mode == mode
        terminations, truncations = _compare_runs(reference, ours)
    finally:
        ours.close()
    assert terminations > 10 and truncations > 10


@pytest.mark.parametrize("mode", list(AutoresetMode), ids=lambda mode: mode.name)
def test_dict_observations_same_as_dummy_vec_env(mode):
    reference, ours = _dummy(wrapper=_dict_obs), _ours(mode, wrappers=[_dict_obs])
    assert isinstance(ours.observation_space, spaces.Dict)
    terminations, truncations = _compare_runs(reference, ours, steps=100)
    assert terminations and truncations


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "Pendulum-v1"])
def test_other_spaces_same_as_dummy_vec_env(env_id):
    """Discrete observations (FrozenLake: slippery, terminations) and Box actions (Pendulum: truncations only)."""
    mode = AutoresetMode.NEXT_STEP
    reference = DummyVecEnv([lambda: Monitor(gym.make(env_id, max_episode_steps=10)) for _ in range(N_ENVS)])
    ours = make_gymnasium_vec_env(
        env_id, N_ENVS, vectorization_mode="sync", vector_kwargs={"autoreset_mode": mode}, max_episode_steps=10
    )
    assert ours.observation_space == reference.observation_space and ours.action_space == reference.action_space
    reference.seed(SEED)
    ours.seed(SEED)
    _assert_obs_equal(reference.reset(), ours.reset())
    space = copy.deepcopy(reference.action_space)
    space.seed(0)
    ends = 0
    for _ in range(60):
        actions = np.stack([space.sample() for _ in range(N_ENVS)])
        obs_ref, rew_ref, done_ref, infos_ref = reference.step(actions)
        obs, rew, done, infos = ours.step(actions)
        _assert_obs_equal(obs_ref, obs)
        np.testing.assert_array_equal(rew_ref, rew)
        np.testing.assert_array_equal(done_ref, done)
        for info_ref, info in zip(infos_ref, infos, strict=True):
            assert info_ref["TimeLimit.truncated"] == info["TimeLimit.truncated"]
            if "terminal_observation" in info_ref:
                ends += 1
                np.testing.assert_array_equal(info_ref["terminal_observation"], info["terminal_observation"])
                assert info_ref["episode"]["r"] == info["episode"]["r"]
    assert ends > 5


def test_second_reset_and_seedless_reset_as_dummy_vec_env():
    """Seeds are used once: a reset after some steps, without seed(), continues each env's generator, as DummyVecEnv."""
    reference, ours = _dummy(), _ours(AutoresetMode.NEXT_STEP)
    _compare_runs(reference, ours, steps=30)
    _assert_obs_equal(reference.reset(), ours.reset())
    actions = np.ones(N_ENVS, dtype=np.int64)
    _assert_obs_equal(reference.step(actions)[0], ours.step(actions)[0])


# ---------------------------------------------------------------- Gymnasium's native vectorised CartPole


def _native(n_envs: int, max_steps: int = MAX_STEPS) -> VectorEnv:
    return gym.make_vec("CartPole-v1", num_envs=n_envs, vectorization_mode="vector_entry_point", max_episode_steps=max_steps)


def test_native_cartpole_one_env_is_native_run_without_reset_steps():
    """One environment: the adapter's run is the native NEXT_STEP run with its reset steps removed (same random draws)."""
    raw, ours = _native(1), GymnasiumVecEnv(_native(1))
    assert isinstance(raw, CartPoleVectorEnv)
    ours.seed(SEED)
    obs_raw, _ = raw.reset(seed=SEED)
    np.testing.assert_array_equal(ours.reset(), obs_raw)
    rng = np.random.default_rng(1)
    episode_ends = 0
    for _ in range(200):
        action = rng.integers(0, 2, size=1)
        obs_raw, rew_raw, term, trunc, _ = raw.step(action)
        obs, rew, done, infos = ours.step(action)
        np.testing.assert_array_equal(rew, rew_raw)
        assert done[0] == (term[0] or trunc[0])
        if done[0]:
            episode_ends += 1
            np.testing.assert_array_equal(infos[0]["terminal_observation"], obs_raw[0])
            assert infos[0]["TimeLimit.truncated"] == bool(trunc[0] and not term[0])
            obs_raw, rew_raw, term, trunc, _ = raw.step(np.zeros(1, dtype=np.int64))  # the native reset step
            assert rew_raw[0] == 0.0 and not (term[0] or trunc[0])
        np.testing.assert_array_equal(obs, obs_raw)
    assert episode_ends > 5


def test_native_cartpole_resets_without_advancing_other_envs():
    """Several environments, each step checked against a copy of the native environment stepped with the same actions:
    environments that go on are exactly where the native ones are, ended ones are reset with the draw the native reset
    step makes, and no environment ever sees a reset step (reward 0)."""
    ours = GymnasiumVecEnv(_native(N_ENVS))
    native = ours.venv
    ours.seed(SEED)
    ours.reset()
    rng = np.random.default_rng(2)
    resets = 0
    for _ in range(200):
        actions = rng.integers(0, 2, size=N_ENVS)
        twin = copy.deepcopy(native)
        obs_twin, rew_twin, term, trunc, _ = twin.step(actions)
        obs, rew, done, infos = ours.step(actions)
        np.testing.assert_array_equal(rew, rew_twin)
        assert np.all(rew == 1.0)
        np.testing.assert_array_equal(done, term | trunc)
        np.testing.assert_array_equal(obs[~done], obs_twin[~done])
        if done.any():
            resets += int(done.sum())
            for i in np.flatnonzero(done):
                np.testing.assert_array_equal(infos[i]["terminal_observation"], obs_twin[i])
            reset_twin, rew_reset, *_ = twin.step(actions)  # the twin's reset step: what the native env would draw
            np.testing.assert_array_equal(obs[done], reset_twin[done])
            assert np.all(rew_reset[done] == 0.0)
            assert np.all(np.abs(obs[done]) <= 0.05)
    assert resets > 10


def test_native_cartpole_seeding():
    """One seed for the native environment (one generator): SB3's first seed, as ``reset(seed=...)`` takes it."""
    a, b = GymnasiumVecEnv(_native(N_ENVS)), GymnasiumVecEnv(_native(N_ENVS))
    a.seed(5)
    b.seed(5)
    np.testing.assert_array_equal(a.reset(), b.reset())
    c = GymnasiumVecEnv(_native(N_ENVS))
    c.seed(5)
    np.testing.assert_array_equal(c.reset(), _native(N_ENVS).reset(seed=5)[0])
    c._seeds = [5, None, 7, 8]
    with pytest.raises(ValueError, match="one seed"):
        c.reset()


# ---------------------------------------------------------------- episode statistics


def _record_episode_statistics(mode: AutoresetMode) -> VectorEnv:
    venv = gym.make_vec(
        "CartPole-v1",
        num_envs=N_ENVS,
        vectorization_mode="sync",
        max_episode_steps=MAX_STEPS,
        vector_kwargs={"autoreset_mode": mode},
    )
    return gym.wrappers.vector.RecordEpisodeStatistics(venv)


@pytest.mark.skipif(
    tuple(int(part) for part in gym.__version__.split(".")[:2]) < (1, 4),
    reason="before Gymnasium 1.4 its vector RecordEpisodeStatistics reports SAME_STEP episodes other than Monitor "
    "does (seen with 1.1-1.3); the adapter passes them on as given",
)
def test_episode_statistics_of_a_gymnasium_wrapper_are_kept():
    """A vector RecordEpisodeStatistics already reports "episode": the adapter does not overwrite it, and (SAME_STEP)
    it stays with the step that ends the episode, not with the reset."""
    ours, reference = GymnasiumVecEnv(_record_episode_statistics(AutoresetMode.SAME_STEP)), _dummy()
    reference.seed(SEED)
    ours.seed(SEED)
    reference.reset()
    ours.reset()
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(60):
        actions = rng.integers(0, 2, size=N_ENVS)
        infos_ref, infos = reference.step(actions)[3], ours.step(actions)[3]
        for info_ref, info in zip(infos_ref, infos, strict=True):
            assert ("episode" in info) == ("episode" in info_ref)
            if "episode" in info:
                ends += 1
                assert isinstance(info["episode"]["r"], np.floating)  # Gymnasium's, not the adapter's float
                assert info["episode"]["r"] == info_ref["episode"]["r"]
                assert info["episode"]["l"] == info_ref["episode"]["l"]
    assert ends > 5


def test_record_episode_statistics_refused_where_partial_resets_break_it():
    """gymnasium 1.x: a partial reset below the vector RecordEpisodeStatistics zeroes all its running episodes."""
    raw = _record_episode_statistics(AutoresetMode.NEXT_STEP)
    raw.reset(seed=0)
    for _ in range(3):
        raw.step(np.zeros(N_ENVS, dtype=np.int64))
    raw.reset(options={"reset_mask": np.array([True] + [False] * (N_ENVS - 1))})
    assert np.all(raw.episode_lengths == 0)  # the bug: env 1.. had 3 steps
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED):
        with pytest.raises(ValueError, match="RecordEpisodeStatistics"):
            GymnasiumVecEnv(_record_episode_statistics(mode))


def test_no_episode_statistics_when_monitor_is_off():
    ours = _ours(AutoresetMode.NEXT_STEP, monitor=False)
    assert ours.env_is_wrapped(Monitor) == [False] * N_ENVS
    ours.reset()
    for _ in range(40):
        assert all("episode" not in info for info in ours.step(np.zeros(N_ENVS, dtype=np.int64))[3])
    # VecMonitor on top then provides them, without the warning about a Monitor below it
    with_monitor = VecMonitor(_ours(AutoresetMode.NEXT_STEP, monitor=False))
    with_monitor.reset()
    ends = sum("episode" in info for _ in range(40) for info in with_monitor.step(np.zeros(N_ENVS, dtype=np.int64))[3])
    assert ends > 0


# ---------------------------------------------------------------- SB3's algorithms on the adapter


def _max_param_diff(a: th.nn.Module, b: th.nn.Module) -> float:
    return max((pa - pb).abs().max().item() for pa, pb in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("cls", [PPO, ClipPPO], ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP], ids=lambda mode: mode.name)
def test_training_on_the_adapter_equals_training_on_dummy_vec_env(cls, mode):
    """Same seed, same settings: the same parameters after 2 updates, timeouts (and their bootstrap) included."""
    kwargs = dict(n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16]))
    models = []
    for env in (_dummy(max_steps=10), _ours(mode, max_steps=10)):
        timeouts: list[bool] = []
        model = cls("MlpPolicy", env, **kwargs)
        original_step_wait = env.step_wait

        def step_wait(original=original_step_wait, timeouts=timeouts):
            result = original()
            timeouts.extend(info["TimeLimit.truncated"] for info in result[3])
            return result

        env.step_wait = step_wait  # type: ignore[method-assign]
        model.learn(2 * 32 * N_ENVS)
        assert sum(timeouts) > 5  # the bootstrap of truncated episodes is exercised
        models.append((model, timeouts))
    (reference, timeouts_ref), (ours, timeouts) = models
    assert timeouts == timeouts_ref
    assert ours._n_updates == reference._n_updates > 0
    assert _max_param_diff(reference.policy, ours.policy) == 0.0
    assert [ep["r"] for ep in ours.ep_info_buffer] == [ep["r"] for ep in reference.ep_info_buffer]


@pytest.mark.parametrize("cls", [PPO, ClipPPO], ids=lambda cls: cls.__name__)
def test_training_on_native_cartpole(cls, make_model):
    env = make_gymnasium_vec_env("CartPole-v1", 8, vectorization_mode="vector_entry_point")
    model = cls(
        "MlpPolicy", env, n_steps=32, batch_size=64, n_epochs=2, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16])
    )
    fresh = copy.deepcopy(model.policy)
    model.learn(3 * 32 * 8)
    assert model.num_timesteps == 3 * 32 * 8
    assert len(model.ep_info_buffer) > 0  # rollout/ep_rew_mean is logged
    assert _max_param_diff(fresh, model.policy) > 1e-4


@pytest.mark.parametrize("cls", [KLPenaltyPPO, REINFORCE], ids=lambda cls: cls.__name__)
def test_our_other_algorithms_train_on_it(cls, make_model):
    model = make_model(cls, env=make_gymnasium_vec_env("CartPole-v1", 4, vectorization_mode="vector_entry_point"))
    model.learn(2 * 64 * 4)
    assert model.num_timesteps == 2 * 64 * 4 and len(model.ep_info_buffer) > 0


@pytest.mark.parametrize("cls", [A2C, DQN], ids=lambda cls: cls.__name__)
def test_sb3_algorithms_train_on_it(cls):
    """Any SB3 algorithm: on-policy A2C, and off-policy DQN, which stores ``terminal_observation`` as next obs."""
    env = make_gymnasium_vec_env("CartPole-v1", 4, seed=0, vectorization_mode="sync", max_episode_steps=MAX_STEPS)
    kwargs: dict[str, Any] = dict(learning_starts=16) if cls is DQN else {}
    model = cls("MlpPolicy", env, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16]), **kwargs)
    model.learn(200)
    assert model.num_timesteps >= 200 and len(model.ep_info_buffer) > 0


def test_vec_normalize_on_top_and_its_statistics_saved_and_loaded(tmp_path):
    """VecNormalize over the adapter normalises as over DummyVecEnv (terminal observations included), trains, and
    its statistics survive save/load."""
    reference, ours = VecNormalize(_dummy()), VecNormalize(_ours(AutoresetMode.NEXT_STEP))
    _compare_runs(reference, ours, steps=60)
    np.testing.assert_array_equal(ours.obs_rms.mean, reference.obs_rms.mean)
    np.testing.assert_array_equal(ours.ret_rms.var, reference.ret_rms.var)

    env = VecNormalize(make_gymnasium_vec_env("CartPole-v1", 8, vectorization_mode="vector_entry_point"))
    model = PPO(
        "MlpPolicy", env, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu", policy_kwargs=dict(net_arch=[16])
    )
    model.learn(2 * 32 * 8)
    path = tmp_path / "vec_normalize.pkl"
    env.save(str(path))
    loaded = VecNormalize.load(str(path), make_gymnasium_vec_env("CartPole-v1", 8, vectorization_mode="vector_entry_point"))
    np.testing.assert_array_equal(loaded.obs_rms.mean, env.obs_rms.mean)
    np.testing.assert_array_equal(loaded.obs_rms.var, env.obs_rms.var)
    np.testing.assert_array_equal(loaded.ret_rms.var, env.ret_rms.var)
    assert loaded.obs_rms.count == env.obs_rms.count
    loaded.training = False
    obs = loaded.reset()
    assert obs.shape == (8, 4)
    PPO("MlpPolicy", loaded, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu").learn(32 * 8)


# ---------------------------------------------------------------- the rest of the VecEnv interface


def test_attributes_methods_and_wrappers_of_sync_sub_envs():
    ours = _ours(AutoresetMode.NEXT_STEP)
    assert ours.get_attr("spec", indices=[1])[0].id == "CartPole-v1"
    ours.set_attr("answer", 42, indices=[0, 2])
    assert ours.get_attr("answer", indices=[0, 2]) == [42, 42]
    assert not ours.has_attr("answer")  # env 1 has none
    assert ours.env_method("get_wrapper_attr", "answer", indices=0) == [42]
    assert ours.env_is_wrapped(gym.wrappers.TimeLimit) == [True] * N_ENVS
    assert ours.env_is_wrapped(gym.wrappers.RecordVideo) == [False] * N_ENVS
    assert ours.env_is_wrapped(Monitor) == [True] * N_ENVS  # the adapter reports Monitor's statistics


def test_attributes_of_a_native_env():
    ours = GymnasiumVecEnv(_native(N_ENVS))
    assert ours.get_attr("max_episode_steps") == [MAX_STEPS] * N_ENVS
    assert ours.has_attr("force_mag") and not ours.has_attr("answer")
    ours.set_attr("force_mag", 5.0)
    assert ours.venv.force_mag == 5.0  # type: ignore[attr-defined]
    with pytest.raises(NotImplementedError, match="indices=None"):
        ours.set_attr("force_mag", 5.0, indices=[0])
    with pytest.raises(NotImplementedError, match="directly"):
        ours.env_method("render")
    assert ours.env_is_wrapped(gym.wrappers.TimeLimit) == [False] * N_ENVS


def test_async_attributes():
    ours = _ours(AutoresetMode.SAME_STEP, "async", n_envs=2)
    try:
        assert not ours.has_attr("answer")  # asked without breaking the workers
        ours.set_attr("answer", 7)
        assert ours.has_attr("answer")
        assert ours.get_attr("answer", indices=[1]) == [7]
        with pytest.raises(NotImplementedError, match="indices=None"):
            ours.set_attr("answer", 8, indices=[1])
        assert ours.env_method("get_wrapper_attr", "answer")[1] == 7
        with pytest.raises(NotImplementedError, match="indices=None"):
            ours.env_method("get_wrapper_attr", "answer", indices=[1])
        with pytest.raises(NotImplementedError, match="Monitor only"):
            ours.env_is_wrapped(gym.wrappers.TimeLimit)
        assert ours.env_is_wrapped(Monitor) == [True, True]
    finally:
        ours.close()


@pytest.mark.parametrize("vectorizer", ["sync", "vector_entry_point"])
def test_render_rgb_array(vectorizer):
    ours = make_gymnasium_vec_env("CartPole-v1", 2, vectorization_mode=vectorizer, render_mode="rgb_array")
    ours.reset()
    image = ours.render()
    assert image is not None and image.ndim == 3 and image.shape[-1] == 3
    ours.close()


# ---------------------------------------------------------------- bad input


class _TupleObsVectorEnv(VectorEnv):
    def __init__(self) -> None:
        self.num_envs = 2
        self.single_observation_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3)))
        self.single_action_space = spaces.Discrete(2)
        self.metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}


def test_bad_input_gives_clear_errors():
    with pytest.raises(TypeError, match=r"gymnasium.vector.VectorEnv.*make_vec"):
        GymnasiumVecEnv(gym.make("CartPole-v1"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="already an SB3 VecEnv"):
        GymnasiumVecEnv(_dummy())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"observation space .*Tuple.*SB3"):
        GymnasiumVecEnv(_TupleObsVectorEnv())
    text_actions = _TupleObsVectorEnv()
    text_actions.single_observation_space = spaces.Box(0, 1, (2,))
    text_actions.single_action_space = spaces.Text(5)
    with pytest.raises(TypeError, match="action space"):
        GymnasiumVecEnv(text_actions)
    # a native NEXT_STEP env behind a vector wrapper: the known partial reset would bypass the wrapper
    wrapped_native = gym.wrappers.vector.ClipReward(_native(2), min_reward=0.0)
    with pytest.raises(TypeError, match="partial_reset"):
        GymnasiumVecEnv(wrapped_native)
    # gymnasium 1.x's AsyncVectorEnv without shared memory keeps a pending NEXT_STEP reset through a partial reset
    with pytest.raises(ValueError, match="shared_memory"):
        make_gymnasium_vec_env("CartPole-v1", 2, vectorization_mode="async", vector_kwargs={"shared_memory": False})
    ours = _ours(AutoresetMode.NEXT_STEP)
    ours.set_options([{"low": -0.01}, {}, {}, {}])
    with pytest.raises(ValueError, match="one options dict"):
        ours.reset()


def test_same_options_for_all_envs_are_passed_on():
    ours, reference = _ours(AutoresetMode.NEXT_STEP), _dummy()
    for env in (ours, reference):
        env.seed(1)
        env.set_options({"low": -0.01, "high": 0.01})
    _assert_obs_equal(reference.reset(), ours.reset())
    assert np.all(np.abs(ours.reset()) <= 0.05)


def test_a_partial_reset_that_resets_everything_is_caught():
    def reset_all(venv, mask):
        return venv.reset()

    ours = GymnasiumVecEnv(_native(N_ENVS, max_steps=100), partial_reset=reset_all)
    ours.reset()
    ours.venv.steps[0] = 99  # type: ignore[attr-defined]  # env 0 alone reaches its time limit at the next step
    with pytest.raises(RuntimeError, match="does not support partial resets"):
        ours.step(np.zeros(N_ENVS, dtype=np.int64))
