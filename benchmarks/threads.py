"""Training speed against torch's (and BLAS's) thread count, on an idle machine and beside a busy loop.

ClipPPO and SB3's ``PPO`` train CartPole-v1 with rl-baselines3-zoo's settings (``zoo_configs/clip_ppo.yml``: 8 envs,
n_steps 32, batch 256, 20 epochs, gae_lambda 0.8, gamma 0.98, lin_1e-3, clip lin_0.2) under these thread settings:

- ``1`` / ``2``: the user sets them before training: ``torch.set_num_threads(n)`` and, when threadpoolctl is
  installed, ``threadpool_limits(n, user_api="blas")`` for the whole process;
- ``torch1``: ``torch.set_num_threads(1)`` only (BLAS keeps its default): what ``threads="auto"`` does where
  threadpoolctl is not installed;
- ``default``: nothing set: torch's and BLAS's defaults (one thread per core). ClipPPO gets ``threads=None`` if its
  constructor has that parameter, i.e. the behaviour before ``threads`` existed;
- ``auto`` (ClipPPO only): ``threads="auto"``, the new default: passed to the constructor when it has the parameter,
  otherwise ``learn()`` runs inside ``sb3_ppo_variants.threads.limited_threads("auto", ...)``, which is what the
  parameter does.

Loads: ``idle`` (nothing of ours runs beside), ``busy`` (one ``while True: pass`` process runs beside, started before
and stopped after each run). Every run is a fresh process (this script with ``--worker``) with no thread variable
(``OMP_NUM_THREADS`` ...) in its environment; it trains a throw-away model for one rollout (warm-up), then times a
fresh model's ``learn(--timesteps)``, stopped early by a callback once ``--max-seconds`` have passed (the slow
settings would otherwise take minutes per run): steps/s is the steps done over the time taken.
Per round (``--repeats``), every (load, algorithm, setting) runs once, in an order rotated from round to round. The
1-minute load average is recorded before each run: the machine may be shared
with other work, which the figures then include.

``--sweep`` adds ClipPPO with larger policies (``net_arch`` [256, 256] and [1024, 1024]) with settings ``1`` and
``default``, idle and busy: where more threads start to pay off (the threshold of ``threads="auto"``).

Run from the repository root::

    PYTHONPATH=/path/to/threadpoolctl .venv/bin/python benchmarks/threads.py --repeats 2 --sweep --out benchmarks/results
    .venv/bin/python benchmarks/threads.py --quick --out /tmp/threads                      # smoke test
    .venv/bin/python benchmarks/threads.py --render benchmarks/results/threads.json        # redo the .md

Outputs in ``--out``: ``threads.json`` (every run and the machine) and ``threads.md`` (tables).
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ZOO = dict(
    n_steps=32,
    batch_size=256,
    gae_lambda=0.8,
    gamma=0.98,
    n_epochs=20,
    ent_coef=0.0,
    learning_rate="lin_0.001",
    clip_range="lin_0.2",
)
N_ENVS = 8
SETTINGS = {"ClipPPO": ("1", "2", "torch1", "default", "auto"), "PPO": ("1", "2", "default")}
SWEEP_ARCHS = ((256, 256), (1024, 1024))
SWEEP_SETTINGS = ("1", "default")
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


# ---------------------------------------------------------------------------------------------------- worker


def _sb3_kwargs() -> dict[str, Any]:
    from stable_baselines3.common.utils import LinearSchedule

    kwargs = dict(ZOO)
    kwargs["learning_rate"] = LinearSchedule(0.001, 0.0, 1.0)
    kwargs["clip_range"] = LinearSchedule(0.2, 0.0, 1.0)
    return kwargs


def worker(job: dict[str, Any]) -> dict[str, Any]:
    """One measurement (in a fresh process): set the threads, warm up, time ``learn()``."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_ppo_variants import ClipPPO
    from sb3_ppo_variants.threads import count_parameters, limited_threads

    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    setting, algo = job["setting"], job["algo"]
    torch_default = torch.get_num_threads()
    blas_limiter = None
    if setting in ("1", "2", "torch1"):
        n = 1 if setting == "torch1" else int(setting)
        torch.set_num_threads(n)
        if setting != "torch1" and threadpoolctl is not None:
            blas_limiter = threadpoolctl.threadpool_limits(n, user_api="blas")  # kept for the whole process
    cls = ClipPPO if algo == "ClipPPO" else PPO
    kwargs: dict[str, Any] = dict(ZOO) if algo == "ClipPPO" else _sb3_kwargs()
    if job.get("net_arch"):
        kwargs["policy_kwargs"] = dict(net_arch=list(job["net_arch"]))
    has_threads = "threads" in inspect.signature(cls).parameters
    if has_threads:
        kwargs["threads"] = "auto" if setting == "auto" else None
    wrap = setting == "auto" and not has_threads

    def make() -> Any:
        env = make_vec_env("CartPole-v1", n_envs=N_ENVS, seed=job["seed"])
        return cls("MlpPolicy", env, seed=job["seed"], device="cpu", verbose=0, **kwargs)

    class Deadline(BaseCallback):
        def __init__(self, seconds: float) -> None:
            super().__init__()
            self.end = time.perf_counter() + seconds
            self.torch_inside = 0

        def _on_step(self) -> bool:
            self.torch_inside = torch.get_num_threads()  # read inside learn(), where threads= applies
            return time.perf_counter() < self.end

    def learn(model: Any, steps: int, seconds: float = float("inf")) -> dict[str, Any]:
        if not wrap:
            deadline = Deadline(seconds)
            model.learn(steps, callback=deadline)
            return {"torch_inside": deadline.torch_inside}
        with limited_threads("auto", count_parameters(model.policy), owner=algo) as limit:
            model.learn(steps, callback=Deadline(seconds))
        return {"torch_inside": limit.torch_inside, "blas_inside": limit.blas_inside, "reason": limit.reason}

    learn(make(), N_ENVS * ZOO["n_steps"])  # warm-up: one rollout and one update
    model = make()
    start, cpu_start = time.perf_counter(), time.process_time()
    inside = learn(model, job["timesteps"], job["max_seconds"])
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    info = [] if threadpoolctl is None else threadpoolctl.threadpool_info()
    blas = None if threadpoolctl is None else [i["num_threads"] for i in info if i["user_api"] == "blas"]
    del blas_limiter
    return {
        **job,
        **inside,
        "steps_per_s": model.num_timesteps / wall,
        "steps": model.num_timesteps,
        "wall_s": wall,
        "cpu_s": cpu,
        "torch_default_threads": torch_default,
        "blas_threads_after": blas,
        "threadpoolctl": threadpoolctl is not None,
        "has_threads_parameter": has_threads,
        "n_parameters": count_parameters(model.policy),
    }


