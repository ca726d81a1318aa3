"""Processes of this machine: which machine (and PID namespace) a worker ran on, whether its process still runs,
and the kill points of the tests.

Workers record :func:`machine_key`, the PID and :func:`process_start_time` in the trials they run; a later worker
on the same machine uses :func:`process_alive` to tell a crashed worker's RUNNING trial from a live one at once (a
PID is only meaningful on the machine, and in the PID namespace, it came from).

:func:`kill_point` lets a test kill a worker with SIGKILL at a named point of its work (see :data:`KILL_ENV_VAR`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections import Counter
from functools import lru_cache
from pathlib import Path

#: Environment variable that overrides :func:`machine_key`, for machines that cannot be told apart otherwise.
WORKER_HOST_ENV_VAR = "SB3PV_WORKER_HOST"
#: Test hook: ``point`` or ``point:N`` (the N-th pass), comma-separated: the process SIGKILLs itself there. Points:
#: ``locked``, ``recovered``, ``asked``, ``signed`` (:func:`sb3_ppo_variants.workers.loop.work`), ``mid-trial``,
#: ``result``, ``told`` (:func:`~sb3_ppo_variants.workers.loop.run_trial`), ``journal-write`` (a torn append).
KILL_ENV_VAR = "SB3PV_KILL_AT"
_passes: Counter[str] = Counter()


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def proc_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start_time)`` of a process from ``/proc/<pid>/stat`` (Linux), or None if it cannot be read."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    fields = text[text.rfind(")") + 2 :].split()
    return fields[0], fields[19]  # field 3: state, field 22: start time in clock ticks since boot


def process_start_time(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), to detect a reused PID; None where unknown."""
    stat = proc_stat(pid)
    return stat[1] if stat is not None else None


@lru_cache(maxsize=1)
def machine_key() -> str:
    """This machine and PID namespace: host name, Linux boot id and PID namespace, or :data:`WORKER_HOST_ENV_VAR`."""
    override = os.environ.get(WORKER_HOST_ENV_VAR, "").strip()
    if override:
        return override
    parts = [socket.gethostname()]
    boot_id = _read("/proc/sys/kernel/random/boot_id")
    if boot_id:
        parts.append(boot_id)
    with contextlib.suppress(OSError):
        parts.append(os.readlink("/proc/self/ns/pid"))
    return "|".join(parts)


def process_alive(pid: int, start_time: str | int | None) -> bool:
    """Whether process ``pid`` of this machine still runs and, when ``start_time`` is known, is the same process.

    A zombie (exited, not yet reaped) is dead. Without ``/proc`` only the PID can be checked.
    """
    stat = proc_stat(pid)
    if stat is not None:
        state, started = stat
        return state not in ("Z", "X") and (start_time is None or started == str(start_time))
    if Path("/proc/self/stat").exists():
        return False  # Linux, and no /proc entry for the PID: gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_requested(point: str) -> bool:
    """Count a pass at ``point``; whether :data:`KILL_ENV_VAR` asks for a kill at this pass."""
    wanted = os.environ.get(KILL_ENV_VAR)
    if not wanted:
        return False
    _passes[point] += 1
    return any(f"{point}:{_passes[point]}" == item or (point == item and _passes[point] == 1) for item in wanted.split(","))


def kill_point(point: str, force: bool = False) -> None:
    """SIGKILL this process if :data:`KILL_ENV_VAR` asks for it at this pass of ``point`` (or ``force``)."""
    if force or kill_requested(point):
        os.kill(os.getpid(), signal.SIGKILL)
