"""Running the ablation grid: one job, one worker, many workers, many machines, and resuming after a kill.

**A job** (:func:`run_job`) trains one setting on one env with one seed and records its score: the mean return of
the last 100 training episodes (the paper's measure), and its learning curve, ``(timestep, mean return of the last
100 episodes)`` after every rollout. A run whose update turns NaN/inf (possible without clipping or penalty) stops
there; it is kept, flagged ``diverged_at``, and scored by its episodes so far (a re-run with the same seed would
diverge again).

**The study.** Every job is one trial of an Optuna study over ``{setting, env, seed}``; the curve and the other
results are the trial's user attributes. The study lives in a shared storage: a journal file by default
(``<output_dir>/study.journal``), or any database URL. Any number of workers, in processes of one machine
(``workers``) or on several machines (same storage and study name), take jobs from it until every grid point has a
COMPLETE trial. The grid is stored in the study; a worker with another grid stops with an error naming the
difference.

**Who runs what.** The workers are the shared loop of :mod:`sb3_ppo_variants.workers` (claim lock, identity,
liveness, heartbeat, recovery of dead workers' trials, signals); this module plans each round
(:func:`prepare_round`, with the claim lock held): a point without a COMPLETE, RUNNING or WAITING trial is added
as a WAITING trial that already holds the point as its parameters (one storage record: a trial claimed by a worker
killed at once still names its point), with ``retry_of``, the point's failed trials; points that failed before go
first, and Optuna pops WAITING trials first. (The study's ``GridSampler`` is not asked for points: it counts a FAIL
trial's point as done.) A point whose job failed ``max_failures`` times (errors and dead workers; interruptions do
not count) is given up and reported.

Should two trials still have the same point (claims are serialised by the lock, but a storage may have none), the
objective prunes the newer one (``skipped="duplicate"``) before training; results take each point's first COMPLETE.

**Resuming** is re-running the same command: COMPLETE trials are kept, the killed process's RUNNING trials are
failed and re-run, and only the missing jobs run.
"""

from __future__ import annotations

import contextlib
import functools
import math
import multiprocessing
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import GridSampler
from optuna.trial import FrozenTrial, TrialState

from sb3_ppo_variants.ablation.grid import GridSpec, Job, get_setting
from sb3_ppo_variants.ablation.report import RESULTS_FORMAT, write_report
from sb3_ppo_variants.core.checks import check_int
from sb3_ppo_variants.workers.loop import (
    FAIL_REASON_ATTR,
    INTERRUPTED,
    PROGRESS_ATTR,
    RETRY_ATTR,
    WORKER_ATTR,
    Client,
    Heartbeat,
    Liveness,
    sigterm_interrupts,
    work,
)
from sb3_ppo_variants.workers.processes import kill_point
from sb3_ppo_variants.workers.storage import StorageSpec, create_or_load_study, resolve_storage

Point = tuple[str, str, int]
Log = Callable[[str], None]

#: Study user attribute holding the grid (:meth:`GridSpec.to_dict`).
GRID_ATTR = "ablation_grid"
#: Study user attribute prefix of the cached random-policy score of an env.
RANDOM_SCORE_ATTR = "random_score:"
#: Chooses among the points to enqueue (not seeded: workers must not agree).
_RNG = random.Random()
#: Episodes in the score's and the curve's moving window (the paper: the last 100 episodes).
SCORE_WINDOW = 100


_print: Log = functools.partial(print, flush=True)


# ---------------------------------------------------------------------------------------------------- the study


class _GridSampler(GridSampler):
    """Optuna's ``GridSampler`` without its ``study.stop()`` after a trial.

    It stops once every point has a *finished* trial, FAIL included, and ``Study.stop()`` raises outside
    ``optimize()`` (where we fail stale trials); the worker loop decides when the grid is done instead.
    """

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        return None