# ---------------------------------------------------------------------------------------------------- driver


def _run_worker(job: dict[str, Any]) -> dict[str, Any]:
    env = {key: value for key, value in os.environ.items() if key not in THREAD_ENV_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"worker failed for {job}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class BusyLoop:
    """One process spinning on a core for the duration of the ``with`` block."""

    def __enter__(self) -> BusyLoop:
        self.process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.kill()
        self.process.wait()


def _jobs(args: argparse.Namespace) -> list[dict[str, Any]]:
    base = [
        {"algo": algo, "setting": setting, "net_arch": None, "timesteps": args.timesteps}
        for algo, settings in SETTINGS.items()
        for setting in settings
    ]
    if args.sweep:
        base += [
            {"algo": "ClipPPO", "setting": setting, "net_arch": list(arch), "timesteps": args.sweep_timesteps}
            for arch in SWEEP_ARCHS
            for setting in SWEEP_SETTINGS
        ]
    return base


def _git(*command: str) -> str:
    return subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    jobs = _jobs(args)
    if args.only:
        wanted = {tuple(item.split(":")) for item in args.only}
        jobs = [job for job in jobs if (job["algo"], job["setting"]) in wanted and not job["net_arch"]]
    commit, dirty = _git("rev-parse", "HEAD"), bool(_git("status", "--porcelain", "--untracked-files=no"))
    records: list[dict[str, Any]] = []
    started = time.perf_counter()
    for round_ in range(args.repeats):
        for load in args.loads if round_ % 2 == 0 else args.loads[::-1]:
            shift = (round_ * 3) % len(jobs)
            for job in jobs[shift:] + jobs[:shift]:
                if args.sweep_rounds is not None and job["net_arch"] and round_ >= args.sweep_rounds:
                    continue
                job = {**job, "load": load, "round": round_, "seed": args.seed + round_, "max_seconds": args.max_seconds}
                loadavg = os.getloadavg()[0]
                if load == "busy":
                    with BusyLoop():
                        record = _run_worker(job)
                else:
                    record = _run_worker(job)
                record["loadavg_1min_before"] = loadavg
                records.append(record)
                arch = "" if not job["net_arch"] else f" net_arch={job['net_arch']}"
                print(
                    f"round {round_} {load:4} {job['algo']:7} {job['setting']:7}{arch}: {record['steps_per_s']:8.0f} steps/s "
                    f"(torch threads inside {record['torch_inside']}, load avg {loadavg:.2f})",
                    flush=True,
                )
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit,  # at the start
        "dirty": dirty,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "torch_default_threads": torch.get_num_threads(),
        },
        "settings": {
            "zoo": ZOO,
            "n_envs": N_ENVS,
            "timesteps": args.timesteps,
            "sweep_timesteps": args.sweep_timesteps,
            "max_seconds": args.max_seconds,
        },
        "wall_s": time.perf_counter() - started,
        "records": records,
    }


