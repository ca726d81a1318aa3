"""ClipPPO's asymmetric clip range ("clip-higher", DAPO: Yu et al. 2025, arXiv 2503.14476): ``clip_range=(low, high)``.

One epsilon stays SB3's clip (tests/algorithms/test_equivalence.py, unchanged); the pair ``(eps, eps)`` trains exactly as
``eps``, on the NumPy update and on SB3's arithmetic; an unequal pair is a real change of objective, logged per side.
"""

from __future__ import annotations

import pytest
from sb3_contrib.common.envs import InvalidActionEnvDiscrete
from stable_baselines3.common.logger import configure

from sb3_ppo_variants import ClipPPO, MaskableClipPPO
from sb3_ppo_variants._lean import gate
from tests.conftest import assert_same_next_update, assert_same_parameters

N_STEPS = 64
KWARGS = dict(n_steps=N_STEPS, batch_size=32, n_epochs=4, seed=3, device="cpu")


@pytest.mark.parametrize(
    "env_id, symmetric, pair, extra",
    [
        ("CartPole-v1", 0.2, (0.2, 0.2), {}),
        ("CartPole-v1", 0.1, [0.1, 0.1], dict(learning_rate=3e-3)),  # a list works as the pair
        ("Pendulum-v1", "lin_0.3", ("lin_0.3", "lin_0.3"), dict(use_sde=True, dual_clip=3.0)),
        ("Pendulum-v1", 0.2, (0.2, 0.2), dict(numerics="sb3")),  # SB3's arithmetic: the torch update
    ],
)
def test_equal_sides_train_exactly_as_one_epsilon(env_id, symmetric, pair, extra):
    one = ClipPPO("MlpPolicy", env_id, clip_range=symmetric, **KWARGS, **extra).learn(3 * N_STEPS)
    two = ClipPPO("MlpPolicy", env_id, clip_range=pair, **KWARGS, **extra).learn(3 * N_STEPS)
    assert_same_parameters(one, two)
    assert one._n_updates == two._n_updates > 0


def test_masked_clip_ppo_takes_the_pair_too():
    def trained(clip_range):  # each env is built right before its model (its masks draw from the global generator)
        env = InvalidActionEnvDiscrete(dim=20, n_invalid_actions=10)
        kwargs = dict(n_steps=N_STEPS, batch_size=16, n_epochs=4, seed=3, device="cpu")
        return MaskableClipPPO("MlpPolicy", env, clip_range=clip_range, **kwargs).learn(2 * N_STEPS)

    assert_same_parameters(trained(0.2), trained((0.2, 0.2)))
    assert gate.plan_update(trained((0.2, 0.28))).name == "torch-lean"  # sb3-contrib's policy: no NumPy update


def test_a_higher_upper_side_changes_the_update():
    """Guards against the equal-sides test passing vacuously: ratios do pass 1.2 at this learning rate."""
    kwargs = dict(KWARGS, learning_rate=3e-3, n_epochs=10)
    symmetric = ClipPPO("MlpPolicy", "CartPole-v1", clip_range=0.2, **kwargs).learn(2 * N_STEPS)
    higher = ClipPPO("MlpPolicy", "CartPole-v1", clip_range=(0.2, 0.28), **kwargs).learn(2 * N_STEPS)
    with pytest.raises(AssertionError):
        assert_same_parameters(symmetric, higher)


def test_logs_each_side_and_their_sum():
    model = ClipPPO("MlpPolicy", "CartPole-v1", clip_range=("lin_0.2", "lin_0.28"), **dict(KWARGS, learning_rate=3e-3))
    model.set_logger(configure(None, [""]))
    model.learn(2 * N_STEPS)
    logged = model.logger.name_to_value  # the last update's logs (not dumped yet)
    assert "train/clip_range" not in logged
    model._current_progress_remaining = 0.5
    model._on_update_start()
    assert logged["train/clip_range_low"] == pytest.approx(0.2 * 0.5)
    assert logged["train/clip_range_high"] == pytest.approx(0.28 * 0.5)
    assert logged["train/clip_fraction"] == pytest.approx(
        logged["train/clip_fraction_low"] + logged["train/clip_fraction_high"]
    )
    assert logged["train/clip_fraction"] > 0
    # one epsilon logs SB3's keys only
    symmetric = ClipPPO("MlpPolicy", "CartPole-v1", clip_range=0.2, **KWARGS)
    symmetric.set_logger(configure(None, [""]))
    symmetric.learn(2 * N_STEPS)
    assert {"train/clip_range", "train/clip_fraction"} <= set(symmetric.logger.name_to_value)
    assert not {"train/clip_fraction_low", "train/clip_range_low"} & set(symmetric.logger.name_to_value)


def test_the_numpy_update_runs_for_the_pair():
    model = ClipPPO("MlpPolicy", "CartPole-v1", clip_range=(0.2, 0.28), **KWARGS).learn(N_STEPS)
    assert gate.plan_update(model).name == "numpy"


def test_save_load_keeps_the_pair_and_makes_the_same_update(tmp_path):
    model = ClipPPO("MlpPolicy", "CartPole-v1", clip_range=("lin_0.2", 0.3), **KWARGS).learn(2 * N_STEPS)
    model.save(tmp_path / "model")
    loaded = ClipPPO.load(tmp_path / "model", env=model.get_env(), device="cpu")
    assert isinstance(loaded.clip_range, tuple) and [side(1.0) for side in loaded.clip_range] == [0.2, 0.3]
    assert_same_next_update(model, loaded)
