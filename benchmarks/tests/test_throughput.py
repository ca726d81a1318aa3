"""benchmarks/throughput.py: the command line and the profile table (where the time goes) on real profiles."""

from __future__ import annotations

import cProfile
from pathlib import Path

import pytest
import torch as th
from stable_baselines3 import PPO

from benchmarks import throughput
from sb3_ppo_variants import ClipPPO


def test_profile_takes_an_env_and_defaults_to_cartpole() -> None:
    assert throughput.parse_args(["--profile"]).profile == "CartPole-v1"
    assert throughput.parse_args(["--profile", "HalfCheetah-v5"]).profile == "HalfCheetah-v5"
    assert throughput.parse_args([]).profile is None
    with pytest.raises(SystemExit):
        throughput.parse_args(["--profile", "Acrobot-v1"])


def _profile(cls: type, path: Path) -> Path:
    model = cls("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu")
    model.learn(64)  # first-call costs outside the profile, as the benchmark's warm-up
    profiler = cProfile.Profile()
    profiler.enable()
    model.learn(128, reset_num_timesteps=False)
    profiler.disable()
    profiler.dump_stats(str(path))
    return path


def test_profile_table_finds_the_policy_calls_of_sb3_and_ours(tmp_path: Path) -> None:
    """Every row that both run is found in both profiles (a renamed function of ours would leave it at 0 s)."""
    paths = {"SB3 PPO": _profile(PPO, tmp_path / "ppo.prof"), "ClipPPO": _profile(ClipPPO, tmp_path / "clip.prof")}
    rows, table = throughput.profile_table(paths)
    labels = [label for _depth, label in rows]
    for row in (
        "collect_rollouts",
        "env.step (DummyVecEnv, Monitor, the env)",
        "policy forward + sample + log_prob",
        "train",
        "policy forward + log_prob + entropy",
        "backward",
        "gradient clipping + Adam step",
    ):
        assert row in labels
        assert table["SB3 PPO"][row] > 0 and table["ClipPPO"][row] > 0, row
    for algo in paths:
        parts = table[algo]["collect_rollouts"] + table[algo]["train"]
        assert parts <= table[algo]["learn() total"] * 1.001
        # the policy's rollout step is a real share of the rollouts, not a stray call
        assert table[algo]["policy forward + sample + log_prob"] > 0.1 * table[algo]["collect_rollouts"]


def test_phases_worker_splits_a_learn_into_its_phases() -> None:
    """benchmarks/phases.py: the phases add up to at most the whole learn(), and the policy is not touched."""
    from benchmarks import phases

    spec = {
        "algo": "ClipPPO",
        "kwargs": {"n_steps": 32, "batch_size": 32, "n_epochs": 2},
        "env_id": "CartPole-v1",
        "n_envs": 2,
        "timesteps": 128,
        "seed": 0,
        "warmup_timesteps": 64,
    }
    result = phases.run_worker(spec)
    us = result["us_per_step"]
    assert result["steps"] == 128
    assert all(us[key] > 0 for key in ("total", *phases.PHASES))
    assert sum(us[key] for key in phases.PHASES) <= us["total"]


def test_floor_measures_every_figure() -> None:
    from benchmarks import floor

    for setting in floor.SETTINGS:
        figures = floor.measure(setting, loops=3)
        assert len(figures) == 6 and all(value > 0 for value in figures.values())


def test_floor_hand_written_gradients_are_autograds() -> None:
    """The NumPy prototype's gradients against autograd on the floor's loss (the benchmark checks this too)."""
    import numpy as np
    import torch as th

    from benchmarks import floor

    for n_discrete, act_dim in ((3, 1), (0, 2)):
        th.manual_seed(1)
        actor, critic = floor._mlp(5, n_discrete or act_dim), floor._mlp(5, 1)
        log_std = th.nn.Parameter(th.tensor([0.3, -0.2])[:act_dim])
        obs, advantages, returns = th.randn(16, 5), th.randn(16), th.randn(16)
        # ratios on both sides of the clip range, so that both branches of the clipped surrogate are exercised
        old_log_prob = th.linspace(-2.0, 0.5, 16)
        actions = th.randint(0, n_discrete, (16,)) if n_discrete else th.randn(16, act_dim)
        out = actor(obs)
        if n_discrete:
            log_prob = out.log_softmax(-1).gather(1, actions[:, None]).squeeze(1)
        else:
            log_prob = (-((actions - out) ** 2) / (2 * log_std.exp() ** 2) - log_std).sum(-1)
        ratio = th.exp(log_prob - old_log_prob)
        assert (ratio < 0.8).any() and (ratio > 1.2).any()
        adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        loss = -th.min(ratio * adv, th.clamp(ratio, 0.8, 1.2) * adv).mean()
        (loss + 0.5 * ((critic(obs).squeeze(1) - returns) ** 2).mean()).backward()
        data = {"obs": obs.numpy(), "actions": actions.numpy(), "log_std": log_std.detach().numpy()}
        data.update(old_log_prob=old_log_prob.numpy(), advantages=advantages.numpy(), returns=returns.numpy())
        grads, grad_log_std = floor._numpy_loss_grads((actor, critic), data, n_discrete)
        params = [*actor.parameters(), *critic.parameters()]
        for grad, param in zip(grads, params, strict=True):
            np.testing.assert_allclose(grad, param.grad.numpy(), rtol=1e-4, atol=1e-6)
        if n_discrete:
            assert grad_log_std is None
        else:
            np.testing.assert_allclose(grad_log_std, log_std.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_scaling_plot_only_for_sweeps(tmp_path: Path) -> None:
    def row(setting: str, algorithm: str, steps_per_s: float) -> dict:
        return {
            "setting": setting,
            "algorithm": algorithm,
            "median_steps_per_s": steps_per_s,
            "min_steps_per_s": 0.9 * steps_per_s,
            "max_steps_per_s": 1.1 * steps_per_s,
        }

    sweep = [row(f"sweep CartPole-v1 n_envs={n}", algo, n * k) for n in (1, 4) for algo, k in (("SB3 PPO", 1), ("ClipPPO", 2))]
    sweep += [row(f"sweep HalfCheetah-v5 width={w}", "SB3 PPO", 1000 / w) for w in (64, 256)]
    assert throughput.plot_scaling(sweep, tmp_path / "sweep_scaling.png")
    assert (tmp_path / "sweep_scaling.png").stat().st_size > 0
    assert not throughput.plot_scaling([row("CartPole-v1 PPO-zoo", "SB3 PPO", 1.0)], tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def test_recurrent_settings_build_every_algorithm_at_the_zoo_settings() -> None:
    settings = throughput.build_settings(["CartPoleNoVel-v1", "PendulumNoVel-v1"], ["recurrent"], reinforce_baseline=False)
    assert [s.env_id for s in settings] == ["CartPoleNoVel-v1", "PendulumNoVel-v1"]
    for setting in settings:
        assert [algo.label for algo in setting.algos] == ["RecurrentPPO", "RecurrentClipPPO", "RecurrentKLPenaltyPPO"]
        spec = {"algo": "RecurrentClipPPO", "kwargs": setting.algos[1].kwargs, "env_id": setting.env_id, "n_envs": 2}
        model = throughput.build_model(spec, seed=0)
        assert type(model).__name__ == "RecurrentClipPPO"
        assert model.policy.lstm_actor.hidden_size == 64 and model.policy.activation_fn is th.nn.ReLU
    assert ("recurrent", "RecurrentClipPPO", "CartPoleNoVel-v1") in throughput.SPEED_TARGETS
