"""The PPO controls other libraries define (docs/controls.md), each checked against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch as th

from sb3_ppo_variants.core.controls import adapt_learning_rate, compute_gae, normalize_advantages
from sb3_ppo_variants.core.losses import dual_clip_fraction, kl_penalty_loss, surrogate_loss, value_function_loss

# ---------------------------------------------------------------------------------------------------- dual-clip

# eps = 0.2, c = 3
DC_RATIO = [0.5, 1.5, 4.0, 4.0, 1.1]
DC_ADV = [-1.0, -1.0, -1.0, 2.0, -2.0]


def test_dual_clip_value_and_gradient_by_hand():
    # sample  r    A    r*A   clip(r)*A  min    c*A   dual: A<0 -> max(min, c*A)   d objective / d r
    # 0       0.5  -1   -0.5  -0.8       -0.8   -3    -0.8                         0 (clipped term, constant)
    # 1       1.5  -1   -1.5  -1.2       -1.5   -3    -1.5                         A = -1
    # 2       4.0  -1   -4.0  -1.2       -4.0   -3    -3.0  (dual clip active)     0
    # 3       4.0   2    8.0   2.4        2.4    6     2.4  (A > 0: min only)      0
    # 4       1.1  -2   -2.2  -2.2       -2.2   -6    -2.2                         A = -2
    # objective mean = (-0.8 - 1.5 - 3.0 + 2.4 - 2.2) / 5 = -5.1 / 5 = -1.02 -> loss 1.02
    # d loss / d r = -(d objective / d r) / 5 = [0, 0.2, 0, 0, 0.4]
    ratio = th.tensor(DC_RATIO, requires_grad=True)
    loss = surrogate_loss(ratio, th.tensor(DC_ADV), 0.2, dual_clip=3.0)
    assert loss.item() == pytest.approx(1.02)
    loss.backward()
    assert th.allclose(ratio.grad, th.tensor([0.0, 0.2, 0.0, 0.0, 0.4]))
    assert dual_clip_fraction(ratio, th.tensor(DC_ADV), 3.0).item() == pytest.approx(0.2)  # sample 2 only


def test_without_dual_clip_the_negative_advantage_is_unbounded():
    # as above but sample 2 keeps min = -4.0 with gradient A = -1: loss = 6.1 / 5 = 1.22, d loss / d r_2 = 0.2
    ratio = th.tensor(DC_RATIO, requires_grad=True)
    loss = surrogate_loss(ratio, th.tensor(DC_ADV), 0.2)
    assert loss.item() == pytest.approx(1.22)
    loss.backward()
    assert th.allclose(ratio.grad, th.tensor([0.0, 0.2, 0.2, 0.0, 0.4]))


def test_dual_clip_with_the_kl_penalty_by_hand():
    # KLPenaltyPPO with a clip_range: the dual-clipped surrogate (loss 1.02 above) plus beta * mean(KL) = 3 * 0.02
    kl = th.tensor([0.01, 0.02, 0.03, 0.04, 0.0])
    loss = kl_penalty_loss(th.tensor(DC_RATIO), th.tensor(DC_ADV), kl, beta=3.0, clip_range=0.2, dual_clip=3.0)
    assert loss.item() == pytest.approx(1.08)


def test_dual_clip_needs_clipping():
    with pytest.raises(ValueError, match="needs a clip_range"):
        surrogate_loss(th.ones(2), th.ones(2), None, dual_clip=3.0)


# ---------------------------------------------------------------------------------------------------- value loss

V = [1.0, 2.0, 0.0, 3.0]
V_OLD = [0.5, 2.5, 0.0, 2.0]
RET = [2.0, 0.0, 1.0, 2.5]
# eps_vf = 0.2: V - V_old = [0.5, -0.5, 0, 1.0] -> clipped [0.2, -0.2, 0, 0.2] -> V_clip = [0.7, 2.3, 0.0, 2.2]
# (V - R)^2      = [1.0, 4.0, 1.0, 0.25]
# (V_clip - R)^2 = [1.69, 5.29, 1.0, 0.09]


def _value_loss_and_grad(clip_range_vf, form):
    values = th.tensor(V, requires_grad=True)
    loss = value_function_loss(values, th.tensor(V_OLD), th.tensor(RET), clip_range_vf, form)
    loss.backward()
    return loss.item(), values.grad


def test_unclipped_value_loss_by_hand():
    # mean([1, 4, 1, 0.25]) = 1.5625; d/dV = 2 (V - R) / 4 = [-0.5, 1.0, -0.5, 0.25]
    loss, grad = _value_loss_and_grad(None, "prediction")
    assert loss == pytest.approx(1.5625)
    assert th.allclose(grad, th.tensor([-0.5, 1.0, -0.5, 0.25]))
    assert _value_loss_and_grad(None, "max")[0] == pytest.approx(1.5625)  # without clipping both forms are the MSE


def test_sb3_value_clipping_by_hand():
    # mean((R - V_clip)^2) = (1.69 + 5.29 + 1.0 + 0.09) / 4 = 2.0175
    # gradient only where the clip is inactive (sample 2): 2 (0 - 1) / 4 = -0.5
    loss, grad = _value_loss_and_grad(0.2, "prediction")
    assert loss == pytest.approx(2.0175)
    assert th.allclose(grad, th.tensor([0.0, 0.0, -0.5, 0.0]))


def test_max_form_value_clipping_by_hand():
    # max = [1.69 (clipped), 5.29 (clipped), 1.0 (equal), 0.25 (unclipped)] -> mean = 8.23 / 4 = 2.0575
    # gradient where the unclipped error is kept: sample 2 (2 (0 - 1) / 4 = -0.5) and sample 3 (2 (3 - 2.5) / 4 = 0.25);
    # sample 3 is where the forms differ: SB3's clipped prediction gives it no gradient
    loss, grad = _value_loss_and_grad(0.2, "max")
    assert loss == pytest.approx(2.0575)
    assert th.allclose(grad, th.tensor([0.0, 0.0, -0.5, 0.25]))


def test_unknown_value_clip_form():
    with pytest.raises(ValueError, match="'prediction' or 'max'"):
        value_function_loss(th.ones(2), th.ones(2), th.ones(2), 0.2, "huber")


# ---------------------------------------------------------------------------------------------------- learning-rate rule


@pytest.mark.parametrize(
    ("lr", "kl", "expected"),
    [
        (1e-3, 0.03, 1e-3 / 1.5),  # kl > 2 * 0.01: divide
        (1e-3, 0.001, 1.5e-3),  # kl < 0.01 / 2: multiply
        (1e-3, 0.01, 1e-3),  # inside the band: unchanged
        (1e-3, 0.02, 1e-3),  # on the upper threshold (strict >): unchanged
        (1e-3, 0.005, 1e-3),  # on the lower threshold (strict <): unchanged
        (1e-3, 0.0, 1.5e-3),  # no change of policy yet (first minibatch): multiply
        (1.2e-5, 0.5, 1e-5),  # 8e-6 clamped to the lower bound
        (8e-3, 0.0001, 1e-2),  # 1.2e-2 clamped to the upper bound
        (1e-5, 0.5, 1e-5),  # at the lower bound and told to go lower: stays
        (1e-2, 0.0, 1e-2),  # at the upper bound and told to go higher: stays
        (1e-3, float("nan"), 1e-3 / 1.5),  # a diverged KL lowers the rate
        (1e-3, float("inf"), 1e-3 / 1.5),
    ],
)
def test_adaptive_learning_rate_rule_defaults(lr, kl, expected):
    assert adapt_learning_rate(lr, kl, 0.01) == pytest.approx(expected, rel=1e-12)


def test_adaptive_learning_rate_rule_parameters():
    # margin 1.5, factor 2, bounds [1e-4, 4e-3], target 0.02: thresholds 0.03 and 0.02 / 1.5 = 0.01333
    rule = dict(kl_margin=1.5, factor=2.0, lr_min=1e-4, lr_max=4e-3)
    assert adapt_learning_rate(1e-3, 0.031, 0.02, **rule) == pytest.approx(5e-4)
    assert adapt_learning_rate(1e-3, 0.029, 0.02, **rule) == pytest.approx(1e-3)
    assert adapt_learning_rate(1e-3, 0.014, 0.02, **rule) == pytest.approx(1e-3)
    assert adapt_learning_rate(1e-3, 0.013, 0.02, **rule) == pytest.approx(2e-3)
    assert adapt_learning_rate(3e-3, 0.0, 0.02, **rule) == pytest.approx(4e-3)
    assert adapt_learning_rate(1.5e-4, 1.0, 0.02, **rule) == pytest.approx(1e-4)


# ---------------------------------------------------------------------------------------------------- GAE, normalisation


def test_gae_by_hand():
    # gamma = lambda = 0.5, two envs, three steps
    # env 0: r = [1, 0, 2], V = [0.5, 1, 1], s_2 starts a new episode (s_1 was terminal), V(s_3) = 2, not done
    #   t=2: delta = 2 + 0.5 * 2 - 1 = 2                      A = 2
    #   t=1: next is a new episode: delta = 0 - 1 = -1         A = -1
    #   t=0: delta = 1 + 0.5 * 1 - 0.5 = 1                    A = 1 + 0.25 * (-1) = 0.75
    # env 1: r = [0, 0, 1], V = 0, no episode start, s_3 begins a new episode (done): V(s_3) = 4 is not used
    #   t=2: delta = 1, A = 1;  t=1: A = 0 + 0.25 * 1 = 0.25;  t=0: A = 0.0625
    rewards = np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 1.0]], dtype=np.float32)
    values = np.array([[0.5, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    starts = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    advantages, returns = compute_gae(rewards, values, starts, np.array([2.0, 4.0]), np.array([False, True]), 0.5, 0.5)
    np.testing.assert_allclose(advantages, [[0.75, 0.0625], [-1.0, 0.25], [2.0, 1.0]])
    np.testing.assert_allclose(returns, [[1.25, 0.0625], [0.0, 0.25], [3.0, 1.0]])


def test_normalize_advantages_by_hand():
    # A = [1, 2, 3, 6]: mean 3, sample std sqrt((4 + 1 + 0 + 9) / 3) = sqrt(14 / 3)
    expected = (np.array([1.0, 2.0, 3.0, 6.0]) - 3.0) / (math.sqrt(14 / 3) + 1e-8)
    np.testing.assert_allclose(normalize_advantages(np.array([1, 2, 3, 6], dtype=np.float32)), expected, rtol=1e-6)
    np.testing.assert_allclose(normalize_advantages(th.tensor([1.0, 2.0, 3.0, 6.0])).numpy(), expected, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------- in the shared loop

import itertools  # noqa: E402
from pathlib import Path  # noqa: E402

import gymnasium as gym  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.logger import configure  # noqa: E402

from sb3_ppo_variants import ClipPPO, KLPenaltyPPO  # noqa: E402


def _rule(lr: float, kl: float, target: float = 0.01) -> float:
    """rsl_rl's rule written out again, independently of the package: /1.5 above 2x target, x1.5 below target/2."""
    if not kl <= 2 * target:  # also NaN
        lr = lr / 1.5
    elif kl < target / 2:
        lr = lr * 1.5
    return min(max(lr, 1e-5), 1e-2)


