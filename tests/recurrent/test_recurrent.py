"""Recurrent variants (sb3_ppo_variants.recurrent) against sb3-contrib's RecurrentPPO and by hand."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import rl_zoo3.import_envs  # noqa: F401  (registers the NoVel envs: CartPoleNoVel-v1, PendulumNoVel-v1)
import torch as th
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.maskable.evaluation import evaluate_policy as maskable_evaluate_policy
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.wrappers import ActionMasker
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_ppo_variants import (
    ClipPPO,
    MaskableClipPPO,
    MaskableRecurrentClipPPO,
    MaskableRecurrentKLPenaltyPPO,
    MaskableRecurrentREINFORCE,
    MaskableRecurrentSPO,
    RecurrentClipPPO,
    RecurrentKLPenaltyPPO,
    RecurrentREINFORCE,
    RecurrentSPO,
)
from sb3_ppo_variants.kl_penalty_ppo.kl import closed_form_kl
from sb3_ppo_variants.masking.masks import ActionMaskError
from tests.conftest import assert_same_next_update

LSTM = dict(lstm_hidden_size=16, net_arch=[16])
#: the LSTM layouts of sb3-contrib's policy: separate actor and critic LSTMs (its default), one shared LSTM, no critic LSTM
LAYOUTS = {
    "separate": {},
    "shared": dict(shared_lstm=True, enable_critic_lstm=False),
    "critic_mlp": dict(enable_critic_lstm=False),
}
#: per env: settings that cross the rollout boundary, truncate episodes (Pendulum's 200 steps) and pad sequences
SETTINGS = {
    "CartPoleNoVel-v1": dict(n_steps=32, batch_size=16, n_epochs=2),
    "PendulumNoVel-v1": dict(n_steps=128, batch_size=48, n_epochs=2, clip_range_vf=0.2, ent_coef=0.01),
    "PendulumNoVel-v1-gsde": dict(n_steps=128, batch_size=64, n_epochs=2, use_sde=True, sde_sample_freq=4),
}
N_ENVS = 2


def _env(env_id: str):
    return make_vec_env(env_id.removesuffix("-gsde"), n_envs=N_ENVS, seed=0)


def _params(model) -> th.Tensor:
    return th.nn.utils.parameters_to_vector(model.policy.parameters()).detach()


def _all_legal(env_id: str):
    def make():
        return ActionMasker(gym.make(env_id), lambda env: np.ones(env.action_space.n, dtype=bool))

    return make


# ---------------------------------------------------------------------------------------------- 1. equivalence


@pytest.mark.parametrize("env_id", list(SETTINGS))
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("numerics", ["sb3", "fast"])
def test_same_parameters_as_recurrent_ppo_after_three_updates(env_id, layout, numerics):
    kwargs = dict(**SETTINGS[env_id], policy_kwargs={**LSTM, **LAYOUTS[layout]}, seed=3, device="cpu")
    steps = 3 * kwargs["n_steps"] * N_ENVS
    reference = RecurrentPPO("MlpLstmPolicy", _env(env_id), **kwargs).learn(steps)
    ours = RecurrentClipPPO("MlpLstmPolicy", _env(env_id), numerics=numerics, **kwargs).learn(steps)
    fresh = RecurrentClipPPO("MlpLstmPolicy", _env(env_id), **kwargs)
    assert ours._n_updates == reference._n_updates == 3 * kwargs["n_epochs"]
    assert (_params(fresh) - _params(ours)).abs().max() > 1e-4  # it trained
    difference = (_params(reference) - _params(ours)).abs().max()
    if numerics == "sb3":
        assert difference == 0.0  # the same calls in the same order
    assert difference <= 1e-5


@pytest.mark.parametrize("numerics", ["sb3", "fast"])
def test_masked_recurrent_equals_recurrent_ppo_when_every_action_is_legal(numerics):
    kwargs = dict(**SETTINGS["CartPoleNoVel-v1"], policy_kwargs=LSTM, seed=3, device="cpu")
    reference = RecurrentPPO("MlpLstmPolicy", _env("CartPoleNoVel-v1"), **kwargs).learn(192)
    env = make_vec_env(_all_legal("CartPoleNoVel-v1"), n_envs=N_ENVS, seed=0)
    ours = MaskableRecurrentClipPPO("MlpLstmPolicy", env, numerics=numerics, **kwargs).learn(192)
    assert ours._n_updates == reference._n_updates
    assert (_params(reference) - _params(ours)).abs().max() <= 1e-5


def test_defaults_are_recurrent_ppos():
    ours = RecurrentClipPPO("MlpLstmPolicy", "CartPoleNoVel-v1", device="cpu")
    reference = RecurrentPPO("MlpLstmPolicy", "CartPoleNoVel-v1", device="cpu")
    for name in ("n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm"):
        assert getattr(ours, name) == getattr(reference, name), name
    assert ours.policy.lstm_actor.hidden_size == reference.policy.lstm_actor.hidden_size == 256


# ---------------------------------------------------------------------------------------------- 2. the objectives


def _replayed_kl(model) -> float:
    """KL[pi_old, pi_now] per step, by running the current policy through each env's rollout one step at a time from
    the rollout's first stored state (the reference for the padded-sequence computation)."""
    buffer = model.rollout_buffer
    n_steps, n_envs = buffer.buffer_size, buffer.n_envs
    # the buffer is flattened env by env after training: index env * n_steps + t
    obs = buffer.observations.reshape(n_envs, n_steps, -1)
    starts = buffer.episode_starts.reshape(n_envs, n_steps)
    old = buffer.dist_params.reshape(n_envs, n_steps, -1)
    hidden = buffer.hidden_states_pi.reshape(n_envs, n_steps, *buffer.hidden_states_pi.shape[1:])
    cell = buffer.cell_states_pi.reshape(n_envs, n_steps, *buffer.cell_states_pi.shape[1:])
    kls = []
    with th.no_grad():
        for env in range(n_envs):
            state = (th.as_tensor(hidden[env, 0][:, None]), th.as_tensor(cell[env, 0][:, None]))
            for t in range(n_steps):
                distribution, state = model.policy.get_distribution(
                    th.as_tensor(obs[env, t][None]), state, th.as_tensor(starts[env, t : t + 1])
                )
                kls.append(float(closed_form_kl(th.as_tensor(old[env, t][None]), distribution)))
    return float(np.mean(kls))


