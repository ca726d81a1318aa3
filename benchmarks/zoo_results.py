"""Tuned results: train our rl_zoo3 configs through the zoo and compare them with rl-baselines3-zoo's benchmark.

For every job (algorithm x environment x seed), this script

1. trains through rl_zoo3 with our command, in a subprocess of its own::

       python -m sb3_ppo_variants.zoo train --algo ALGO --env ENV --seed SEED -f OUT/runs/JOB -n STEPS \\
           --num-threads 1 --eval-freq -1 --device cpu

   with ``OMP_NUM_THREADS=1`` and ``MKL_NUM_THREADS=1``; the hyperparameters are those of the package's
   ``zoo_configs/<algo>.yml`` (the command's default), ``STEPS`` the config's ``n_timesteps`` or ``--max-timesteps``
   when smaller. Its output goes to ``OUT/logs/JOB.log``;
2. evaluates the final model that run saved, in a second subprocess (``zoo_results.py _evaluate``, same log): the
   test environment is built as ``rl_zoo3.enjoy`` builds it (``get_saved_hyperparams`` + ``create_test_env``, seed
   ``SEED + 1000``), so with ``normalize: true`` the saved VecNormalize statistics are loaded frozen and without reward
   normalisation, and the Monitor wrapper under it records the raw episode returns that
   ``evaluate_policy(deterministic=True)`` reports (``--eval-episodes`` episodes, default 20);
3. appends one JSON line to ``OUT/results.jsonl``: the evaluation, timings, versions, host and exact commands, or, for
   a failed job, an error entry (stage, return code, the end of its log). Jobs already in the file with a result
   (same algo, env, seed and step budget) are skipped, so an interrupted run resumes; failed jobs are retried.

``--algos ppo a2c`` trains SB3's own PPO/A2C the same way, with ``python -m rl_zoo3.train`` and rl_zoo3's own
``hyperparams/<algo>.yml``: a same-machine baseline next to the published figures. A -v5 MuJoCo task takes that
file's tuned -v4 entry, as our configs do (written to ``OUT/configs/`` and passed with ``--conf-file``).

The report (``OUT/table.md``, also printed; rebuilt alone with ``--report``) has one row per (env, algo, budget):
the mean ± std over seeds of the per-seed evaluation means, next to rl-baselines3-zoo's figure for the same
environment (:data:`ZOO_REFERENCE`: SB3 PPO for ``clip_ppo`` and ``kl_ppo``, SB3 A2C for ``reinforce``) and the
threshold ``reference mean - reference std``. A row passes when our mean reaches the threshold; rows trained on a
smaller budget than the config's are marked "reduced" and not judged.

Usage (from the repository root)::

    .venv/bin/python benchmarks/zoo_results.py                                  # everything: 3 algos x 10 envs x 3 seeds
    .venv/bin/python benchmarks/zoo_results.py --algos clip_ppo --envs CartPole-v1 Pendulum-v1 --workers 2
    .venv/bin/python benchmarks/zoo_results.py --max-timesteps 2048 --seeds 0 --out /tmp/zoo_smoke   # smoke test
    .venv/bin/python benchmarks/zoo_results.py --report                         # only rebuild OUT/table.md
    nohup .venv/bin/python benchmarks/zoo_results.py --workers 2 > zoo.log 2>&1 &

Each job trains with one torch thread in its own process: ``--workers`` should not exceed the free cores. The full
matrix is 41.2M environment steps per seed (clip_ppo and kl_ppo 12.2M each, reinforce 16.8M; BipedalWalker-v3 takes
5M per algorithm), 124M for three seeds: about a day per core at 1,500 steps/s. Run it in pieces (``--algos``,
``--envs``, ``--seeds``); the results file collects them. ``train_steps_per_s`` is measured over the whole training
subprocess (start-up and imports included, a few seconds). Ctrl-C or SIGTERM stops the running jobs and records
nothing for them (the children run in sessions of their own: rl_zoo3 itself would catch a Ctrl-C and save the
half-trained model; a model with fewer steps than its budget is recorded as an error anyway).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from types import FrameType
from typing import Any, NamedTuple, cast

import yaml

from sb3_ppo_variants.cli_args import int_argument
from sb3_ppo_variants.zoo import CONFIG_ENVS, rl_zoo3_env_id

ALGOS = ("clip_ppo", "kl_ppo", "reinforce")
#: SB3's own algorithms, trained by rl_zoo3's own ``rl_zoo3.train`` with rl_zoo3's own ``hyperparams/<algo>.yml``: the
#: same-machine baseline for the rows of ours (PPO for clip_ppo/kl_ppo, A2C for reinforce).
SB3_BASELINES = ("ppo", "a2c")
#: Every SB3 algorithm a job may train through ``rl_zoo3.train`` (``benchmarks/recurrent_learning.py`` adds
#: sb3-contrib's RecurrentPPO, rl_zoo3's ``ppo_lstm``, as the baseline of the recurrent variants).
SB3_ALGOS = (*SB3_BASELINES, "ppo_lstm")
ENVS = CONFIG_ENVS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "benchmarks", "results", "zoo")
#: Environment of every child process: one thread for OpenMP/MKL (torch's own count is ``--num-threads 1``).
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
#: Lines of a failed job's log kept in its error entry.
LOG_TAIL_LINES = 25


class Reference(NamedTuple):
    """One figure of the rl-baselines3-zoo benchmark table."""

    mean: float
    std: float
    timesteps: int
    env_id: str  # the environment version the zoo's figure was measured on


#: The SB3 algorithm whose zoo figures each of ours is compared with.
REFERENCE_ALGO = {"clip_ppo": "PPO", "kl_ppo": "PPO", "reinforce": "A2C", "ppo": "PPO", "a2c": "A2C"}

#: Source: rl-baselines3-zoo's benchmark table (``benchmark.md`` in DLR-RM/rl-baselines3-zoo, 2023): one trained agent
#: per row, deterministic evaluation, mean ± std of the episode return,
#: and its training steps. The zoo measured LunarLander*-v2 and the MuJoCo *-v3 versions; ours are -v3 and -v5.
ZOO_REFERENCE: dict[tuple[str, str], Reference] = {
    ("PPO", "CartPole-v1"): Reference(500.0, 0.0, 100_000, "CartPole-v1"),
    ("PPO", "Acrobot-v1"): Reference(-73.5, 18.2, 1_000_000, "Acrobot-v1"),
    ("PPO", "MountainCar-v0"): Reference(-110.4, 19.5, 1_000_000, "MountainCar-v0"),
    ("PPO", "Pendulum-v1"): Reference(-172.2, 104.2, 100_000, "Pendulum-v1"),
    ("PPO", "LunarLander-v3"): Reference(242.1, 31.8, 1_000_000, "LunarLander-v2"),
    ("PPO", "LunarLanderContinuous-v3"): Reference(270.9, 32.1, 1_000_000, "LunarLanderContinuous-v2"),
    ("PPO", "BipedalWalker-v3"): Reference(287.9, 2.4, 5_000_000, "BipedalWalker-v3"),
    ("PPO", "HalfCheetah-v5"): Reference(5819.1, 663.5, 1_000_000, "HalfCheetah-v3"),
    ("PPO", "Hopper-v5"): Reference(2410.4, 10.0, 1_000_000, "Hopper-v3"),
    ("PPO", "Walker2d-v5"): Reference(3478.8, 821.7, 1_000_000, "Walker2d-v3"),
    ("A2C", "CartPole-v1"): Reference(500.0, 0.0, 500_000, "CartPole-v1"),
    ("A2C", "Acrobot-v1"): Reference(-83.4, 17.2, 500_000, "Acrobot-v1"),
    ("A2C", "MountainCar-v0"): Reference(-111.3, 24.1, 1_000_000, "MountainCar-v0"),
    ("A2C", "Pendulum-v1"): Reference(-163.0, 103.2, 1_000_000, "Pendulum-v1"),
    ("A2C", "LunarLander-v3"): Reference(155.8, 80.4, 200_000, "LunarLander-v2"),
    ("A2C", "LunarLanderContinuous-v3"): Reference(84.2, 145.9, 5_000_000, "LunarLanderContinuous-v2"),
    ("A2C", "BipedalWalker-v3"): Reference(299.8, 23.5, 5_000_000, "BipedalWalker-v3"),
    ("A2C", "HalfCheetah-v5"): Reference(3041.2, 157.3, 1_000_000, "HalfCheetah-v3"),
    ("A2C", "Hopper-v5"): Reference(733.5, 376.6, 1_000_000, "Hopper-v3"),
    ("A2C", "Walker2d-v5"): Reference(581.8, 127.6, 1_000_000, "Walker2d-v3"),
}


#: Seeds per row in the issue's protocol; a full-budget row with fewer says so next to its verdict.
PROTOCOL_SEEDS = 3


# ---------------------------------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class Job:
    """One training run: ``timesteps`` steps of ``algo`` on ``env_id`` with ``seed``."""

    algo: str
    env_id: str
    seed: int
    timesteps: int
    config_timesteps: int

    @property
    def key(self) -> tuple[str, str, int, int]:
        return (self.algo, self.env_id, self.seed, self.timesteps)

    @property
    def name(self) -> str:
        return f"{self.algo}_{self.env_id}_seed{self.seed}_n{self.timesteps}"

    def describe(self) -> str:
        return f"{self.algo} {self.env_id} seed {self.seed}"


def config_path(algo: str) -> str:
    """The hyperparameter file a job of ``algo`` trains with: our packaged ``zoo_configs/<algo>.yml``, or rl_zoo3's own
    ``hyperparams/<algo>.yml`` for SB3's algorithms (:data:`SB3_ALGOS`)."""
    if algo in SB3_ALGOS:
        import rl_zoo3

        return os.path.join(os.path.dirname(rl_zoo3.__file__), "hyperparams", f"{algo}.yml")
    from sb3_ppo_variants.zoo import zoo_config

    return str(zoo_config(algo))


