"""The tuning entry point: ``run_study`` and ``sb3-ppo-variants-tune``.

Fast tests: storage resolution and password masking, the budget count, worker liveness and recovery, heartbeat
retries (SQLite), tiny in-process studies (summary, YAML entry, plots, several seeds, pruning, divergence, time
limit), and the embedded journal study killed with SIGKILL after 2 trials and continued by the same command.
Slow test: 3 workers on one PostgreSQL study (a server the test starts itself), one of them killed mid-trial.
"""

from __future__ import annotations

import glob
import inspect
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from stable_baselines3.common.env_util import make_vec_env
from torch import nn

from sb3_ppo_variants import ALGOS
from sb3_ppo_variants.tuning import (
    FAIL_REASON_ATTR,
    RETRY_ATTR,
    WORKER_ATTR,
    Budget,
    StorageSpec,
    mask_url,
    resolve_storage,
    run_study,
)
from sb3_ppo_variants.tuning.budget import enqueue_retries
from sb3_ppo_variants.tuning.cli import main, parse_hyperparams
from sb3_ppo_variants.workers.loop import DIED, Liveness, WorkerIdentity, recover_dead_trials
from sb3_ppo_variants.workers.processes import machine_key, process_alive, process_start_time
from sb3_ppo_variants.workers.storage import open_storage

REPO = Path(__file__).resolve().parents[2]
ENV_ID = "CartPole-v1"
#: Tiny trials: 1024 steps on 2 envs, 4 evaluations of 2 episodes, 8 short updates (about a second each).
TINY: dict[str, Any] = dict(
    n_timesteps_per_trial=1024,
    n_envs=2,
    eval_freq=256,
    n_eval_episodes=2,
    hyperparams={"n_steps": 64, "batch_size": 64, "n_epochs": 2},
    verbose=0,
)
CLI_TINY = [
    "--n-timesteps", "1024", "--n-envs", "2", "--eval-freq", "256", "--n-eval-episodes", "2",
    "--n-startup-trials", "2", "--no-plots", "--hyperparams", "n_steps=64", "batch_size=64", "n_epochs=2",
]  # fmt: skip
#: rl_zoo3 keys of an entry that are not constructor arguments.
ZOO_KEYS = frozenset({"n_envs", "n_timesteps", "policy", "normalize"})


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "sb3_ppo_variants.tuning", "--algo", "clip_ppo", "--env", ENV_ID, *args]


def _journal_trials(path: Path, study_name: str) -> list[FrozenTrial]:
    if not path.exists():
        return []
    try:
        study = optuna.load_study(study_name=study_name, storage=JournalStorage(JournalFileBackend(str(path))))
    except KeyError:
        return []
    return study.get_trials(deepcopy=False)


def _worker_pid(trial: FrozenTrial) -> int | None:
    worker = trial.user_attrs.get(WORKER_ATTR)
    return worker.get("pid") if isinstance(worker, dict) else None


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ---------------------------------------------------------------------------------------------------- storage


def test_resolve_storage_forms(tmp_path, monkeypatch):
    monkeypatch.delenv("SB3PV_OPTUNA_STORAGE", raising=False)
    default = resolve_storage(None, tmp_path)
    assert default == StorageSpec("journal", str(tmp_path / "study.journal"), "default")
    assert resolve_storage("runs/x.log", tmp_path).kind == "journal"
    assert resolve_storage("journal:runs/x.db", tmp_path) == StorageSpec("journal", "runs/x.db", "argument")
    assert resolve_storage("sqlite:///x.db", tmp_path).kind == "rdb"
    monkeypatch.setenv("MY_DB", "postgresql://me:hunter2@db:5432/optuna")
    spec = resolve_storage("env:MY_DB", tmp_path)
    assert (spec.kind, spec.source, spec.dialect) == ("rdb", "env:MY_DB", "postgresql")
    assert "hunter2" not in repr(spec) and "hunter2" not in spec.display and spec.secrets == ("hunter2",)
    monkeypatch.setenv("SB3PV_OPTUNA_STORAGE", "sqlite:///from_env.db")
    assert resolve_storage(None, tmp_path) == StorageSpec("rdb", "sqlite:///from_env.db", "env:SB3PV_OPTUNA_STORAGE")