@pytest.mark.parametrize("env_id", ["CartPoleNoVel-v1", "PendulumNoVel-v1"])
def test_kl_penalty_measures_the_kl_of_every_real_step(env_id):
    model = RecurrentKLPenaltyPPO(
        "MlpLstmPolicy", _env(env_id), n_steps=64, batch_size=40, n_epochs=3, policy_kwargs=LSTM, seed=1, device="cpu"
    )
    model.learn(2 * 64 * N_ENVS)
    assert model.measure_kl() == pytest.approx(_replayed_kl(model), rel=1e-4, abs=1e-9)
    # the paper's rule, once per update, from that KL (tested on crafted values in tests/algorithms/test_kl_penalty.py)
    assert model.logger.name_to_value["train/kl"] == pytest.approx(model.measure_kl(), rel=1e-4, abs=1e-9)


def test_reinforce_reads_only_steps_of_known_return():
    model = RecurrentREINFORCE("MlpLstmPolicy", _env("CartPoleNoVel-v1"), n_steps=40, policy_kwargs=LSTM, seed=0)
    model.learn(160)
    buffer = model.rollout_buffer
    (batch,) = list(buffer.get(None))
    assert int(batch.mask.sum()) == int(buffer.valid.sum()) < buffer.valid.size  # the last episodes are unfinished
    assert model._n_updates == 2  # one gradient step per rollout


def test_reinforce_with_a_baseline_bootstraps_and_uses_every_step():
    model = RecurrentREINFORCE("MlpLstmPolicy", _env("CartPoleNoVel-v1"), n_steps=40, use_baseline=True, policy_kwargs=LSTM)
    model.learn(80)
    (batch,) = list(model.rollout_buffer.get(None))
    assert int(batch.mask.sum()) == model.rollout_buffer.valid.size  # every real step (the rest is padding)


@pytest.mark.parametrize("cls", [MaskableRecurrentClipPPO, MaskableRecurrentKLPenaltyPPO, MaskableRecurrentREINFORCE])
def test_masked_recurrent_variants_train_and_evaluate_with_masks(cls):
    env = make_vec_env(lambda: ActionMasker(gym.make("CartPoleNoVel-v1"), lambda e: np.array([True, False])), n_envs=2)
    model = cls(
        "MlpLstmPolicy",
        env,
        n_steps=32,
        policy_kwargs=LSTM,
        seed=0,
        **({} if "REINFORCE" in cls.__name__ else {"batch_size": 16}),
    )
    model.learn(128)
    actions = model.rollout_buffer.actions
    assert np.all(actions == 0)  # action 1 is never legal
    rewards, _ = maskable_evaluate_policy(model, env, n_eval_episodes=2, warn=False)
    assert rewards > 0