def _csv_rows(folder: Path) -> list[dict[str, float]]:
    import csv

    with open(folder / "progress.csv") as file:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(file)]


def test_adaptive_lr_per_update_follows_the_rule_in_the_csv_log(tmp_path):
    """Every logged update: the next update's rate is the rule applied to this update's rate and measured KL."""
    model = ClipPPO(
        "MlpPolicy",
        "CartPole-v1",
        n_steps=64,
        batch_size=32,
        n_epochs=6,
        learning_rate=3e-3,
        adaptive_lr_target_kl=0.002,
        adaptive_lr_every="update",
        seed=0,
        device="cpu",
    )
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(12 * 64)
    # SB3 writes an update's train/ keys at the start of the next iteration: 11 of the 12 updates are in the file
    rows = [row for row in _csv_rows(tmp_path) if "train/learning_rate" in row]
    assert len(rows) == 11
    assert rows[0]["train/learning_rate"] == pytest.approx(3e-3)
    for row, following in itertools.pairwise(rows):
        expected = _rule(row["train/learning_rate"], row["train/adaptive_lr_kl"], target=0.002)
        assert following["train/learning_rate"] == pytest.approx(expected, rel=1e-6)
    moves = [following["train/learning_rate"] / row["train/learning_rate"] for row, following in itertools.pairwise(rows)]
    assert {round(move, 6) for move in moves} == {1.5, 1.0, round(1 / 1.5, 6)}  # each branch of the rule was taken


