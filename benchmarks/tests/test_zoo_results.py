"""benchmarks/zoo_results.py: job budgets, training commands, the results file and the pass/fail verdict.

The end-to-end case trains two tiny jobs (ours and SB3's own A2C) through rl_zoo3 in subprocesses, evaluates them the
way ``enjoy`` loads them, and checks the records and the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchmarks import zoo_results as zr


def _record(algo: str, env_id: str, seed: int, mean: float, timesteps: int, config_timesteps: int) -> dict[str, Any]:
    return {
        "algo": algo,
        "env": env_id,
        "seed": seed,
        "timesteps": timesteps,
        "config_timesteps": config_timesteps,
        "status": "ok",
        "eval_mean": mean,
        "trained_timesteps": timesteps,
        "n_eval_episodes": 20,
    }


def test_budgets_come_from_each_algorithms_own_config() -> None:
    jobs = {job.algo: job for job in zr.make_jobs(["reinforce", "a2c", "ppo", "clip_ppo"], ["LunarLander-v3"], [0], None)}
    # ours from zoo_configs/, SB3's from rl_zoo3's hyperparams/ (a2c.yml trains LunarLander for 2e5 steps)
    assert jobs["reinforce"].timesteps == int(float(zr.config_entry("reinforce", "LunarLander-v3")["n_timesteps"]))
    assert jobs["a2c"].timesteps == 200_000
    assert jobs["ppo"].timesteps == jobs["clip_ppo"].timesteps == 1_000_000  # clip_ppo.yml is ppo.yml
    assert zr.config_path("a2c").endswith("rl_zoo3/hyperparams/a2c.yml")
    capped = zr.make_jobs(["a2c"], ["LunarLander-v3"], [1], 5000)[0]
    assert (capped.timesteps, capped.config_timesteps, capped.seed) == (5000, 200_000, 1)


def test_baseline_on_a_v5_task_uses_rl_zoo3s_tuned_v4_entry(tmp_path: Path) -> None:
    with open(zr.config_path("ppo")) as f:
        ppo_yml = yaml.safe_load(f)
    assert "Hopper-v5" not in ppo_yml  # rl_zoo3 would fall back to its untuned `default` entry
    assert zr.config_entry("ppo", "Hopper-v5") == ppo_yml["Hopper-v4"] != ppo_yml["default"]
    assert zr.config_entry("clip_ppo", "Hopper-v5") == ppo_yml["Hopper-v4"]  # what ours trains with
    with open(zr.baseline_config_file(str(tmp_path), "ppo", "Hopper-v5")) as f:
        assert yaml.safe_load(f) == {"Hopper-v5": ppo_yml["Hopper-v4"]}


def test_baselines_train_with_rl_zoo3_and_ours_with_our_command() -> None:
    ours = zr.train_command(zr.Job("kl_ppo", "CartPole-v1", 3, 1000, 100_000), "/out")
    sb3 = zr.train_command(zr.Job("ppo", "CartPole-v1", 3, 1000, 100_000), "/out")
    assert ours[1:4] == ["-m", "sb3_ppo_variants.zoo", "train"]
    assert sb3[1:3] == ["-m", "rl_zoo3.train"]
    assert ours[4:6] == ["--algo", "kl_ppo"] and sb3[3:5] == ["--algo", "ppo"]
    assert ours[6:] == sb3[5:]  # the same arguments otherwise
    assert sb3[sb3.index("--algo") + 1] == "ppo" and sb3[sb3.index("--seed") + 1] == "3"


def test_verdict_against_the_zoo_threshold() -> None:
    reference = zr.ZOO_REFERENCE[("PPO", "Acrobot-v1")]
    threshold = reference.mean - reference.std
    passing = [_record("clip_ppo", "Acrobot-v1", s, threshold + d, 10**6, 10**6) for s, d in enumerate((-1.0, 1.0, 3.0))]
    failing = [_record("kl_ppo", "Acrobot-v1", s, threshold + d, 10**6, 10**6) for s, d in enumerate((-3.0, 1.0, 1.0))]
    reduced = [_record("clip_ppo", "Acrobot-v1", 0, threshold + 50, 10**5, 10**6)]
    assert zr.table_row("clip_ppo", "Acrobot-v1", 10**6, passing).endswith("| yes |")
    assert zr.table_row("kl_ppo", "Acrobot-v1", 10**6, failing).endswith("| **no** |")
    assert zr.table_row("clip_ppo", "Acrobot-v1", 10**5, reduced).endswith("| n/a (reduced budget) |")
    assert zr.table_row("kl_ppo", "Acrobot-v1", 10**6, failing[:1]).endswith("| **no** (1 of 3 seeds) |")
    row = zr.table_row("ppo", "Acrobot-v1", 10**6, passing)
    assert "| SB3 ppo (rl_zoo3's config) |" in row and "PPO -73.5 ± 18.2 (1M)" in row and row.endswith("| yes |")
    cells = zr.table_row("clip_ppo", "Acrobot-v1", 10**6, passing).split(" | ")
    assert cells[4] == f"{threshold + 1.0:.1f} ± {1.632993:.1f}"  # mean and population std over the seeds


def test_latest_success_wins_and_failures_are_reported_once() -> None:
    ok = _record("reinforce", "CartPole-v1", 0, 500.0, 1000, 1000)
    error = {**ok, "status": "error", "stage": "train"}
    later_ok = {**ok, "eval_mean": 400.0}
    results, failed = zr.latest_results([error, ok, error, later_ok])
    assert results[zr.record_key(ok)]["eval_mean"] == 400.0 and failed == []
    other_error = {**error, "seed": 1}
    assert zr.latest_results([other_error, other_error])[1] == [other_error]


def test_unknown_algorithm_is_refused_by_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        zr.parse_args(["--algos", "dqn"])
    assert "invalid choice: 'dqn'" in capsys.readouterr().err


@pytest.mark.integration
def test_end_to_end_ours_and_sb3_baseline(tmp_path: Path) -> None:
    argv = ["--algos", "reinforce", "a2c", "--envs", "CartPole-v1", "--seeds", "0", "--max-timesteps", "400"]
    argv += ["--eval-episodes", "2", "--workers", "2", "--out", str(tmp_path)]
    assert zr.main(argv) == 0
    records = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(r["algo"] for r in records) == ["a2c", "reinforce"]
    for record in records:
        assert record["status"] == "ok", record
        assert record["trained_timesteps"] >= 400 and record["reduced"]
        assert len(record["eval_returns"]) == 2 and record["eval_mean"] == pytest.approx(sum(record["eval_returns"]) / 2)
        assert (tmp_path / record["run_dir"] / "CartPole-v1.zip").is_file()
    by_algo = {r["algo"]: r for r in records}
    assert "rl_zoo3.train --algo a2c" in by_algo["a2c"]["command"] and "--conf-file" in by_algo["a2c"]["command"]
    assert "sb3_ppo_variants.zoo train --algo reinforce" in by_algo["reinforce"]["command"]
    table = (tmp_path / "table.md").read_text()
    assert "| CartPole-v1 | SB3 a2c (rl_zoo3's config) |" in table and "| CartPole-v1 | reinforce |" in table
    # a second run finds both jobs done and trains nothing
    assert zr.main(argv) == 0
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2