# ---------------------------------------------------------------------------------------------- 3. drop-in


def test_predict_carries_the_state_and_evaluate_policy_runs():
    model = RecurrentClipPPO("MlpLstmPolicy", "CartPoleNoVel-v1", n_steps=32, batch_size=32, policy_kwargs=LSTM, seed=0)
    model.learn(64)
    obs = model.get_env().reset()
    _, state = model.predict(obs, deterministic=True)
    assert state[0].shape == (1, 1, 16)
    _, state_again = model.predict(obs, state=state, episode_start=np.array([False]), deterministic=True)
    assert not np.array_equal(state[0], state_again[0])  # the state moved on
    mean_reward, _ = evaluate_policy(model, model.get_env(), n_eval_episodes=2)
    assert mean_reward > 0


def test_save_and_load_keep_the_training_state(tmp_path):
    model = RecurrentKLPenaltyPPO(
        "MlpLstmPolicy", _env("CartPoleNoVel-v1"), n_steps=32, batch_size=16, policy_kwargs=LSTM, seed=0
    )
    model.learn(128)
    model.save(tmp_path / "model.zip")
    loaded = RecurrentKLPenaltyPPO.load(tmp_path / "model.zip", env=_env("CartPoleNoVel-v1"))
    assert loaded.current_beta == model.current_beta and loaded.numerics == model.numerics
    assert loaded._last_lstm_states.pi[0].abs().sum() == 0  # hidden states are not saved (as RecurrentPPO)
    assert_same_next_update(model, loaded)


def test_masked_recurrent_save_and_load(tmp_path):
    env = make_vec_env(_all_legal("CartPoleNoVel-v1"), n_envs=N_ENVS, seed=0)
    model = MaskableRecurrentClipPPO("MlpLstmPolicy", env, n_steps=32, batch_size=16, policy_kwargs=LSTM, seed=0).learn(64)
    model.save(tmp_path / "masked.zip")
    loaded = MaskableRecurrentClipPPO.load(tmp_path / "masked.zip", env=env)
    assert loaded.rollout_buffer.mask_dim == 2
    assert_same_next_update(model, loaded)


def test_a_recurrent_ppo_file_loads_where_the_shapes_agree(tmp_path):
    reference = RecurrentPPO("MlpLstmPolicy", "CartPoleNoVel-v1", n_steps=32, batch_size=16, policy_kwargs=LSTM, seed=0)
    reference.learn(64)
    reference.save(tmp_path / "rppo.zip")
    with pytest.warns(UserWarning, match="not saved by sb3-ppo-variants"):
        ours = RecurrentClipPPO.load(tmp_path / "rppo.zip", env=reference.get_env())
    obs = reference.get_env().reset()
    expected, expected_state = reference.predict(obs, deterministic=True)
    action, state = ours.predict(obs, deterministic=True)
    assert np.array_equal(action, expected) and np.array_equal(state[0], expected_state[0])
    ours.learn(64)  # and trains on
    # refused with the reason: another observation space; a memoryless algorithm
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="Observation spaces do not match"):
        RecurrentClipPPO.load(tmp_path / "rppo.zip", env=make_vec_env("PendulumNoVel-v1"))
    with pytest.warns(UserWarning), pytest.raises(TypeError, match=r"recurrent \(LSTM\) policy"):
        ClipPPO.load(tmp_path / "rppo.zip")


# ---------------------------------------------------------------------------------------------- 4. bad input


def test_a_memoryless_policy_is_refused():
    with pytest.raises(ValueError, match="MlpLstmPolicy"):
        RecurrentClipPPO("MlpPolicy", "CartPoleNoVel-v1")
    with pytest.raises(TypeError, match="RecurrentActorCriticPolicy subclass"):
        RecurrentREINFORCE(ActorCriticPolicy, "CartPoleNoVel-v1")
    with pytest.raises(TypeError, match=r"recurrent \(LSTM\) policy"):
        MaskableClipPPO(RecurrentActorCriticPolicy, _all_legal("CartPole-v1")())
    with pytest.raises(TypeError, match="MaskableRecurrentActorCriticPolicy"):
        MaskableRecurrentClipPPO(RecurrentActorCriticPolicy, _all_legal("CartPole-v1")())


