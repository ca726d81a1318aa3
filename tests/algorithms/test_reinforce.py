"""REINFORCE: reward-to-go and normalisation by hand, episode ends, and a critic that stays out of the loss."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

from sb3_ppo_variants import REINFORCE
from sb3_ppo_variants.reinforce.buffers import RewardToGoRolloutBuffer, mean_std, normalize

GAMMA = 0.5
# two envs, four steps:
# env 0: an episode that ends after step 1, then one that terminates at the last step
# env 1: an episode (started in an earlier rollout) that ends after step 2, then one still running at the end
REWARDS = np.array([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0]])
EPISODE_STARTS = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
LAST_DONES = np.array([1.0, 0.0])
VALUES = np.array([[0.5, 0.1], [0.2, 0.3], [0.4, 0.6], [0.7, 0.8]])


def _filled_buffer(normalize_mode="batch", bootstrap=False, rewards=REWARDS):
    buffer = RewardToGoRolloutBuffer(
        4,
        spaces.Box(-1, 1, (1,)),
        spaces.Discrete(2),
        device="cpu",
        gamma=GAMMA,
        n_envs=2,
        normalize=normalize_mode,
        bootstrap=bootstrap,
    )
    for t in range(4):
        buffer.add(
            np.zeros((2, 1)), np.zeros((2, 1)), rewards[t], EPISODE_STARTS[t], th.tensor(VALUES[t]).reshape(2, 1), th.zeros(2)
        )
    buffer.compute_returns_and_advantage(last_values=th.tensor([[10.0], [20.0]]), dones=LAST_DONES)
    return buffer


def test_reward_to_go_by_hand_without_bootstrap():
    buffer = _filled_buffer()
    # env 0: G3 = 4, G2 = 3 + 0.5 * 4 = 5, G1 = 2 (episode ended), G0 = 1 + 0.5 * 2 = 2
    # env 1: G2 = 1 (ended), G1 = 1 + 0.5 * 1 = 1.5, G0 = 1 + 0.5 * 1.5 = 1.75; step 3 runs past the rollout end
    expected_returns = np.array([[2.0, 1.75], [2.0, 1.5], [5.0, 1.0], [4.0, 1.0]])
    expected_valid = np.array([[True, True], [True, True], [True, True], [True, False]])
    np.testing.assert_array_equal(buffer.valid, expected_valid)
    np.testing.assert_allclose(buffer.returns[expected_valid], expected_returns[expected_valid])
    # batch normalisation over the 7 valid returns
    valid_returns = np.array([2.0, 1.75, 2.0, 1.5, 5.0, 1.0, 4.0])
    mean, std = valid_returns.mean(), valid_returns.std()
    assert mean == pytest.approx(17.25 / 7)
    expected = np.zeros((4, 2))
    expected[expected_valid] = (expected_returns[expected_valid] - mean) / std
    np.testing.assert_allclose(buffer.advantages, expected, rtol=1e-6)
    assert buffer.return_mean == pytest.approx(mean)
    assert buffer.valid_fraction == pytest.approx(7 / 8)


def test_reward_to_go_by_hand_with_bootstrap():
    buffer = _filled_buffer(bootstrap=True)
    # env 0 terminated at the last step: no bootstrap (G3 = 4); env 1 is cut: G3 = 1 + 0.5 * V(s_T) = 1 + 10 = 11
    expected_returns = np.array([[2.0, 1.75], [2.0, 1.5], [5.0, 1.0], [4.0, 11.0]])
    np.testing.assert_allclose(buffer.returns, expected_returns)
    assert buffer.valid.all()
    weights = expected_returns - VALUES  # G - V(s), then normalised
    np.testing.assert_allclose(buffer.advantages, (weights - weights.mean()) / weights.std(), rtol=1e-5)


def test_timestep_normalisation_by_hand():
    buffer = _filled_buffer("timestep")
    # per row across the two envs: rows 0-2 have two valid values each, row 3 only one (normalised to 0)
    # row 0: [2, 1.75] -> [1, -1]; row 1: [2, 1.5] -> [1, -1]; row 2: [5, 1] -> [1, -1]
    expected = np.array([[1.0, -1.0], [1.0, -1.0], [1.0, -1.0], [0.0, 0.0]])
    np.testing.assert_allclose(buffer.advantages, expected, rtol=1e-6)


def test_no_normalisation_keeps_returns():
    buffer = _filled_buffer("none")
    np.testing.assert_allclose(buffer.advantages[buffer.valid], buffer.returns[buffer.valid])


@pytest.mark.parametrize("mode", ["batch", "timestep"])
def test_equal_returns_normalise_to_zero(mode):
    buffer = _filled_buffer(mode, rewards=np.zeros((4, 2)))
    assert np.all(buffer.advantages == 0.0)
    # large equal values, where a naive (x - mean) / std would amplify rounding noise
    values = np.full((3, 2), 1e6 / 3)
    assert np.all(normalize(values, np.ones((3, 2), bool), mode) == 0.0)


@pytest.mark.parametrize("size", [1, 2, 7, 40, 129, 4096])
def test_mean_std_are_numpys_to_the_bit(size):
    rng = np.random.default_rng(size)
    for scale in (1e-3, 1.0, 1e6):
        values = rng.normal(3.0, scale, size) * rng.choice([1.0, 10.0], size)
        mean, std = mean_std(values)
        assert mean == values.mean() and std == values.std()


def test_no_nan_with_nothing_valid():
    out = normalize(np.ones((3, 2)), np.zeros((3, 2), bool), "batch")
    assert np.all(out == 0.0) and not np.isnan(out).any()


def test_get_yields_only_valid_samples():
    buffer = _filled_buffer()
    batches = list(buffer.get(None))
    assert len(batches) == 1
    returns = sorted(batches[0].returns.numpy().tolist())
    assert returns == sorted([2.0, 1.75, 2.0, 1.5, 5.0, 1.0, 4.0])


class _ConstantRewardEnv(gym.Env):
    """Observation 0, reward 1 per step; cut by a TimeLimit (truncation), never terminates."""

    observation_space = spaces.Box(-1, 1, (1,))
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(1, dtype=np.float32), 1.0, False, False, {}


def _truncating_env():
    return make_vec_env(lambda: gym.wrappers.TimeLimit(_ConstantRewardEnv(), max_episode_steps=3), n_envs=2)


def test_truncation_without_baseline_adds_no_critic_value():
    model = REINFORCE("MlpPolicy", _truncating_env(), n_steps=6, gamma=GAMMA, seed=0)
    # an untrained critic with a large output: it must not leak into the rewards
    th.nn.init.constant_(model.policy.value_net.bias, 100.0)
    model.learn(12)
    buffer = model.rollout_buffer  # flattened by train(): 2 envs x 6 steps, episodes of 3 steps
    returns = buffer.returns.reshape(2, 6)
    np.testing.assert_allclose(returns[0], [1.75, 1.5, 1.0, 1.75, 1.5, 1.0])
    assert buffer.valid.all()


def test_truncation_with_baseline_bootstraps_from_the_critic():
    model = REINFORCE("MlpPolicy", _truncating_env(), n_steps=6, gamma=GAMMA, use_baseline=True, seed=0)
    th.nn.init.zeros_(model.policy.value_net.weight)
    th.nn.init.constant_(model.policy.value_net.bias, 100.0)
    model.learn(12)
    # the truncated step's reward is 1 + gamma * V(terminal) = 1 + 0.5 * 100 = 51
    returns = model.rollout_buffer.returns.reshape(2, 6)[0]
    np.testing.assert_allclose(returns, [1 + 0.5 + 0.25 * 51, 1 + 0.5 * 51, 51, 1 + 0.5 + 0.25 * 51, 1 + 0.5 * 51, 51])


def test_value_head_gets_no_gradient_and_never_enters_the_loss():
    def trained(value_bias):
        model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=128, seed=3, device="cpu")
        th.nn.init.constant_(model.policy.value_net.bias, value_bias)
        before = [p.detach().clone() for p in model.policy.value_net.parameters()]
        model.learn(3 * 128)
        for p, b in zip(model.policy.value_net.parameters(), before, strict=True):
            assert p.grad is None
            assert th.equal(p, b)
        return model

    a, b = trained(0.0), trained(1e4)
    # a wildly different critic changes nothing about the policy update
    for name, pa in a.policy.named_parameters():
        if not name.startswith("value_net") and "vf" not in name:
            assert th.equal(pa, dict(b.policy.named_parameters())[name]), name
    assert "train/value_loss" not in a.logger.name_to_value


def test_baseline_trains_the_critic():
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=128, use_baseline=True, seed=3, device="cpu")
    before = model.policy.value_net.weight.detach().clone()
    model.learn(2 * 128)
    assert not th.equal(before, model.policy.value_net.weight)


def test_logs_return_statistics():
    model = REINFORCE("MlpPolicy", "CartPole-v1", n_steps=256, seed=0, device="cpu")
    model.learn(2 * 256)
    logged = model.logger.name_to_value
    for key in ("train/policy_loss", "train/entropy_loss", "train/return_mean", "train/return_std", "train/valid_fraction"):
        assert key in logged and np.isfinite(logged[key]), key