@pytest.mark.parametrize(
    "value, match",
    [
        ("env:SB3PV_SURELY_UNSET", "SB3PV_SURELY_UNSET"),
        ("env:", "environment variable"),
        ("", "empty"),
        ("redis://localhost", "Redis"),
        ("journal:", "file path"),
        ("postgresql://u:pw@host:notaport/db", "not a valid database URL"),
    ],
)
def test_resolve_storage_errors_name_the_parameter(tmp_path, value, match):
    with pytest.raises(ValueError, match=match) as info:
        resolve_storage(value, tmp_path)
    assert "`storage`" in str(info.value) and ":pw@" not in str(info.value)


def test_mask_url():
    assert mask_url("postgresql://user:s3cret@host:5432/db") == "postgresql://user:***@host:5432/db"
    assert "s3cret" not in mask_url("postgresql://user@host/db?password=s3cret&sslmode=require")
    assert "s3cret" not in mask_url("postgresql://user:s3cret@host:notaport/db")
    assert mask_url("sqlite:///study.db") == "sqlite:///study.db"


def test_storage_error_never_shows_the_password(tmp_path):
    pytest.importorskip("psycopg2")
    with socket.socket() as sock:  # a port with nothing listening: the connection is refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spec = resolve_storage(f"postgresql://user:Pa55word@127.0.0.1:{port}/db", tmp_path)
    with pytest.raises(RuntimeError) as info:
        open_storage(spec)
    assert "Pa55word" not in str(info.value) and "user:***@" in str(info.value)


# ---------------------------------------------------------------------------------------------------- budget, workers


def test_budget_counts_retries_once():
    def trial(state: TrialState, **user_attrs: Any) -> FrozenTrial:
        return optuna.create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None, user_attrs=user_attrs)

    trials = [
        trial(TrialState.COMPLETE),
        trial(TrialState.PRUNED),
        trial(TrialState.FAIL),  # number 2: retried by number 4 (then again by 5)
        trial(TrialState.FAIL),  # number 3: not retried, counts
        trial(TrialState.FAIL, **{RETRY_ATTR: [2]}),
        trial(TrialState.WAITING, **{RETRY_ATTR: [2, 4]}),
        trial(TrialState.RUNNING),
    ]
    for number, frozen in enumerate(trials):
        frozen.number = number
    budget = Budget.of(trials, n_trials=6)
    assert (budget.finished, budget.running, budget.waiting, budget.retried) == (3, 1, 1, 2)
    assert budget.remaining == 1 and not budget.done
    assert Budget.of(trials, None).remaining == float("inf")


def test_worker_identity_and_liveness():
    me = WorkerIdentity.current()
    assert me.is_local() and me.is_alive()
    assert WorkerIdentity.from_attr(me.to_attr()) == me
    assert not WorkerIdentity(me.host, me.machine, _dead_pid(), None).is_alive()
    if me.started is not None:  # a reused PID: same number, another start time
        assert not WorkerIdentity(me.host, me.machine, me.pid, "1").is_alive()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{zombie.pid}/stat").exists() and " Z " not in Path(f"/proc/{zombie.pid}/stat").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not WorkerIdentity(me.host, me.machine, zombie.pid, None).is_alive()  # exited but not reaped yet
    zombie.wait()
    assert not WorkerIdentity("elsewhere", "another-machine", 1, None).is_local()
    assert WorkerIdentity.from_attr({"pid": "x"}) is None and WorkerIdentity.from_attr(None) is None


def test_process_alive_takes_the_start_time_as_either_stored_type():
    """Tuning stores the start time as a string, older ablation studies as an int: both identify the process."""
    pid = os.getpid()
    started = process_start_time(pid)
    if started is None:
        pytest.skip("no /proc on this platform")
    assert process_alive(pid, started) and process_alive(pid, int(started)) and process_alive(pid, None)
    assert not process_alive(pid, int(started) + 1)  # same PID, another process
    assert not process_alive(_dead_pid(), None)
    assert WorkerIdentity.current().machine == machine_key()


