"""Workers, budget and recovery: who runs a trial, how many trials a study still needs, what happens to a dead worker's trial.

**Budget.** ``n_trials`` is the number of *finished* trials the study should hold, over all workers and all runs
of the command. A trial counts when it is COMPLETE, PRUNED or FAIL, except a FAIL trial that has been retried
(its retry counts instead). RUNNING and WAITING trials hold a place too, so that workers never start more trials
than the budget (:class:`Budget`). A rerun after an interruption therefore only tops the study up.

**Worker identity.** Every trial records the worker that runs it in the user attribute ``worker``: host name, a
machine key (Linux boot id and PID namespace, so that containers sharing a host name are told apart), process id
and the process start time (so that a reused PID is not mistaken for the worker). The environment variable
:data:`WORKER_HOST_ENV_VAR` overrides the machine key, for machines that cannot be told apart otherwise.

**Dead workers.** A RUNNING trial whose worker ran on *this* machine and whose process is gone (or a zombie) is
dead; so is, for a journal file (which lives on one machine), a trial of a worker with this host name that ran
before a reboot or in an earlier instance of this container (another boot id or PID namespace).
:func:`recover_dead_trials` records ``fail_reason``, marks such a trial FAIL and enqueues a retry with the same
parameters (:func:`enqueue_retry`, at most ``max_retry`` times per original trial). This works for every storage
and is what recovers a journal study (Optuna 5's journal storage has no heartbeats): each worker runs it before
each new trial, so the next start of the command, or any worker still running, recovers the trial. Trials of
workers on *other* machines are left alone here; with a database storage Optuna's heartbeats fail them after the
grace period and :class:`RetryStaleTrial` enqueues their retry.

**Retries** are ordinary WAITING trials created with :meth:`optuna.Study.enqueue_trial` and the failed trial's
parameters; the user attribute ``retry_history`` lists the failed trial numbers they replace (the last one is the
immediate predecessor). Optuna pops WAITING trials before it samples new ones.
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from sb3_ppo_variants.common.processes import WORKER_HOST_ENV_VAR, machine_key, process_alive, process_start_time

logger = logging.getLogger("sb3_ppo_variants.tuning")

#: User attribute with the identity of the worker running a trial.
WORKER_ATTR = "worker"
#: User attribute with the reason a trial failed or was pruned for something other than the pruner.
FAIL_REASON_ATTR = "fail_reason"
#: User attribute of a retry: the numbers of the failed trials it replaces, oldest first.
RETRY_ATTR = "retry_history"


@dataclass(frozen=True)
class WorkerIdentity:
    """The process that runs a trial.

    :param host: Host name (for people reading the study)
    :param machine: Key that identifies the machine and PID namespace (compared to decide whether a PID can be checked)
    :param pid: Process id
    :param started: Process start time (``/proc``), to detect a reused PID; None where unavailable
    """

    host: str
    machine: str
    pid: int
    started: str | None

    @classmethod
    def current(cls) -> WorkerIdentity:
        """This process."""
        pid = os.getpid()
        return cls(socket.gethostname(), machine_key(), pid, process_start_time(pid))

    def to_attr(self) -> dict[str, Any]:
        """The JSON value stored in the trial's ``worker`` user attribute."""
        return {"host": self.host, "machine": self.machine, "pid": self.pid, "started": self.started}

    @classmethod
    def from_attr(cls, value: Any) -> WorkerIdentity | None:
        """The identity stored in a trial, or None if the attribute is missing or malformed."""
        if not isinstance(value, dict) or not isinstance(value.get("pid"), int) or not isinstance(value.get("machine"), str):
            return None
        started = value.get("started")
        return cls(str(value.get("host", "")), value["machine"], value["pid"], None if started is None else str(started))

    def is_local(self) -> bool:
        """Whether the process ran on this machine (in this PID namespace), so that :meth:`is_alive` can tell."""
        return self.machine == machine_key()

    def is_alive(self) -> bool:
        """Whether the process still runs (only meaningful when :meth:`is_local`). Zombies are dead."""
        return process_alive(self.pid, self.started)

    def is_dead(self, host_names_unique: bool) -> bool:
        """Whether the process has certainly ended.

        :param host_names_unique: Trust that no other machine uses this host name (true for a journal file, which
            lives on one machine): a worker with our host name but another machine key then ran before a reboot, or
            in an earlier instance of this container, and is dead. For a database shared by machines that may share
            a host name, only PIDs of this machine are checked
        """
        if self.is_local():
            return not self.is_alive()
        overridden = bool(os.environ.get(WORKER_HOST_ENV_VAR, "").strip())
        return host_names_unique and not overridden and self.host == socket.gethostname()

    def describe(self) -> str:
        """``pid 123 on host``."""
        return f"pid {self.pid} on {self.host}"


# ---------------------------------------------------------------------------------------------------- budget


def retried_numbers(trials: Sequence[FrozenTrial]) -> set[int]:
    """Numbers of the trials that a retry replaces (the last entry of each retry's ``retry_history``)."""
    numbers: set[int] = set()
    for trial in trials:
        history = trial.user_attrs.get(RETRY_ATTR)
        if isinstance(history, list) and history:
            numbers.add(int(history[-1]))
    return numbers


