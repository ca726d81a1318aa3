"""``run_study``: an Optuna study of one of our algorithms on one environment, resumable and shared by several workers.

Each worker (a call of :func:`run_study`, one process of ``sb3-ppo-variants-tune``) runs the shared worker loop
(:func:`sb3_ppo_variants.workers.loop.work`). Each round, with the claim lock held, it enqueues the retries that
failed trials need (:func:`~sb3_ppo_variants.tuning.budget.enqueue_retries`), counts the trials
(:class:`~sb3_ppo_variants.tuning.budget.Budget`) and, if the budget allows, claims a trial (a WAITING retry first);
it runs it (:class:`~sb3_ppo_variants.tuning.objective.Objective`) and tells the result: COMPLETE with the mean
final evaluation return; PRUNED when the pruner stops it, or when training diverges (``FloatingPointError``,
NaN/inf return), with ``fail_reason``; FAIL with ``fail_reason`` for any other exception. Ctrl-C (and SIGTERM, in
the command) fails the trial, enqueues its retry and stops the worker. It stops when ``n_trials`` trials are
finished or started, or at the time limit (a running trial is finished, as in Optuna); with nothing left to start
it waits for RUNNING trials that may still fail (those of this machine, or any with heartbeats), so that a killed
worker's trial is retried before the study ends.

Then it writes the summary (:mod:`sb3_ppo_variants.tuning.summary`). Running the same command again continues the
same study (``load_if_exists``) and only runs the missing trials; the study's settings are stored in it and a
continuation with other settings is refused.

An output directory belongs to one study: :data:`STUDY_ID_FILENAME` in it names the study and its storage
(:func:`claim_output_dir`). Another study (the same name in another storage, say) never writes over its files: with
the default directory it writes beside it, to ``logs/tuning/<name>-2`` (``-3``, ...), and says so; a directory given
with ``output_dir`` that holds another study's results is refused.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.pruners import BasePruner, MedianPruner, NopPruner, SuccessiveHalvingPruner
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import TrialState

from sb3_ppo_variants import ALGOS
from sb3_ppo_variants.core.checks import check_float, check_int
from sb3_ppo_variants.tuning.budget import Budget, enqueue_retries
from sb3_ppo_variants.tuning.objective import Objective, TrialSettings, env_info
from sb3_ppo_variants.tuning.summary import SUMMARY_FILENAME, StudySummary, summarize
from sb3_ppo_variants.workers.loop import FAIL_REASON_ATTR, Client, Heartbeat, Liveness, work
from sb3_ppo_variants.workers.storage import JOURNAL_FILENAME, StorageSpec, create_or_load_study, resolve_storage

logger = logging.getLogger("sb3_ppo_variants.tuning")

#: Study user attribute holding the :class:`TrialSettings` the study was created with.
SETTINGS_ATTR = "sb3pv_tuning_settings"
SAMPLER_NAMES = ("tpe", "random")
PRUNER_NAMES = ("median", "halving", "none")
#: Constructor arguments a study sets itself (they cannot be fixed with ``hyperparams``).
RESERVED_HYPERPARAMS = frozenset({"self", "env", "seed", "verbose", "device", "tensorboard_log", "_init_setup_model"})


# ---------------------------------------------------------------------------------------------------- input checks


def _check_hyperparams(algo: str, hyperparams: Mapping[str, Any] | None) -> tuple[dict[str, Any], str | None]:
    """The fixed constructor arguments, checked against the constructor, and the policy if one is given."""
    if hyperparams is None:
        return {}, None
    if not isinstance(hyperparams, Mapping):
        raise TypeError(f"`hyperparams` must be a mapping of constructor arguments, got {type(hyperparams).__name__}")
    fixed = dict(hyperparams)
    policy = fixed.pop("policy", None)
    if policy is not None and not isinstance(policy, str):
        raise TypeError(f"`hyperparams['policy']` must be a policy name such as 'MlpPolicy', got {policy!r}")
    algo_class = ALGOS[algo]
    accepted = set(inspect.signature(algo_class).parameters) - RESERVED_HYPERPARAMS - {"policy"}
    for key in fixed:
        if key in RESERVED_HYPERPARAMS:
            raise ValueError(f"`hyperparams`: {key!r} is set by the study itself and cannot be fixed")
        if key not in accepted:
            raise ValueError(
                f"`hyperparams`: {key!r} is not an argument of {algo_class.__name__}; accepted: {', '.join(sorted(accepted))}"
            )
    return fixed, policy


def make_sampler(sampler: str | BaseSampler, n_startup_trials: int, seed: int | None) -> BaseSampler:
    """The sampler by name: ``tpe`` (multivariate TPE with the constant liar, for parallel workers) or ``random``."""
    if isinstance(sampler, BaseSampler):
        return sampler
    if sampler == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            return TPESampler(n_startup_trials=n_startup_trials, multivariate=True, constant_liar=True, seed=seed)
    if sampler == "random":
        return RandomSampler(seed=seed)
    raise ValueError(f"`sampler` must be one of {', '.join(SAMPLER_NAMES)} or an optuna BaseSampler, got {sampler!r}")


def make_pruner(pruner: str | BasePruner, n_startup_trials: int, n_warmup_steps: int) -> BasePruner:
    """The pruner by name: ``median`` (MedianPruner), ``halving`` (SuccessiveHalvingPruner) or ``none``."""
    if isinstance(pruner, BasePruner):
        return pruner
    if pruner == "median":
        return MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps)
    if pruner == "halving":
        return SuccessiveHalvingPruner()
    if pruner == "none":
        return NopPruner()
    raise ValueError(f"`pruner` must be one of {', '.join(PRUNER_NAMES)} or an optuna BasePruner, got {pruner!r}")


def default_output_dir(study_name: str) -> Path:
    """``logs/tuning/<study_name>`` (characters other than letters, digits, ``._-`` replaced by ``_``)."""
    return Path("logs") / "tuning" / re.sub(r"[^A-Za-z0-9._-]", "_", study_name)


# ---------------------------------------------------------------------------------------------------- output directory

#: File of an output directory naming the study whose results it holds (``study_name`` and ``storage``).
STUDY_ID_FILENAME = "study_id.json"
#: How many directories beside the default one (``<name>-2`` ...) are tried before giving up.
MAX_BESIDE = 1000


def _study_id(spec: StorageSpec, study_name: str) -> dict[str, str]:
    """What identifies a study: its name and its storage (a journal by its absolute path; a URL with the password
    masked, so that the file holds no secret)."""
    storage = str(Path(spec.location).resolve()) if spec.kind == "journal" else spec.display
    return {"study_name": study_name, "storage": storage}


def _owner(directory: Path) -> dict[str, str | None] | None:
    """The study whose results ``directory`` holds, or None when it holds none.

    Read from :data:`STUDY_ID_FILENAME`; for a directory written before that file existed, from ``summary.json``
    (its study name and storage) or, failing that, from a default journal ``study.journal`` (any study name).
    """
    for name in (STUDY_ID_FILENAME, SUMMARY_FILENAME):
        try:
            found = json.loads((directory / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(found, dict) and isinstance(found.get("storage"), str):
            storage = found["storage"]
            if "://" not in storage:  # a journal path, absolute or relative to the directory the study ran in
                storage = str(Path(storage).resolve())
            return {"study_name": found.get("study_name"), "storage": storage}
    if (directory / JOURNAL_FILENAME).is_file():
        return {"study_name": None, "storage": str((directory / JOURNAL_FILENAME).resolve())}
    return None


def _same_study(owner: dict[str, str | None], study_id: dict[str, str]) -> bool:
    return owner["storage"] == study_id["storage"] and owner["study_name"] in (None, study_id["study_name"])


def _describe(owner: dict[str, str | None]) -> str:
    name = "" if owner["study_name"] is None else f" {owner['study_name']!r}"
    return f"the results of study{name} in {owner['storage']}"


def claim_output_dir(
    storage: str | None, study_name: str, output_dir: str | os.PathLike[str] | None
) -> tuple[Path, StorageSpec]:
    """The output directory of the study and its storage, chosen so that no other study's files are written over.

    ``output_dir`` given: that directory, unless it holds another study's results (then a ValueError). Not given:
    the first of ``logs/tuning/<name>``, ``logs/tuning/<name>-2``, ... that is free or holds this very study (the
    same name in the same storage), so that rerunning the command finds the study's directory again; a warning says
    where the results go when it is not the first. The default storage (a journal inside the directory) moves with
    the directory. Nothing is written here (:func:`write_study_id` marks the directory once the study is open).

    :param storage: As :func:`run_study`'s ``storage``
    :param study_name: The study
    :param output_dir: As :func:`run_study`'s ``output_dir``
    :raises ValueError: naming ``output_dir`` when the given directory holds another study's results
    """
    if output_dir is not None:
        out = Path(output_dir)
        spec = resolve_storage(storage, out)
        owner = _owner(out)
        if owner is not None and not _same_study(owner, _study_id(spec, study_name)):
            raise ValueError(
                f"`output_dir`: {out} holds {_describe(owner)}; this study ({study_name!r} in {spec.display}) would "
                "overwrite them. Give another output directory (-o/--output-dir), or move that one away"
            )
        return out, spec
    first = default_output_dir(study_name)
    for index in range(1, MAX_BESIDE + 1):
        out = first if index == 1 else first.with_name(f"{first.name}-{index}")
        spec = resolve_storage(storage, out)
        owner = _owner(out)
        if owner is None or _same_study(owner, _study_id(spec, study_name)):
            if index > 1:
                first_owner = _owner(first)
                taken = _describe(first_owner) if first_owner is not None else "another study's results"
                logger.warning(f"{first} holds {taken}; this study's results go to {out}")
            return out, spec
    raise ValueError(
        f"`output_dir`: {first} and the {MAX_BESIDE - 1} directories beside it hold other studies; give an output "
        "directory (-o/--output-dir)"
    )


def write_study_id(out: Path, spec: StorageSpec, study_name: str) -> None:
    """Mark ``out`` as the directory of this study (:data:`STUDY_ID_FILENAME`), unless it already is.

    :raises ValueError: naming ``output_dir`` when another study marked it first (two studies started at once)
    """
    study_id = _study_id(spec, study_name)
    path = out / STUDY_ID_FILENAME
    out.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "x") as file:  # exclusive: of two studies starting together, one marks it
            json.dump(study_id, file, indent=2)
            file.write("\n")
        return
    except FileExistsError:
        pass
    owner = _owner(out)
    if owner is not None and not _same_study(owner, study_id):
        raise ValueError(f"`output_dir`: {out} was just taken by {_describe(owner)}; run the command again")


def check_storage_folder(spec: StorageSpec) -> None:
    """Refuse a journal or SQLite file whose folder does not exist (a typo such as ``/nonexistent/dir/x.journal``).

    Optuna itself refuses it too (``FileNotFoundError`` for a journal, SQLite's "unable to open database file"); this
    says which folder is missing. The default journal (inside the output directory) is exempt: that folder is made.

    :raises ValueError: naming ``storage`` and the missing folder
    """
    if spec.source == "default":
        return
    if spec.kind == "journal":
        path, what = Path(spec.location), "journal file"
    elif spec.dialect == "sqlite":
        from sqlalchemy.engine import make_url

        database = make_url(spec.location).database
        if not database or database == ":memory:" or database.startswith("file:"):
            return
        path, what = Path(database), "SQLite database"
    else:
        return
    folder = path.expanduser().parent
    if not folder.is_dir():
        source = "" if spec.source == "argument" else f" (from {spec.source})"
        raise ValueError(
            f"`storage`{source}: the folder {folder} of the {what} {path} does not exist; create it first "
            f"(mkdir -p {folder}) or correct the path"
        )


# ---------------------------------------------------------------------------------------------------- the study


class _Tuning(Client):
    """The tuning study's part of the worker loop (:class:`sb3_ppo_variants.workers.loop.Client`)."""

    def __init__(self, objective: Objective, n_trials: int | None, max_retry: int | None) -> None:
        self._objective, self.n_trials, self.max_retry = objective, n_trials, max_retry
        self._waiting_logged = False

    def plan(self, study: optuna.Study) -> bool:
        enqueue_retries(study, self.max_retry)
        budget = Budget.of(study.get_trials(deepcopy=False), self.n_trials)
        return bool(budget.waiting or budget.remaining > 0)

    def pending(self, study: optuna.Study, liveness: Liveness) -> bool:
        pending = sum(map(liveness.resolvable, study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))))
        if pending and not self._waiting_logged:
            logger.info("All trials are started; waiting for %d running trial(s) of other workers", pending)
        self._waiting_logged = bool(pending)
        return pending > 0

    def objective(self, trial: optuna.Trial, heartbeat: Heartbeat) -> float:
        return self._objective(trial)

    def finished(self, study: optuna.Study, number: int, state: TrialState, seconds: float) -> None:
        """Log the trial's outcome, the best trial so far and the progress against the budget."""
        trials = study.get_trials(deepcopy=False)
        trial = next(t for t in trials if t.number == number)
        budget = Budget.of(trials, self.n_trials)
        if state == TrialState.COMPLETE:
            outcome = f"COMPLETE value {trial.value:.4g}"
        elif state == TrialState.PRUNED and trial.user_attrs.get(FAIL_REASON_ATTR):
            outcome = f"PRUNED ({trial.user_attrs[FAIL_REASON_ATTR]})"
        elif state == TrialState.PRUNED and trial.last_step is not None:
            outcome = f"PRUNED at step {trial.last_step} (value {trial.intermediate_values[trial.last_step]:.4g})"
        else:
            outcome = f"{state.name} ({trial.user_attrs.get(FAIL_REASON_ATTR, 'no reason')})"
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        best = max(complete, key=lambda t: float(t.value or 0.0)) if complete else None
        best_text = f"best {best.value:.4g} (trial {best.number})" if best is not None else "no complete trial yet"
        target = "" if self.n_trials is None else f"/{self.n_trials}"
        progress = f"finished {budget.finished}{target}, running {budget.running}"
        logger.info(f"[trial {number}] {outcome} in {seconds:.1f} s | {best_text} | {progress}")