def test_recover_dead_trials_fails_and_retries_only_dead_local_ones(tmp_path):
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(tmp_path / "j.journal"))))
    me = WorkerIdentity.current()
    owners = {
        "dead": WorkerIdentity(me.host, me.machine, _dead_pid(), None),
        "alive": me,
        "foreign": WorkerIdentity("elsewhere", "another-machine", _dead_pid(), None),
    }
    numbers = {}
    for name, owner in owners.items():
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr(WORKER_ATTR, owner.to_attr())
        numbers[name] = trial.number
    assert recover_dead_trials(study, Liveness("rdb"), print) == [numbers["dead"]]
    assert enqueue_retries(study, max_retry=1) == [numbers["dead"]]
    trials = study.get_trials(deepcopy=False)
    dead = trials[numbers["dead"]]
    assert dead.state == TrialState.FAIL and "died" in dead.user_attrs[FAIL_REASON_ATTR]
    assert trials[numbers["alive"]].state == trials[numbers["foreign"]].state == TrialState.RUNNING
    (retry,) = [t for t in trials if t.state == TrialState.WAITING]
    assert retry.user_attrs[RETRY_ATTR] == [numbers["dead"]] and WORKER_ATTR not in retry.user_attrs
    # the retry runs with the same parameters; it may be retried max_retry=1 time in all
    popped = study.ask()
    assert popped.number == retry.number and popped.suggest_float("x", 0.0, 1.0) == dead.params["x"]
    popped.set_user_attr(FAIL_REASON_ATTR, f"{DIED} again")
    study.tell(popped, state=TrialState.FAIL)
    assert enqueue_retries(study, max_retry=1) == []  # needs a retry, but max_retry is spent
    assert enqueue_retries(study, max_retry=2) == [popped.number]


def test_journal_trial_from_before_a_reboot_is_dead(tmp_path, monkeypatch):
    """Same host name, another boot id / PID namespace: dead for a journal (one machine), unknown for a database."""
    monkeypatch.delenv("SB3PV_WORKER_HOST", raising=False)
    study = optuna.create_study(storage=JournalStorage(JournalFileBackend(str(tmp_path / "j.journal"))))
    me = WorkerIdentity.current()
    trial = study.ask()
    trial.set_user_attr(WORKER_ATTR, WorkerIdentity(me.host, "previous-boot", me.pid, me.started).to_attr())
    assert recover_dead_trials(study, Liveness("rdb"), print) == []
    assert recover_dead_trials(study, Liveness("journal"), print) == [trial.number]
    assert enqueue_retries(study, max_retry=0) == []
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TrialState.FAIL]  # max_retry=0: no retry


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_heartbeat_stale_trial_is_failed_and_retried(tmp_path):
    """The database path (here SQLite): Optuna's heartbeat check fails the trial, the retry sweep enqueues its retry."""
    spec = resolve_storage(f"sqlite:///{tmp_path / 'hb.db'}", tmp_path)
    storage = open_storage(spec, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="hb", direction="maximize")
    with pytest.warns(UserWarning, match="Heartbeat"):  # Optuna expects Study.optimize; run_study beats itself
        trial = study.ask()
    trial.suggest_float("x", 0.0, 1.0)
    storage.record_heartbeat(trial._trial_id)
    time.sleep(2.5)
    recover_dead_trials(study, Liveness("rdb", heartbeat_interval=1, claims_locked=False), print)  # Optuna's check
    enqueue_retries(study, max_retry=2)
    stale, retry = study.get_trials(deepcopy=False)
    assert stale.state == TrialState.FAIL and retry.state == TrialState.WAITING
    assert retry.user_attrs[RETRY_ATTR] == [stale.number] and retry.system_attrs["fixed_params"] == stale.params


# ---------------------------------------------------------------------------------------------------- input checks


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(algo="ppo"), "algo"),
        (dict(env_id="NoSuchEnv-v0"), "env_id"),
        (dict(n_trials=0), "n_trials"),
        (dict(n_trials=None, timeout=None), "timeout"),
        (dict(timeout=-1), "timeout"),
        (dict(n_timesteps_per_trial=1.5), "n_timesteps_per_trial"),
        (dict(n_seeds=0), "n_seeds"),
        (dict(n_envs=4, eval_freq=2), "eval_freq"),
        (dict(n_eval_episodes=0), "n_eval_episodes"),
        (dict(hyperparams={"learning_rte": 1e-3}), "learning_rte"),
        (dict(hyperparams={"seed": 3}), "seed"),
        (dict(sampler="grid"), "sampler"),
        (dict(pruner="hyperband"), "pruner"),
        (dict(study_name=""), "study_name"),
        (dict(max_retry=-1), "max_retry"),
    ],
)
def test_bad_arguments_name_the_parameter(tmp_path, kwargs, name):
    arguments = dict(algo="clip_ppo", env_id=ENV_ID, n_trials=1, output_dir=tmp_path, **TINY)
    arguments.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=name):
        run_study(**arguments)
    assert not (tmp_path / "study.journal").exists()


