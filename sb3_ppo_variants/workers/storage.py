"""Where a study lives: resolving ``--storage``, opening it and the study in it, masking its secrets, and the claim lock.

Three ways to name a storage (:func:`resolve_storage`):

- nothing: the URL in the environment variable :data:`STORAGE_ENV_VAR` (``SB3PV_OPTUNA_STORAGE``) if it is set,
  otherwise the embedded default, an Optuna journal file ``<output_dir>/study.journal``;
- ``env:VARNAME``: the URL or path in the environment variable ``VARNAME`` (keeps passwords off the command line,
  out of the shell history and out of ``ps``);
- a database URL (anything with ``://``, e.g. ``postgresql://user:pw@host/db``, ``sqlite:///study.db``): an
  :class:`optuna.storages.RDBStorage` with Optuna's heartbeats; or a file path (optionally ``journal:PATH``): a
  journal file.

A URL is never printed or written in full: :func:`mask_url` replaces its password (also one given as a ``password=``
query parameter) by ``***``, and errors raised while opening the storage have the secret removed.

A journal file is written by :class:`RepairingJournalBackend` under :class:`FlockJournalLock`, an ``flock`` the
operating system releases when its holder dies (Optuna's default symlink lock, left behind by a worker killed while
writing, makes the others wait 30 s). A worker killed in the middle of an append can leave a torn last line, which
Optuna's reader skips only while it is the last one: the next append would glue its own record to it and make the
journal unreadable for good. The backend therefore cuts a torn tail off, under the lock, before it appends. It
writes the records in Optuna's (private) line format, so it is used only where :func:`repairing_journal_supported`
finds that this Optuna release writes exactly that format; elsewhere Optuna's own backend writes the journal (no
repair of torn lines). Nothing here imports Optuna's private modules.

The claim lock (:class:`ClaimLock`) makes "recover dead workers' trials, count, then ask for a trial and sign it"
atomic across processes: a ``fcntl`` file lock next to a journal or SQLite file, a session-level advisory lock in
PostgreSQL, a named lock in MySQL/MariaDB. Each is released by the operating system or the server when the process
dies, so a killed worker cannot leave it held.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.pruners import BasePruner
from optuna.samplers import BaseSampler
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.study import StudyDirection
from optuna.trial import TrialState

from sb3_ppo_variants.workers.processes import kill_point, kill_requested

#: Environment variable read when no storage is given (a URL or a journal path, like ``--storage``).
STORAGE_ENV_VAR = "SB3PV_OPTUNA_STORAGE"
#: File name of the default journal, inside the output directory.
JOURNAL_FILENAME = "study.journal"
#: Suffix of the claim-lock file next to a journal or SQLite file (the name of the previous release's budget lock,
#: so that its workers and these exclude each other; Optuna's own journal lock uses ``.lock``).
CLAIM_LOCK_SUFFIX = ".budget.lock"
#: Suffix of the journal's write-lock file (:class:`FlockJournalLock`).
JOURNAL_LOCK_SUFFIX = ".write.lock"
_SECRET_QUERY_KEYS = frozenset({"password", "passwd", "pwd", "secret", "token"})
_MASK = "***"


class StorageError(RuntimeError):
    """The study's storage cannot be opened (bad URL, missing driver, unreachable server); the message masks secrets."""


@dataclass(frozen=True)
class StorageSpec:
    """A resolved storage: its kind, its location (a path, or a URL that may hold a password) and where it came from.

    ``repr()`` and :attr:`display` mask the password; only :attr:`location` holds the secret.

    :param kind: ``"journal"`` (an Optuna journal file) or ``"rdb"`` (an SQLAlchemy database URL)
    :param location: The journal path or the database URL
    :param source: How it was chosen: ``"default"``, ``"argument"``, ``"env:<VARNAME>"``
    """

    kind: Literal["journal", "rdb"]
    location: str
    source: str

    @property
    def display(self) -> str:
        """The location with any password replaced by ``***``: safe to print and to write to files."""
        return mask_url(self.location) if self.kind == "rdb" else self.location

    @property
    def secrets(self) -> tuple[str, ...]:
        """The secret strings of the location (passwords), to remove from error messages."""
        return _url_secrets(self.location) if self.kind == "rdb" else ()

    @property
    def dialect(self) -> str:
        """The database dialect of an RDB URL (``postgresql``, ``mysql``, ``sqlite``, ...), ``"journal"`` otherwise."""
        if self.kind == "journal":
            return "journal"
        from sqlalchemy.engine import make_url

        return make_url(self.location).get_backend_name()

    def __repr__(self) -> str:
        return f"StorageSpec(kind={self.kind!r}, location={self.display!r}, source={self.source!r})"