def open_study(storage: StorageSpec, study_name: str, spec: GridSpec, options: WorkerOptions | None = None) -> optuna.Study:
    """Create or load the study of ``spec``; a ValueError names the differences if it holds another grid.

    With ``options``, a database storage has Optuna's heartbeats (whole seconds) for its workers.
    """
    beats = (math.ceil(options.heartbeat_interval), math.ceil(options.stale_after)) if options else (None, None)
    return create_or_load_study(
        storage,
        study_name,
        GRID_ATTR,
        spec.to_dict(),
        lambda stored: spec.differences(GridSpec.from_dict(stored)),
        _GridSampler(spec.search_space(), seed=0),  # the same shuffled grid in every worker
        None,
        *beats,
        tool="sb3-ppo-variants-ablation",
        what="ablation grid",
    )


# ---------------------------------------------------------------------------------------------------- grid state


def trial_point(trial: FrozenTrial) -> Point | None:
    """The grid point of a trial: its parameters, or for a queued trial the point it was enqueued with."""
    params = trial.params
    if {"setting", "env", "seed"} <= params.keys():
        return (str(params["setting"]), str(params["env"]), int(params["seed"]))
    point = trial.user_attrs.get("point")
    if isinstance(point, list) and len(point) == 3:
        return (str(point[0]), str(point[1]), int(point[2]))
    return None


@dataclass
class PointState:
    """The trials of one grid point."""

    complete: list[FrozenTrial] = field(default_factory=list)
    running: list[FrozenTrial] = field(default_factory=list)
    waiting: list[FrozenTrial] = field(default_factory=list)
    failed: list[FrozenTrial] = field(default_factory=list)
    n_trials: int = 0

    @property
    def failures(self) -> int:
        """Failed attempts that count towards ``max_failures`` (interruptions do not)."""
        return sum(1 for t in self.failed if not str(t.user_attrs.get(FAIL_REASON_ATTR, "")).startswith(INTERRUPTED))


@dataclass
class GridState:
    """The trials of every grid point, and the study's trial count."""

    points: dict[Point, PointState]
    n_trials: int

    def done(self, max_failures: int) -> bool:
        """Every point has a COMPLETE trial or was given up."""
        return all(s.complete or s.failures >= max_failures for s in self.points.values())

    def count(self, what: str) -> int:
        """Number of points with a ``complete``, ``running`` or ``waiting`` trial."""
        return sum(1 for s in self.points.values() if getattr(s, what))

    def given_up(self, max_failures: int) -> list[Point]:
        """Points without a COMPLETE trial that failed ``max_failures`` times."""
        return [p for p, s in self.points.items() if not s.complete and s.failures >= max_failures]


_BUCKETS = {
    TrialState.COMPLETE: "complete",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "waiting",
    TrialState.FAIL: "failed",
}


def grid_state(study: optuna.Study, spec: GridSpec) -> GridState:
    """Read the study's trials, grouped by grid point (trials of unknown points are ignored)."""
    trials = study.get_trials(deepcopy=False)
    points = {point: PointState() for point in spec.points()}
    for trial in trials:
        point = trial_point(trial)
        if point not in points:
            continue
        state = points[point]
        state.n_trials += 1
        if trial.state in _BUCKETS:
            getattr(state, _BUCKETS[trial.state]).append(trial)
    return GridState(points, len(trials))


@dataclass(frozen=True)
class WorkerOptions:
    """How workers behave.

    :param wait: When nothing is left to start but jobs run elsewhere, wait for them (they may need a re-run)
    :param stale_after: Seconds without heartbeat after which another machine's RUNNING trial is considered dead (the
        grace period)
    :param heartbeat_interval: Seconds between heartbeats of a running job
    :param max_failures: Failed attempts after which a point is given up
    :param poll_interval: Seconds between checks while waiting
    :param device: Torch device of the models
    """

    wait: bool = True
    stale_after: float = 600.0
    heartbeat_interval: float = 30.0
    max_failures: int = 3
    poll_interval: float = 10.0
    device: str = "cpu"