class _RecordingClipPPO(ClipPPO):
    """Records, at each minibatch's loss, the optimizer's current rate (that of the previous step) and the KL."""

    def _minibatch_loss(self, *args, **kwargs):
        lr_now = self.policy.optimizer.param_groups[0]["lr"]
        loss, kl = super()._minibatch_loss(*args, **kwargs)
        self.records.append((lr_now, kl.item()))
        return loss, kl


def test_adaptive_lr_per_minibatch_every_step_follows_the_rule(tmp_path):
    """rsl_rl's order: the KL of minibatch k, measured before step k, sets the rate of step k itself."""
    model = _RecordingClipPPO(
        "MlpPolicy",
        "CartPole-v1",
        n_steps=64,
        batch_size=16,
        n_epochs=4,
        learning_rate=5e-3,
        adaptive_lr_target_kl=0.005,
        seed=1,
        device="cpu",
    )
    model.records = []
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(6 * 64)
    records = model.records
    assert len(records) == 6 * 4 * 4
    assert records[0][0] == pytest.approx(5e-3)
    for (lr, kl), (next_lr, _) in itertools.pairwise(records):
        assert next_lr == pytest.approx(_rule(lr, kl, target=0.005), rel=1e-6)
    # the log's train/learning_rate is the rate of each update's last step
    rows = [row for row in _csv_rows(tmp_path) if "train/learning_rate" in row]
    last_of_update = [_rule(lr, kl, target=0.005) for lr, kl in records[15::16]]
    assert len(rows) == 5  # the last update's keys are never written (SB3 writes them at the next iteration)
    assert [row["train/learning_rate"] for row in rows] == pytest.approx(last_of_update[:5], rel=1e-6)
    assert any(kl > 0.01 for _, kl in records) and any(kl < 0.0025 for _, kl in records)  # both branches taken