@dataclass(frozen=True)
class Budget:
    """How the trials of a study stand against ``n_trials``.

    :param n_trials: The target number of finished trials (None: unlimited)
    :param finished: COMPLETE + PRUNED + FAIL trials, not counting FAIL trials that were retried
    :param running: RUNNING trials
    :param waiting: WAITING trials (retries and enqueued trials)
    :param retried: FAIL trials replaced by a retry (not counted)
    """

    n_trials: int | None
    finished: int
    running: int
    waiting: int
    retried: int

    @classmethod
    def of(cls, trials: Sequence[FrozenTrial], n_trials: int | None) -> Budget:
        """Count ``trials`` (all the trials of the study)."""
        retried = retried_numbers(trials)
        finished = running = waiting = n_retried = 0
        for trial in trials:
            if trial.state == TrialState.RUNNING:
                running += 1
            elif trial.state == TrialState.WAITING:
                waiting += 1
            elif trial.state == TrialState.FAIL and trial.number in retried:
                n_retried += 1
            elif trial.state.is_finished():
                finished += 1
        return cls(n_trials, finished, running, waiting, n_retried)

    @property
    def remaining(self) -> float:
        """Trials that may still be started beyond the running and waiting ones (``inf`` without a limit)."""
        if self.n_trials is None:
            return math.inf
        return max(0, self.n_trials - self.finished - self.running - self.waiting)

    @property
    def done(self) -> bool:
        """Whether ``n_trials`` trials are finished."""
        return self.n_trials is not None and self.finished >= self.n_trials


# ---------------------------------------------------------------------------------------------------- retries and recovery


def enqueue_retry(study: optuna.Study, failed: FrozenTrial, max_retry: int | None) -> bool:
    """Enqueue a WAITING copy of ``failed`` (same parameters) that replaces it in the budget.

    :param study: The study
    :param failed: A trial that was cut short for a reason unrelated to its hyperparameters (its worker died)
    :param max_retry: Retries allowed per original trial (None: unlimited)
    :return: Whether a retry was enqueued (False once the trial has been retried ``max_retry`` times)
    """
    history = [*list(failed.user_attrs.get(RETRY_ATTR) or []), failed.number]
    if max_retry is not None and len(history) > max_retry:
        logger.warning("Trial %d is not retried again: it was retried %d times already", failed.number, len(history) - 1)
        return False
    user_attrs = {
        key: value for key, value in failed.user_attrs.items() if key not in (WORKER_ATTR, FAIL_REASON_ATTR, RETRY_ATTR)
    }
    user_attrs[RETRY_ATTR] = history
    study.enqueue_trial(dict(failed.params), user_attrs=user_attrs)
    logger.info("Trial %d will be retried with the same parameters (retry %d)", failed.number, len(history))
    return True


class RetryStaleTrial:
    """Heartbeat callback of a database storage: retry a trial that Optuna failed as stale (see :func:`enqueue_retry`).

    :param max_retry: Retries allowed per original trial (None: unlimited)
    """

    def __init__(self, max_retry: int | None) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        logger.warning("Trial %d failed: no heartbeat from its worker within the grace period", trial.number)
        enqueue_retry(study, trial, self.max_retry)


def fail_trial(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Record ``reason`` and mark a RUNNING trial FAIL; False if it had finished in the meantime."""
    storage = study._storage  # the storage object Optuna itself uses (a cache in front of a database)
    try:
        storage.set_trial_user_attr(trial._trial_id, FAIL_REASON_ATTR, reason)
        return bool(storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False


def recover_dead_trials(study: optuna.Study, max_retry: int | None, host_names_unique: bool) -> list[int]:
    """Fail and retry the RUNNING trials whose worker has certainly died (see :meth:`WorkerIdentity.is_dead`).

    Call it with the budget lock held, so that two workers do not recover the same trial.

    :param study: The study
    :param max_retry: Retries allowed per original trial
    :param host_names_unique: True for a journal file (one machine): a worker of this host name from before a reboot
        or a container restart is dead too
    :return: The numbers of the trials marked FAIL
    """
    recovered: list[int] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = WorkerIdentity.from_attr(trial.user_attrs.get(WORKER_ATTR))
        if worker is None or not worker.is_dead(host_names_unique):
            continue
        reason = f"worker process died while running the trial ({worker.describe()})"
        if fail_trial(study, trial, reason):
            logger.warning("Trial %d failed: %s", trial.number, reason)
            recovered.append(trial.number)
            enqueue_retry(study, study._storage.get_trial(trial._trial_id), max_retry)
    return recovered


def resolvable_running(trials: Sequence[FrozenTrial], heartbeat: bool) -> int:
    """RUNNING trials that will finish or be recovered, so that an idle worker should wait for them.

    With heartbeats every RUNNING trial is; without, only those of workers on this machine (a trial of another
    machine in a journal file cannot be checked).
    """
    count = 0
    for trial in trials:
        if trial.state != TrialState.RUNNING:
            continue
        worker = WorkerIdentity.from_attr(trial.user_attrs.get(WORKER_ATTR))
        if heartbeat or (worker is not None and worker.is_local()):
            count += 1
    return count
