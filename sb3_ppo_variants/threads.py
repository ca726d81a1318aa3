"""Thread counts during ``learn()``: the machinery of the algorithms' ``threads`` parameter.

torch runs its operations on several threads ("intra-op" threads, by default one per core) and NumPy's BLAS
(OpenBLAS or MKL) does the same for its matrix products. For the small policies this package trains, an operation
is far too short to be split: the threads then only wait for each other, and when another process keeps a core busy
every operation waits for the thread that shares that core. On 2 cores beside one busy loop, ClipPPO with torch's
default threads ran CartPole at a fraction of its one-thread speed (the figures: ``docs/differences.md``, "Threads").

``threads`` takes three kinds of value (:func:`check_threads`):

- ``"auto"`` (the default): when the policy is small (at most :data:`SMALL_POLICY_PARAMETERS` parameters) and you
  have not set torch's thread count yourself, torch's intra-op threads and the BLAS threads are 1 inside ``learn()``;
  otherwise nothing is changed. "Set yourself" means: torch's count differs from the one it had when this module was
  first imported (:data:`TORCH_START_THREADS`), or one of :data:`THREAD_ENV_VARS` is set in the environment;
- an int ``N >= 1``: torch's intra-op threads and the BLAS threads are ``N`` inside ``learn()``, whatever the policy;
- ``None``: nothing is changed.

Whatever ``learn()`` changed is put back when it returns or raises. The BLAS threads are set through
`threadpoolctl <https://github.com/joblib/threadpoolctl>`_, a dependency; where it is missing they are left as they
are, and ``verbose >= 1`` says so. torch's
inter-op threads and the environments' worker processes (``SubprocVecEnv``) are never touched. The counts are
process-wide: two ``learn()`` calls running at once in threads of one process share them.

The algorithms call :func:`limited_threads` around the training loop::

    with limited_threads(self.threads, count_parameters(self.policy), owner="ClipPPO", verbose=self.verbose):
        ...  # collect rollouts and train
"""

from __future__ import annotations

import contextlib
import numbers
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

#: The value that lets ``learn()`` decide (see the module docstring).
AUTO = "auto"
#: A policy with at most this many parameters is "small": ``threads="auto"`` runs it on one thread. ClipPPO's default
#: MlpPolicy on CartPole has 9,155 parameters; with ``net_arch=[256, 256]`` it is 134,915 and with ``[1024, 1024]``
#: 2.1M. The figures behind the choice: ``docs/differences.md``, "Threads".
SMALL_POLICY_PARAMETERS = 100_000
#: Environment variables that set the thread count of torch or of a BLAS: with one of them set, ``"auto"`` leaves
#: the counts alone (the variables are your setting).
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: torch's intra-op thread count when this module was first imported: ``"auto"`` takes any other count as your own
#: setting and keeps it. (A count you set before importing ``sb3_ppo_variants`` cannot be told from torch's own: pass
#: ``threads=None`` to keep it.)
TORCH_START_THREADS = torch.get_num_threads()

_ALLOWED = "'auto', None or an int >= 1"


def check_threads(value: Any, owner: str = "") -> int | str | None:
    """Check a ``threads`` value: ``"auto"``, ``None`` or an int ``>= 1`` (a NumPy int too; a bool is refused).

    :param value: The value given for ``threads``
    :param owner: Who asks (the class name), at the start of the messages
    :return: The value, an int as a Python int
    :raises TypeError: for a value that is neither a string, None nor an int
    :raises ValueError: for another string, or an int below 1
    """
    prefix = f"{owner}: " if owner else ""
    if value is None or (isinstance(value, str) and value == AUTO):
        return value
    if isinstance(value, str):
        hint = f" (for {int(value)} threads pass the int {int(value)})" if value.strip().isdigit() else ""
        raise ValueError(f"{prefix}`threads` must be {_ALLOWED}, got {value!r}{hint}")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{prefix}`threads` must be {_ALLOWED}, got {value!r} of type {type(value).__name__}")
    if int(value) < 1:
        raise ValueError(f"{prefix}`threads` must be {_ALLOWED}, got {int(value)}")
    return int(value)


def count_parameters(module: torch.nn.Module) -> int:
    """The number of parameters (scalars) of ``module``, the size that ``threads="auto"`` compares."""
    return sum(parameter.numel() for parameter in module.parameters())


