"""The worker loop shared by tuning and ablation: identity, liveness, heartbeat, recovery, retries, signals.

See :mod:`sb3_ppo_variants.workers` for the design; this module is its code.
"""

from __future__ import annotations

import _thread
import contextlib
import math
import os
import signal
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from types import FrameType
from typing import Any, Protocol

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from sb3_ppo_variants.core import internals
from sb3_ppo_variants.workers.processes import WORKER_HOST_ENV_VAR, kill_point, machine_key, process_alive, process_start_time
from sb3_ppo_variants.workers.storage import ClaimLock, StorageError, StorageSpec, open_storage

Log = Callable[[str], None]

#: Trial user attribute: the identity of the worker that claimed the trial (:class:`WorkerIdentity`).
WORKER_ATTR = "worker"
#: Trial user attribute: why the trial failed, or was pruned for something other than the pruner.
FAIL_REASON_ATTR = "fail_reason"
#: Trial user attribute of a retry: the numbers of the failed trials it replaces, oldest first.
RETRY_ATTR = "retry_of"
#: Trial user attribute (journal files): ``time.time()`` of the worker's last heartbeat.
HEARTBEAT_ATTR = "heartbeat"
#: Trial user attribute: the steps trained so far, written with each heartbeat (when the objective reports them).
PROGRESS_ATTR = "progress"
#: Start of the ``fail_reason`` of a trial whose worker died, and of one whose worker was interrupted.
DIED, INTERRUPTED = "worker process died", "interrupted"
#: Names written by the previous release, read as the current ones: ``{current: old}``.
OLD_NAMES = {RETRY_ATTR: "retry_history", "started": "start_time", DIED: "stale"}
#: Longest ``fail_reason`` stored in a trial.
MAX_REASON_LENGTH = 1000


def retry_of(trial: FrozenTrial) -> list[int]:
    """The failed trials that ``trial`` retries, oldest first (also from a study of the previous release)."""
    history = trial.user_attrs.get(RETRY_ATTR, trial.user_attrs.get(OLD_NAMES[RETRY_ATTR]))
    return [int(number) for number in history] if isinstance(history, list) else []


def retried_numbers(trials: list[FrozenTrial]) -> dict[int, int]:
    """``{failed trial: the retry that replaces it}`` (the last entry of each retry's :data:`RETRY_ATTR`)."""
    return {history[-1]: trial.number for trial in trials if (history := retry_of(trial))}


# ---------------------------------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class WorkerIdentity:
    """The process that runs a trial.

    :param host: Host name (for people reading the study)
    :param machine: Key of the machine and PID namespace (compared to decide whether a PID can be checked)
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
        """The JSON value stored in the trial's :data:`WORKER_ATTR` user attribute."""
        return asdict(self)

    @classmethod
    def from_attr(cls, value: Any) -> WorkerIdentity | None:
        """The identity stored in a trial (either release's format), or None if missing or malformed."""
        if not isinstance(value, dict) or not isinstance(value.get("pid"), int) or not isinstance(value.get("machine"), str):
            return None
        started = value.get("started", value.get(OLD_NAMES["started"]))
        return cls(str(value.get("host", "")), value["machine"], value["pid"], None if started is None else str(started))

    def is_local(self) -> bool:
        """Whether the process ran on this machine (in this PID namespace), so that :meth:`is_alive` can tell."""
        return self.machine == machine_key()

    def is_alive(self) -> bool:
        """Whether the process still runs (only meaningful when :meth:`is_local`). Zombies are dead."""
        return process_alive(self.pid, self.started)

    def describe(self) -> str:
        """``pid 123 on host``."""
        return f"pid {self.pid} on {self.host}"