def test_parse_hyperparams():
    parsed = parse_hyperparams(["learning_rate=1e-3", "n_epochs:5", "clip_range=lin_0.2", "use_sde=True", "x={'a': [1]}"])
    assert parsed == {"learning_rate": 1e-3, "n_epochs": 5, "clip_range": "lin_0.2", "use_sde": True, "x": {"a": [1]}}
    for bad in (["learning_rate"], ["=3"], ["bad key=1"]):
        with pytest.raises(ValueError, match="--hyperparams"):
            parse_hyperparams(bad)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n-envs", "0"], "n_envs"),
        (["--storage", "env:SB3PV_SURELY_UNSET"], "SB3PV_SURELY_UNSET"),
        (["--hyperparams", "nonsense"], "--hyperparams"),
        (["--n-timesteps", "1.5"], "--n-timesteps"),
        (["--n-trials", "0"], "--n-trials"),
    ],
)
def test_cli_bad_arguments(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["--algo", "clip_ppo", "--env", ENV_ID, "-o", str(tmp_path), *args])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_help_shows_each_default_once(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "(default: ALGO-ENV)" in text and "(default: 100)" in text  # an explained default, a plain one
    assert "(default: None)" not in text and "(default: False)" not in text
    from sb3_ppo_variants.tuning.cli import build_parser

    for action in build_parser()._actions:
        help_text = action.help or ""
        assert help_text.count("(default") <= 1, action.option_strings


@pytest.mark.parametrize("make_storage", [lambda d: str(d / "study.journal"), lambda d: f"sqlite:///{d / 'study.db'}"])
def test_storage_in_a_missing_folder_is_refused(tmp_path, capsys, make_storage):
    missing = tmp_path / "nonexistent" / "dir"
    arguments = dict(algo="clip_ppo", env_id=ENV_ID, n_trials=1, output_dir=tmp_path / "out", **TINY)
    with pytest.raises(ValueError, match=r"`storage`: the folder .*nonexistent/dir of the .* does not exist"):
        run_study(**arguments, storage=make_storage(missing))
    with pytest.raises(SystemExit) as info:
        main(["--algo", "clip_ppo", "--env", ENV_ID, "-o", str(tmp_path / "out"), "--storage", make_storage(missing)])
    assert info.value.code == 2 and "mkdir -p" in capsys.readouterr().err
    assert not (tmp_path / "nonexistent").exists()  # nothing made, nothing written
    assert not (tmp_path / "out").exists()


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file()}


