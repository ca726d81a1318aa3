"""The PPO paper's Table 1 ablation: grid, normalisation, aggregation, the tiny preset end to end, and resuming."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch as th
from optuna.trial import TrialState
from scipy import stats

from sb3_ppo_variants import SPO, ClipPPO, KLPenaltyPPO
from sb3_ppo_variants.ablation import __main__ as cli
from sb3_ppo_variants.ablation.grid import (
    EXTRA_GROUP,
    EXTRA_SETTINGS,
    GRIDS,
    GROUPS,
    MEASURED_STEPS_PER_S,
    PAPER_ENVS,
    PAPER_HYPERPARAMS,
    SETTINGS,
    GridSpec,
    Job,
    estimate_seconds,
    get_setting,
    settings_in_table_order,
)
from sb3_ppo_variants.ablation.report import load_results, markdown_report, normalise, summarise
from sb3_ppo_variants.ablation.runner import (
    GRID_ATTR,
    WorkerOptions,
    grid_state,
    open_study,
    prepare_round,
    run_ablation,
    run_job,
)
from sb3_ppo_variants.workers.loop import DIED, Liveness, WorkerIdentity, recover_dead_trials
from sb3_ppo_variants.workers.storage import StorageSpec, open_storage, resolve_storage

REPO = Path(__file__).resolve().parents[2]
ENV = "InvertedPendulum-v5"  # cheap to build


# ---------------------------------------------------------------------------------------------------- grid


EXPECTED = {  # setting -> (class, attributes after construction)
    "no_clip": (ClipPPO, {"clip_range": None}),
    "clip_0.1": (ClipPPO, {"clip_range": 0.1}),
    "clip_0.2": (ClipPPO, {"clip_range": 0.2}),
    "clip_0.3": (ClipPPO, {"clip_range": 0.3}),
    "adaptive_kl_0.003": (KLPenaltyPPO, {"beta": 1.0, "kl_target": 0.003, "adaptive_beta": True, "clip_range": None}),
    "adaptive_kl_0.01": (KLPenaltyPPO, {"beta": 1.0, "kl_target": 0.01, "adaptive_beta": True, "clip_range": None}),
    "adaptive_kl_0.03": (KLPenaltyPPO, {"beta": 1.0, "kl_target": 0.03, "adaptive_beta": True, "clip_range": None}),
    "fixed_kl_0.3": (KLPenaltyPPO, {"beta": 0.3, "adaptive_beta": False, "clip_range": None}),
    "fixed_kl_1": (KLPenaltyPPO, {"beta": 1.0, "adaptive_beta": False, "clip_range": None}),
    "fixed_kl_3": (KLPenaltyPPO, {"beta": 3.0, "adaptive_beta": False, "clip_range": None}),
    "fixed_kl_10": (KLPenaltyPPO, {"beta": 10.0, "adaptive_beta": False, "clip_range": None}),
    # rows the paper does not have (issue 27)
    "clip_higher_0.2_0.28": (ClipPPO, {}),
    "spo_0.2": (SPO, {"epsilon": 0.2}),
}


def _value(x):
    """A hyperparameter's value at the start of training (schedules are evaluated at progress 1)."""
    return x(1.0) if callable(x) else x


@pytest.mark.parametrize("name", list(EXPECTED))
def test_setting_builds_the_right_model(name):
    cls, attributes = EXPECTED[name]
    spec = GRIDS["full"].spec
    model = cls("MlpPolicy", ENV, seed=0, device="cpu", **spec.model_kwargs(name))
    from sb3_ppo_variants import ALGOS

    assert ALGOS[get_setting(name).algo] is cls
    for key, expected in attributes.items():
        assert _value(getattr(model, key)) == expected, key
    # the paper's hyperparameters
    assert (model.n_steps, model.batch_size, model.n_epochs, model.n_envs) == (2048, 64, 10, 1)
    assert _value(model.learning_rate) == pytest.approx(3e-4)
    assert (model.gamma, model.gae_lambda, model.ent_coef) == (0.99, 0.95, 0.0)
    # separate 64x64 tanh policy and value networks, a state-independent log std
    policy = model.policy
    layers = lambda net: [(m.in_features, m.out_features) for m in net if isinstance(m, th.nn.Linear)]  # noqa: E731
    obs_dim = model.observation_space.shape[0]
    assert layers(policy.mlp_extractor.policy_net) == [(obs_dim, 64), (64, 64)]
    assert layers(policy.mlp_extractor.value_net) == [(obs_dim, 64), (64, 64)]
    assert all(isinstance(m, th.nn.Tanh) for m in policy.mlp_extractor.policy_net if not isinstance(m, th.nn.Linear))
    pi_params = {id(p) for p in policy.mlp_extractor.policy_net.parameters()} | {id(p) for p in policy.action_net.parameters()}
    vf_params = {id(p) for p in policy.mlp_extractor.value_net.parameters()} | {id(p) for p in policy.value_net.parameters()}
    assert not pi_params & vf_params
    assert not list(policy.features_extractor.parameters())  # the shared "extractor" is a parameter-free flatten
    assert isinstance(policy.log_std, th.nn.Parameter) and policy.log_std.shape == (1,)