@dataclass(frozen=True)
class Liveness:
    """How a worker tells that another worker's RUNNING trial has lost its worker.

    :param kind: ``"journal"`` or ``"rdb"`` (:attr:`StorageSpec.kind`)
    :param heartbeat_interval: Seconds between heartbeats (None: no heartbeats)
    :param grace_period: Seconds without a heartbeat after which a journal trial is stale (a database's is Optuna's)
    :param claims_locked: Claims are made under a :class:`ClaimLock`: a RUNNING trial that is not signed, seen with
        the lock held, was claimed by a worker that died before signing it
    """

    kind: str
    heartbeat_interval: float | None = None
    grace_period: float | None = None
    claims_locked: bool = True

    def dead_reason(self, trial: FrozenTrial, now: float | None = None) -> str | None:
        """Why ``trial``'s worker is certainly dead, or None while it may be alive. Call it with the claim lock held."""
        worker = WorkerIdentity.from_attr(trial.user_attrs.get(WORKER_ATTR))
        if worker is None:
            return f"{DIED} after claiming the trial, before signing it" if self.claims_locked else None
        if worker.is_local():
            return None if worker.is_alive() else f"{DIED} while running the trial ({worker.describe()})"
        if self.kind != "journal":
            return None  # a database's trials of other machines: Optuna's heartbeat check
        # A journal lives on one machine: our host name with another machine key is a previous boot or container.
        if worker.host == socket.gethostname() and not os.environ.get(WORKER_HOST_ENV_VAR, "").strip():
            return f"{DIED} before a reboot or container restart ({worker.describe()})"
        if self.grace_period is None:
            return None
        start = trial.datetime_start.timestamp() if trial.datetime_start is not None else time.time()
        silent = (time.time() if now is None else now) - float(trial.user_attrs.get(HEARTBEAT_ATTR, start))
        return f"{DIED}: no heartbeat for {silent:.0f} s ({worker.describe()})" if silent > self.grace_period else None

    def resolvable(self, trial: FrozenTrial) -> bool:
        """Whether a RUNNING trial will finish or be found dead (with heartbeats any is; without, only local ones)."""
        worker = WorkerIdentity.from_attr(trial.user_attrs.get(WORKER_ATTR))
        return self.heartbeat_interval is not None or worker is None or worker.is_local()


# ---------------------------------------------------------------------------------------------------- recovery


def study_storage(study: optuna.Study, spec: StorageSpec | None = None) -> BaseStorage:
    """The storage ``study`` reads and writes through, to finish or beat for a trial of another process.

    Optuna has no public accessor: its private ``Study._storage`` (the cached storage it writes through itself) is
    read through :func:`sb3_ppo_variants.core.internals.private`; where a release lacks it, the storage is opened
    again from ``spec`` with Optuna's public constructors.

    :raises StorageError: without ``_storage`` and without ``spec``
    """
    storage = internals.private(study, "_storage")
    if isinstance(storage, BaseStorage):
        return storage
    if spec is None:
        raise StorageError("This Optuna release keeps no Study._storage: pass the study's storage spec")
    return open_storage(spec)


def trial_id(storage: BaseStorage, study: optuna.Study, trial: FrozenTrial | optuna.Trial) -> int:
    """The storage's id of ``trial`` (Optuna's private ``_trial_id``, else looked up by number, publicly)."""
    known = internals.private(trial, "_trial_id")
    if isinstance(known, int):
        return known
    study_id = storage.get_study_id_from_name(study.study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)


def fail_trial(study: optuna.Study, trial: FrozenTrial, reason: str, storage: BaseStorage | None = None) -> bool:
    """Record ``reason`` and mark a RUNNING trial FAIL; False if it had finished in the meantime.

    Optuna's public API finishes only this process's own trials: another process's trial is finished through the
    storage (:func:`study_storage`).
    """
    storage = storage if storage is not None else study_storage(study)
    identifier = trial_id(storage, study, trial)
    try:
        storage.set_trial_user_attr(identifier, FAIL_REASON_ATTR, reason)
        return bool(storage.set_trial_state_values(identifier, state=TrialState.FAIL))
    except UpdateFinishedTrialError:
        return False