def render(result: dict[str, Any]) -> str:
    records = result["records"]
    loads = [r["loadavg_1min_before"] for r in records]
    machine = result["machine"]
    lines = [
        "# Thread settings: steps/s of learn() (benchmarks/threads.py)",
        "",
        f"- command: `{result['command']}`",
        f"- date: {result['date']}; commit {result['commit'][:10]}{' (with uncommitted changes)' if result['dirty'] else ''}",
        f"- machine: {machine['platform']}, {machine['cpu_count']} CPUs, Python {machine['python']}, torch "
        f"{machine['torch']} (default intra-op threads: {machine['torch_default_threads']}); threadpoolctl "
        f"{'installed' if records and records[0]['threadpoolctl'] else 'not installed'}",
        f"- 1-minute load average before the runs: {min(loads):.2f} to {max(loads):.2f} (median "
        f"{statistics.median(loads):.2f}); the machine was shared with other work, which these figures include",
        f"- {len(records)} runs in {result['wall_s'] / 60:.1f} min; each a fresh process, {result['settings']['timesteps']:,} "
        f"steps (or {result['settings'].get('max_seconds', 'no')} s, whichever came first) after a one-rollout warm-up; "
        "median over rounds (min-max in brackets)",
        "",
    ]

    def table(rows: list[tuple[str, str, Any]], title: str) -> None:
        header = "| algorithm | setting | idle | busy loop beside | busy / idle |"
        lines.extend([f"## {title}", "", header, "|---|---|---|---|---|"])
        for algo, setting, arch in rows:
            cells, medians = [], {}
            for load in ("idle", "busy"):
                values = [
                    r["steps_per_s"]
                    for r in records
                    if (r["algo"], r["setting"], r["load"]) == (algo, setting, load) and r["net_arch"] == arch
                ]
                if not values:
                    cells.append("-")
                    continue
                medians[load] = statistics.median(values)
                cells.append(f"{medians[load]:,.0f} ({min(values):,.0f}-{max(values):,.0f})")
            ratio = f"{medians['busy'] / medians['idle']:.2f}" if len(medians) == 2 else "-"
            name = algo if arch is None else f"{algo} net_arch={arch}"
            lines.append(f"| {name} | {setting} | {cells[0]} | {cells[1]} | {ratio} |")
        lines.append("")

    table([(algo, s, None) for algo, settings in SETTINGS.items() for s in settings], "CartPole-v1, rl-zoo settings")
    sweep = [(r["algo"], r["setting"], r["net_arch"]) for r in records if r["net_arch"]]
    if sweep:
        seen = list(dict.fromkeys((a, s, tuple(n)) for a, s, n in sweep))
        sizes = {tuple(r["net_arch"]): r["n_parameters"] for r in records if r["net_arch"]}
        table([(a, s, list(n)) for a, s, n in seen], "Larger policies (ClipPPO)")
        lines.append(
            "Parameters: " + ", ".join(f"net_arch={list(arch)}: {n:,}" for arch, n in sizes.items()) + "; the default "
            f"policy: {next(r['n_parameters'] for r in records if not r['net_arch']):,}."
        )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--timesteps", type=int, default=20_480)
    parser.add_argument("--sweep", action="store_true", help="also ClipPPO with larger policies")
    parser.add_argument("--sweep-timesteps", type=int, default=5_120)
    parser.add_argument("--sweep-rounds", type=int, default=None, help="rounds of the sweep (default: all)")
    parser.add_argument("--max-seconds", type=float, default=12.0, help="stop a run's learn() after this long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", metavar="ALGO:SETTING", help="only these runs, e.g. ClipPPO:1 ClipPPO:auto")
    parser.add_argument("--loads", nargs="+", choices=("idle", "busy"), default=["idle", "busy"])
    parser.add_argument("--name", default="threads", help="file name of the results (default: threads)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 round, 1,024 steps")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--render", type=Path, help="rewrite the .md of this threads.json")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.render:
        result = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(render(result))
        return
    if args.quick:
        args.repeats, args.timesteps, args.sweep_timesteps = 1, 1_024, 512
    result = measure(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / f"{args.name}.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