def prepare_round(study: optuna.Study, spec: GridSpec, options: WorkerOptions) -> tuple[GridState, bool]:
    """Enqueue the points that need a (re-)run, and say whether this worker can start a job now (claim lock held)."""
    state = grid_state(study, spec)
    open_points = [p for p, s in state.points.items() if not s.complete and s.failures < options.max_failures]
    unclaimed = [p for p in open_points if not state.points[p].running and not state.points[p].waiting]
    if any(state.points[p].waiting for p in open_points):
        return state, True
    retries = [p for p in unclaimed if state.points[p].n_trials > 0]
    fresh = [p for p in unclaimed if state.points[p].n_trials == 0]
    if retries or fresh:  # retries first; a random one, so that workers without a claim lock rarely collide
        point = _RNG.choice(retries or fresh)
        space = spec.search_space()
        user_attrs = {"point": list(point), RETRY_ATTR: [t.number for t in state.points[point].failed]}
        params = dict(zip(space, point, strict=True))
        distributions: dict[str, BaseDistribution] = {name: CategoricalDistribution(values) for name, values in space.items()}
        fixed = {"fixed_params": params}  # as enqueue_trial marks it: GridSampler then leaves the trial alone
        study.add_trial(
            optuna.trial.create_trial(
                state=TrialState.WAITING, params=params, distributions=distributions, user_attrs=user_attrs, system_attrs=fixed
            )
        )
        return state, True
    return state, False


# ---------------------------------------------------------------------------------------------------- one job


@dataclass
class JobResult:
    """What one training run produced.

    :param score: Mean return of the last :data:`SCORE_WINDOW` training episodes (NaN if no episode finished)
    :param n_episodes: Training episodes finished
    :param curve: ``(timestep, mean return of the last 100 episodes)`` after each rollout with a finished episode
    :param timesteps: Steps trained
    :param wall_time_s: Seconds of training (model construction included)
    :param diverged_at: Timestep at which an update turned NaN/inf, ``None`` if training went through
    """

    score: float
    n_episodes: int
    curve: list[tuple[int, float]]
    timesteps: int
    wall_time_s: float
    diverged_at: int | None = None

    @property
    def steps_per_s(self) -> float:
        """Training throughput."""
        return self.timesteps / self.wall_time_s if self.wall_time_s > 0 else float("nan")


def run_job(
    job: Job,
    spec: GridSpec,
    device: str = "cpu",
    on_progress: Callable[[int], None] | None = None,
) -> JobResult:
    """Train ``job`` (one torch thread) and return its score and learning curve."""
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_ppo_variants import ALGOS

    class CurveCallback(BaseCallback):
        """Training-episode returns: a moving window of the last 100, and the curve after each rollout."""

        def __init__(self) -> None:
            super().__init__()
            self.window: deque[float] = deque(maxlen=SCORE_WINDOW)
            self.n_episodes = 0
            self.curve: list[tuple[int, float]] = []

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                episode = info.get("episode")
                if episode is not None:
                    self.window.append(float(episode["r"]))
                    self.n_episodes += 1
            return True

        def _on_rollout_end(self) -> None:
            if self.window:
                self.curve.append((int(self.num_timesteps), float(np.mean(self.window))))
            if on_progress is not None:
                on_progress(int(self.num_timesteps))

    th.set_num_threads(1)
    setting = get_setting(job.setting)
    start = time.perf_counter()
    env = make_vec_env(job.env_id, n_envs=1, seed=job.seed)
    model = ALGOS[setting.algo]("MlpPolicy", env, seed=job.seed, device=device, **spec.model_kwargs(job.setting))
    callback = CurveCallback()
    diverged_at = None
    try:
        model.learn(job.timesteps, callback=callback)
    except FloatingPointError:
        diverged_at = int(model.num_timesteps)
    finally:
        env.close()
    wall = time.perf_counter() - start
    score = float(np.mean(callback.window)) if callback.window else float("nan")
    return JobResult(score, callback.n_episodes, callback.curve, int(model.num_timesteps), wall, diverged_at)


# ---------------------------------------------------------------------------------------------------- worker loop