@dataclass(frozen=True)
class ThreadLimit:
    """What :func:`limited_threads` did.

    :param setting: The ``threads`` value
    :param n_parameters: The policy's size it was given
    :param torch_before: torch's intra-op threads before (and after) ``learn()``
    :param torch_inside: torch's intra-op threads inside
    :param blas_before: The thread count of each BLAS library before, by library (``openblas``, ``mkl``, ...); empty
        when the BLAS threads were not set (nothing to change, or threadpoolctl is not installed)
    :param blas_inside: The BLAS threads inside; None when they were not set
    :param reason: Why it did what it did, in words
    """

    setting: int | str | None
    n_parameters: int
    torch_before: int
    torch_inside: int
    blas_before: dict[str, int]
    blas_inside: int | None
    reason: str

    @property
    def changed(self) -> bool:
        """Whether any thread count differs inside ``learn()``."""
        blas = self.blas_inside is not None and any(n != self.blas_inside for n in self.blas_before.values())
        return self.torch_inside != self.torch_before or blas

    def describe(self, owner: str = "") -> str:
        """One line for ``verbose >= 1``: the setting, what it changed, and why."""
        prefix = f"{owner}: " if owner else ""
        head = f"{prefix}threads={self.setting!r}:"
        if self.torch_inside == self.torch_before and self.blas_inside is None:
            return f"{head} thread counts left as they are (torch: {self.torch_before}); {self.reason}"
        torch_part = f"torch's intra-op threads {self.torch_before} -> {self.torch_inside}"
        if self.blas_inside is not None:
            libraries = ", ".join(f"{name} {n}" for name, n in sorted(self.blas_before.items()))
            blas_part = f" and BLAS threads ({libraries}) -> {self.blas_inside}"
        else:
            blas_part = ""
        return f"{head} {torch_part}{blas_part} during learn(), restored afterwards; {self.reason}"


def _user_env_var() -> str | None:
    """The first of :data:`THREAD_ENV_VARS` that is set (non-empty), if any."""
    return next((name for name in THREAD_ENV_VARS if os.environ.get(name, "").strip()), None)


def _decide(setting: int | str | None, n_parameters: int, torch_now: int) -> tuple[int | None, str]:
    """The thread count to use inside ``learn()`` (None: change nothing) and the reason."""
    if setting is None:
        return None, "threads=None keeps your settings"
    if isinstance(setting, int):
        return setting, f"as asked by threads={setting}"
    variable = _user_env_var()
    if variable is not None:
        return None, f"{variable} is set, so the environment's thread settings are kept"
    if torch_now != TORCH_START_THREADS:
        return None, (
            f"torch's thread count was set to {torch_now} (it started at {TORCH_START_THREADS}); that setting is kept"
        )
    if n_parameters > SMALL_POLICY_PARAMETERS:
        return None, (
            f"the policy has {n_parameters:,} parameters (more than {SMALL_POLICY_PARAMETERS:,}), where several threads "
            "can pay off; threads=1 forces one"
        )
    return 1, (
        f"one thread is fastest for a policy of {n_parameters:,} parameters (at most {SMALL_POLICY_PARAMETERS:,}); "
        "threads=None keeps your settings"
    )


def _blas_limits(target: int) -> tuple[Any, dict[str, int], str]:
    """Set the BLAS threads to ``target`` with threadpoolctl: (the limiter to restore, counts before, a note)."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return None, {}, "BLAS threads left as they are (threadpoolctl is not installed: pip install threadpoolctl)"
    before = {str(info["internal_api"]): int(info["num_threads"]) for info in threadpool_info() if info["user_api"] == "blas"}
    if not before:
        return None, {}, "no BLAS library is loaded"
    return threadpool_limits(limits=target, user_api="blas"), before, ""


@contextlib.contextmanager
def limited_threads(setting: int | str | None, n_parameters: int, owner: str = "", verbose: int = 0) -> Iterator[ThreadLimit]:
    """Apply a ``threads`` setting for the duration of the ``with`` block, and put the counts back afterwards.

    The rule is in the module docstring. The previous counts are restored when the block ends, also when it raises
    (a KeyboardInterrupt included).

    :param setting: ``"auto"``, an int ``>= 1`` or None (checked with :func:`check_threads`)
    :param n_parameters: The size of the policy (:func:`count_parameters`)
    :param owner: The class name, in the messages
    :param verbose: ``>= 1``: print what was done (:meth:`ThreadLimit.describe`)
    :return: (as the ``with`` target) a :class:`ThreadLimit` describing what was done
    :raises TypeError, ValueError: for an invalid ``setting`` or ``n_parameters``
    """
    setting = check_threads(setting, owner)
    if isinstance(n_parameters, bool) or not isinstance(n_parameters, numbers.Integral) or n_parameters < 0:
        raise ValueError(f"{owner + ': ' if owner else ''}`n_parameters` must be an int >= 0, got {n_parameters!r}")
    torch_before = torch.get_num_threads()
    target, reason = _decide(setting, int(n_parameters), torch_before)
    with contextlib.ExitStack() as restore:
        blas_before: dict[str, int] = {}
        blas_inside: int | None = None
        if target is not None:
            if target != torch_before:
                torch.set_num_threads(target)
                restore.callback(torch.set_num_threads, torch_before)
            limiter, blas_before, note = _blas_limits(target)
            if limiter is not None:
                restore.callback(limiter.restore_original_limits)
                blas_inside = target
            if note:
                reason = f"{reason}; {note}"
        limit = ThreadLimit(setting, int(n_parameters), torch_before, target or torch_before, blas_before, blas_inside, reason)
        if verbose >= 1:
            print(limit.describe(owner))
        yield limit
