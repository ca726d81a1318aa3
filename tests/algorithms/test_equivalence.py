"""ClipPPO computes what SB3's PPO computes: same seed and hyperparameters -> same parameters after 3 updates."""

import pytest
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.utils import LinearSchedule

from sb3_ppo_variants import ClipPPO

N_STEPS = 64

CASES = {
    # rl_zoo3-like CartPole settings, several envs and minibatches
    "cartpole": ("CartPole-v1", dict(n_steps=N_STEPS, batch_size=32, n_epochs=4, gae_lambda=0.8, gamma=0.98)),
    # SB3 defaults except the horizon (kept short for speed)
    "pendulum": ("Pendulum-v1", dict(n_steps=N_STEPS, batch_size=64, n_epochs=10)),
    "pendulum_gsde": ("Pendulum-v1", dict(n_steps=N_STEPS, batch_size=32, n_epochs=4, use_sde=True, sde_sample_freq=4)),
    "value_clip_entropy_target_kl": (
        "Pendulum-v1",
        dict(n_steps=N_STEPS, batch_size=16, n_epochs=5, clip_range_vf=0.2, ent_coef=0.01, target_kl=0.002),
    ),
    "schedules": (
        "CartPole-v1",
        dict(
            n_steps=N_STEPS,
            batch_size=32,
            n_epochs=3,
            learning_rate=LinearSchedule(1e-3, 0.0, 1.0),
            clip_range=LinearSchedule(0.3, 0.0, 1.0),
        ),
    ),
}


def _max_param_diff(a: th.nn.Module, b: th.nn.Module) -> float:
    return max((pa - pb).abs().max().item() for pa, pb in zip(a.parameters(), b.parameters(), strict=True))


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_parameters_as_sb3_ppo_after_three_updates(case):
    env_id, kwargs = CASES[case]
    models = []
    for cls in (PPO, ClipPPO):
        model = cls("MlpPolicy", env_id, seed=7, device="cpu", **kwargs)
        model.learn(3 * N_STEPS)  # one env: three rollouts, three updates
        models.append(model)
    sb3, ours = models
    assert ours._n_updates == sb3._n_updates > 0
    # the runs really trained: parameters moved away from their initial values
    fresh = ClipPPO("MlpPolicy", env_id, seed=7, device="cpu", **kwargs)
    assert _max_param_diff(fresh.policy, ours.policy) > 1e-4
    assert _max_param_diff(sb3.policy, ours.policy) <= 1e-5
    assert ours.num_timesteps == sb3.num_timesteps


def test_unclipped_surrogate_differs_from_clipped():
    """clip_range=None is a real change of objective (guards against the equivalence test passing vacuously)."""
    kwargs = dict(n_steps=N_STEPS, batch_size=16, n_epochs=10, learning_rate=3e-3)
    clipped = ClipPPO("MlpPolicy", "CartPole-v1", seed=1, device="cpu", **kwargs).learn(3 * N_STEPS)
    unclipped = ClipPPO("MlpPolicy", "CartPole-v1", seed=1, device="cpu", clip_range=None, **kwargs).learn(3 * N_STEPS)
    assert _max_param_diff(clipped.policy, unclipped.policy) > 1e-5