def test_adaptive_lr_survives_save_and_load(tmp_path):
    """The adapted rate is training state: save -> load -> learn continues from it (not from `learning_rate`)."""
    kwargs = dict(n_steps=64, batch_size=32, n_epochs=6, learning_rate=3e-3, adaptive_lr_target_kl=0.01, device="cpu")
    model = ClipPPO("MlpPolicy", "CartPole-v1", adaptive_lr_every="update", seed=0, **kwargs)
    model.learn(6 * 64)
    adapted = model.current_learning_rate
    assert adapted is not None and adapted != pytest.approx(3e-3)
    model.save(tmp_path / "model.zip")
    # rl_zoo3 passes its config keys again when it continues a run: they must not reset the adapted rate
    loaded = ClipPPO.load(tmp_path / "model.zip", env=make_vec_env("CartPole-v1", n_envs=1), learning_rate=3e-3)
    assert loaded.current_learning_rate == adapted
    loaded.set_logger(configure(str(tmp_path / "log"), ["csv"]))
    loaded.learn(2 * 64, reset_num_timesteps=False)
    row = next(row for row in _csv_rows(tmp_path / "log") if "train/learning_rate" in row)
    assert row["train/learning_rate"] == pytest.approx(adapted)  # the next update ran with the adapted rate


def test_adaptive_lr_replaces_a_schedule_with_a_warning():
    with pytest.warns(UserWarning, match="replaces the `learning_rate` schedule: its value at the start, 0.002"):
        model = ClipPPO("MlpPolicy", "CartPole-v1", learning_rate="lin_2e-3", adaptive_lr_target_kl=0.01, n_steps=64)
    assert model.current_learning_rate == pytest.approx(2e-3)