class _Ablation(Client):
    """The ablation's part of the worker loop (:class:`sb3_ppo_variants.workers.loop.Client`): plan the grid, train
    the trial's point and store the result in the trial."""

    def __init__(self, spec: GridSpec, options: WorkerOptions, name: str, log: Log) -> None:
        self.spec, self.options, self.name, self.log = spec, options, name, log
        #: jobs this worker completed
        self.completed = 0

    def plan(self, study: optuna.Study) -> bool:
        return prepare_round(study, self.spec, self.options)[1]

    def pending(self, study: optuna.Study, liveness: Liveness) -> bool:
        return not grid_state(study, self.spec).done(self.options.max_failures)

    def objective(self, trial: optuna.Trial, heartbeat: Heartbeat) -> float:
        spec = self.spec
        setting = str(trial.suggest_categorical("setting", list(spec.settings)))
        env_id = str(trial.suggest_categorical("env", list(spec.envs)))
        seed = int(trial.suggest_categorical("seed", list(spec.seeds)))  # type: ignore[arg-type]
        point: Point = (setting, env_id, seed)
        duplicate = self._earlier_trial(trial, point)
        if duplicate is not None:
            trial.set_user_attr("skipped", "duplicate")
            raise optuna.TrialPruned(f"duplicate of trial {duplicate}")
        job = spec.job(*point)
        self.log(f"[{self.name}] start {job} (trial {trial.number})")

        def on_progress(timesteps: int) -> None:
            heartbeat.progress = timesteps
            kill_point("mid-trial")

        try:
            result = run_job(job, spec, self.options.device, on_progress)
        except KeyboardInterrupt:
            self.log(f"[{self.name}] interrupted {job} (trial {trial.number})")
            raise
        if not math.isfinite(result.score):
            raise RuntimeError(f"no training episode finished in {result.timesteps} steps: no score")
        for key, value in asdict(result).items():
            trial.set_user_attr(key, [list(p) for p in value] if key == "curve" else value)
        trial.set_user_attr(PROGRESS_ATTR, result.timesteps)
        diverged = f", diverged at {result.diverged_at}" if result.diverged_at is not None else ""
        self.log(
            f"[{self.name}] done  {job}: score {result.score:.1f} ({result.n_episodes} episodes{diverged}) "
            f"in {_duration(result.wall_time_s)}, {result.steps_per_s:.0f} steps/s"
        )
        self.completed += 1
        return result.score

    def _earlier_trial(self, trial: optuna.Trial, point: Point) -> int | None:
        """The number of a trial that already has (or will run) ``point``: COMPLETE, or RUNNING/WAITING and numbered
        lower (the trials of dead workers were failed just before this one was claimed)."""
        for other in trial.study.get_trials(deepcopy=False):
            if other.number == trial.number or trial_point(other) != point:
                continue
            if other.state == TrialState.COMPLETE or (
                other.number < trial.number and other.state in (TrialState.WAITING, TrialState.RUNNING)
            ):
                return other.number
        return None


def worker_loop(
    storage: StorageSpec,
    study_name: str,
    spec: GridSpec,
    options: WorkerOptions,
    name: str = "worker",
    log: Log = _print,
    parent_pid: int | None = None,
) -> int:
    """Run jobs from the study until the grid is done (or, with ``wait=False``, until nothing is left to start).

    :return: the number of jobs this worker completed (each in one torch thread: :func:`run_job`)
    """
    study = open_study(storage, study_name, spec, options)
    client = _Ablation(spec, options, name, log)
    liveness = Liveness(storage.kind, options.heartbeat_interval, options.stale_after)
    work(study, storage, client, liveness, options.wait, options.poll_interval, parent_pid=parent_pid, log=log)
    return client.completed


@contextlib.contextmanager
def quiet_optuna() -> Iterator[None]:
    """Silence Optuna's per-trial log lines (the workers print their own, with tracebacks) and restore the level after."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(previous)


def _worker_process(
    storage: StorageSpec, study_name: str, spec_dict: dict[str, Any], options: WorkerOptions, name: str, parent_pid: int
) -> None:
    """Entry point of a ``--workers`` process (spawned)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with sigterm_interrupts():
            worker_loop(storage, study_name, GridSpec.from_dict(spec_dict), options, name, _print, parent_pid)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