def _url_secrets(url: str) -> tuple[str, ...]:
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        match = re.match(r"^[^:/]+://[^:/@]*:([^@]*)@", url)
        return (match.group(1),) if match and match.group(1) else ()
    secrets = [parsed.password] if parsed.password else []
    for key, value in parsed.query.items():
        if key.lower() in _SECRET_QUERY_KEYS:
            secrets.extend([value] if isinstance(value, str) else list(value))
    return tuple(str(secret) for secret in secrets if secret)


def mask_url(url: str) -> str:
    """``url`` with its password (and ``password=``-like query values) replaced by ``***``.

    :param url: A database URL such as ``postgresql://user:secret@host:5432/db``
    :return: e.g. ``postgresql://user:***@host:5432/db``; for a string SQLAlchemy cannot parse, the part between
        ``user:`` and ``@`` is masked
    """
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return re.sub(r"^([^:/]+://[^:/@]*:)[^@]*@", rf"\1{_MASK}@", url)
    if parsed.password:
        parsed = parsed.set(password=_MASK)
    secret_keys = [key for key in parsed.query if key.lower() in _SECRET_QUERY_KEYS]
    if secret_keys:
        parsed = parsed.update_query_dict({key: _MASK for key in secret_keys})
    return parsed.render_as_string(hide_password=False).replace("%2A%2A%2A", _MASK)  # rendering escapes the asterisks


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, _MASK)
    return text


def _spec_from_value(value: str, source: str) -> StorageSpec:
    value = value.strip()
    if value.startswith("journal:"):
        path = value[len("journal:") :]
        if not path:
            raise ValueError(f"`storage` ({source}): 'journal:' must be followed by a file path")
        return StorageSpec("journal", path, source)
    if "://" in value:
        if value.startswith(("redis://", "rediss://")):
            raise ValueError(
                f"`storage` ({source}): Redis is not supported; use a journal file or an SQLAlchemy database URL "
                "(postgresql://..., mysql://..., sqlite:///...)"
            )
        from sqlalchemy.engine import make_url

        try:
            make_url(value)
        except Exception as exc:
            raise ValueError(
                f"`storage` ({source}): {mask_url(value)!r} is not a valid database URL "
                f"({redact(str(exc), _url_secrets(value))})"
            ) from None
        return StorageSpec("rdb", value, source)
    return StorageSpec("journal", value, source)


def resolve_storage(storage: str | None, output_dir: str | os.PathLike[str]) -> StorageSpec:
    """Turn a ``--storage`` value into a :class:`StorageSpec` (see the module docstring for the accepted forms).

    :param storage: ``None`` (the environment variable :data:`STORAGE_ENV_VAR`, else the default journal), a database
        URL, a journal path, ``journal:PATH`` or ``env:VARNAME``
    :param output_dir: The study's output directory, where the default journal lives
    :return: The resolved storage
    :raises ValueError: for an empty value, an unset or empty environment variable, or a URL that does not parse
    """
    if storage is None:
        from_env = os.environ.get(STORAGE_ENV_VAR, "").strip()
        if from_env:
            return _spec_from_value(from_env, f"env:{STORAGE_ENV_VAR}")
        return StorageSpec("journal", str(Path(output_dir) / JOURNAL_FILENAME), "default")
    if not isinstance(storage, str):
        raise TypeError(f"`storage` must be a string or None, got {type(storage).__name__}")
    if not storage.strip():
        raise ValueError("`storage` is empty; leave it out for the default journal file")
    if storage.startswith("env:"):
        name = storage[len("env:") :]
        if not name:
            raise ValueError("`storage`: 'env:' must be followed by the name of an environment variable")
        value = os.environ.get(name, "").strip()
        if not value:
            raise ValueError(f"`storage`: the environment variable {name} (from {storage!r}) is not set or is empty")
        return _spec_from_value(value, f"env:{name}")
    return _spec_from_value(storage, "argument")


def open_storage(spec: StorageSpec, heartbeat_interval: int | None = None, grace_period: int | None = None) -> BaseStorage:
    """Open the storage of ``spec``: a :class:`~optuna.storages.JournalStorage` or an :class:`~optuna.storages.RDBStorage`.

    For a database, Optuna's heartbeats are switched on when ``heartbeat_interval`` is set: a RUNNING trial whose
    worker has not written a heartbeat for ``grace_period`` seconds (default: twice the interval) is stale, and
    :func:`optuna.storages.fail_stale_trials` marks it FAIL. A journal has no heartbeats in Optuna 5; see
    :mod:`sb3_ppo_variants.workers` for how its stale trials are found.

    :raises StorageError: if the storage cannot be opened (the message never contains the password)
    """
    if spec.kind == "journal":
        path = Path(spec.location)
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = journal_write_lock(str(path))
        if repairing_journal_supported():
            return JournalStorage(RepairingJournalBackend(str(path), lock_obj=lock))
        return JournalStorage(JournalFileBackend(str(path), lock_obj=lock))  # type: ignore[arg-type]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            engine_kwargs: dict[str, Any] = {"pool_pre_ping": True} if spec.dialect != "sqlite" else {}
            return RDBStorage(
                spec.location,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period if heartbeat_interval is not None else None,
            )
    except Exception as exc:
        raise StorageError(
            f"Could not open the Optuna storage {spec.display} ({spec.source}): "
            f"{type(exc).__name__}: {redact(str(exc), spec.secrets)}"
        ) from None