def recover_dead_trials(study: optuna.Study, liveness: Liveness, log: Log, storage: BaseStorage | None = None) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker is dead (with the claim lock held); return their numbers.

    A database's trials go through Optuna's :func:`~optuna.storages.fail_stale_trials` (heartbeats) first.
    ``storage``: the study's storage (default: :func:`study_storage`).
    """
    if liveness.kind == "rdb" and liveness.heartbeat_interval is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    recovered = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = liveness.dead_reason(trial)
        if reason is not None and fail_trial(study, trial, reason, storage):
            log(f"Trial {trial.number} failed: {reason}")
            recovered.append(trial.number)
            kill_point("recovered")
    return recovered


def needs_retry(trial: FrozenTrial) -> bool:
    """A FAIL trial cut short for a reason unrelated to its parameters: its worker died or was interrupted, or
    Optuna's heartbeat check failed it (such a trial has no reason: a finished trial takes no attribute)."""
    reason = trial.user_attrs.get(FAIL_REASON_ATTR)
    return trial.state == TrialState.FAIL and (not reason or str(reason).startswith((DIED, OLD_NAMES[DIED], INTERRUPTED)))


# ---------------------------------------------------------------------------------------------------- heartbeat


class Heartbeat:
    """A thread that beats for a running trial every ``interval`` seconds, and writes its :attr:`progress`.

    A database gets Optuna's heartbeat (:meth:`~optuna.storages.RDBStorage.record_heartbeat`); a journal, which
    has none, the time in :data:`HEARTBEAT_ATTR`. With ``parent_pid``, the thread also interrupts the main thread
    (as SIGTERM does) when that parent process is gone, so that a killed pool leaves no orphan behind.
    """

    def __init__(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        interval: float | None,
        parent_pid: int | None = None,
        storage: BaseStorage | None = None,
    ):
        self._study, self._trial, self._interval, self._parent_pid = study, trial, interval, parent_pid
        self._storage = storage if storage is not None else study_storage(study)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-trial-{trial.number}", daemon=True)
        self.progress: int | None = None

    def __enter__(self) -> Heartbeat:
        if self._interval is not None or self._parent_pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def beat(self) -> None:
        """Write one heartbeat (the storages are thread-safe)."""
        storage: Any = self._storage
        if hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval() is not None:
            storage.record_heartbeat(trial_id(storage, self._study, self._trial))
        elif self._interval is not None:
            self._trial.set_user_attr(HEARTBEAT_ATTR, time.time())
        if self.progress is not None:
            self._trial.set_user_attr(PROGRESS_ATTR, int(self.progress))

    def _run(self) -> None:
        while not self._stop.wait(self._interval if self._interval is not None else 1.0):
            if self._parent_pid is not None and os.getppid() != self._parent_pid:
                _thread.interrupt_main(signal.SIGTERM)  # SIGTERM's handler runs: see sigterm_interrupts
                return
            if self._interval is not None:
                with contextlib.suppress(Exception):  # a missed beat is harmless; the next one may succeed
                    self.beat()


# ---------------------------------------------------------------------------------------------------- signals


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While the block runs, SIGTERM raises KeyboardInterrupt: the running trial is failed and its retry queued."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------------------------------- the loop


class Client(Protocol):
    """What a kind of study (tuning, ablation) adds to the loop."""

    def plan(self, study: optuna.Study) -> bool:
        """Claim lock held, dead trials failed: enqueue retries and needed trials; whether to ask for a trial now."""

    def pending(self, study: optuna.Study, liveness: Liveness) -> bool:
        """Nothing to start: whether to wait for running trials (they may fail and need a retry)."""

    def objective(self, trial: optuna.Trial, heartbeat: Heartbeat) -> float:
        """Run the trial (see :func:`run_trial` for what its result and exceptions become)."""

    def finished(self, study: optuna.Study, number: int, state: TrialState, seconds: float) -> None:
        """Called after a trial of this worker was told (by default: nothing)."""
        return None


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON_LENGTH else text[: MAX_REASON_LENGTH - 3] + "..."