# ---------------------------------------------------------------------------------------------------- random policy


def random_policy_score(env_id: str, episodes: int, seed: int = 0) -> dict[str, Any]:
    """Mean and std of the return of a uniform random policy over ``episodes`` episodes (the 0 of the normalisation)."""
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(seed)
    returns, lengths = [], []
    try:
        for episode in range(episodes):
            env.reset(seed=seed if episode == 0 else None)
            total, length, done = 0.0, 0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total += float(reward)
                length += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
    finally:
        env.close()
    return {
        "mean": float(np.mean(returns)),
        "std": float(np.std(returns)),
        "episodes": episodes,
        "mean_length": float(np.mean(lengths)),
        "seed": seed,
    }


def ensure_random_scores(study: optuna.Study, spec: GridSpec, log: Log = _print) -> dict[str, dict[str, Any]]:
    """Each env's random-policy score, measured once and cached in the study's user attributes."""
    attrs = study.user_attrs
    scores = {}
    for env_id in spec.envs:
        key = RANDOM_SCORE_ATTR + env_id
        cached = attrs.get(key)
        if cached is None or cached.get("episodes") != spec.random_episodes:
            start = time.perf_counter()
            cached = random_policy_score(env_id, spec.random_episodes)
            study.set_user_attr(key, cached)
            log(
                f"[ablation] random policy on {env_id}: {cached['mean']:.1f} ± {cached['std']:.1f} "
                f"({spec.random_episodes} episodes, {time.perf_counter() - start:.1f} s)"
            )
        scores[env_id] = cached
    return scores


# ---------------------------------------------------------------------------------------------------- results


def collect_results(study: optuna.Study, spec: GridSpec, study_name: str = "", storage: str = "") -> dict[str, Any]:
    """The results of a study: one record per grid point with a COMPLETE trial (the lowest-numbered one).

    :param study: The ablation study
    :param spec: Its grid
    :param study_name: Recorded in the file
    :param storage: Where the study is (a masked URL or a path), recorded in the file
    """
    state = grid_state(study, spec)
    jobs, missing, failed = [], [], []
    for (setting, env_id, seed), point in state.points.items():
        if point.complete:
            trial = min(point.complete, key=lambda t: t.number)
            attrs = trial.user_attrs
            jobs.append(
                {
                    "setting": setting,
                    "env": env_id,
                    "seed": seed,
                    "timesteps": int(attrs["timesteps"]),
                    "score": float(attrs["score"]),
                    "n_episodes": int(attrs["n_episodes"]),
                    "curve": [[int(t), float(r)] for t, r in attrs["curve"]],
                    "wall_time_s": float(attrs["wall_time_s"]),
                    "diverged_at": attrs.get("diverged_at"),
                    "trial": trial.number,
                    "started": trial.datetime_start.isoformat() if trial.datetime_start else None,
                    "completed": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
                    "host": attrs.get(WORKER_ATTR, {}).get("host"),
                }
            )
            continue
        missing.append({"setting": setting, "env": env_id, "seed": seed, "running": bool(point.running)})
        for trial in point.failed:
            failed.append(
                {
                    "setting": setting,
                    "env": env_id,
                    "seed": seed,
                    "trial": trial.number,
                    "reason": trial.user_attrs.get(FAIL_REASON_ATTR, "error"),
                    "state": TrialState.FAIL.name,
                }
            )
    attrs = study.user_attrs
    return {
        "format": RESULTS_FORMAT,
        "study": study_name,
        "storage": storage,
        "grid": spec.to_dict(),
        "random_scores": {env: attrs[RANDOM_SCORE_ATTR + env] for env in spec.envs if RANDOM_SCORE_ATTR + env in attrs},
        "jobs": jobs,
        "missing": missing,
        "failed": failed,
    }