def _log_start(study: optuna.Study, spec: StorageSpec, settings: TrialSettings, n_trials: int | None, timeout: Any) -> None:
    finished, target = Budget.of(study.get_trials(deepcopy=False), n_trials).finished, n_trials or "no limit"
    limit = "" if timeout is None else f", time limit {timeout:.0f} s"
    logger.info(
        f"Study {study.study_name!r} in {spec.display} ({spec.source}): {finished} trial(s) finished of {target}; "
        f"{settings.algo} on {settings.env_id}, {settings.n_timesteps} steps x {settings.n_seeds} seed(s) per trial{limit}"
    )


def _ensure_logging(verbose: int) -> None:
    """Show our INFO lines when nothing else configured logging (as Optuna does for its own logger)."""
    if verbose <= 0:
        return
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO if verbose == 1 else logging.DEBUG)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)


def run_study(
    algo: str,
    env_id: str,
    n_trials: int | None = 100,
    timeout: float | None = None,
    n_timesteps_per_trial: int = 100_000,
    n_seeds: int = 1,
    n_envs: int = 8,
    storage: str | None = None,
    study_name: str | None = None,
    sampler: str | BaseSampler = "tpe",
    pruner: str | BasePruner = "median",
    eval_freq: int | None = None,
    n_eval_episodes: int = 5,
    output_dir: str | os.PathLike[str] | None = None,
    hyperparams: Mapping[str, Any] | None = None,
    normalize: bool = False,
    seed: int = 0,
    sampler_seed: int | None = None,
    n_startup_trials: int = 10,
    heartbeat_interval: int | None = 60,
    grace_period: int | None = None,
    max_retry: int | None = 2,
    wait_for_running: bool = True,
    device: str = "cpu",
    plots: bool = True,
    verbose: int = 1,
) -> StudySummary:
    """Tune ``algo`` on ``env_id`` with Optuna, or continue the same study, and summarise it.

    Resumable: calling it again with the same arguments continues the study and runs only the missing trials.
    Several processes (or machines, with a database) may call it on the same study at once.

    :param algo: ``clip_ppo``, ``kl_ppo``, ``reinforce`` or ``spo``; its sampler is
        :data:`sb3_ppo_variants.zoo.samplers.SAMPLERS` ``[algo]``
    :param env_id: Gymnasium environment id
    :param n_trials: Number of finished trials (COMPLETE, PRUNED, or FAIL and not retried) the study should hold, all
        workers and runs together; None: no limit (then give ``timeout``)
    :param timeout: Seconds after which this worker starts no new trial (its running trial is finished); None: no limit
    :param n_timesteps_per_trial: Training budget of each seed of a trial, in environment steps
    :param n_seeds: Seeds per trial; the objective is the mean over seeds of the final evaluation return
    :param n_envs: Parallel training environments (the sampler bounds the minibatch size by the rollout)
    :param storage: None (``$SB3PV_OPTUNA_STORAGE`` if set, else a journal file ``study.journal`` in ``output_dir``),
        a database URL (``postgresql://...``, ``sqlite:///...``), a journal file path, or ``env:VARNAME`` to read
        the URL from an environment variable. A password in it is never printed or written
    :param study_name: Name of the study in the storage (default ``<algo>-<env_id>``)
    :param sampler: ``tpe`` (multivariate TPE, constant liar), ``random``, or an Optuna sampler
    :param pruner: ``median`` (MedianPruner: no pruning before ``n_startup_trials`` trials finished, nor in the first
        third of the first seed's budget), ``halving``, ``none``, or an Optuna pruner
    :param eval_freq: Environment steps (all envs together) between evaluations; default: 5 evaluations per seed.
        Must be >= ``n_envs``
    :param n_eval_episodes: Episodes per evaluation (deterministic actions, a separate env)
    :param output_dir: Where the journal (by default), summary, YAML entry and plots go (default
        ``logs/tuning/<study_name>``, or ``logs/tuning/<study_name>-2`` ... when that one holds another study's
        results, e.g. of the same name in another storage: a warning says so). A directory given here that holds
        another study's results is refused: no study writes over another's files
    :param hyperparams: Constructor arguments fixed for every trial, on top of the sampled ones (``policy`` picks the
        policy). They are part of the study's settings and of the YAML entry
    :param normalize: Wrap the training and evaluation envs in VecNormalize (written as ``normalize: true``)
    :param seed: First training seed; seeds ``seed .. seed+n_seeds-1`` are used by every trial
    :param sampler_seed: Seed of the sampler (only for single-worker reproducibility: workers with the same seed would
        propose the same trials)
    :param n_startup_trials: Trials sampled at random before TPE models the results, and finished before the median
        pruner prunes
    :param heartbeat_interval: Seconds between heartbeats of a running trial (None: off; then only trials of this
        machine are recovered)
    :param grace_period: Seconds without a heartbeat before a trial of another machine is failed as stale (default
        twice the interval)
    :param max_retry: How many times a trial whose worker died is retried with the same parameters (None: no limit)
    :param wait_for_running: When nothing is left to start, wait for running trials that may still fail (and need a
        retry) before returning
    :param device: Torch device of the models (``cpu``: fastest for the small MLPs of these algorithms)
    :param plots: Write the PNG plots
    :param verbose: 0: quiet; 1: a line per trial; 2: also debug lines
    :return: The summary (best trial, YAML entry, files written); ``print(summary.format())`` shows it
    :raises ValueError, TypeError: for invalid arguments, naming the argument (also for a ``storage`` file whose
        folder does not exist, and an ``output_dir`` holding another study's results)
    """
    if algo not in ALGOS:
        raise ValueError(f"`algo` must be one of {', '.join(ALGOS)}, got {algo!r}")
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"`env_id` must be a Gymnasium environment id, got {env_id!r}")
    optional = (("n_trials", n_trials, 1), ("heartbeat_interval", heartbeat_interval, 1), ("grace_period", grace_period, 1))
    n_trials, heartbeat_interval, grace_period, max_retry = (
        None if value is None else check_int(name, value, minimum=minimum)  # None: no limit, or off
        for name, value, minimum in (*optional, ("max_retry", max_retry, 0))
    )
    timeout = None if timeout is None else check_float("timeout", timeout, low=0.0, low_open=True)
    if n_trials is None and timeout is None:
        raise ValueError("give `n_trials` or `timeout` (or both): without either the study would never end")
    n_timesteps = check_int("n_timesteps_per_trial", n_timesteps_per_trial, minimum=1)
    n_seeds, n_envs, n_eval_episodes = (
        check_int(name, value, minimum=1)
        for name, value in (("n_seeds", n_seeds), ("n_envs", n_envs), ("n_eval_episodes", n_eval_episodes))
    )
    eval_freq = check_int("eval_freq", max(n_envs, n_timesteps // 5) if eval_freq is None else eval_freq, minimum=1)
    if eval_freq < n_envs:
        raise ValueError(f"`eval_freq` ({eval_freq}) must be >= `n_envs` ({n_envs}): one vectorised step is n_envs steps")
    seed, n_startup_trials = check_int("seed", seed, minimum=0), check_int("n_startup_trials", n_startup_trials, minimum=0)
    if not isinstance(verbose, int):
        raise TypeError(f"`verbose` must be an int, got {verbose!r}")
    fixed, policy = _check_hyperparams(algo, hyperparams)
    _, default_policy = env_info(env_id)
    if study_name is None:
        study_name = f"{algo}-{env_id}"
    elif not isinstance(study_name, str) or not study_name.strip():
        raise ValueError(f"`study_name` must be a non-empty string, got {study_name!r}")
    _ensure_logging(verbose)

    settings = TrialSettings(
        algo=algo,
        env_id=env_id,
        n_timesteps=n_timesteps,
        n_envs=n_envs,
        n_seeds=n_seeds,
        seed=seed,
        eval_freq=eval_freq,
        n_eval_episodes=n_eval_episodes,
        hyperparams=fixed,
        normalize=bool(normalize),
        policy=policy or default_policy,
        device=device,
    )
    out, spec = claim_output_dir(storage, study_name, output_dir)
    check_storage_folder(spec)
    wanted = settings.to_attr()

    def differences(stored: dict[str, Any]) -> list[str]:
        keys = sorted(set(stored) | set(wanted))
        return [
            f"{k}: study has {stored.get(k)!r}, asked for {wanted.get(k)!r}" for k in keys if stored.get(k) != wanted.get(k)
        ]

    study = create_or_load_study(
        spec,
        study_name,
        SETTINGS_ATTR,
        wanted,
        differences,
        make_sampler(sampler, n_startup_trials, sampler_seed),
        make_pruner(pruner, n_startup_trials, n_warmup_steps=n_timesteps // 3),
        heartbeat_interval,
        grace_period,
        tool="sb3-ppo-variants-tune",
        what="set of settings",
    )
    write_study_id(out, spec, study_name)
    _log_start(study, spec, settings, n_trials, timeout)
    poll = 2.0 if heartbeat_interval is None else min(5.0, max(1.0, heartbeat_interval / 2))
    liveness = Liveness(spec.kind, heartbeat_interval, grace_period or 2 * (heartbeat_interval or 0) or None)
    client = _Tuning(Objective(settings), n_trials, max_retry)
    work(study, spec, client, liveness, wait_for_running, poll, timeout, log=logger.warning)
    return summarize(study, settings, spec.display, n_trials, out, plots=plots)