def run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    objective: Callable[[optuna.Trial, Heartbeat], float],
    beat: Heartbeat,
    log: Log,
    storage: BaseStorage | None = None,
) -> TrialState:
    """Run ``objective(trial, beat)`` and tell the result: COMPLETE with its value; PRUNED for :class:`optuna.TrialPruned`, or
    with ``fail_reason`` when it diverges (``FloatingPointError``, NaN/inf); FAIL with ``fail_reason`` for any other
    exception. KeyboardInterrupt and SystemExit fail the trial as interrupted and are raised again. A result for a
    trial that another worker failed meanwhile (this one looked dead) is dropped.
    """
    value: float | None = None
    reason: str | None = None
    try:
        value = objective(trial, beat)
        state = TrialState.COMPLETE
        if not math.isfinite(value):
            state, reason = TrialState.PRUNED, f"diverged: the objective value is {value}"
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except FloatingPointError as exc:
        state, reason = TrialState.PRUNED, f"diverged: {_reason(exc)}"
    except (KeyboardInterrupt, SystemExit) as exc:
        with contextlib.suppress(Exception):
            fail_trial(study, study.get_trials(deepcopy=False)[trial.number], f"{INTERRUPTED} ({type(exc).__name__})", storage)
        raise
    except Exception as exc:
        state, reason = TrialState.FAIL, _reason(exc)
        log(f"[trial {trial.number}] failed:\n{traceback.format_exc().rstrip()}")
    kill_point("result")
    try:
        if reason is not None:
            trial.set_user_attr(FAIL_REASON_ATTR, reason)
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    except (ValueError, UpdateFinishedTrialError) as exc:
        log(f"[trial {trial.number}] was taken over by another worker; its result is dropped ({exc})")
        return TrialState.FAIL
    kill_point("told")
    return state


def work(
    study: optuna.Study,
    storage: StorageSpec,
    client: Client,
    liveness: Liveness,
    wait: bool = True,
    poll: float = 2.0,
    timeout: float | None = None,
    parent_pid: int | None = None,
    log: Log = print,
) -> None:
    """Claim and run trials of ``study`` until ``client.plan`` has nothing to start and nothing is pending.

    Each round, with the claim lock held: fail the trials of dead workers, let the client plan, ask for a trial,
    record its first heartbeat (a database's trial without one is never stale) and sign it with this worker's
    identity. Then run it with a :class:`Heartbeat`. On an interrupt the retry is queued before the exception
    goes on. ``timeout``: seconds after which no new trial is started.
    """
    lock = ClaimLock(storage, study.study_name)
    study_store = study_storage(study, storage)
    liveness = Liveness(liveness.kind, liveness.heartbeat_interval, liveness.grace_period, lock.mechanism != "none")
    identity = WorkerIdentity.current().to_attr()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while deadline is None or time.monotonic() < deadline:
            trial = None
            with lock.held():
                kill_point("locked")
                recover_dead_trials(study, liveness, log, study_store)
                if client.plan(study):
                    with warnings.catch_warnings():  # "heartbeat is supposed to be used with Study.optimize": we beat
                        warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
                        trial = study.ask()
                    kill_point("asked")
                    heartbeat = Heartbeat(study, trial, liveness.heartbeat_interval, parent_pid, study_store)
                    if liveness.kind == "rdb" and liveness.heartbeat_interval is not None:
                        heartbeat.beat()
                    trial.set_user_attr(WORKER_ATTR, identity)
                    kill_point("signed")
            if trial is None:
                if wait and client.pending(study, liveness):
                    time.sleep(poll)
                    continue
                return
            started = time.monotonic()
            try:
                with heartbeat:
                    state = run_trial(study, trial, client.objective, heartbeat, log, study_store)
            except (KeyboardInterrupt, SystemExit):
                with lock.held():
                    client.plan(study)  # queue the interrupted trial's retry now
                raise
            client.finished(study, trial.number, state, time.monotonic() - started)
        log("Time limit reached: no new trial is started by this worker")
    finally:
        lock.close()