def test_recompute_advantage_is_refused_at_construction():
    with pytest.raises(ValueError, match="recompute_advantage"):
        RecurrentClipPPO("MlpLstmPolicy", "CartPoleNoVel-v1", recompute_advantage=True)


@pytest.mark.parametrize(
    ("state", "episode_start", "match"),
    [
        ((np.zeros((1, 2, 16)), np.zeros((1, 2, 16))), None, r"shape \(1, 3, 16\).*hidden state has shape \(1, 2, 16\)"),
        ((np.zeros((1, 3, 16)),), None, "the \\(hidden, cell\\) pair"),
        (np.zeros((1, 3, 16)), None, "the \\(hidden, cell\\) pair"),
        (None, np.zeros(2, dtype=bool), r"`episode_start` must hold one bool per observation, shape \(3,\)"),
    ],
)
def test_predict_refuses_a_state_or_episode_start_of_the_wrong_shape(state, episode_start, match):
    model = RecurrentClipPPO("MlpLstmPolicy", "CartPoleNoVel-v1", policy_kwargs=LSTM)
    with pytest.raises(ValueError, match=match):
        model.predict(np.zeros((3, 4), dtype=np.float32), state=state, episode_start=episode_start)


def test_masked_recurrent_predict_refuses_masks_of_the_wrong_shape():
    model = MaskableRecurrentClipPPO("MlpLstmPolicy", _all_legal("CartPoleNoVel-v1")(), policy_kwargs=LSTM)
    with pytest.raises(ActionMaskError, match="action_masks"):
        model.predict(np.zeros((3, 4), dtype=np.float32), action_masks=np.ones((3, 5), dtype=bool))
    action, state = model.predict(np.zeros((3, 4), dtype=np.float32), action_masks=np.array([[False, True]] * 3))
    assert np.all(action == 1) and state[0].shape == (1, 3, 16)


# ---------------------------------------------------------------------------------------------- 5. the 2025 objectives


def test_recurrent_spo_first_step_is_the_clipped_surrogate_step():
    """At the first gradient step the ratio is 1: SPO's penalty has zero gradient and the clip is inactive, so one
    update of one minibatch moves the parameters as ClipPPO's does; a second epoch (ratio != 1) tells them apart."""
    kwargs = dict(n_steps=32, batch_size=None, n_epochs=1, policy_kwargs=LSTM, seed=5, device="cpu")
    clip = RecurrentClipPPO("MlpLstmPolicy", _env("CartPoleNoVel-v1"), **kwargs).learn(64)
    spo = RecurrentSPO("MlpLstmPolicy", _env("CartPoleNoVel-v1"), **kwargs).learn(64)
    assert (_params(clip) - _params(spo)).abs().max() <= 1e-6
    kwargs["n_epochs"] = 3
    clip = RecurrentClipPPO("MlpLstmPolicy", _env("CartPoleNoVel-v1"), **kwargs).learn(64)
    spo = RecurrentSPO("MlpLstmPolicy", _env("CartPoleNoVel-v1"), **kwargs).learn(64)
    assert (_params(clip) - _params(spo)).abs().max() > 1e-6


def test_recurrent_clip_higher_with_equal_sides_is_the_symmetric_clip():
    kwargs = dict(**SETTINGS["CartPoleNoVel-v1"], policy_kwargs=LSTM, seed=3, device="cpu")
    symmetric = RecurrentClipPPO("MlpLstmPolicy", _env("CartPoleNoVel-v1"), clip_range=0.2, **kwargs).learn(192)
    pair = RecurrentClipPPO("MlpLstmPolicy", _env("CartPoleNoVel-v1"), clip_range=(0.2, 0.2), **kwargs).learn(192)
    assert th.equal(_params(symmetric), _params(pair))


def test_masked_recurrent_spo_keeps_to_the_legal_actions():
    env = make_vec_env(lambda: ActionMasker(gym.make("CartPoleNoVel-v1"), lambda e: np.array([False, True])), n_envs=2)
    model = MaskableRecurrentSPO("MlpLstmPolicy", env, n_steps=32, batch_size=16, policy_kwargs=LSTM, seed=0).learn(128)
    assert np.all(model.rollout_buffer.actions == 1)