def create_or_load_study(
    spec: StorageSpec,
    study_name: str,
    settings_attr: str,
    settings: Any,
    differences: Callable[[Any], list[str]],
    sampler: BaseSampler,
    pruner: BasePruner | None = None,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    *,
    tool: str,
    what: str,
) -> optuna.Study:
    """Create or load the maximising study ``study_name`` and check that it was made by ``tool`` with ``settings``.

    A new study (or one holding only enqueued WAITING trials) stores ``settings`` in its user attribute
    ``settings_attr``; a study that holds other settings is refused, with ``differences(stored)`` in the message.

    :param what: What the settings are called in the messages (``set of settings``, ``ablation grid``)
    :raises StorageError: if Optuna cannot create or load the study (the message never contains the password)
    :raises ValueError: for a minimising study, one of another program, or one with other settings
    """
    storage = open_storage(spec, heartbeat_interval, grace_period)
    try:
        study = optuna.create_study(
            storage=storage, study_name=study_name, sampler=sampler, pruner=pruner, direction="maximize", load_if_exists=True
        )
    except Exception as exc:
        raise StorageError(
            f"Could not create or load study {study_name!r} in {spec.display}: "
            f"{type(exc).__name__}: {redact(str(exc), spec.secrets)}"
        ) from None
    where = f"`study_name`: study {study_name!r} in {spec.display}"
    if study.direction != StudyDirection.MAXIMIZE:
        raise ValueError(f"{where} minimizes; this tool maximizes the return")
    stored = study.user_attrs.get(settings_attr)
    if stored is None:
        if any(t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False)):
            raise ValueError(f"{where} already has trials but was not created by {tool}; choose another study name")
        study.set_user_attr(settings_attr, settings)
    elif found := differences(stored):
        raise ValueError(
            f"{where} was created with another {what} ({'; '.join(found)}); use the same {what} to continue it, "
            "or another study name"
        )
    return study


# ---------------------------------------------------------------------------------------------------- journal lock


class JournalLock(Protocol):
    """What Optuna's journal file backend asks of its lock object (``lock_obj``): ``acquire`` and ``release``."""

    def acquire(self) -> bool: ...

    def release(self) -> None: ...


@contextlib.contextmanager
def _holding(lock: JournalLock) -> Iterator[None]:
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


class FlockJournalLock:
    """The write lock of a journal file, with ``flock(2)`` on ``<journal>.write.lock``.

    Optuna's default journal lock is a symbolic link that a process killed while writing leaves behind; the other
    workers then wait for its 30 s grace period before they force it. The operating system releases an ``flock``
    when its holder dies, so a killed worker costs nothing. Every process writing the journal must use the same
    kind of lock: run other Optuna programs on the same journal only while no worker runs.

    :param journal_path: The journal file
    """

    def __init__(self, journal_path: str) -> None:
        self._path = Path(journal_path + JOURNAL_LOCK_SUFFIX)
        self._thread_lock = threading.Lock()  # flock is per open file: threads of one process need their own lock
        self._held = contextlib.ExitStack()

    def acquire(self) -> bool:
        with contextlib.ExitStack() as undo:
            self._thread_lock.acquire()
            undo.callback(self._thread_lock.release)
            self._held.enter_context(_file_lock(self._path))
            undo.pop_all()
        return True

    def release(self) -> None:
        try:
            self._held.close()
        finally:
            self._thread_lock.release()


def journal_write_lock(journal_path: str) -> JournalLock:
    """:class:`FlockJournalLock` where ``fcntl`` exists (POSIX), else Optuna's default symlink lock."""
    try:
        import fcntl  # noqa: F401
    except ImportError:  # pragma: no cover - not POSIX
        return JournalFileSymlinkLock(journal_path)
    return FlockJournalLock(journal_path)


def _journal_line(log: dict[str, Any]) -> bytes:
    """One journal record as Optuna's file backend writes it (checked by :func:`repairing_journal_supported`)."""
    return (json.dumps(log, separators=(",", ":")) + "\n").encode()