def test_settings_follow_table_1():
    assert [s.name for s in SETTINGS] + [s.name for s in EXTRA_SETTINGS] == list(EXPECTED)
    assert {s.group for s in EXTRA_SETTINGS} == {EXTRA_GROUP} and all(math.isnan(s.paper_score) for s in EXTRA_SETTINGS)
    assert [s.group for s in SETTINGS] == [GROUPS[0]] + [GROUPS[1]] * 3 + [GROUPS[2]] * 3 + [GROUPS[3]] * 4
    assert [s.paper_score for s in SETTINGS] == [-0.39, 0.76, 0.82, 0.70, 0.68, 0.74, 0.71, 0.62, 0.71, 0.72, 0.69]
    assert PAPER_HYPERPARAMS["n_steps"] == 2048 and PAPER_HYPERPARAMS["ent_coef"] == 0.0
    with pytest.raises(KeyError, match="valid"):
        get_setting("clip_0.25")


def test_presets():
    paper_rows = tuple(name for name in EXPECTED if name not in {s.name for s in EXTRA_SETTINGS})  # the named grids
    full = GRIDS["full"].spec
    assert (full.n_jobs, full.timesteps, full.seeds, full.envs) == (231, 1_000_000, (0, 1, 2), PAPER_ENVS)
    assert full.settings == paper_rows
    small = GRIDS["small"].spec
    assert small.settings == paper_rows and set(small.envs) <= set(PAPER_ENVS)
    # the small preset fits in an hour on 2 quiet cores, at the throughputs measured for docs/ablation.md
    assert estimate_seconds(small, MEASURED_STEPS_PER_S, workers=2) < 3600
    tiny = GRIDS["tiny"].spec
    assert tiny.n_jobs == 2 and tiny.timesteps <= 4096


def test_grid_spec_validation_and_round_trip():
    spec = GRIDS["small"].spec
    assert GridSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert len(set(spec.points())) == spec.n_jobs == len(spec.settings) * len(spec.envs) * len(spec.seeds)
    assert spec.search_space() == {"setting": list(spec.settings), "env": list(spec.envs), "seed": list(spec.seeds)}
    other = spec.with_overrides(seeds=[0, 1, 2])
    assert other.differences(spec) == ["seeds: [0, 1, 2] here, [0, 1] in the study"]
    with pytest.raises(KeyError, match="Unknown ablation setting"):
        spec.with_overrides(settings=["clip_0.5"])
    with pytest.raises(ValueError, match="Duplicate seeds"):
        spec.with_overrides(seeds=[1, 1])
    with pytest.raises(ValueError, match="Seeds must be ints"):
        spec.with_overrides(seeds=[-1])
    with pytest.raises(ValueError, match="timesteps"):
        spec.with_overrides(timesteps=0)
    with pytest.raises(ValueError, match="not a point"):
        spec.job("clip_0.2", "Reacher-v5", 0)


def test_estimate_seconds_rounds_to_rollouts():
    spec = GridSpec(("clip_0.2", "fixed_kl_1"), ("A",), (0, 1), 3000)  # 2 rollouts of 2048 per job
    rates = {"A": {"clip_ppo": 1024.0, "kl_ppo": 512.0}}
    assert estimate_seconds(spec, rates, workers=1) == pytest.approx(2 * (4096 / 1024 + 4096 / 512))
    assert estimate_seconds(spec, {"A": 4096.0}, workers=2) == pytest.approx(2.0)