def test_same_study_name_in_another_storage_writes_beside(tmp_path, monkeypatch, caplog):
    """The default output folder depends on the study name: a second study of that name in another storage must keep
    the first one's summary, YAML entry and plots, write its own beside them, say where, and find them again."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SB3PV_OPTUNA_STORAGE", raising=False)
    first = run_study("clip_ppo", ENV_ID, n_trials=1, study_name="same", pruner="none", **TINY)
    first_dir = tmp_path / "logs" / "tuning" / "same"
    assert first.files["summary"].resolve() == first_dir / "summary.json"
    kept = _files(first_dir)
    assert {"summary.json", "best_zoo_config.yml", "study_id.json", "study.journal"} <= set(kept)

    other = f"sqlite:///{tmp_path / 'other.db'}"
    with caplog.at_level("WARNING", logger="sb3_ppo_variants.tuning"):
        second = run_study("clip_ppo", ENV_ID, n_trials=1, study_name="same", storage=other, pruner="none", **TINY)
    beside = tmp_path / "logs" / "tuning" / "same-2"
    assert second.files["summary"].resolve() == beside / "summary.json"
    assert f"this study's results go to {Path('logs/tuning/same-2')}" in caplog.text
    assert _files(first_dir) == kept  # not a byte of the first study's files changed
    assert json.loads((beside / "summary.json").read_text())["storage"] == other

    # rerunning either command finds its own folder again (and continues its own study)
    again = run_study("clip_ppo", ENV_ID, n_trials=2, study_name="same", storage=other, pruner="none", plots=False, **TINY)
    assert again.files["summary"].resolve() == beside / "summary.json" and again.budget.finished == 2
    resumed = run_study("clip_ppo", ENV_ID, n_trials=2, study_name="same", pruner="none", plots=False, **TINY)
    assert resumed.files["summary"].resolve() == first_dir / "summary.json" and resumed.budget.finished == 2
    assert not (tmp_path / "logs" / "tuning" / "same-3").exists()


def test_given_output_dir_of_another_study_is_refused(tmp_path):
    out = tmp_path / "results"
    run_study("clip_ppo", ENV_ID, n_trials=1, study_name="a", output_dir=out, pruner="none", plots=False, **TINY)
    kept = _files(out)
    for other in (dict(study_name="b"), dict(study_name="a", storage=str(tmp_path / "elsewhere.journal"))):
        with pytest.raises(ValueError, match=r"`output_dir`: .*results holds the results of study 'a' in .*study.journal"):
            run_study("clip_ppo", ENV_ID, n_trials=1, output_dir=out, pruner="none", **TINY, **other)
    assert _files(out) == kept


def test_output_dir_written_before_study_id_existed_is_recognised(tmp_path):
    """A folder of an earlier release (a summary.json, no study_id.json) counts as that study's."""
    out = tmp_path / "old"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"study_name": "old", "storage": "sqlite:///somewhere.db"}))
    with pytest.raises(ValueError, match=r"holds the results of study 'old' in sqlite:///somewhere\.db"):
        run_study("clip_ppo", ENV_ID, n_trials=1, study_name="new", output_dir=out, **TINY)


# ---------------------------------------------------------------------------------------------------- in-process studies


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    """3 complete trials with the default (journal) storage and all outputs."""
    output_dir = tmp_path_factory.mktemp("tiny_study")
    summary = run_study("clip_ppo", ENV_ID, n_trials=3, output_dir=output_dir, pruner="none", **TINY)
    return summary, output_dir


def test_default_storage_study_completes(tiny_study):
    summary, output_dir = tiny_study
    assert summary.storage == str(output_dir / "study.journal") and (output_dir / "study.journal").is_file()
    assert summary.budget.finished == 3 and summary.state_counts["COMPLETE"] == 3
    trials = _journal_trials(output_dir / "study.journal", summary.study_name)
    assert [t.number for t in trials] == [0, 1, 2]
    for trial in trials:
        assert sorted(trial.intermediate_values) == [256, 512, 768, 1024]  # scheduled points, the final one included
        assert trial.intermediate_values[1024] == trial.value == trial.user_attrs["final_returns"][0]
        assert _worker_pid(trial) == os.getpid()
    # rerunning the same call tops up nothing
    again = run_study("clip_ppo", ENV_ID, n_trials=3, output_dir=output_dir, pruner="none", plots=False, **TINY)
    assert len(again.study.get_trials(deepcopy=False)) == 3


def test_continuing_with_other_settings_is_refused(tiny_study):
    _, output_dir = tiny_study
    with pytest.raises(ValueError, match="n_timesteps: study has 1024, asked for 2048"):
        run_study("clip_ppo", ENV_ID, n_trials=4, output_dir=output_dir, **{**TINY, "n_timesteps_per_trial": 2048})


def _check_zoo_yaml(summary: Any, algo: str, fixed: dict[str, Any]) -> None:
    """The YAML entry parses, every key is a zoo key or a constructor argument, and the algorithm builds from it."""
    assert summary.zoo_yaml.startswith("# Tuned\n")
    entry = dict(yaml.safe_load(summary.zoo_yaml)[ENV_ID])
    assert (entry["n_envs"], entry["n_timesteps"], entry["policy"]) == (2, 1024, "MlpPolicy")
    assert {key: entry[key] for key in fixed} == fixed
    algo_class = ALGOS[algo]
    kwargs = {key: value for key, value in entry.items() if key not in ZOO_KEYS}
    unknown = set(kwargs) - set(inspect.signature(algo_class).parameters)
    assert not unknown, unknown
    kwargs["policy_kwargs"] = eval(kwargs["policy_kwargs"], {"nn": nn})  # what rl_zoo3 does with the string
    model = algo_class(entry["policy"], make_vec_env(ENV_ID, n_envs=entry["n_envs"]), device="cpu", **kwargs)
    assert model.gamma == entry["gamma"] and model.n_steps == entry["n_steps"]
    assert {key: summary.best_hyperparams[key] for key in ("learning_rate", "gamma")} == {
        key: entry[key] for key in ("learning_rate", "gamma")
    }


