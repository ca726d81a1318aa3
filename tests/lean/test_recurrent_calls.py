"""The lean recurrent calls against sb3-contrib's recurrent policy methods, and the gate's choice for them."""

from __future__ import annotations

import numpy as np
import pytest
import rl_zoo3.import_envs  # noqa: F401
import torch as th
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates

from sb3_ppo_variants import RecurrentClipPPO
from sb3_ppo_variants._lean import plan_rollout, plan_update
from sb3_ppo_variants._lean.recurrent import LeanRecurrentPolicyCalls, lstm_sequences
from sb3_ppo_variants._lean.structure import PolicyStructure
from sb3_ppo_variants.recurrent.calls import RecurrentPolicyCalls

LAYOUTS = [{}, dict(shared_lstm=True, enable_critic_lstm=False), dict(enable_critic_lstm=False)]
CASES = [("CartPoleNoVel-v1", {}), ("PendulumNoVel-v1", {}), ("PendulumNoVel-v1", dict(use_sde=True))]


def _model(env_id, layout, **kwargs):
    return RecurrentClipPPO(
        "MlpLstmPolicy",
        env_id,
        policy_kwargs=dict(lstm_hidden_size=8, net_arch=[8], n_lstm_layers=2, **layout),
        seed=0,
        **kwargs,
    )


def _states(n, seed=0):
    generator = th.Generator().manual_seed(seed)
    return RNNStates(*(tuple(th.randn(2, n, 8, generator=generator) for _ in range(2)) for _ in range(2)))


@pytest.mark.parametrize(("env_id", "options"), CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_rollout_step_is_the_policy_forward_bit_for_bit(env_id, options, layout):
    policy = _model(env_id, layout, **options).policy
    obs = th.randn(5, policy.observation_space.shape[0])
    states = _states(5)
    starts = th.tensor([0.0, 1.0, 0.0, 1.0, 0.0])
    lean = LeanRecurrentPolicyCalls(policy, PolicyStructure(policy), whole_sequences=True)
    for episode_starts in (starts, th.zeros(5)):
        th.manual_seed(1)
        actions, values, log_prob, new_states = policy(obs, states, episode_starts)
        th.manual_seed(1)
        outputs = lean.act(obs, True, states, episode_starts)
        assert th.equal(outputs.actions, actions) and th.equal(outputs.values, values)
        assert th.equal(outputs.log_prob, log_prob)
        for ours, theirs in zip((*outputs.states.pi, *outputs.states.vf), (*new_states.pi, *new_states.vf), strict=True):
            assert th.equal(ours, theirs)


def _padded_batch(policy, n_seq=4, length=6, seed=0):
    generator = th.Generator().manual_seed(seed)
    obs = th.randn(n_seq * length, policy.observation_space.shape[0], generator=generator)
    starts = th.zeros(n_seq, length)
    starts[[0, 2], 0] = 1.0  # episode starts on first steps only, as the buffer cuts them
    with th.no_grad():
        actions = policy.get_distribution(obs, _states(n_seq).pi, starts.flatten())[0].get_actions()
    return obs, actions, _states(n_seq, seed=1), starts.flatten()


@pytest.mark.parametrize(("env_id", "options"), CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_minibatch_evaluation_matches_evaluate_actions(env_id, options, layout):
    policy = _model(env_id, layout, **options).policy
    obs, actions, states, starts = _padded_batch(policy)
    mask = th.ones(len(obs), dtype=th.bool)
    mask[-3:] = False
    values, log_prob, entropy = policy.evaluate_actions(obs, actions, states, starts)
    step_by_step = LeanRecurrentPolicyCalls(policy, PolicyStructure(policy), whole_sequences=False)
    outputs = step_by_step.evaluate(obs, actions, True, True, states, starts, mask)
    assert th.equal(outputs.values, values[mask]) and th.equal(outputs.log_prob, log_prob[mask])
    # one LSTM call for the whole padded batch: the same recurrence, float rounding apart
    whole = LeanRecurrentPolicyCalls(policy, PolicyStructure(policy), whole_sequences=True)
    outputs = whole.evaluate(obs, actions, True, True, states, starts, mask)
    assert th.allclose(outputs.values, values[mask], atol=1e-5) and th.allclose(outputs.log_prob, log_prob[mask], atol=1e-5)
    if entropy is not None:
        assert th.allclose(outputs.entropy, entropy[mask], atol=1e-5)


def test_an_episode_start_inside_a_sequence_takes_the_step_loop():
    lstm = th.nn.LSTM(3, 4)
    features = th.randn(2 * 5, 3)
    states = (th.randn(1, 2, 4), th.randn(1, 2, 4))
    starts = th.zeros(2, 5)
    starts[1, 3] = 1.0  # inside the second sequence
    expected = RecurrentActorCriticPolicy._process_sequence(features, states, starts.flatten(), lstm)
    got = lstm_sequences(features, states, starts.flatten(), lstm, whole=True)
    assert th.equal(got[0], expected[0])
    # and without it, one call that resets the first step's states where an episode starts
    starts[1, 3], starts[0, 0] = 0.0, 1.0
    expected = RecurrentActorCriticPolicy._process_sequence(features, states, starts.flatten(), lstm)
    got = lstm_sequences(features, states, starts.flatten(), lstm, whole=True)
    assert th.allclose(got[0], expected[0], atol=1e-6)


class _SubclassedPolicy(RecurrentActorCriticPolicy):
    pass


def test_the_gate_runs_the_lean_calls_only_for_the_exact_classes(capsys):
    model = _model("CartPoleNoVel-v1", {})
    assert plan_rollout(model).name == "lean" and plan_update(model).name == "torch-lean"
    assert not any("LSTM" in reason for reason in plan_update(model).declined)
    model.numerics = "sb3"
    assert any("step-by-step LSTM" in reason for reason in plan_update(model).declined)
    model.numerics = "fast"
    handle = model.policy.lstm_actor.register_forward_hook(lambda *args: None)
    assert isinstance(plan_rollout(model).backend, RecurrentPolicyCalls) and plan_rollout(model).name == "sb3"
    handle.remove()
    model.policy.evaluate_actions = model.policy.evaluate_actions  # an object-level replacement
    plan = plan_update(model)
    assert plan.name == "torch" and any("replaces evaluate_actions" in reason for reason in plan.declined)
    subclassed = RecurrentClipPPO(_SubclassedPolicy, "CartPoleNoVel-v1", n_steps=16, batch_size=16, verbose=1, seed=0)
    subclassed.learn(16)
    assert "not exactly one of sb3-contrib's recurrent policies" in capsys.readouterr().out


def test_a_subclass_overriding_the_sequence_step_is_called():
    calls = []

    class Counting(RecurrentActorCriticPolicy):
        @staticmethod
        def _process_sequence(features, lstm_states, episode_starts, lstm):
            calls.append(len(features))
            return RecurrentActorCriticPolicy._process_sequence(features, lstm_states, episode_starts, lstm)

    model = RecurrentClipPPO(Counting, "CartPoleNoVel-v1", n_steps=16, batch_size=8, n_epochs=1, seed=0)
    model.learn(16)
    assert calls and np.any(np.array(calls) > 1)  # training minibatches went through the user's method