# ---------------------------------------------------------------------------------------------------- normalisation


def _results(scores: dict[tuple[str, str, int], float], random_scores: dict[str, float], seeds=(0, 1)) -> dict:
    settings = tuple(dict.fromkeys(k[0] for k in scores))
    envs = tuple(dict.fromkeys(k[1] for k in scores))
    spec = GridSpec(settings, envs, tuple(seeds), 1000)
    jobs = [
        {"setting": s, "env": e, "seed": seed, "score": v, "timesteps": 1000, "n_episodes": 10, "wall_time_s": 1.0,
         "curve": [[500, v / 2], [1000, v]], "diverged_at": None}
        for (s, e, seed), v in scores.items()
    ]  # fmt: skip
    return {
        "grid": spec.to_dict(),
        "random_scores": {e: {"mean": r, "episodes": 10} for e, r in random_scores.items()},
        "jobs": jobs,
        "missing": [],
        "failed": [],
    }


CRAFTED = {
    # env A: random 10; clip_0.2 mean 110 (best), fixed_kl_1 mean 60
    ("clip_0.2", "A", 0): 100.0,
    ("clip_0.2", "A", 1): 120.0,
    ("fixed_kl_1", "A", 0): 60.0,
    ("fixed_kl_1", "A", 1): 60.0,
    # env B: random -50; fixed_kl_1 mean -10 (best), clip_0.2 mean -50 (random level)
    ("clip_0.2", "B", 0): -40.0,
    ("clip_0.2", "B", 1): -60.0,
    ("fixed_kl_1", "B", 0): -20.0,
    ("fixed_kl_1", "B", 1): 0.0,
}


def test_normalise_random_is_zero_best_is_one():
    from sb3_ppo_variants.ablation.report import job_frame

    frame = normalise(job_frame(_results(CRAFTED, {"A": 10.0, "B": -50.0})), {"A": 10.0, "B": -50.0})
    by_key = {(r.setting, r.env, r.seed): r.normalised for r in frame.itertuples()}
    assert by_key[("clip_0.2", "A", 0)] == pytest.approx(0.9)  # (100 - 10) / (110 - 10)
    assert by_key[("clip_0.2", "A", 1)] == pytest.approx(1.1)
    assert by_key[("fixed_kl_1", "A", 0)] == pytest.approx(0.5)
    assert by_key[("clip_0.2", "B", 0)] == pytest.approx(0.25)  # (-40 + 50) / (-10 + 50)
    assert by_key[("fixed_kl_1", "B", 1)] == pytest.approx(1.25)
    means = frame.groupby(["env", "setting"])["normalised"].mean()
    assert means[("A", "clip_0.2")] == pytest.approx(1.0) and means[("B", "fixed_kl_1")] == pytest.approx(1.0)
    assert means[("B", "clip_0.2")] == pytest.approx(0.0)  # at the random policy's level
    # an env where no setting beats the random policy cannot be normalised
    frame = normalise(job_frame(_results(CRAFTED, {"A": 500.0, "B": -50.0})), {"A": 500.0, "B": -50.0})
    assert frame[frame.env == "A"]["normalised"].isna().all() and frame[frame.env == "B"]["normalised"].notna().all()
    with pytest.raises(ValueError, match="random-policy score"):
        normalise(job_frame(_results(CRAFTED, {"A": 1.0, "B": 1.0})), {"A": 1.0})


