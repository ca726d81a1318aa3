"""SPO (Simple Policy Optimization, Xie et al., ICML 2025, arXiv 2401.16025) on the shared loop.

The loss itself is checked by hand in tests/core/test_losses.py and its NumPy twin in tests/lean/; the shared behaviour
(spaces, gSDE, save/load, callbacks, bad input) by the tests parametrised over ``tests.conftest.ALGORITHMS``.
"""

from __future__ import annotations

import pytest
from stable_baselines3.common.logger import configure
from stable_baselines3.common.utils import LinearSchedule

from sb3_ppo_variants import ALGOS, SPO, ClipPPO, MaskableSPO
from sb3_ppo_variants._lean import gate
from sb3_ppo_variants.registry import MASKABLE_ALGOS, UNMASKED_NAME
from tests.conftest import assert_same_next_update, assert_same_parameters

N_STEPS = 64
KWARGS = dict(n_steps=N_STEPS, batch_size=32, n_epochs=4, seed=3, device="cpu")


def test_registered_under_its_short_names():
    assert ALGOS["spo"] is SPO and MASKABLE_ALGOS["spo_mask"] is MaskableSPO and UNMASKED_NAME["spo_mask"] == "spo"


def test_defaults_are_clip_ppos_with_the_papers_epsilon():
    """PPO's parameters where they mean the same, with ClipPPO's defaults; epsilon 0.2 as the authors' code."""
    import inspect

    spo = inspect.signature(SPO.__init__).parameters
    clip = inspect.signature(ClipPPO.__init__).parameters
    assert spo["epsilon"].default == 0.2
    assert set(clip) - set(spo) == {"clip_range", "dual_clip"} and set(spo) - set(clip) == {"epsilon"}
    for name in set(spo) & set(clip):
        assert spo[name].default == clip[name].default, name
    # epsilon in clip_range's place, so positional arguments line up with PPO's
    assert list(spo).index("epsilon") == list(clip).index("clip_range")


def test_logs_epsilon_and_the_fraction_past_the_boundary():
    kwargs = dict(KWARGS, learning_rate=1e-2, n_epochs=10)
    model = SPO("MlpPolicy", "CartPole-v1", epsilon=LinearSchedule(0.3, 0.1, 1.0), **kwargs)
    model.set_logger(configure(None, [""]))
    model.learn(2 * N_STEPS)
    logged = model.logger.name_to_value
    assert logged["train/epsilon"] == pytest.approx(0.1)  # the last update, at progress 0
    assert 0 < logged["train/boundary_fraction"] < 1
    assert "train/clip_fraction" not in logged


def test_the_numpy_update_runs_and_a_subclass_gets_the_torch_one():
    model = SPO("MlpPolicy", "CartPole-v1", **KWARGS).learn(N_STEPS)
    assert gate.plan_update(model).name == "numpy"

    class OwnLoss(SPO):
        def _policy_loss(self, *args, **kwargs):  # type: ignore[override]
            return super()._policy_loss(*args, **kwargs)

    assert gate.plan_update(OwnLoss("MlpPolicy", "CartPole-v1", **KWARGS)).name == "torch-lean"


def test_numpy_and_sb3_arithmetic_agree():
    """The NumPy update (default) and torch's update on SB3's arithmetic end within float rounding of each other."""
    fast = SPO("MlpPolicy", "Pendulum-v1", **KWARGS).learn(3 * N_STEPS)
    exact = SPO("MlpPolicy", "Pendulum-v1", numerics="sb3", **KWARGS).learn(3 * N_STEPS)
    for a, b in zip(fast.policy.parameters(), exact.policy.parameters(), strict=True):
        assert (a - b).abs().max().item() < 1e-4


def test_a_different_objective_from_clip_ppo():
    kwargs = dict(KWARGS, learning_rate=3e-3, n_epochs=10)
    spo = SPO("MlpPolicy", "CartPole-v1", **kwargs).learn(2 * N_STEPS)
    clip = ClipPPO("MlpPolicy", "CartPole-v1", **kwargs).learn(2 * N_STEPS)
    with pytest.raises(AssertionError):
        assert_same_parameters(spo, clip)


def test_save_load_keeps_epsilon_and_makes_the_same_update(tmp_path):
    model = SPO("MlpPolicy", "CartPole-v1", epsilon=0.15, **KWARGS).learn(2 * N_STEPS)
    model.save(tmp_path / "model")
    loaded = SPO.load(tmp_path / "model", env=model.get_env(), device="cpu")
    assert loaded.epsilon(1.0) == 0.15
    assert_same_next_update(model, loaded)
    with pytest.raises(ValueError, match="holds a SPO model, not a ClipPPO one"):
        ClipPPO.load(tmp_path / "model")
