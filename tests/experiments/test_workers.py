"""The shared worker layer: studies of the previous release resume, and a worker killed at any point is resumable.

Kill points: the worker SIGKILLs itself where ``SB3PV_KILL_AT`` says (:func:`sb3_ppo_variants.workers.processes.
kill_point`), so each test kills at an exact point of the protocol, whatever the machine's load: no polling, no
wall-clock threshold. Each killed run must have died there (exit by SIGKILL), and the same command run again must
finish the study with every trial accounted for.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from sb3_ppo_variants.ablation.grid import GRIDS
from sb3_ppo_variants.tuning import Budget
from sb3_ppo_variants.workers.loop import DIED, FAIL_REASON_ATTR, retried_numbers, retry_of
from sb3_ppo_variants.workers.processes import KILL_ENV_VAR, WORKER_HOST_ENV_VAR
from sb3_ppo_variants.workers.storage import StorageSpec, open_storage

REPO = Path(__file__).resolve().parents[2]
OLD_STUDIES = Path(__file__).resolve().parents[1] / "data" / "old_studies"
#: The settings the tuning fixture was written with (tests/data/old_studies/README.md).
TUNING = [
    sys.executable, "-m", "sb3_ppo_variants.tuning", "--algo", "clip_ppo", "--env", "CartPole-v1", "--n-timesteps",
    "1024", "--n-envs", "2", "--eval-freq", "256", "--n-eval-episodes", "2", "--n-startup-trials", "2", "--no-plots",
    "--pruner", "none", "--hyperparams", "n_steps=64", "batch_size=64", "n_epochs=2",
]  # fmt: skip
ABLATION = [sys.executable, "-m", "sb3_ppo_variants.ablation", "--preset", "tiny", "--progress-interval", "0", "--no-report"]
TIMEOUT = 600  # generous: a run takes seconds on an idle machine


def _run(command: list[str], kill_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), WORKER_HOST_ENV_VAR: "fixture-machine", "OMP_NUM_THREADS": "1"}
    env.pop(KILL_ENV_VAR, None)
    if kill_at is not None:
        env[KILL_ENV_VAR] = kill_at
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def _trials(journal: Path, study_name: str) -> list[FrozenTrial]:
    storage = open_storage(StorageSpec("journal", str(journal), "test"))
    return optuna.load_study(study_name=study_name, storage=storage).get_trials(deepcopy=False)


def _check_tuning(journal: Path, study_name: str, n_trials: int) -> list[FrozenTrial]:
    """Exactly ``n_trials`` finished, nothing left running or waiting, and every FAIL trial (all of them here are
    kills) replaced by a retry with its parameters."""
    trials = _trials(journal, study_name)
    assert [t.number for t in trials] == list(range(len(trials)))
    budget = Budget.of(trials, n_trials)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert (budget.finished, budget.running, budget.waiting, budget.retried) == (n_trials, 0, 0, len(failed))
    retries = retried_numbers(trials)
    for trial in failed:
        assert trial.user_attrs[FAIL_REASON_ATTR].startswith(DIED)
        assert all(trials[retries[trial.number]].params[key] == value for key, value in trial.params.items())
    return trials


def _check_ablation(journal: Path, study_name: str) -> list[FrozenTrial]:
    """Every grid point COMPLETE, nothing left running or waiting, every FAIL trial a dead worker's."""
    trials = _trials(journal, study_name)
    complete = [(t.params["setting"], t.params["env"], t.params["seed"]) for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(GRIDS["tiny"].spec.points())  # each point once
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert all(t.user_attrs[FAIL_REASON_ATTR].startswith(DIED) for t in trials if t.state == TrialState.FAIL)
    return trials


# ---------------------------------------------------------------------------------------------------- old studies


@pytest.mark.integration
def test_tuning_study_of_the_previous_release_resumes(tmp_path):
    """Fixture: trials 0 COMPLETE, 1 FAIL, 2 its retry (old ``retry_history``), 3 RUNNING of a killed worker."""
    journal = tmp_path / "study.journal"
    shutil.copy(OLD_STUDIES / "tuning.journal", journal)
    before = _trials(journal, "old-tuning")
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.RUNNING]
    assert "retry_history" in before[2].user_attrs and "started" in before[3].user_attrs["worker"]
    result = _run([*TUNING, "--n-trials", "4", "--study-name", "old-tuning", "-o", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "finished trials: 4 of 4" in result.stdout and "retried as trial 2" in result.stdout
    trials = _check_tuning(journal, "old-tuning", 4)
    assert retry_of(trials[2]) == [1] and trials[3].state == TrialState.FAIL  # the old name is read
    assert [retry_of(t) for t in trials[4:]] == [[3], []] and trials[0].datetime_start == before[0].datetime_start


@pytest.mark.integration
def test_ablation_study_of_the_previous_release_resumes(tmp_path):
    """Fixture: trial 0 COMPLETE, trial 1 RUNNING of a killed worker (old ``start_time`` in its identity)."""
    journal = tmp_path / "study.journal"
    shutil.copy(OLD_STUDIES / "ablation.journal", journal)
    before = _trials(journal, "old-ablation")
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]
    assert "start_time" in before[1].user_attrs["worker"]
    result = _run([*ABLATION, "--study-name", "old-ablation", "-o", str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 already done" in result.stdout and result.stdout.count("] start ") == 1
    trials = _check_ablation(journal, "old-ablation")
    assert trials[0].user_attrs["score"] == before[0].user_attrs["score"] and trials[1].state == TrialState.FAIL
    assert retry_of(trials[2]) == [1] and trials[2].params == before[1].params


# ---------------------------------------------------------------------------------------------------- kill points

#: Kills of consecutive runs before the run that must finish. ``point:N``: the N-th time the worker reaches it.
#: The default run has the points where a kill used to lose a trial or the study; the others are marked slow.
KILLS = [
    pytest.param(["asked:2"], id="claimed, not signed"),
    pytest.param(["result:2"], id="result written, state not"),
    pytest.param(["mid-trial:2", "recovered"], id="a dead trial failed, its retry not queued"),
    pytest.param(["journal-write:14"], id="mid journal write"),
    pytest.param(["locked:2"], id="holding the claim lock", marks=pytest.mark.slow),
    pytest.param(["signed:2"], id="signed, not started", marks=pytest.mark.slow),
    pytest.param(["mid-trial:2"], id="mid-trial", marks=pytest.mark.slow),
    pytest.param(["told:1"], id="state written", marks=pytest.mark.slow),
    pytest.param(["journal-write:14", "journal-write:3"], id="mid journal write, twice", marks=pytest.mark.slow),
]


def _kill_then_resume(command: list[str], kills: list[str], journal: Path) -> subprocess.CompletedProcess[str]:
    """Run ``command`` once per kill (each must die at its point), then once more to the end."""
    for kill_at in kills:
        result = _run(command, kill_at)
        assert result.returncode == -signal.SIGKILL, f"not killed at {kill_at}:\n{result.stdout}{result.stderr}"
        if kill_at.startswith("journal-write"):
            assert not journal.read_bytes().endswith(b"\n")  # torn for real
    result = _run(command)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.mark.integration
@pytest.mark.parametrize("kills", KILLS)
def test_tuning_worker_killed_at_any_point_resumes(tmp_path, kills):
    command = [*TUNING, "--n-trials", "3", "--study-name", "kill", "-o", str(tmp_path)]
    assert "finished trials: 3 of 3" in _kill_then_resume(command, kills, tmp_path / "study.journal").stdout
    _check_tuning(tmp_path / "study.journal", "kill", 3)


@pytest.mark.integration
@pytest.mark.parametrize("kills", KILLS)
def test_ablation_worker_killed_at_any_point_resumes(tmp_path, kills):
    result = _kill_then_resume([*ABLATION, "-o", str(tmp_path)], kills, tmp_path / "study.journal")
    assert "2/2 jobs complete" in result.stdout
    _check_ablation(tmp_path / "study.journal", "ablation-tiny")


# ---------------------------------------------------------------------------------------------------- Optuna internals


def _hide_optuna_internals(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make :func:`internals.private` answer None for these names: an Optuna release that renamed them."""
    from sb3_ppo_variants.core import internals

    original = internals.private
    monkeypatch.setattr(internals, "private", lambda owner, name: None if name in names else original(owner, name))


def test_dead_trials_are_recovered_without_optunas_private_storage_and_trial_ids(tmp_path, monkeypatch):
    from sb3_ppo_variants.workers.loop import WORKER_ATTR, Liveness, WorkerIdentity, recover_dead_trials, study_storage
    from sb3_ppo_variants.workers.storage import StorageError, resolve_storage

    spec = resolve_storage(str(tmp_path / "study.journal"), tmp_path)
    study = optuna.create_study(storage=open_storage(spec), study_name="s")
    me = WorkerIdentity.current()
    dead_pid = max(int(p) for p in os.listdir("/proc") if p.isdigit()) + 100_000 if os.path.isdir("/proc") else 2**22
    trial = study.ask()
    trial.set_user_attr(WORKER_ATTR, WorkerIdentity(me.host, me.machine, dead_pid, None).to_attr())
    _hide_optuna_internals(monkeypatch, "_storage", "_trial_id")
    with pytest.raises(StorageError, match=r"no Study\._storage"):
        study_storage(study)
    # the fallback: the storage opened again from its spec, trial ids looked up by number (public API only)
    recovered = recover_dead_trials(study, Liveness("journal"), print, study_storage(study, spec))
    assert recovered == [trial.number]
    (failed,) = study.get_trials(deepcopy=False)
    assert failed.state == TrialState.FAIL and failed.user_attrs[FAIL_REASON_ATTR].startswith(DIED)


def test_a_journal_in_another_format_is_written_by_optunas_own_backend(tmp_path, monkeypatch):
    from optuna.storages.journal import JournalFileBackend

    from sb3_ppo_variants.workers import storage as storage_module

    assert storage_module.repairing_journal_supported()
    monkeypatch.setattr(storage_module, "repairing_journal_supported", lambda: False)
    opened = open_storage(StorageSpec("journal", str(tmp_path / "j.journal"), "argument"))
    backend = opened._backend  # the journal storage's backend (test only)
    assert type(backend) is JournalFileBackend
    study = optuna.create_study(storage=opened)
    study.optimize(lambda t: t.suggest_float("x", 0.0, 1.0), n_trials=2)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
