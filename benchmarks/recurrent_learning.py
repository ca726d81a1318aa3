"""Learning runs of the recurrent (LSTM) variants on the velocity-free tasks, against rl-baselines3-zoo's ppo_lstm.

For every job (algorithm x environment x seed) this script trains through rl_zoo3 with our command, in fresh
processes of its own, exactly as :mod:`benchmarks.zoo_results` does (its :class:`~benchmarks.zoo_results.Runner`)::

    python -m sb3_ppo_variants.zoo train --algo ALGO --env ENV --seed SEED -f OUT/runs/JOB -n STEPS \\
        --num-threads 1 --eval-freq -1 --device cpu --conf-file CONFIG

then evaluates the final model as ``rl_zoo3.enjoy`` loads it (deterministic, ``--eval-episodes`` episodes, test env
seeded ``SEED + 1000``, VecNormalize statistics frozen, raw returns) and appends one JSON line to
``OUT/results.jsonl``. ``CONFIG`` is this checkout's ``zoo_configs/<algo>.yml`` for the recurrent algorithms (so the
figures are those of the files in this tree, also when another checkout is the installed one), and for the
memoryless baseline ``clip_ppo`` a file written under ``OUT/configs/`` that holds ``zoo_configs/clip_ppo.yml``'s
(= rl_zoo3's ppo.yml's) entry for the task with velocities (CartPole-v1, Pendulum-v1) under the NoVel id: the same
budget, an MLP policy that sees only the current observation. ``ppo_lstm`` trains sb3-contrib's RecurrentPPO with
``python -m rl_zoo3.train`` and rl_zoo3's own ppo_lstm.yml: the same-machine figure of the algorithm the zoo's
benchmark measured, next to ours.

The report (``--table``, default ``benchmarks/results/recurrent_learning.md``) has one row per (env, algo): mean ±
std over seeds of the per-seed evaluation means, the per-seed figures, the threshold of :data:`THRESHOLDS` and
the verdict. The memoryless row passes when it stays below the recurrent ClipPPO threshold ("clearly worse").

Usage (from the repository root; one training process at a time)::

    .venv/bin/python benchmarks/recurrent_learning.py                                   # 5 algos x 2 envs x 3 seeds
    .venv/bin/python benchmarks/recurrent_learning.py --algos clip_ppo_lstm clip_ppo --envs CartPoleNoVel-v1
    .venv/bin/python benchmarks/recurrent_learning.py --max-timesteps 512 --seeds 0 --out /tmp/rl_smoke  # smoke test
    .venv/bin/python benchmarks/recurrent_learning.py --report                          # only rebuild the table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Sequence
from typing import Any, NamedTuple

import yaml

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.zoo_results import (
    Job,
    Runner,
    baseline_config_file,
    git_state,
    latest_results,
    load_records,
    now,
    steps_text,
    versions,
)
from sb3_ppo_variants.cli_args import int_argument

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO, "benchmarks", "results", "recurrent_learning")

RECURRENT = ("clip_ppo_lstm", "kl_ppo_lstm", "reinforce_lstm")
#: The memoryless baseline: ClipPPO with ppo.yml's settings for the task with velocities.
MEMORYLESS = "clip_ppo"
#: sb3-contrib's RecurrentPPO trained by ``rl_zoo3.train`` with rl_zoo3's own ppo_lstm.yml: the same-machine figure of
#: the algorithm the zoo's benchmark measured (RecurrentClipPPO does its computation).
SB3_RECURRENT = "ppo_lstm"
ALGOS = (*RECURRENT, SB3_RECURRENT, MEMORYLESS)
ENVS = ("CartPoleNoVel-v1", "PendulumNoVel-v1")
#: The memoryless baseline's entry: the task with velocities of zoo_configs/clip_ppo.yml (rl_zoo3's ppo.yml).
FULL_OBSERVATION_ENV = {"CartPoleNoVel-v1": "CartPole-v1", "PendulumNoVel-v1": "Pendulum-v1"}


class Threshold(NamedTuple):
    """The score a row must reach, and where it comes from."""

    value: float
    source: str


#: rl-baselines3-zoo's benchmark table (benchmark.md, 2023) for ppo_lstm (sb3-contrib's RecurrentPPO, 1e5 steps):
#: CartPoleNoVel-v1 500.0 ± 0.0, PendulumNoVel-v1 -217.9 ± 140.1.
ZOO_PPO_LSTM = {"CartPoleNoVel-v1": (500.0, 0.0), "PendulumNoVel-v1": (-217.9, 140.1)}

THRESHOLDS: dict[tuple[str, str], Threshold] = {
    # 500 - 0 asks every one of the evaluation episodes of every seed to last the full 500 steps; gymnasium's
    # reward_threshold for CartPole-v1, 475, is the solve criterion we judge by (the per-seed figures show 500s).
    ("clip_ppo_lstm", "CartPoleNoVel-v1"): Threshold(475.0, "gymnasium's CartPole-v1 solve threshold (zoo: 500 ± 0)"),
    ("kl_ppo_lstm", "CartPoleNoVel-v1"): Threshold(475.0, "gymnasium's CartPole-v1 solve threshold (zoo: 500 ± 0)"),
    ("clip_ppo_lstm", "PendulumNoVel-v1"): Threshold(-358.0, "zoo ppo_lstm -217.9 - 140.1"),
    ("kl_ppo_lstm", "PendulumNoVel-v1"): Threshold(-358.0, "zoo ppo_lstm -217.9 - 140.1"),
    # REINFORCE takes one gradient step per rollout and has no trust region; at the same 1e5-step budget we ask for
    # CartPole-v0's solve threshold (195: well above a memoryless policy's balance) and, on PendulumNoVel-v1, for
    # -800, about halfway between a random policy (about -1200) and the PPO threshold.
    ("reinforce_lstm", "CartPoleNoVel-v1"): Threshold(195.0, "CartPole-v0's solve threshold (REINFORCE, chosen)"),
    ("reinforce_lstm", "PendulumNoVel-v1"): Threshold(-800.0, "halfway from random to the PPO threshold (chosen)"),
}


def config_file(out: str, algo: str, env_id: str) -> str:
    """The ``--conf-file`` a job of ``algo`` on ``env_id`` trains with (see the module docstring)."""
    if algo in RECURRENT:
        return os.path.join(REPO, "zoo_configs", f"{algo}.yml")
    if algo == SB3_RECURRENT:
        return baseline_config_file(out, algo, env_id)
    with open(os.path.join(REPO, "zoo_configs", f"{algo}.yml")) as f:
        entry = yaml.safe_load(f)[FULL_OBSERVATION_ENV[env_id]]
    path = os.path.join(out, "configs", f"{algo}_{env_id}.yml")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump({env_id: entry}, f, sort_keys=True)
    return path


def budget(out: str, algo: str, env_id: str) -> int:
    with open(config_file(out, algo, env_id)) as f:
        return int(float(yaml.safe_load(f)[env_id]["n_timesteps"]))


class RecurrentRunner(Runner):
    """zoo_results' runner with this script's configuration files."""

    def config_file(self, job: Job) -> str | None:
        return config_file(self.out, job.algo, job.env_id)


# ---------------------------------------------------------------------------------------------------- report


def verdict(algo: str, env_id: str, mean: float, seeds: int, reduced: bool) -> str:
    if reduced:
        return "reduced budget, not judged"
    if algo == MEMORYLESS:
        passed = mean < THRESHOLDS[("clip_ppo_lstm", env_id)].value
        return ("clearly worse: yes" if passed else "clearly worse: NO") + (f" ({seeds} of 3 seeds)" if seeds < 3 else "")
    passed = mean >= THRESHOLDS[("clip_ppo_lstm" if algo == SB3_RECURRENT else algo, env_id)].value
    return ("pass" if passed else "FAIL") + (f" ({seeds} of 3 seeds)" if seeds < 3 else "")


def table_row(algo: str, env_id: str, runs: list[dict[str, Any]]) -> str:
    runs = sorted(runs, key=lambda r: int(r["seed"]))
    means = [float(r["eval_mean"]) for r in runs]
    mean = statistics.fmean(means)
    spread = statistics.pstdev(means) if len(means) > 1 else 0.0
    per_seed = ", ".join(f"{r['seed']}: {float(r['eval_mean']):.1f}" for r in runs)
    reduced = any(r.get("reduced") for r in runs)
    if algo == MEMORYLESS:
        threshold = f"< {THRESHOLDS[('clip_ppo_lstm', env_id)].value:g} (the recurrent ClipPPO threshold)"
        name = "clip_ppo (memoryless, ppo.yml's " + FULL_OBSERVATION_ENV[env_id] + " entry)"
    else:
        t = THRESHOLDS[("clip_ppo_lstm" if algo == SB3_RECURRENT else algo, env_id)]
        threshold = f"≥ {t.value:g}: {t.source}"
        name = "SB3 ppo_lstm (sb3-contrib RecurrentPPO, rl_zoo3's config)" if algo == SB3_RECURRENT else algo
    minutes = statistics.fmean(float(r["wall_time_s"]) for r in runs) / 60
    return (
        f"| {env_id} | {name} | {steps_text(int(runs[0]['timesteps']))} | {len(runs)} | {mean:.1f} ± {spread:.1f} "
        f"| {per_seed} | {threshold} | {verdict(algo, env_id, mean, len(runs), reduced)} | {minutes:.1f} |"
    )


def report(out: str, command: str) -> str:
    ok_by_key, failed = latest_results(load_records(os.path.join(out, "results.jsonl")))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in ok_by_key.values():
        groups.setdefault((record["env"], record["algo"]), []).append(record)
    ok = list(ok_by_key.values())
    hosts = sorted({f"{r.get('hostname')} ({r.get('cpu_count')} CPUs, {r.get('platform')})" for r in ok})
    commits = sorted({str(r.get("git")) for r in ok})
    dates = sorted(str(r.get("date")) for r in ok)
    version_sets = sorted({", ".join(f"{k} {v}" for k, v in (r.get("versions") or {}).items()) for r in ok})
    lines = [
        "# Recurrent variants on the velocity-free tasks vs rl-baselines3-zoo's ppo_lstm",
        "",
        f"Generated {now()} by `{command}` ({len(ok)} finished jobs, {len(failed)} failed).",
        "",
        f"- machine: {'; '.join(hosts) or '?'}; one job at a time (shared with other work: wall times vary), each "
        "in its own processes, one torch thread, `OMP_NUM_THREADS=1`, device cpu",
        f"- dates: {dates[0] if dates else '?'} to {dates[-1] if dates else '?'}; repository commit "
        f"{', '.join(commits) or '?'}",
        f"- versions: {' | '.join(version_sets) or '?'}",
        "- training per job (exact commands in `recurrent_learning/results.jsonl`): `python -m sb3_ppo_variants.zoo "
        "train --algo ALGO --env ENV --seed SEED -f OUT/runs/JOB -n STEPS --num-threads 1 --eval-freq -1 --device cpu "
        "--conf-file zoo_configs/ALGO.yml`; the memoryless clip_ppo with ppo.yml's entry for the task with velocities; "
        "SB3 ppo_lstm with `python -m rl_zoo3.train` and rl_zoo3's own ppo_lstm.yml entry",
        "- evaluation: per seed, the mean raw return of "
        f"{'/'.join(sorted({str(r['n_eval_episodes']) for r in ok})) or '?'} deterministic episodes of the final "
        "model, loaded as rl_zoo3.enjoy loads it (VecNormalize statistics frozen, no reward normalisation, test env "
        "seeded seed + 1000); mean ± std (population) over seeds of those means",
        "",
        "| env | algo | timesteps | seeds | mean ± std over seeds | per seed | threshold | verdict | train min/seed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for env_id, algo in sorted(groups, key=lambda k: (ENVS.index(k[0]) if k[0] in ENVS else 99, ALGOS.index(k[1]))):
        lines.append(table_row(algo, env_id, groups[(env_id, algo)]))
    lines += [
        "",
        "rl-baselines3-zoo's ppo_lstm (sb3-contrib RecurrentPPO, benchmark.md, one agent, 1e5 steps): "
        + ", ".join(f"{env} {m:g} ± {s:g}" for env, (m, s) in ZOO_PPO_LSTM.items())
        + ".",
    ]
    if failed:
        lines += ["", "Failed jobs (latest attempt):", ""]
        lines += [f"- {r['algo']} {r['env']} seed {r['seed']}: {r.get('stage')}: {r.get('error')}" for r in failed]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- main

_positive_int = int_argument(1)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", choices=ALGOS, default=list(ALGOS), help="algorithms (default: all five)")
    parser.add_argument("--envs", nargs="+", choices=ENVS, default=list(ENVS), help="environments (default: both)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    parser.add_argument("--max-timesteps", type=_positive_int, default=None, help="train min(config budget, N) steps")
    parser.add_argument("--eval-episodes", type=_positive_int, default=20, help="evaluation episodes (default: 20)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: benchmarks/results/recurrent_learning)")
    parser.add_argument("--table", default=None, help="report file (default: the out folder's sibling .md)")
    parser.add_argument("--report", action="store_true", help="only rebuild the table from OUT/results.jsonl")
    return parser.parse_args(argv)


def run_jobs(args: argparse.Namespace, invocation: str) -> int:
    """Run the jobs not yet in the results file, one at a time; the number of failed jobs."""
    results_path = os.path.join(args.out, "results.jsonl")
    jobs = []
    for seed in args.seeds:  # seed-major: a partial run covers every row with a first seed
        for env_id in args.envs:
            for algo in args.algos:
                full = budget(args.out, algo, env_id)
                jobs.append(Job(algo, env_id, seed, min(full, args.max_timesteps or full), full))
    done = set(latest_results(load_records(results_path))[0])
    todo = [job for job in jobs if job.key not in done]
    print(f"{len(jobs)} jobs, {len(todo)} to run", flush=True)
    # the children import this checkout's package, whichever checkout is the installed one
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    common = {"versions": versions(), "git": git_state(), "platform": platform.platform(), "cpu_count": os.cpu_count()}
    runner = RecurrentRunner(args.out, args.eval_episodes, {**common, "workers": 1, "invocation": invocation})
    failures = 0
    for number, job in enumerate(todo, 1):
        record = runner.run(job)
        if record is None:
            break
        with open(results_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if record["status"] == "ok":
            print(f"[{number}/{len(todo)}] {job.describe()}: {record['eval_mean']:.1f} ± {record['eval_std']:.1f}", flush=True)
        else:
            failures += 1
            print(f"[{number}/{len(todo)}] {job.describe()}: FAILED ({record['stage']}): {record['error']}", flush=True)
        write_report(args)
    return failures


def write_report(args: argparse.Namespace) -> str:
    text = report(args.out, "python benchmarks/recurrent_learning.py")
    with open(args.table or args.out.rstrip(os.sep) + ".md", "w") as f:
        f.write(text)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    args.out = os.path.abspath(args.out)
    invocation = shlex.join(["python", os.path.relpath(os.path.abspath(__file__), REPO), *argv])
    failures = 0
    if not args.report:
        for folder in ("runs", "logs"):
            os.makedirs(os.path.join(args.out, folder), exist_ok=True)
        failures = run_jobs(args, invocation)
    print(write_report(args))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