def test_controls_are_off_by_default():
    for cls in (ClipPPO, KLPenaltyPPO):
        model = cls("MlpPolicy", "CartPole-v1", n_steps=64)
        assert model.current_learning_rate is None and model.dual_clip is None and not model.recompute_advantage
        assert model.value_clip_form == "prediction" and model.normalize_advantage_scope == "minibatch"


class _RecomputeCheck(ClipPPO):
    """After each recomputation, GAE worked out in the test from the current critic, with plain Python loops."""

    def _recompute_advantages(self):
        super()._recompute_advantages()
        buffer, n_steps, n_envs = self.rollout_buffer, self.n_steps, self.n_envs
        with th.no_grad():
            obs = th.as_tensor(buffer.observations.reshape(n_envs, n_steps, -1))
            values = self.policy.predict_values(obs.reshape(n_envs * n_steps, -1)).reshape(n_envs, n_steps).numpy()
            last = self.policy.predict_values(th.as_tensor(self._last_obs)).flatten().numpy()
            terminal = {
                key: float(self.policy.predict_values(th.as_tensor(o)[None])[0]) for key, o in self.terminal_obs.items()
            }
        gamma, lam = self.gamma, self.gae_lambda
        expected = np.zeros((n_envs, n_steps))
        for env in range(n_envs):
            advantage = 0.0
            for t in reversed(range(n_steps)):
                reward = self.raw_rewards[t][env]
                if (t, env) in terminal:  # truncation: bootstrap with the current critic
                    reward += gamma * terminal[(t, env)]
                done = self.raw_dones[t][env]
                next_value = last[env] if t == n_steps - 1 else values[env, t + 1]
                delta = reward + gamma * next_value * (1 - done) - values[env, t]
                advantage = delta + gamma * lam * (1 - done) * advantage
                expected[env, t] = advantage
        np.testing.assert_allclose(buffer.advantages.reshape(n_envs, n_steps), expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(buffer.returns.reshape(n_envs, n_steps), expected + values, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(buffer.values.reshape(n_envs, n_steps), values, rtol=1e-5, atol=1e-6)
        self.checks += 1


class _RawRollout:
    """Callback-free capture of what the environment returned, before any bootstrapping touches the rewards."""

    def __init__(self, model):
        from stable_baselines3.common.callbacks import BaseCallback

        class Capture(BaseCallback):
            def _on_rollout_start(self) -> None:
                model.raw_rewards, model.raw_dones, model.terminal_obs = [], [], {}

            def _on_step(self) -> bool:
                step = len(model.raw_rewards)
                model.raw_rewards.append(self.locals["rewards"].astype(np.float64).copy())
                model.raw_dones.append(self.locals["dones"].astype(np.float64).copy())
                for env, info in enumerate(self.locals["infos"]):
                    if info.get("TimeLimit.truncated", False):
                        model.terminal_obs[(step, env)] = info["terminal_observation"]
                return True

        self.callback = Capture()


def test_recompute_advantage_equals_gae_from_the_current_critic_by_hand():
    # short time limit: truncations (bootstrapped with the critic) happen inside every rollout
    env = make_vec_env(lambda: gym.make("CartPole-v1", max_episode_steps=7), n_envs=2, seed=0)
    model = _RecomputeCheck(
        "MlpPolicy", env, n_steps=32, batch_size=16, n_epochs=3, gae_lambda=0.9, recompute_advantage=True, seed=0
    )
    model.checks = 0
    model.learn(3 * 64, callback=_RawRollout(model).callback)
    assert model.checks == 3 * 2  # before epochs 2 and 3 of each of the 3 updates
    assert model.terminal_obs  # the case with truncations was exercised


class _AdvantageCapture(ClipPPO):
    def _train(self):
        self.raw_advantages = self.rollout_buffer.advantages.copy()
        self.seen = []
        super()._train()

    def _policy_loss(self, batch, outputs, log_prob, ratio, advantages):
        self.seen.append(advantages.detach().clone())
        return super()._policy_loss(batch, outputs, log_prob, ratio, advantages)


@pytest.mark.parametrize("scope", ["minibatch", "batch"])
def test_advantage_normalisation_scope_by_hand(scope):
    model = _AdvantageCapture(
        "MlpPolicy", "CartPole-v1", n_steps=64, batch_size=16, n_epochs=1, normalize_advantage_scope=scope
    )
    model.learn(64)
    raw = model.raw_advantages.flatten().astype(np.float64)
    if scope == "batch":  # the whole batch: (A - mean) / (std_{n-1} + 1e-8), seen in shuffled minibatches
        expected = (raw - raw.mean()) / (raw.std(ddof=1) + 1e-8)
        np.testing.assert_allclose(np.sort(th.cat(model.seen).numpy()), np.sort(expected), rtol=1e-4, atol=1e-5)
        assert max(abs(float(seen.mean())) for seen in model.seen) > 1e-3  # a minibatch alone is not centred
    else:  # each minibatch on its own
        for seen in model.seen:
            assert float(seen.mean()) == pytest.approx(0.0, abs=1e-5)
            assert float(seen.std()) == pytest.approx(1.0, abs=1e-4)


def test_normalize_advantage_false_is_off_whatever_the_scope():
    model = _AdvantageCapture(
        "MlpPolicy",
        "CartPole-v1",
        n_steps=64,
        batch_size=16,
        n_epochs=1,
        normalize_advantage=False,
        normalize_advantage_scope="batch",
    )
    model.learn(64)
    np.testing.assert_allclose(np.sort(th.cat(model.seen).numpy()), np.sort(model.raw_advantages.flatten()), rtol=1e-6)


def _parameters_after(**kwargs):
    model = ClipPPO(
        "MlpPolicy", "Pendulum-v1", n_steps=64, batch_size=16, n_epochs=8, learning_rate=3e-3, seed=3, device="cpu", **kwargs
    )
    model.learn(2 * 64)
    return th.cat([p.detach().flatten() for p in model.policy.parameters()])


@pytest.mark.parametrize(
    "control",
    [
        {"adaptive_lr_target_kl": 0.01},
        {"adaptive_lr_target_kl": 0.01, "adaptive_lr_every": "update"},
        {"dual_clip": 1.05},
        {"clip_range_vf": 0.05, "value_clip_form": "max"},
        {"normalize_advantage_scope": "batch"},
        {"recompute_advantage": True},
    ],
    ids=lambda control: "-".join(f"{k}={v}" for k, v in control.items()),
)
def test_each_control_changes_training(control):
    """Guards against a control that is accepted and ignored (and the equivalence test passing vacuously)."""
    baseline = _parameters_after(**({"clip_range_vf": 0.05} if "value_clip_form" in control else {}))
    assert (baseline - _parameters_after(**control)).abs().max().item() > 1e-6


def test_controls_with_dict_observations():
    """The batch-wide passes (recomputed values, batch normalisation, per-update KL) also read Dict observations."""
    from stable_baselines3.common.envs import SimpleMultiObsEnv

    model = ClipPPO(
        "MultiInputPolicy",
        SimpleMultiObsEnv(),
        n_steps=64,
        batch_size=32,
        n_epochs=3,
        recompute_advantage=True,
        normalize_advantage_scope="batch",
        adaptive_lr_target_kl=0.01,
        adaptive_lr_every="update",
        seed=0,
    )
    model.learn(2 * 64)
    assert model.current_learning_rate != 3e-4 and np.isfinite(model._adaptive_lr_kl)


def test_per_update_kl_uses_the_action_masks():
    """With masked algorithms the batch KL is taken on the masked distribution: 0 when the policy has not moved."""
    from sb3_contrib.common.envs import InvalidActionEnvDiscrete

    from sb3_ppo_variants import MaskableClipPPO

    model = MaskableClipPPO(
        "MlpPolicy",
        InvalidActionEnvDiscrete(dim=20, n_invalid_actions=10),
        n_steps=64,
        batch_size=32,
        adaptive_lr_target_kl=0.01,
        adaptive_lr_every="update",
        seed=0,
    )
    _, callback = model._setup_learn(64, None)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=64)
    list(model.rollout_buffer.get(32))  # flatten, as the first epoch does
    assert model._batch_approx_kl() == pytest.approx(0.0, abs=1e-6)
    model.learn(2 * 64)
    assert np.isfinite(model._adaptive_lr_kl)
