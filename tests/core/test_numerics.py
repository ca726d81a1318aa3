"""``numerics``: the saved choice between SB3's arithmetic and ours, and the backends the gate reports."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch as th
from stable_baselines3 import PPO

from sb3_ppo_variants import REINFORCE, ClipPPO, KLPenaltyPPO
from sb3_ppo_variants._lean import gate
from tests.conftest import TINY_NET

TINY = TINY_NET


@pytest.mark.parametrize("value", ["exact", "", None, 1])
def test_bad_numerics_is_refused_naming_the_choices(value: object) -> None:
    with pytest.raises((ValueError, TypeError), match=r"`numerics`.*'fast'.*'sb3'"):
        ClipPPO("MlpPolicy", "CartPole-v1", numerics=value)  # type: ignore[arg-type]


def test_sb3_numerics_is_ppo_bit_for_bit_with_the_default_optimizer() -> None:
    """No optimizer setting needed: numerics="sb3" keeps SB3's Adam and every rounding of SB3's computation."""
    kwargs = dict(n_steps=64, batch_size=32, n_epochs=2, seed=3, device="cpu", policy_kwargs=TINY)
    ours = ClipPPO("MlpPolicy", "Pendulum-v1", numerics="sb3", **kwargs).learn(128)
    sb3 = PPO("MlpPolicy", "Pendulum-v1", **kwargs).learn(128)
    assert not ours.policy.optimizer.param_groups[0]["fused"]
    for a, b in zip(ours.policy.parameters(), sb3.policy.parameters(), strict=True):
        assert th.equal(a, b)
    assert ours.logger.name_to_value["train/backend"] == "torch-lean"


@pytest.mark.parametrize("cls", [ClipPPO, KLPenaltyPPO, REINFORCE])
def test_the_default_runs_the_numpy_backends_and_logs_them(cls: type) -> None:
    model = cls("MlpPolicy", "CartPole-v1", n_steps=256, batch_size=64, n_epochs=1, device="cpu", policy_kwargs=TINY)
    model.learn(256)
    assert model.numerics == "fast" and model.policy.optimizer.param_groups[0]["fused"]
    assert model.logger.name_to_value["train/backend"] == "numpy"
    assert gate.plan_rollout(model).name == "numpy"  # (rollout/backend is dumped with the rollout's logs)


def test_verbose_says_why_a_fast_path_was_declined(capsys: pytest.CaptureFixture[str]) -> None:
    model = ClipPPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1, verbose=1, numerics="sb3")
    model.learn(128)
    out = capsys.readouterr().out
    assert out.count("declined numpy update: numerics='sb3' keeps torch's arithmetic") == 1  # once, not per update
    assert "declined numpy rollout step: numerics='sb3'" in out


def test_numerics_is_saved_and_loaded(tmp_path: Path) -> None:
    model = ClipPPO("MlpPolicy", "CartPole-v1", n_steps=64, numerics="sb3", policy_kwargs=TINY)
    model.save(tmp_path / "model")
    assert ClipPPO.load(tmp_path / "model").numerics == "sb3"


@pytest.mark.parametrize("fused", [True, False])
def test_a_file_without_numerics_keeps_the_arithmetic_it_ran_with(tmp_path: Path, fused: bool) -> None:
    """Before ``numerics`` (0.1.0, 0.2.0) the NumPy paths ran only with a fused Adam: such a file loads with the
    arithmetic its optimizer implied."""
    policy_kwargs = {**TINY, "optimizer_kwargs": dict(eps=1e-5, fused=fused)}
    ClipPPO("MlpPolicy", "CartPole-v1", n_steps=64, policy_kwargs=policy_kwargs).save(tmp_path / "model.zip")
    old = tmp_path / "old.zip"
    with zipfile.ZipFile(tmp_path / "model.zip") as source, zipfile.ZipFile(old, "w") as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "data":
                data = json.loads(content)
                del data["numerics"]
                content = json.dumps(data).encode()
            target.writestr(item, content)
    assert ClipPPO.load(old).numerics == ("fast" if fused else "sb3")


def test_release_0_1_0_files_load_with_fast_numerics() -> None:
    data = Path(__file__).resolve().parents[1] / "data"
    for cls, name in ((ClipPPO, "clip_ppo"), (KLPenaltyPPO, "kl_ppo"), (REINFORCE, "reinforce")):
        assert cls.load(data / f"{name}_release_0_1_0.zip").numerics == "fast"