def test_summarise_mean_iqm_and_intervals():
    results = _results(CRAFTED, {"A": 10.0, "B": -50.0})
    rows, _ = summarise(results, reps=300)
    assert [r.name for r in rows] == ["clip_0.2", "fixed_kl_1"]  # table order
    clip, fixed = rows
    clip_runs = np.array([0.9, 1.1, 0.25, -0.25])
    fixed_runs = np.array([0.5, 0.5, 0.75, 1.25])
    assert clip.mean == pytest.approx(clip_runs.mean()) and fixed.mean == pytest.approx(fixed_runs.mean())
    assert clip.iqm == pytest.approx(stats.trim_mean(clip_runs, 0.25)) and fixed.iqm == pytest.approx(0.625)
    assert clip.n_runs == 4 and clip.paper == 0.82
    for row in rows:
        assert row.mean_ci[0] <= row.mean <= row.mean_ci[1] and row.iqm_ci[0] <= row.iqm <= row.iqm_ci[1]
    # a missing run: the plain mean is still there, the bootstrap needs the full matrix
    del results["jobs"][0]
    clip, _ = summarise(results, reps=50)[0]
    assert clip.n_runs == 3 and math.isfinite(clip.mean) and math.isnan(clip.iqm)
    table = markdown_report(results, *summarise(results, reps=50), reps=50)
    assert "rliable (50 resamples" in table
    assert "| Clipping, ε = 0.2 | **0.82** |" in table and "| Fixed KL, β = 1 | 0.71 |" in table
    assert "| Random policy | 10.0 (10 ep.) | -50.0 (10 ep.) |" in table


# ---------------------------------------------------------------------------------------------------- the study


def _study(tmp_path: Path, spec: GridSpec) -> optuna.Study:
    return open_study(resolve_storage(None, tmp_path), "test", spec)


def test_gridsampler_counts_a_failed_point_as_done_and_we_rerun_it(tmp_path):
    """Optuna's GridSampler treats a FAIL trial's point as visited: our worker loop must enqueue it again."""
    spec = GridSpec(("clip_0.2",), (ENV,), (0,), 2048)
    study = _study(tmp_path, spec)
    trial = study.ask()
    assert trial.suggest_categorical("setting", ["clip_0.2"]) == "clip_0.2"
    trial.suggest_categorical("env", [ENV])
    trial.suggest_categorical("seed", [0])
    study.tell(trial, state=TrialState.FAIL)
    assert study.sampler.is_exhausted(study)  # GridSampler: nothing left to do
    state, can_start = prepare_round(study, spec, WorkerOptions())
    assert can_start and not state.done(max_failures=3)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["point"] == ["clip_0.2", ENV, 0]
    assert waiting[0].user_attrs["retry_of"] == [0]
    # after max_failures failed attempts the point is given up
    assert grid_state(study, spec).given_up(max_failures=1) == [("clip_0.2", ENV, 0)]


def test_stale_running_trials(tmp_path):
    spec = GridSpec(("clip_0.2",), (ENV,), (0, 1, 2), 2048)
    study = _study(tmp_path, spec)
    me = WorkerIdentity.current().to_attr()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    now = time.time()
    cases = {
        0: ({**me, "pid": int(dead.stdout)}, now),  # this machine, process gone: stale at once
        1: (me, now - 10_000),  # this machine, alive: live whatever its heartbeat
        2: ({**me, "host": "elsewhere", "machine": "elsewhere"}, now - 10_000),  # another machine, no heartbeat: stale
    }
    for seed, (worker, heartbeat) in cases.items():
        study.enqueue_trial({"setting": "clip_0.2", "env": ENV, "seed": seed})
        trial = study.ask()
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("heartbeat", heartbeat)
    trials = study.get_trials()
    liveness = Liveness("journal", heartbeat_interval=30, grace_period=600)
    assert [liveness.dead_reason(t, now) is not None for t in trials] == [True, False, True]
    assert Liveness("journal", 30, grace_period=20_000).dead_reason(trials[2], now) is None
    recover_dead_trials(study, liveness, print)
    _, can_start = prepare_round(study, spec, WorkerOptions(stale_after=600))
    trials = study.get_trials()
    assert [t.state for t in trials[:3]] == [TrialState.FAIL, TrialState.RUNNING, TrialState.FAIL]
    assert trials[0].user_attrs["fail_reason"].startswith(DIED)
    assert can_start and len(study.get_trials(states=(TrialState.WAITING,))) == 1


def test_study_refuses_another_grid(tmp_path):
    spec = GRIDS["tiny"].spec
    study = _study(tmp_path, spec)
    assert study.user_attrs[GRID_ATTR] == spec.to_dict()
    with pytest.raises(ValueError, match=r"another ablation grid.*seeds: \[0, 1\] here, \[0\] in the study"):
        _study(tmp_path, spec.with_overrides(seeds=[0, 1]))