# ---------------------------------------------------------------------------------------------------- the whole run


@dataclass
class RunSummary:
    """How a run ended.

    :param complete: Every grid point has a COMPLETE trial
    :param n_complete: Points with a COMPLETE trial
    :param n_jobs: Points in the grid
    :param given_up: Points that failed ``max_failures`` times
    :param report_files: Files written by the report
    :param wall_time_s: Seconds the run took
    """

    complete: bool
    n_complete: int
    n_jobs: int
    given_up: list[Point]
    report_files: dict[str, Path]
    wall_time_s: float


def progress_line(study: optuna.Study, spec: GridSpec, start: float, steps_at_start: int) -> tuple[str, int]:
    """A one-line progress report, and the steps done so far (COMPLETE jobs plus the progress of running ones)."""
    state = grid_state(study, spec)
    done_steps = 0
    for point_state in state.points.values():
        if point_state.complete:
            done_steps += spec.timesteps
        elif point_state.running:
            done_steps += max(int(t.user_attrs.get(PROGRESS_ATTR, 0)) for t in point_state.running)
    elapsed = time.time() - start
    rate = (done_steps - steps_at_start) / elapsed if elapsed > 0 else 0.0
    remaining = spec.total_timesteps - done_steps
    eta = _duration(remaining / rate) if rate > 0 else "?"
    line = (
        f"[ablation] {state.count('complete')}/{spec.n_jobs} jobs done, {state.count('running')} running | "
        f"{done_steps / spec.total_timesteps:6.1%} of {spec.total_timesteps:,} steps | "
        f"elapsed {_duration(elapsed)}, {rate:.0f} steps/s, ETA {eta}"
    )
    return line, done_steps


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@contextlib.contextmanager
def _monitor(study_factory: Callable[[], optuna.Study], spec: GridSpec, interval: float, log: Log) -> Iterator[None]:
    """Print :func:`progress_line` every ``interval`` seconds from a thread, until the block ends."""
    stop = threading.Event()
    start = time.time()

    def run() -> None:
        study = study_factory()
        _, steps_at_start = progress_line(study, spec, start, 0)
        while not stop.wait(interval):
            with contextlib.suppress(Exception):
                log(progress_line(study, spec, start, steps_at_start)[0])

    thread = threading.Thread(target=run, name="ablation-progress", daemon=True)
    if interval > 0:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if interval > 0:
            thread.join(timeout=5)


def run_ablation(
    spec: GridSpec,
    output_dir: str | Path,
    storage: str | None = None,
    study_name: str = "ablation",
    workers: int = 1,
    options: WorkerOptions | None = None,
    progress_interval: float = 60.0,
    report: bool = True,
    log: Log = _print,
) -> RunSummary:
    """Run (or resume, or join) the ablation grid ``spec`` and write the report.

    :param spec: The grid
    :param output_dir: Where the journal (by default) and the report go
    :param storage: A journal path or a database URL (default: ``<output_dir>/study.journal``)
    :param study_name: The study; workers with the same storage and study name share the grid
    :param workers: Worker processes on this machine (1: jobs run in this process)
    :param options: Worker behaviour (:class:`WorkerOptions`)
    :param progress_interval: Seconds between progress lines (0: none)
    :param report: Write ``results.json``, ``table.md`` and the plots at the end
    :param log: Where messages go
    """
    check_int("workers", workers, minimum=1)
    output_dir, options = Path(output_dir), options or WorkerOptions()
    with quiet_optuna():
        start = time.time()
        output_dir.mkdir(parents=True, exist_ok=True)
        storage_spec = resolve_storage(storage, output_dir)
        study = open_study(storage_spec, study_name, spec, options)
        state = grid_state(study, spec)
        log(
            f"[ablation] study {study_name!r} in {storage_spec.display}: {spec.n_jobs} jobs ({len(spec.settings)} "
            f"settings x {len(spec.envs)} envs x {len(spec.seeds)} seeds, {spec.timesteps:,} steps each), "
            f"{state.count('complete')} already done; {workers} worker(s)"
        )
        ensure_random_scores(study, spec, log)

        with _monitor(lambda: open_study(storage_spec, study_name, spec, options), spec, progress_interval, log):
            if workers == 1:
                worker_loop(storage_spec, study_name, spec, options, "worker 1", log)
            else:
                _run_processes(storage_spec, study_name, spec, options, workers)

        state = grid_state(study, spec)
        given_up = state.given_up(options.max_failures)
        for point in given_up:
            errors = [t.user_attrs.get(FAIL_REASON_ATTR, "?") for t in state.points[point].failed]
            log(f"[ablation] gave up {spec.job(*point)} after {len(errors)} failures; last error: {errors[-1]}")
        files: dict[str, Path] = {}
        if report:
            files = write_report(collect_results(study, spec, study_name, storage_spec.display), output_dir, log=log)
        n_complete = state.count("complete")
        log(f"[ablation] {n_complete}/{spec.n_jobs} jobs complete after {_duration(time.time() - start)}")
        return RunSummary(n_complete == spec.n_jobs, n_complete, spec.n_jobs, given_up, files, time.time() - start)