@functools.cache
def repairing_journal_supported() -> bool:
    """Whether this Optuna release writes a journal record as :func:`_journal_line` does (its private file format,
    which :class:`RepairingJournalBackend` writes itself), checked once on a temporary file."""
    import tempfile

    record = {"op_code": 0, "worker_id": "check", "study_name": "s", "directions": [1]}
    try:
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "check.journal")
            JournalFileBackend(path, lock_obj=journal_write_lock(path)).append_logs([record])  # type: ignore[arg-type]
            return Path(path).read_bytes() == _journal_line(record)
    except Exception:  # any change of Optuna's backend: use it as it is
        return False


class RepairingJournalBackend(JournalFileBackend):
    """Optuna's journal file backend that cuts a torn last line (a writer killed mid-append) off before appending.

    Used only where :func:`repairing_journal_supported`; it keeps its own file path and lock (Optuna's are private).
    """

    def __init__(self, file_path: str, lock_obj: JournalLock) -> None:
        super().__init__(file_path, lock_obj=lock_obj)  # type: ignore[arg-type]
        self._repair_path, self._repair_lock = file_path, lock_obj

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = b"".join(_journal_line(log) for log in logs)
        with _holding(self._repair_lock), open(self._repair_path, "rb+") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - 1))
            if size and f.read(1) != b"\n":  # torn by a dead writer (we hold the lock): keep the complete lines
                f.seek(0)
                f.truncate(f.read().rfind(b"\n") + 1)
                f.seek(0, os.SEEK_END)
            torn = kill_requested("journal-write")  # a test's torn write: half the record, then SIGKILL
            f.write(data[: len(data) // 2] if torn else data)
            f.flush()
            os.fsync(f.fileno())
            if torn:
                kill_point("journal-write", force=True)


# ---------------------------------------------------------------------------------------------------- claim lock


def _lock_key(study_name: str) -> int:
    """A stable signed 64-bit key for a PostgreSQL advisory lock on ``study_name``."""
    digest = hashlib.sha256(f"sb3_ppo_variants.tuning:{study_name}".encode()).digest()  # the old name: old workers share it
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class ClaimLock:
    """An inter-process lock for one study, held (:meth:`held`) while recovering, counting and claiming.

    :param spec: The study's storage; picks the mechanism (see the module docstring)
    :param study_name: The study (PostgreSQL/MySQL lock names are derived from it)
    """

    def __init__(self, spec: StorageSpec, study_name: str) -> None:
        self.spec = spec
        self.study_name = study_name
        self.mechanism = "none"
        self._engine: Any = None
        self._path: Path | None = None
        dialect = spec.dialect
        if spec.kind == "journal":
            self._path = Path(spec.location + CLAIM_LOCK_SUFFIX)
            self.mechanism = "file"
        elif dialect == "sqlite":
            from sqlalchemy.engine import make_url

            database = make_url(spec.location).database
            if database and database != ":memory:" and not database.startswith("file:"):
                self._path = Path(database + CLAIM_LOCK_SUFFIX)
                self.mechanism = "file"
        elif dialect in ("postgresql", "mysql", "mariadb"):
            import sqlalchemy
            from sqlalchemy.pool import NullPool

            self._engine = sqlalchemy.create_engine(spec.location, poolclass=NullPool)
            self.mechanism = "postgresql-advisory" if dialect == "postgresql" else "mysql-named"

    def __repr__(self) -> str:
        return f"ClaimLock({self.mechanism}, study={self.study_name!r})"

    @contextlib.contextmanager
    def _database_lock(self) -> Iterator[None]:
        from sqlalchemy import text

        if self.mechanism == "postgresql-advisory":
            acquire, release = "SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"
            params: dict[str, Any] = {"key": _lock_key(self.study_name)}
        else:
            acquire, release = "SELECT GET_LOCK(:key, -1)", "SELECT RELEASE_LOCK(:key)"
            params = {"key": "sb3pv:" + hashlib.sha256(self.study_name.encode()).hexdigest()[:40]}
        try:
            connection = self._engine.connect()
        except Exception as exc:
            raise StorageError(
                f"Could not connect to {self.spec.display} for the claim lock: "
                f"{type(exc).__name__}: {redact(str(exc), self.spec.secrets)}"
            ) from None
        # Session-level lock: held until released or until the connection closes (also when this process dies).
        with connection:
            connection.execute(text(acquire), params)
            try:
                yield
            finally:
                connection.execute(text(release), params)

    def held(self) -> contextlib.AbstractContextManager[None]:
        """The lock as a context manager: ``with lock.held(): ...``."""
        if self._path is not None:
            return _file_lock(self._path)
        return self._database_lock() if self._engine is not None else contextlib.nullcontext()

    def close(self) -> None:
        """Release the database engine, if any."""
        if self._engine is not None:
            self._engine.dispose()
