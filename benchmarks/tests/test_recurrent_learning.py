"""benchmarks/recurrent_learning.py: configs, thresholds, verdicts, and the script end to end at a tiny budget.

The slow tests are the learning runs of the issue, one seed each at the configs' full budget, through the script (so
through rl_zoo3 in fresh processes, evaluated as ``enjoy`` loads the model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks import recurrent_learning as rl
from benchmarks import zoo_results as zr


def _record(algo: str, env_id: str, seed: int, mean: float, reduced: bool = False) -> dict[str, Any]:
    return {
        "algo": algo,
        "env": env_id,
        "seed": seed,
        "timesteps": 100_000,
        "eval_mean": mean,
        "reduced": reduced,
        "wall_time_s": 60,
    }


def _entry(path: str, env_id: str) -> dict[str, Any]:
    with open(path) as f:
        return dict(yaml.safe_load(f)[env_id])


def test_every_row_has_a_threshold_and_the_zoo_budget(tmp_path: Path) -> None:
    for algo in rl.RECURRENT:
        for env_id in rl.ENVS:
            assert (algo, env_id) in rl.THRESHOLDS
            assert rl.budget(str(tmp_path), algo, env_id) == 100_000  # ppo_lstm.yml's budget for both
    assert rl.THRESHOLDS[("clip_ppo_lstm", "PendulumNoVel-v1")].value == pytest.approx(-217.9 - 140.1)


def test_memoryless_baseline_trains_ppo_yml_entry_of_the_task_with_velocities(tmp_path: Path) -> None:
    for env_id, full in rl.FULL_OBSERVATION_ENV.items():
        path = rl.config_file(str(tmp_path), "clip_ppo", env_id)
        assert _entry(path, env_id) == _entry(str(Path(rl.REPO) / "zoo_configs" / "clip_ppo.yml"), full)
        assert _entry(path, env_id)["policy"] == "MlpPolicy"
        assert rl.budget(str(tmp_path), "clip_ppo", env_id) == 100_000


def test_sb3_recurrent_ppo_trains_rl_zoo3s_own_ppo_lstm_yml(tmp_path: Path) -> None:
    path = rl.config_file(str(tmp_path), "ppo_lstm", "CartPoleNoVel-v1")
    assert _entry(path, "CartPoleNoVel-v1") == _entry(zr.config_path("ppo_lstm"), "CartPoleNoVel-v1")
    command = zr.train_command(zr.Job("ppo_lstm", "CartPoleNoVel-v1", 0, 10, 10), "/out", path)
    assert command[1:3] == ["-m", "rl_zoo3.train"] and "--conf-file" in command
    assert rl.config_file(str(tmp_path), "kl_ppo_lstm", "CartPoleNoVel-v1").endswith("zoo_configs/kl_ppo_lstm.yml")


def test_verdicts() -> None:
    env_id = "PendulumNoVel-v1"
    passing = [_record("clip_ppo_lstm", env_id, s, -300.0) for s in range(3)]
    assert "| -300.0 ± 0.0 |" in rl.table_row("clip_ppo_lstm", env_id, passing)
    assert "| pass |" in rl.table_row("clip_ppo_lstm", env_id, passing)
    runs = [_record("clip_ppo_lstm", env_id, s, m) for s, m in enumerate((-200.0, -250.0, -700.0))]
    row = rl.table_row("clip_ppo_lstm", env_id, runs)
    assert "-383.3 ± 224.8" in row and "| FAIL |" in row and "0: -200.0, 1: -250.0, 2: -700.0" in row
    worse = [_record("clip_ppo", env_id, s, -1000.0) for s in range(2)]
    assert "| clearly worse: yes (2 of 3 seeds) |" in rl.table_row("clip_ppo", env_id, worse)
    as_good = [_record("clip_ppo", env_id, 0, -200.0)]
    assert "clearly worse: NO" in rl.table_row("clip_ppo", env_id, as_good)
    sb3 = rl.table_row("ppo_lstm", env_id, [_record("ppo_lstm", env_id, 0, -300.0)])
    assert "SB3 ppo_lstm" in sb3 and "≥ -358" in sb3 and "| pass (1 of 3 seeds) |" in sb3
    reduced = [_record("reinforce_lstm", env_id, 0, -100.0, reduced=True)]
    assert "reduced budget, not judged" in rl.table_row("reinforce_lstm", env_id, reduced)


@pytest.mark.integration
def test_end_to_end_recurrent_and_memoryless(tmp_path: Path) -> None:
    argv = ["--algos", "clip_ppo_lstm", "clip_ppo", "--envs", "CartPoleNoVel-v1", "--seeds", "0"]
    argv += ["--max-timesteps", "256", "--eval-episodes", "2", "--out", str(tmp_path / "out")]
    assert rl.main(argv) == 0
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert sorted(r["algo"] for r in records) == ["clip_ppo", "clip_ppo_lstm"]
    by_algo = {r["algo"]: r for r in records}
    for record in records:
        assert record["status"] == "ok", record
        assert record["reduced"] and record["trained_timesteps"] >= 256 and len(record["eval_returns"]) == 2
    assert by_algo["clip_ppo_lstm"]["vecnormalize"] and not by_algo["clip_ppo"]["vecnormalize"]
    assert (
        "--conf-file" in by_algo["clip_ppo_lstm"]["command"]
        and "zoo_configs/clip_ppo_lstm.yml" in by_algo["clip_ppo_lstm"]["command"]
    )
    table = (tmp_path / "out.md").read_text()
    assert "| CartPoleNoVel-v1 | clip_ppo_lstm | 256 | 1 |" in table and "reduced budget, not judged" in table
    assert rl.main(argv) == 0  # everything done already: nothing trains again
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 2


#: The slow learning tests: one seed (0) of each recurrent algorithm on CartPoleNoVel-v1 at the config's full budget,
#: with a threshold that a memoryless policy does not come near (memoryless ClipPPO: 41.8 ± 1.6 over seeds 0 and 1 in
#: benchmarks/results/recurrent_learning.md). Seeds differ a lot at this budget (see that table), so these thresholds
#: are below the issue's: they fail when the memory does not work, not when a seed is unlucky.
SLOW_THRESHOLDS = {"clip_ppo_lstm": 150.0, "kl_ppo_lstm": 150.0, "reinforce_lstm": 100.0}


@pytest.mark.slow
@pytest.mark.parametrize("algo", list(SLOW_THRESHOLDS))
def test_recurrent_algorithm_learns_cartpole_without_velocities(algo: str, tmp_path: Path) -> None:
    argv = ["--algos", algo, "--envs", "CartPoleNoVel-v1", "--seeds", "0", "--out", str(tmp_path / "out")]
    assert rl.main(argv) == 0
    (record,) = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert record["status"] == "ok" and not record["reduced"]
    assert record["eval_mean"] >= SLOW_THRESHOLDS[algo], record["eval_returns"]