def _run_processes(storage: StorageSpec, study_name: str, spec: GridSpec, options: WorkerOptions, workers: int) -> None:
    """Run ``workers`` spawned worker processes and wait for them; Ctrl-C or SIGTERM stops them all."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_worker_process,
            args=(storage, study_name, spec.to_dict(), options, f"worker {i + 1}", os.getpid()),
            name=f"ablation-worker-{i + 1}",
        )
        for i in range(workers)
    ]
    try:
        with sigterm_interrupts():
            for process in processes:
                process.start()
            for process in processes:
                process.join()
    except KeyboardInterrupt:
        for process in (p for p in processes if p.pid is not None):
            process.terminate()  # SIGTERM: the worker fails its trial as interrupted and queues the retry
        for process in processes:
            process.join(timeout=30)
        raise
    failed = [p.name for p in processes if p.exitcode not in (0, None)]
    if failed:
        raise RuntimeError(f"Worker process(es) {', '.join(failed)} exited with an error (see their output above)")


# ---------------------------------------------------------------------------------------------------- timing probe


def probe_throughput(
    env_ids: list[str],
    timesteps: int = 4096,
    settings: tuple[str, ...] = ("clip_0.2", "adaptive_kl_0.01"),
    spec: GridSpec | None = None,
    log: Log = _print,
) -> dict[str, dict[str, float]]:
    """Steps/s of training each env with the paper's hyperparameters, one torch thread, per algorithm.

    Each measurement trains one rollout first (untimed: model construction, first episodes), then ``timesteps``
    more steps, timed. Feed the result to :func:`sb3_ppo_variants.ablation.grid.estimate_seconds`.

    :return: ``{env: {algo: steps_per_s}}`` (algo: ``clip_ppo``, ``kl_ppo``)
    """
    import torch as th
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_ppo_variants import ALGOS
    from sb3_ppo_variants.ablation.grid import PAPER_HYPERPARAMS

    th.set_num_threads(1)
    spec = spec or GridSpec(settings, tuple(env_ids), (0,), timesteps, dict(PAPER_HYPERPARAMS))
    n_steps = int(spec.hyperparams.get("n_steps", 2048))
    results: dict[str, dict[str, float]] = {}
    for env_id in env_ids:
        results[env_id] = {}
        for name in settings:
            setting = get_setting(name)
            env = make_vec_env(env_id, n_envs=1, seed=0)
            model = ALGOS[setting.algo]("MlpPolicy", env, seed=0, device="cpu", **spec.model_kwargs(name))
            model.learn(n_steps)
            start = time.perf_counter()
            model.learn(timesteps, reset_num_timesteps=False)
            rate = (model.num_timesteps - n_steps) / (time.perf_counter() - start)
            env.close()
            results[env_id][setting.algo] = rate
            log(f"[probe] {env_id:28s} {setting.algo:9s} {rate:7.0f} steps/s")
    return results