def test_summary_yaml_entry_builds_the_algorithm(tiny_study):
    summary, output_dir = tiny_study
    assert (output_dir / "best_zoo_config.yml").read_text() == summary.zoo_yaml
    _check_zoo_yaml(summary, "clip_ppo", TINY["hyperparams"])


#: Fixed arguments that keep one trial of each algorithm to about a second.
FAST_FIXED = {
    "clip_ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 2},
    "kl_ppo": {"n_steps": 64, "batch_size": 64, "n_epochs": 2},
    "reinforce": {"n_steps": 128},
    "spo": {"n_steps": 64, "batch_size": 64, "n_epochs": 2},
}


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_every_algorithm_tunes_and_its_yaml_entry_builds(tmp_path, algo):
    settings = {**TINY, "hyperparams": FAST_FIXED[algo]}
    summary = run_study(algo, ENV_ID, n_trials=1, output_dir=tmp_path, pruner="none", plots=False, **settings)
    assert summary.state_counts["COMPLETE"] == 1
    _check_zoo_yaml(summary, algo, FAST_FIXED[algo])


def test_summary_files_and_plots(tiny_study):
    summary, output_dir = tiny_study
    for name in ("optimization_history", "param_importances", "intermediate_values"):
        assert (output_dir / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert summary.files[name] == output_dir / f"{name}.png"
    record = json.loads((output_dir / "summary.json").read_text())
    assert record["best_trial"] == summary.best_trial and record["finished"] == 3
    assert (output_dir / "trials.csv").read_text().count("\n") == 4
    text = summary.format()
    assert "finished trials: 3 of 3" in text and "CartPole-v1:" in text


def test_several_seeds_report_running_means(tmp_path):
    settings = {**TINY, "n_timesteps_per_trial": 512}
    summary = run_study("clip_ppo", ENV_ID, n_trials=1, n_seeds=2, output_dir=tmp_path, pruner="none", plots=False, **settings)
    (trial,) = summary.study.get_trials(deepcopy=False)
    first, second = trial.user_attrs["final_returns"]
    values = trial.intermediate_values
    assert sorted(values) == [256, 512, 768, 1024]  # seed 1's points follow seed 0's
    assert values[512] == first  # seed 0's final evaluation
    assert values[1024] == pytest.approx((first + second) / 2) == trial.value


def test_pruned_trial_stops_training_early(tmp_path):
    pruner = optuna.pruners.ThresholdPruner(lower=1e9)  # prunes at the first report
    summary = run_study("clip_ppo", ENV_ID, n_trials=2, output_dir=tmp_path, pruner=pruner, plots=False, **TINY)
    trials = summary.study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    assert all(list(t.intermediate_values) == [256] for t in trials)
    assert summary.budget.finished == 2 and summary.best_trial is None and summary.zoo_yaml is None


@pytest.mark.filterwarnings("ignore:Fixed parameter .* is out of range:UserWarning")
def test_diverged_and_failing_trials_are_recorded_and_the_study_goes_on(tmp_path):
    study = optuna.create_study(
        storage=JournalStorage(JournalFileBackend(str(tmp_path / "study.journal"))),
        study_name="div",
        direction="maximize",
    )
    # out of the search space on purpose: training diverges (with the fixed rate; the adaptive one would refuse it)
    study.enqueue_trial({"learning_rate": 1e30, "adaptive_lr": False})
    study.enqueue_trial({"n_steps_pow": 4, "batch_size_pow": 10})  # the sampler refuses batch_size > rollout
    summary = run_study("clip_ppo", ENV_ID, n_trials=3, study_name="div", output_dir=tmp_path, pruner="none", **TINY)
    diverged, failed, good = summary.study.get_trials(deepcopy=False)
    assert diverged.state == TrialState.PRUNED and diverged.user_attrs[FAIL_REASON_ATTR].startswith("diverged:")
    assert "NaN or inf" in diverged.user_attrs[FAIL_REASON_ATTR]
    assert failed.state == TrialState.FAIL and "batch_size" in failed.user_attrs[FAIL_REASON_ATTR]
    assert good.state == TrialState.COMPLETE and summary.best_trial == good.number
    assert summary.budget.finished == 3
    assert [number for number, _, _ in summary.failures] == [diverged.number, failed.number]


def test_time_limit_stops_starting_trials_and_one_trial_skips_importances(tmp_path):
    started = time.monotonic()
    # a trial of 8192 steps takes seconds, far more than the 0.5 s limit, even in a warm process on an idle machine
    # (with TINY's 1024 steps a warm trial could end within 0.5 s and a second one start)
    settings = {**TINY, "n_timesteps_per_trial": 8192, "eval_freq": 2048}
    summary = run_study("clip_ppo", ENV_ID, n_trials=None, timeout=0.5, output_dir=tmp_path, pruner="none", **settings)
    assert summary.budget.finished == 1 and time.monotonic() - started < 30
    assert "at least 2 complete trials" in summary.skipped["param_importances"]
    assert (tmp_path / "optimization_history.png").exists() and not (tmp_path / "param_importances.png").exists()


class _InterruptingPruner(optuna.pruners.BasePruner):
    """Raises KeyboardInterrupt at the first report, as Ctrl-C (or SIGTERM, in the command) would mid-trial."""

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        raise KeyboardInterrupt


def test_interrupted_trial_is_failed_and_retried_by_the_next_run(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_study("clip_ppo", ENV_ID, n_trials=1, output_dir=tmp_path, pruner=_InterruptingPruner(), plots=False, **TINY)
    interrupted, queued = _journal_trials(tmp_path / "study.journal", "clip_ppo-CartPole-v1")
    assert interrupted.state == TrialState.FAIL and "interrupted" in interrupted.user_attrs[FAIL_REASON_ATTR]
    assert queued.state == TrialState.WAITING and queued.user_attrs[RETRY_ATTR] == [interrupted.number]
    summary = run_study("clip_ppo", ENV_ID, n_trials=1, output_dir=tmp_path, pruner="none", plots=False, **TINY)
    interrupted, retry = summary.study.get_trials(deepcopy=False)
    assert retry.state == TrialState.COMPLETE and retry.params == interrupted.params
    assert (summary.budget.finished, summary.budget.retried) == (1, 1)


# ---------------------------------------------------------------------------------------------------- kill and continue


@pytest.mark.integration
def test_embedded_study_killed_after_two_trials_is_continued_by_the_same_command(tmp_path):
    """SIGKILL while trial 2 runs; the same command then fails it, retries it, and ends with 4 finished trials."""
    command = _cli("--n-trials", "4", "--study-name", "kill", "-o", str(tmp_path), *CLI_TINY)
    journal = tmp_path / "study.journal"
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    try:
        while True:
            trials = _journal_trials(journal, "kill")
            finished = [t for t in trials if t.state.is_finished()]
            running = [t for t in trials if t.state == TrialState.RUNNING and _worker_pid(t) == process.pid]
            if len(finished) >= 2 and running:
                break
            assert process.poll() is None, f"the study ended before it could be killed:\n{process.communicate()[0]}"
            assert time.monotonic() < deadline, "no trial started after the 2nd"
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate()
    killed_number = running[0].number

    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "finished trials: 4 of 4" in result.stdout
    trials = _journal_trials(journal, "kill")
    assert [t.number for t in trials] == list(range(len(trials)))
    budget = Budget.of(trials, 4)
    assert (budget.finished, budget.running, budget.waiting, budget.retried) == (4, 0, 0, 1)
    killed = trials[killed_number]
    assert killed.state == TrialState.FAIL and "died" in killed.user_attrs[FAIL_REASON_ATTR]
    (retry,) = [t for t in trials if t.user_attrs.get(RETRY_ATTR) == [killed_number]]
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert all(retry.params[key] == value for key, value in killed.params.items())
    assert len(trials) == 5 and sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 4


# ---------------------------------------------------------------------------------------------------- PostgreSQL


def _postgres_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    candidates += glob.glob("/usr/local/pgsql/bin/pg_ctl")
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 (initdb + pg_ctl in a temporary folder), stopped afterwards."""
    bindir = _postgres_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL to run this test")
    pytest.importorskip("psycopg2", reason="psycopg2 is needed to connect to PostgreSQL")
    run_as: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="sb3pv-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base)
            pytest.skip("running as root and there is no 'postgres' user to run initdb")
        shutil.chown(base, "postgres")
        run_as = [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]
    password = secrets.token_hex(12)
    (base / "pwfile").write_text(password + "\n")
    if run_as:
        shutil.chown(base / "pwfile", "postgres")
    data, port = base / "data", _free_port()

    def pg(*args: str) -> None:
        subprocess.run([*run_as, *args], check=True, capture_output=True, text=True, timeout=120)

    pg(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        "sb3pv",
        f"--pwfile={base / 'pwfile'}",
        "--auth=scram-sha-256",
        "--no-sync",
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={base} -c fsync=off -c max_connections=50"
    pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-w", "-o", options, "start")
    try:
        yield f"postgresql+psycopg2://sb3pv:{password}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_postgres_three_workers_one_killed_mid_trial(postgres_url, tmp_path):
    """3 workers share 12 trials; one is SIGKILLed mid-trial; its trial goes stale (heartbeat), is retried, and the
    study ends with exactly 12 finished trials, every trial number once, and the password nowhere in outputs."""
    password = postgres_url.split(":")[2].split("@")[0]
    workers = []
    for index in range(3):
        env = {
            **os.environ,
            "TEST_OPTUNA_DB": postgres_url,
            # distinct machine keys: the workers cannot see each other's PIDs, as on 3 machines; heartbeats decide
            "SB3PV_WORKER_HOST": f"test-machine-{index}",
        }
        command = _cli(
            "--n-trials", "12", "--storage", "env:TEST_OPTUNA_DB", "--study-name", "shared", "-o", str(tmp_path / f"w{index}"),
            "--heartbeat-interval", "1", "--grace-period", "3", *CLI_TINY,
        )  # fmt: skip
        workers.append(
            subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    victim = workers[0]
    storage = optuna.storages.RDBStorage(postgres_url)
    deadline = time.monotonic() + 240
    outputs: list[str] = []
    try:
        while True:
            try:
                trials = optuna.load_study(study_name="shared", storage=storage).get_trials(deepcopy=False)
            except KeyError:
                trials = []
            running = [t for t in trials if t.state == TrialState.RUNNING and _worker_pid(t) == victim.pid]
            if running and running[0].intermediate_values:  # mid-trial: it has reported an evaluation
                break
            assert victim.poll() is None, f"worker 0 ended early:\n{victim.communicate()[0]}"
            assert time.monotonic() < deadline, "worker 0 never ran a trial"
            time.sleep(0.1)
        victim.send_signal(signal.SIGKILL)
        outputs.append(victim.communicate()[0])
        killed_number = running[0].number
        for worker in workers[1:]:
            outputs.append(worker.communicate(timeout=300)[0])
            assert worker.returncode == 0, outputs[-1]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()

    trials = optuna.load_study(study_name="shared", storage=storage).get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials)))
    budget = Budget.of(trials, 12)
    assert (budget.finished, budget.running, budget.waiting, budget.retried) == (12, 0, 0, 1)
    killed = trials[killed_number]
    assert killed.state == TrialState.FAIL
    (retry,) = [t for t in trials if t.user_attrs.get(RETRY_ATTR) == [killed_number]]
    assert retry.state.is_finished() and retry.state != TrialState.FAIL
    assert all(retry.params[key] == value for key, value in killed.params.items())
    assert len(trials) == 13 and sum(t.state == TrialState.FAIL for t in trials) == 1
    assert victim.pid in {_worker_pid(t) for t in trials} and len({_worker_pid(t) for t in trials}) >= 2
    assert any("finished trials: 12 of 12" in output for output in outputs[1:])
    assert any("retried as trial" in output for output in outputs[1:])
    # the password is in no output and no file
    assert all(password not in output for output in outputs)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