def test_storage_resolution(tmp_path):
    assert resolve_storage(None, tmp_path) == StorageSpec("journal", str(tmp_path / "study.journal"), "default")
    assert resolve_storage("x/j.log", tmp_path) == StorageSpec("journal", "x/j.log", "argument")
    url = resolve_storage("postgresql://me:secret@db:5432/optuna", tmp_path)
    assert url.kind == "rdb" and url.display == "postgresql://me:***@db:5432/optuna"


# ---------------------------------------------------------------------------------------------------- end to end


@pytest.mark.integration
def test_extra_rows_train_next_to_the_papers_and_report_without_a_paper_score(tmp_path):
    """A grid may name SPO and clip-higher beside the paper's rows; the table shows them with no paper score."""
    spec = GridSpec(("clip_0.2", "clip_higher_0.2_0.28", "spo_0.2"), (ENV,), (0,), 2048, random_episodes=3)
    model = ClipPPO("MlpPolicy", ENV, device="cpu", **spec.model_kwargs("clip_higher_0.2_0.28"))
    assert [side(1.0) for side in model.clip_range] == [0.2, 0.28]
    assert [s.name for s in settings_in_table_order(reversed(spec.settings))] == list(spec.settings)
    summary = run_ablation(spec, tmp_path, study_name="extra", progress_interval=0, log=lambda message: None)
    assert summary.complete and summary.n_complete == 3
    table = (tmp_path / "table.md").read_text()
    assert "| Clipping, ε = 0.2 | **0.82** |" in table
    assert "| Clip-higher, ε = (0.2, 0.28) | n/a |" in table and "| SPO, ε = 0.2 | n/a |" in table
    assert estimate_seconds(spec, {ENV: {"clip_ppo": 1000.0, "kl_ppo": 500.0}}) == pytest.approx(3 * 2048 / 1000.0)


