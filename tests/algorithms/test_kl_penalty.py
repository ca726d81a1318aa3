"""KLPenaltyPPO: the adaptive beta rule on crafted KL values and in a real run; beta survives save/load."""

import csv
import os

import pytest
import torch as th
from stable_baselines3.common.logger import configure

from sb3_ppo_variants import KLPenaltyPPO
from sb3_ppo_variants.kl_penalty_ppo import adapt_beta

TARGET = 0.01


@pytest.mark.parametrize(
    ("kl", "expected"),
    [
        (TARGET / 1.5 * 0.999, 0.5),  # just below d_targ / 1.5: halve
        (TARGET / 1.5 * 1.001, 1.0),  # just inside the band
        (TARGET, 1.0),
        (TARGET * 1.5 * 0.999, 1.0),
        (TARGET * 1.5 * 1.001, 2.0),  # just above 1.5 * d_targ: double
        (0.0, 0.5),
        (1e3, 2.0),
        (float("nan"), 2.0),  # a diverged update tightens the penalty rather than propagating NaN
    ],
)
def test_beta_rule_on_crafted_kl(kl, expected):
    assert adapt_beta(1.0, kl, TARGET) == expected


def test_beta_rule_constants_are_parameters():
    # tolerance 2 and factor 3: 0.006 is inside [0.005, 0.02], 0.004 is below, 0.03 above
    assert adapt_beta(1.0, 0.006, TARGET, tolerance=2.0, factor=3.0) == 1.0
    assert adapt_beta(1.0, 0.004, TARGET, tolerance=2.0, factor=3.0) == pytest.approx(1 / 3)
    assert adapt_beta(1.0, 0.03, TARGET, tolerance=2.0, factor=3.0) == 3.0


def test_beta_bounds_hold():
    beta = 1.0
    for _ in range(100):
        beta = adapt_beta(beta, 0.0, TARGET, beta_min=1e-3, beta_max=10.0)
    assert beta == 1e-3
    for _ in range(100):
        beta = adapt_beta(beta, 1.0, TARGET, beta_min=1e-3, beta_max=10.0)
    assert beta == 10.0


def _csv_rows(folder):
    with open(os.path.join(folder, "progress.csv")) as f:
        return [row for row in csv.DictReader(f) if row.get("train/beta")]


def test_real_run_follows_the_rule(tmp_path):
    """CartPole-v1, 20 updates: every consecutive (train/beta, train/kl) pair follows the rule."""
    model = KLPenaltyPPO(
        "MlpPolicy", "CartPole-v1", n_steps=128, batch_size=64, n_epochs=4, learning_rate=3e-3, seed=0, device="cpu"
    )
    model.set_logger(configure(str(tmp_path), ["csv"]))
    # SB3 dumps an update's logs at the start of the next iteration: 21 rollouts log 20 updates
    model.learn(21 * 128)
    rows = _csv_rows(tmp_path)
    assert len(rows) == 20
    betas = [float(r["train/beta"]) for r in rows]
    kls = [float(r["train/kl"]) for r in rows]
    assert betas[0] == 1.0
    for k in range(19):
        assert betas[k + 1] == pytest.approx(adapt_beta(betas[k], kls[k], TARGET)), k
    assert model.current_beta == pytest.approx(adapt_beta(betas[-1], kls[-1], TARGET))
    # the run exercised the rule: beta moved
    assert len(set(betas)) > 1
    assert all(float(r["train/kl_target"]) == TARGET for r in rows)


def test_fixed_beta_does_not_adapt(tmp_path):
    model = KLPenaltyPPO(
        "MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, beta=3.0, adaptive_beta=False, seed=0
    )
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(5 * 64)
    assert model.current_beta == 3.0
    assert {float(r["train/beta"]) for r in _csv_rows(tmp_path)} == {3.0}


def test_kl_target_schedule():
    model = KLPenaltyPPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, n_epochs=1, kl_target="lin_0.02", seed=0)
    assert model.kl_target(1.0) == pytest.approx(0.02)
    assert model.kl_target(0.5) == pytest.approx(0.01)


def test_measured_kl_is_the_batch_mean_of_the_closed_form():
    """train/kl is the mean over the whole batch of KL[pi_old, pi_theta] with the updated policy."""
    model = KLPenaltyPPO("MlpPolicy", "CartPole-v1", n_steps=256, batch_size=64, n_epochs=3, learning_rate=1e-2, seed=0)
    model.learn(256)
    buffer = model.rollout_buffer
    obs = th.as_tensor(buffer.observations.reshape(-1, 4))
    old = th.distributions.Categorical(logits=th.as_tensor(buffer.dist_params.reshape(-1, 2)))
    with th.no_grad():
        new = th.distributions.Categorical(logits=model.policy.get_distribution(obs).distribution.logits)
    expected = th.distributions.kl_divergence(old, new).mean().item()
    assert model.measure_kl() == pytest.approx(expected, rel=1e-5)
    assert expected > 0


def _trained(seed=0, **kwargs):
    return KLPenaltyPPO(
        "MlpPolicy",
        "CartPole-v1",
        n_steps=64,
        batch_size=32,
        n_epochs=4,
        learning_rate=3e-3,
        seed=seed,
        device="cpu",
        **kwargs,
    ).learn(6 * 64)


def test_save_load_keeps_beta_and_continues_from_it(tmp_path):
    model = _trained(kl_target=0.001)  # a tiny target pushes beta up
    saved_beta = model.current_beta
    assert saved_beta != 1.0
    model.save(tmp_path / "model")
    loaded = KLPenaltyPPO.load(tmp_path / "model", env=model.get_env(), device="cpu")
    assert loaded.current_beta == saved_beta
    loaded.set_logger(configure(str(tmp_path / "log"), ["csv"]))
    loaded.learn(2 * 64, reset_num_timesteps=False)  # the first update's logs are dumped with the 2nd rollout
    first = _csv_rows(tmp_path / "log")[0]
    assert float(first["train/beta"]) == saved_beta  # the next update used the loaded beta


# The loaded model making exactly the same update from the same batch (parameters, current_beta, _n_updates) is
# tested for every class in tests/core/test_reliability.py::test_loaded_model_makes_exactly_the_same_update.


def test_load_with_config_beta_keeps_the_adapted_beta(tmp_path):
    """rl_zoo3's `-i` passes its config (beta: 1.0) to load(): the adapted beta must survive it."""
    model = _trained(kl_target=0.001)
    adapted = model.current_beta
    assert adapted != 1.0
    model.save(tmp_path / "model")
    loaded = KLPenaltyPPO.load(tmp_path / "model", env=model.get_env(), beta=1.0, kl_target=0.001)
    assert loaded.current_beta == adapted