def config_entry(algo: str, env_id: str) -> dict[str, Any]:
    """The hyperparameters rl_zoo3 will use for ``env_id`` from :func:`config_path`.

    rl_zoo3 takes the environment's own entry, else (for a non-Atari environment) the ``default`` entry. For SB3's
    own algorithms a ``-v5`` MuJoCo task without an entry of its own takes rl_zoo3's tuned ``-v4`` entry, as our
    configs do (rl_zoo3 2.9.2 lists the MuJoCo tasks at -v4 only), not the untuned ``default``.

    :raises KeyError: if the file has neither
    """
    path = config_path(algo)
    with open(path) as f:
        config = yaml.safe_load(f)
    if algo in SB3_ALGOS and env_id not in config and rl_zoo3_env_id(env_id) in config:
        return dict(config[rl_zoo3_env_id(env_id)])
    entry = config.get(env_id, config.get("default"))
    if entry is None:
        raise KeyError(f"{env_id} is not in {path}, which has no 'default' entry")
    return dict(entry)


def baseline_config_file(out: str, algo: str, env_id: str) -> str:
    """A hyperparameter file holding just :func:`config_entry` for ``env_id`` (written under ``OUT/configs``), so that
    ``rl_zoo3.train`` trains SB3's algorithm with the entry chosen there."""
    path = os.path.join(out, "configs", f"{algo}_{env_id}.yml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump({env_id: config_entry(algo, env_id)}, f, sort_keys=True)
    return path


def train_command(job: Job, folder: str, config_file: str | None = None) -> list[str]:
    """The training command of ``job``: ours through ``sb3_ppo_variants.zoo train`` (our configs by default), SB3's
    own algorithms through ``rl_zoo3.train`` with ``config_file`` (:func:`baseline_config_file`); same arguments
    otherwise."""
    module = ("rl_zoo3.train",) if job.algo in SB3_ALGOS else ("sb3_ppo_variants.zoo", "train")
    return [
        *(sys.executable, "-m", *module, "--algo", job.algo, "--env", job.env_id),
        *("--seed", str(job.seed), "-f", folder, "-n", str(job.timesteps)),
        *("--num-threads", "1", "--eval-freq", "-1", "--device", "cpu"),
        *(("--conf-file", config_file) if config_file else ()),
    ]


def make_jobs(algos: Sequence[str], envs: Sequence[str], seeds: Sequence[int], max_timesteps: int | None) -> list[Job]:
    """The jobs in the order they run: seed-major, so that a partial run covers every row with a first seed."""
    budgets = {(algo, env_id): int(float(config_entry(algo, env_id)["n_timesteps"])) for algo in algos for env_id in envs}
    jobs = []
    for seed in seeds:
        for env_id in envs:
            for algo in algos:
                budget = budgets[(algo, env_id)]
                jobs.append(Job(algo, env_id, seed, min(budget, max_timesteps or budget), budget))
    return jobs


# ---------------------------------------------------------------------------------------------------- provenance


def versions() -> dict[str, str | None]:
    """Installed versions of the packages the results depend on, without importing them."""
    found: dict[str, str | None] = {}
    for name in ("sb3-ppo-variants", "torch", "stable-baselines3", "rl_zoo3", "gymnasium", "numpy"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_state() -> str | None:
    """``<commit>`` of the repository, with ``+dirty`` when the working tree has changes; None outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty else "")


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------------- running


class Runner:
    """Runs jobs (each as two subprocesses) and stops every child it started when told to."""

    def __init__(self, out: str, eval_episodes: int, common: dict[str, Any]) -> None:
        self.out = out
        self.eval_episodes = eval_episodes
        self.common = common  # fields added to every record
        self._lock = threading.Lock()
        self._children: set[subprocess.Popen[bytes]] = set()
        self.stopping = False

    def stop(self) -> None:
        """Terminate the running children (and refuse to start new ones)."""
        with self._lock:
            self.stopping = True
            children = list(self._children)
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    def _call(self, command: list[str], log: Any) -> int:
        """Run ``command`` with its output appended to ``log``; the return code (-15 once :meth:`stop` was called)."""
        env = {**os.environ, **CHILD_ENV}
        with self._lock:
            if self.stopping:
                return -signal.SIGTERM
            # A session of its own: a Ctrl-C in the terminal reaches this script only, which then stops the children
            # (rl_zoo3 would otherwise catch the interrupt, save the half-trained model and exit 0).
            child = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.out, start_new_session=True
            )
            self._children.add(child)
        try:
            return child.wait()
        finally:
            with self._lock:
                self._children.discard(child)

    def run(self, job: Job) -> dict[str, Any] | None:
        """Train and evaluate ``job``; its record (also for a failure), or None when stopped meanwhile."""
        log_path = os.path.join(self.out, "logs", f"{job.name}.log")
        record: dict[str, Any] = {
            "algo": job.algo,
            "env": job.env_id,
            "seed": job.seed,
            "timesteps": job.timesteps,
            "config_timesteps": job.config_timesteps,
            "reduced": job.timesteps < job.config_timesteps,
            "log": os.path.relpath(log_path, self.out),
        }
        try:
            with open(log_path, "ab") as log:
                start_offset = log.tell()
                result = self._train_and_evaluate(job, log, record)
        except Exception:  # an error of this script, not of the job: record it and go on with the others
            result = {"status": "error", "stage": "runner", "error": traceback.format_exc(limit=3).strip()}
            start_offset = 0
        if self.stopping:
            return None
        record.update(result)
        if record["status"] == "error":
            record["log_tail"] = log_tail(log_path, start_offset)
        record.update(self.common, hostname=socket.gethostname(), date=now())
        return record

    def _run_stage(self, stage: str, argv: list[str], log: Any) -> tuple[str, float, int]:
        """Run one stage's command with its output in the job's log: (command line, wall seconds, return code)."""
        command = shlex.join(argv)
        log.write(f"\n===== {now()} {stage}: {command}\n".encode())
        log.flush()
        start = time.perf_counter()
        returncode = self._call(argv, log)
        return command, round(time.perf_counter() - start, 2), returncode

    def config_file(self, job: Job) -> str | None:
        """The ``--conf-file`` of ``job``'s training: :func:`baseline_config_file` for SB3's own algorithms, none (the
        package's ``zoo_configs/<algo>.yml``) for ours."""
        return baseline_config_file(self.out, job.algo, job.env_id) if job.algo in SB3_ALGOS else None

    def _train_and_evaluate(self, job: Job, log: Any, record: dict[str, Any]) -> dict[str, Any]:
        folder = os.path.join(self.out, "runs", job.name)
        algo_folder = os.path.join(folder, job.algo)
        before = set(os.listdir(algo_folder)) if os.path.isdir(algo_folder) else set()
        train = train_command(job, folder, self.config_file(job))
        record["command"], record["wall_time_s"], returncode = self._run_stage("train", train, log)
        if returncode != 0:
            return {"status": "error", "stage": "train", "returncode": returncode, "error": "training failed"}

        created = sorted(set(os.listdir(algo_folder)) - before) if os.path.isdir(algo_folder) else []
        if len(created) != 1:
            return {"status": "error", "stage": "train", "error": f"expected one new run folder in {algo_folder}: {created}"}
        run_dir = os.path.join(algo_folder, created[0])
        record["run_dir"] = os.path.relpath(run_dir, self.out)

        result_path = os.path.join(run_dir, "evaluation.json")
        evaluate = [
            *(sys.executable, os.path.abspath(__file__), "_evaluate", "--algo", job.algo, "--env", job.env_id),
            *("--run-dir", run_dir, "--seed", str(job.seed + 1000), "--episodes", str(self.eval_episodes)),
            *("--result", result_path),
        ]
        record["eval_command"], record["eval_time_s"], returncode = self._run_stage("evaluate", evaluate, log)
        if returncode != 0:
            return {"status": "error", "stage": "eval", "returncode": returncode, "error": "evaluation failed"}
        with open(result_path) as f:
            evaluation = json.load(f)
        trained = int(evaluation.pop("trained_timesteps"))
        if trained < job.timesteps:  # rl_zoo3 saves the model when training is interrupted
            return {"status": "error", "stage": "train", "error": f"training stopped at {trained} of {job.timesteps} steps"}
        return {
            "status": "ok",
            "trained_timesteps": trained,
            **evaluation,
            "train_steps_per_s": round(trained / record["wall_time_s"], 1),
        }


def log_tail(path: str, offset: int, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` lines of ``path`` written after byte ``offset``."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]


# ---------------------------------------------------------------------------------------------------- evaluation


def evaluate_run(algo: str, env_id: str, run_dir: str, seed: int, episodes: int) -> dict[str, Any]:
    """Evaluate the final model of an rl_zoo3 run folder the way ``rl_zoo3.enjoy`` loads it (runs in a child process).

    :param algo: Our algorithm name (``sb3_ppo_variants.registry.ZOO_ALGOS``) or SB3's (:data:`SB3_ALGOS`)
    :param env_id: The environment id
    :param run_dir: The folder rl_zoo3's train created (``<log folder>/<algo>/<env>_<id>``)
    :param seed: Seed of the test environment
    :param episodes: Number of evaluation episodes
    :return: Raw-return mean and std over the episodes, the episodes' returns and lengths, the model's step count,
        and whether VecNormalize statistics were loaded
    """
    import rl_zoo3.import_envs  # noqa: F401  (registers the *NoVel ids, as rl_zoo3.enjoy does)
    import torch as th
    from huggingface_sb3 import EnvironmentName
    from rl_zoo3.utils import ALGOS as ZOO_CLASSES
    from rl_zoo3.utils import create_test_env, get_saved_hyperparams
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import unwrap_vec_normalize

    from sb3_ppo_variants.registry import ZOO_ALGOS as CLASSES

    th.set_num_threads(1)
    env_name = EnvironmentName(env_id)
    stats_path = os.path.join(run_dir, env_name)
    hyperparams, maybe_stats_path = get_saved_hyperparams(stats_path, norm_reward=False, test_mode=True)
    env_kwargs = dict(hyperparams.pop("env_kwargs", None) or {})
    args_path = os.path.join(stats_path, "args.yml")
    if os.path.isfile(args_path):  # env kwargs given on the train command line replace the config's (as in enjoy)
        with open(args_path) as f:
            train_args = yaml.load(f, Loader=yaml.UnsafeLoader)
        if train_args.get("env_kwargs") is not None:
            env_kwargs = train_args["env_kwargs"]
    normalize = bool(hyperparams.get("normalize", False))
    env = create_test_env(
        env_id,
        n_envs=1,
        stats_path=maybe_stats_path,
        seed=seed,
        log_dir=None,
        should_render=False,
        hyperparams=hyperparams,
        env_kwargs=env_kwargs,
    )
    vec_normalize = unwrap_vec_normalize(env)
    if normalize and (vec_normalize is None or vec_normalize.training or vec_normalize.norm_reward):
        raise RuntimeError(f"{run_dir}: VecNormalize statistics not loaded in evaluation mode")
    if not env.env_is_wrapped(Monitor)[0]:
        raise RuntimeError("the test environment has no Monitor wrapper: the returns would not be the raw ones")
    algo_class = cast("type[BaseAlgorithm]", ZOO_CLASSES[algo] if algo in SB3_ALGOS else CLASSES[algo])
    model = algo_class.load(os.path.join(run_dir, f"{env_name}.zip"), device="cpu")
    returns, lengths = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True, return_episode_rewards=True)
    env.close()
    returns = [float(r) for r in returns]  # type: ignore[union-attr]
    return {
        "trained_timesteps": int(model.num_timesteps),
        "eval_mean": statistics.fmean(returns),
        "eval_std": statistics.pstdev(returns),
        "n_eval_episodes": episodes,
        "eval_seed": seed,
        "vecnormalize": vec_normalize is not None,
        "eval_returns": [round(r, 3) for r in returns],
        "eval_lengths": [int(n) for n in lengths],  # type: ignore[union-attr]
    }


def evaluate_main(argv: Sequence[str]) -> int:
    """``zoo_results.py _evaluate ...``: evaluate one run folder and write the result as JSON (the job's 2nd step)."""
    parser = argparse.ArgumentParser(prog="zoo_results.py _evaluate")
    parser.add_argument("--algo", required=True)
    parser.add_argument("--env", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--episodes", type=int, required=True)
    parser.add_argument("--result", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    result = evaluate_run(args.algo, args.env, args.run_dir, args.seed, args.episodes)
    with open(args.result, "w") as f:
        json.dump(result, f)
    print(f"evaluation: {result['eval_mean']:.2f} ± {result['eval_std']:.2f} over {args.episodes} episodes", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------- results file


def load_records(path: str) -> list[dict[str, Any]]:
    """Every record of the results file, in file order (unreadable lines are skipped with a warning)."""
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    print(f"warning: {path}:{number} is not JSON; ignored", file=sys.stderr)
    return records


def record_key(record: dict[str, Any]) -> tuple[str, str, int, int]:
    return (record["algo"], record["env"], int(record["seed"]), int(record["timesteps"]))


def latest_results(records: Iterable[dict[str, Any]]) -> tuple[dict[tuple[str, str, int, int], dict[str, Any]], list[dict]]:
    """The last successful record per job, and the failures of jobs that have no success (the last one each)."""
    ok: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    failed: dict[tuple[str, str, int, int], dict[str, Any]] = {}
    for record in records:
        (ok if record.get("status") == "ok" else failed)[record_key(record)] = record
    return ok, [record for key, record in failed.items() if key not in ok]


# ---------------------------------------------------------------------------------------------------- report


def steps_text(n: int) -> str:
    """``1M``, ``500k``, or ``2,048``."""
    if n >= 1_000_000 and n % 100_000 == 0:
        return f"{n / 1_000_000:g}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


def _order(algo: str, env_id: str) -> tuple[int, str, int, str]:
    env_rank = ENVS.index(env_id) if env_id in ENVS else len(ENVS)
    order = ALGOS + SB3_BASELINES
    algo_rank = order.index(algo) if algo in order else len(order)
    return (env_rank, env_id, algo_rank, algo)


def table_row(algo: str, env_id: str, budget: int, runs: list[dict[str, Any]]) -> str:
    """One Markdown row: ours over seeds, the zoo's figure, the threshold and the verdict."""
    runs = sorted(runs, key=lambda r: int(r["seed"]))
    means = [float(r["eval_mean"]) for r in runs]
    ours_mean = statistics.fmean(means)
    ours = f"{ours_mean:.1f} ± {statistics.pstdev(means):.1f}"
    per_seed = ", ".join(f"{r['seed']}: {float(r['eval_mean']):.1f}" for r in runs)
    config_budget = int(runs[0]["config_timesteps"])
    reduced = budget < config_budget
    steps = steps_text(budget)
    trained = max(int(r.get("trained_timesteps", budget)) for r in runs)
    if trained > budget * 1.05:  # a rollout of many steps rounds a small budget up
        steps += f" ({trained:,} trained)"
    if reduced:
        steps += f" reduced (config {steps_text(config_budget)})"
    baseline = REFERENCE_ALGO.get(algo)
    reference = ZOO_REFERENCE.get((baseline, env_id)) if baseline else None
    if reference is None:
        zoo = threshold_text = "—"
        verdict = "n/a (no reference)"
    else:
        threshold = reference.mean - reference.std
        zoo = f"{baseline} {reference.mean:.1f} ± {reference.std:.1f} ({steps_text(reference.timesteps)})"
        threshold_text = f"{threshold:.1f}"
        verdict = "n/a (reduced budget)" if reduced else ("yes" if ours_mean >= threshold else "**no**")
        if not reduced and len(runs) < PROTOCOL_SEEDS:  # a partial row: the verdict holds for these seeds only
            verdict += f" ({len(runs)} of {PROTOCOL_SEEDS} seeds)"
    name = f"SB3 {algo} (rl_zoo3's config)" if algo in SB3_BASELINES else algo
    return f"| {env_id} | {name} | {steps} | {len(runs)} | {ours} | {per_seed} | {zoo} | {threshold_text} | {verdict} |"


def _provenance(ok: list[dict[str, Any]]) -> list[str]:
    """Header lines: hosts, threads, versions and commands of the runs in the table."""
    hosts = sorted({f"{r.get('hostname')} ({r.get('cpu_count')} CPUs, {r.get('platform')})" for r in ok})
    workers = sorted({int(r.get("workers", 1)) for r in ok})
    version_sets = sorted({", ".join(f"{k} {v}" for k, v in (r.get("versions") or {}).items()) for r in ok})
    commits = sorted({str(r.get("git")) for r in ok})
    invocations = sorted({str(r.get("invocation")) for r in ok})
    lines = [
        f"- machine: {'; '.join(hosts)}; each job in its own processes with one torch thread (`--num-threads 1`), "
        f"`OMP_NUM_THREADS=1 MKL_NUM_THREADS=1`, device cpu; {'/'.join(map(str, workers))} job(s) at a time",
        f"- versions: {' | '.join(version_sets)}; repository commit {', '.join(commits)}",
        "- training command per job (exact ones in `results.jsonl`): `python -m sb3_ppo_variants.zoo train --algo ALGO "
        "--env ENV --seed SEED -f OUT/runs/JOB -n STEPS --num-threads 1 --eval-freq -1 --device cpu`; SB3's own "
        "ppo/a2c rows: `python -m rl_zoo3.train` with the same arguments and rl_zoo3's own hyperparameter files",
        f"- run with: {'; '.join(f'`{c}`' for c in invocations)}",
    ]
    return lines


def report(path: str, command: str) -> str:
    """The Markdown report of the results file at ``path``."""
    records = load_records(path)
    ok_by_key, failed = latest_results(records)
    ok = list(ok_by_key.values())
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for record in ok:
        groups.setdefault((record["algo"], record["env"], int(record["timesteps"])), []).append(record)
    lines = [
        "# Tuned results: our rl_zoo3 configs vs rl-baselines3-zoo",
        "",
        f"Generated {now()} by `{command}` from `{os.path.basename(path)}` ({len(ok)} finished jobs, {len(failed)} failed).",
        "",
        *(_provenance(ok) if ok else []),
        "",
        "| env | algo | timesteps | seeds | ours: mean ± std over seeds | per seed | zoo reference | threshold | pass? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for algo, env_id, budget in sorted(groups, key=lambda k: (*_order(k[0], k[1]), k[2])):
        lines.append(table_row(algo, env_id, budget, groups[(algo, env_id, budget)]))
    episodes = sorted({int(r["n_eval_episodes"]) for r in ok})
    lines += [
        "",
        f"Ours: per seed, the mean raw return of {'/'.join(map(str, episodes)) or '?'} deterministic evaluation episodes "
        "of the final model (test env seeded seed + 1000, VecNormalize statistics loaded frozen where the config "
        "normalises); mean ± std (population) over seeds of those means. Zoo reference: rl-baselines3-zoo's "
        "`benchmark.md` (2023), one agent per row, SB3 PPO for clip_ppo/kl_ppo and SB3 A2C for reinforce, measured on "
        "LunarLander*-v2 and MuJoCo *-v3 where ours are -v3 and -v5. Threshold: reference mean - reference std; "
        "pass: ours ≥ threshold, judged only at the config's full budget. Rows `SB3 ppo`/`SB3 a2c`: SB3's own "
        "algorithm trained by `rl_zoo3.train` with rl_zoo3's own config and evaluated the same way, on the same "
        "machine: the baseline our rows are measured next to (its verdict says whether SB3 itself reaches the "
        "threshold here).",
    ]
    if failed:
        lines += ["", "Failed jobs (the latest attempt; rerun to retry):", ""]
        for record in sorted(failed, key=lambda r: (*_order(r["algo"], r["env"]), int(r["seed"]))):
            last = next((line for line in reversed(record.get("log_tail") or []) if line.strip()), "")
            lines.append(
                f"- {record['algo']} {record['env']} seed {record['seed']} ({steps_text(int(record['timesteps']))} steps): "
                f"{record.get('stage')} stage, returncode {record.get('returncode')}: {record.get('error')}"
                + (f" — `{last.strip()}`" if last else "")
            )
    return "\n".join(lines) + "\n"


def write_report(out: str, command: str) -> str:
    text = report(os.path.join(out, "results.jsonl"), command)
    with open(os.path.join(out, "table.md"), "w") as f:
        f.write(text)
    return text


# ---------------------------------------------------------------------------------------------------- main


_positive_int = int_argument(1)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--algos",
        nargs="+",
        choices=ALGOS + SB3_BASELINES,
        default=list(ALGOS),
        help="algorithms (default: our three); ppo and a2c train SB3's own algorithm with rl_zoo3's own config, "
        "the same-machine baseline for ours",
    )
    parser.add_argument(
        "--envs", nargs="+", default=list(ENVS), metavar="ENV", help="environments (default: the 10 of the configs)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    parser.add_argument("--workers", type=_positive_int, default=1, help="jobs run at the same time (default: 1)")
    parser.add_argument(
        "--max-timesteps",
        type=_positive_int,
        default=None,
        help="train min(config n_timesteps, N) steps (default: the config's)",
    )
    parser.add_argument("--eval-episodes", type=_positive_int, default=20, help="evaluation episodes per model (default: 20)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: benchmarks/results/zoo)")
    parser.add_argument("--report", action="store_true", help="only rebuild OUT/table.md from OUT/results.jsonl")
    return parser.parse_args(argv)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_jobs(args: argparse.Namespace, invocation: str) -> int:
    """Run the jobs not yet in the results file; the number of failed jobs."""
    results_path = os.path.join(args.out, "results.jsonl")
    jobs = make_jobs(args.algos, args.envs, args.seeds, args.max_timesteps)
    done = set(latest_results(load_records(results_path))[0])
    todo = [job for job in jobs if job.key not in done]
    print(f"{len(jobs)} jobs, {len(jobs) - len(todo)} already in {results_path}, {len(todo)} to run", flush=True)
    if not todo:
        return 0
    common = {
        "versions": versions(),
        "git": git_state(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "workers": args.workers,
        "invocation": invocation,
    }
    runner = Runner(args.out, args.eval_episodes, common)
    failures = 0
    signal.signal(signal.SIGTERM, _raise_interrupt)
    pool = ThreadPoolExecutor(max_workers=args.workers)
    try:
        futures: dict[Future[dict[str, Any] | None], Job] = {}
        for job in todo:
            futures[pool.submit(runner.run, job)] = job
        for number, future in enumerate(as_completed(futures), 1):
            job, record = futures[future], future.result()
            if record is None:
                continue
            with open(results_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            prefix = f"[{number}/{len(todo)}] {job.describe()}:"
            if record["status"] == "ok":
                print(
                    f"{prefix} {record['eval_mean']:.1f} ± {record['eval_std']:.1f} "
                    f"({record['trained_timesteps']} steps, {record['wall_time_s']:.0f} s)",
                    flush=True,
                )
            else:
                failures += 1
                print(f"{prefix} FAILED ({record['stage']}): {record['error']}; see {record['log']}", flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping the running jobs (finished ones are in the results file)", file=sys.stderr, flush=True)
        pool.shutdown(wait=False, cancel_futures=True)
        runner.stop()
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_evaluate"]:
        return evaluate_main(argv[1:])
    args = parse_args(argv)
    args.out = os.path.abspath(args.out)
    invocation = shlex.join(["python", os.path.relpath(os.path.abspath(__file__), REPO), *argv])
    failures = 0
    if not args.report:
        for folder in ("runs", "logs"):
            os.makedirs(os.path.join(args.out, folder), exist_ok=True)
        try:
            failures = run_jobs(args, invocation)
        except KeyboardInterrupt:
            return 130
    if not os.path.exists(os.path.join(args.out, "results.jsonl")):
        print(f"no results file in {args.out}", file=sys.stderr)
        return 1
    print(write_report(args.out, invocation), end="")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