def test_tiny_preset_end_to_end(tmp_path):
    """The tiny preset writes the results file (one record per job), the table and the plots."""
    spec = GRIDS["tiny"].spec
    summary = run_ablation(spec, tmp_path, study_name="tiny", progress_interval=0, log=lambda message: None)
    assert summary.complete and summary.n_complete == spec.n_jobs == 2 and not summary.given_up
    results = load_results(tmp_path / "results.json")
    assert {(j["setting"], j["env"], j["seed"]) for j in results["jobs"]} == set(spec.points())
    for job in results["jobs"]:
        assert job["timesteps"] == 2048 and math.isfinite(job["score"]) and job["n_episodes"] > 0
        assert job["curve"][-1] == [2048, pytest.approx(job["score"])] and job["wall_time_s"] > 0
    assert results["random_scores"][ENV]["episodes"] == spec.random_episodes
    table = (tmp_path / "table.md").read_text()
    assert "| Clipping, ε = 0.2 | **0.82** |" in table and "| Adaptive KL, d_targ = 0.01 | 0.74 |" in table
    for name in ("learning_curves.png", "scores.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    # the report command regenerates everything from the results file alone
    out = tmp_path / "again"
    assert cli.main(["report", "--results", str(tmp_path / "results.json"), "-o", str(out), "--reps", "50"]) == 0
    assert (out / "table.md").exists() and (out / "learning_curves.png").exists()


def test_a_diverged_run_is_kept_with_its_episodes_so_far(monkeypatch):
    from sb3_ppo_variants import ALGOS

    class Diverging(ClipPPO):
        def train(self) -> None:
            raise FloatingPointError("training diverged")

    monkeypatch.setitem(ALGOS, "clip_ppo", Diverging)
    result = run_job(Job("clip_0.2", ENV, 0, 3 * 2048), GRIDS["tiny"].spec)
    assert result.diverged_at == result.timesteps == 2048  # stopped at the first update
    assert result.n_episodes > 0 and math.isfinite(result.score) and result.curve == [(2048, result.score)]


def _trials(journal: Path) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(StorageSpec("journal", str(journal), "argument"))
    try:
        return optuna.load_study(study_name="ablation-tiny", storage=storage).get_trials()
    except KeyError:  # the journal file exists a moment before the study record
        return []


@pytest.mark.integration
def test_resume_after_kill(tmp_path):
    """Kill the tiny preset after its first job, re-run the same command: only the missing job runs, once."""
    command = [sys.executable, "-m", "sb3_ppo_variants.ablation", "--preset", "tiny", "-o", str(tmp_path),
               "--progress-interval", "0", "--no-report"]  # fmt: skip
    journal = tmp_path / "study.journal"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        command, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline, killed_in_time = time.time() + 120, False
    while time.time() < deadline and process.poll() is None:
        if journal.exists():
            states = [t.state for t in _trials(journal)]
            # the first job is done and the second one has started: kill the whole process group
            if states.count(TrialState.COMPLETE) == 1 and TrialState.RUNNING in states:
                os.killpg(process.pid, signal.SIGKILL)
                killed_in_time = True
                break
        time.sleep(0.1)
    if not killed_in_time:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    output = process.communicate()[0].decode()
    assert killed_in_time, f"the first run ended or hung before its second job:\n{output}"
    before = {t.number: t for t in _trials(journal)}
    (done,) = [t for t in before.values() if t.state == TrialState.COMPLETE]
    (killed,) = [t for t in before.values() if t.state == TrialState.RUNNING]

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "1 already done" in rerun.stdout and rerun.stdout.count("] start ") == 1
    after = _trials(journal)
    complete = [t for t in after if t.state == TrialState.COMPLETE]
    points = sorted((t.params["setting"], t.params["env"], t.params["seed"]) for t in complete)
    assert points == sorted(GRIDS["tiny"].spec.points())  # every job complete exactly once
    kept = next(t for t in complete if t.number == done.number)  # the first job was not re-run
    assert kept.datetime_start == done.datetime_start and kept.user_attrs["score"] == done.user_attrs["score"]
    killed_now = next(t for t in after if t.number == killed.number)
    assert killed_now.state == TrialState.FAIL and killed_now.user_attrs["fail_reason"].startswith(DIED)
    (retry,) = [t for t in complete if t.number != done.number]
    assert retry.params == killed.params and retry.user_attrs["retry_of"] == [killed.number]


# ---------------------------------------------------------------------------------------------------- CLI errors


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--preset", "huge"], "invalid choice: 'huge'"),
        (["--envs", "NoSuchEnv-v0"], "unknown environment 'NoSuchEnv-v0'"),
        (["--seeds", "-1"], "expected a seed"),
        (["--settings", "clip_0.5"], "invalid choice: 'clip_0.5'"),
        (["--workers", "0"], "expected an int >= 1"),
        (["--timesteps", "1.5"], "expected a whole number of steps"),
        (["--seeds", "1", "1"], "Duplicate seeds"),
        (["report", "-o", "/nonexistent/dir"], "no study journal"),
        (["report", "--results", "/nonexistent/results.json"], "No results file"),
    ],
)
def test_cli_bad_input(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as excinfo:
        cli.main([*argv, "-o", str(tmp_path)] if argv[0] != "report" else argv)
    assert excinfo.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_refuses_a_different_grid_in_the_same_study(tmp_path, capsys):
    _study(tmp_path, GRIDS["tiny"].spec).study_name  # noqa: B018 (creates the study)
    with pytest.raises(SystemExit) as excinfo:
        cli.main(["--preset", "tiny", "-o", str(tmp_path), "--study-name", "test", "--timesteps", "4096"])
    assert excinfo.value.code == 2
    assert "timesteps: 4096 here, 2048 in the study" in capsys.readouterr().err


def test_cli_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "fixed_kl_10" in out and "small" in out and "paper: -0.39" in out


def test_learning_curve_legend_lists_settings_from_every_panel(tmp_path, monkeypatch):
    """A setting whose runs are all in a later panel (a partial grid) still gets its legend entry."""
    import matplotlib.pyplot as plt

    from sb3_ppo_variants.ablation.report import plot_learning_curves

    results = _results(CRAFTED, {"A": 10.0, "B": -50.0})
    results["jobs"] = [job for job in results["jobs"] if not (job["env"] == "A" and job["setting"] == "fixed_kl_1")]
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot_learning_curves(results, tmp_path / "curves.png", reps=20)
    (legend,) = figures[0].legends
    assert [text.get_text() for text in legend.get_texts()] == ["Clipping, ε = 0.2", "Fixed KL, β = 1", "Random policy"]
