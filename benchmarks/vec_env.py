"""Training throughput on Gymnasium's vectorised CartPole through GymnasiumVecEnv, against SB3's DummyVecEnv.

Environments (``--n-envs``, default 8, 64 and 256):

- ``adapter``: ``make_gymnasium_vec_env("CartPole-v1", n, vectorization_mode="vector_entry_point")``, i.e.
  Gymnasium's ``CartPoleVectorEnv`` (all environments in NumPy arrays) wrapped in
  :class:`~sb3_ppo_variants.envs.vec_env.GymnasiumVecEnv`;
- ``dummy``: ``make_vec_env("CartPole-v1", n)``, SB3's ``DummyVecEnv`` of ``Monitor(gym.make("CartPole-v1"))``, as
  rl_zoo3 builds it.

Algorithms: :class:`~sb3_ppo_variants.ClipPPO` and, for reference, SB3's ``PPO``, with rl_zoo3's CartPole-v1 PPO
settings (batch_size 256, n_epochs 20, gae_lambda 0.8, gamma 0.98, ent_coef 0, learning_rate lin_1e-3, clip_range
lin_0.2) except ``n_steps = 2048 // n_envs`` (256, 32, 8), so that every run collects the same 2048 steps per update
and does the same gradient work per step (the zoo itself runs 8 envs x 32 steps = 256).

Method: every run is a fresh Python process (this script with ``--worker``) that imports a copy of the package
frozen at the start, with ``torch.set_num_threads(1)`` and ``OMP_NUM_THREADS=1``, on the CPU. In the worker, a
throw-away model of the same configuration trains one rollout first (warm-up), then a fresh model's
``learn(--timesteps)`` is timed (wall clock and process CPU time); the time spent in ``collect_rollouts`` (stepping
the environments and the policy's forward passes) is timed separately, so the rollout throughput, where the
environments make the difference, is reported next to the training throughput. Per round (``--repeats``, seed
``--seed + round``), for every n_envs and algorithm, the two environments run back to back (their order alternates
between rounds); reported: medians over rounds and the median of the per-round adapter/dummy ratios.

``--env-only`` adds a run per environment that steps it with random actions, no policy (raw environment steps/s).

Run from the repository root::

    .venv/bin/python benchmarks/vec_env.py --repeats 3 --out benchmarks/results           # ~20 min on 2 busy cores
    .venv/bin/python benchmarks/vec_env.py --repeats 2 --env-only --append --out benchmarks/results  # 2 rounds more
    .venv/bin/python benchmarks/vec_env.py --quick --out /tmp/vec_env                      # smoke test
    .venv/bin/python benchmarks/vec_env.py --render benchmarks/results/vec_env.json        # redo .md/.png

Outputs in ``--out``: ``vec_env.json`` (every run), ``vec_env.md`` (tables) and ``vec_env.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOTAL_BATCH = 2048
ENV_KINDS = ("dummy", "adapter")
ALGOS = ("PPO", "ClipPPO")
LABELS = {
    "dummy": "DummyVecEnv (make_vec_env)",
    "adapter": "GymnasiumVecEnv(CartPoleVectorEnv)",
    "sync": "GymnasiumVecEnv(SyncVectorEnv)",
}


def ppo_kwargs(n_envs: int) -> dict[str, Any]:
    """rl_zoo3's CartPole-v1 PPO settings with n_steps * n_envs = TOTAL_BATCH."""
    return dict(
        n_steps=TOTAL_BATCH // n_envs,
        batch_size=256,
        n_epochs=20,
        gae_lambda=0.8,
        gamma=0.98,
        ent_coef=0.0,
        learning_rate=lambda progress: progress * 1e-3,
        clip_range=lambda progress: progress * 0.2,
    )


# ---------------------------------------------------------------- worker (a fresh process per run)


def make_env(kind: str, n_envs: int, seed: int) -> Any:
    if kind == "dummy":
        from stable_baselines3.common.env_util import make_vec_env

        return make_vec_env("CartPole-v1", n_envs=n_envs, seed=seed)
    from sb3_ppo_variants.envs.vec_env import make_gymnasium_vec_env

    mode = "vector_entry_point" if kind == "adapter" else "sync"
    return make_gymnasium_vec_env("CartPole-v1", n_envs, seed=seed, vectorization_mode=mode)


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch as th

    th.set_num_threads(1)
    th.set_num_interop_threads(1)
    n_envs, kind, seed = spec["n_envs"], spec["env"], spec["seed"]
    if spec["algo"] == "env-only":
        env = make_env(kind, n_envs, seed)
        env.reset()
        rng = np.random.default_rng(seed)
        actions = rng.integers(0, 2, size=(64, n_envs))
        for i in range(64):  # warm-up
            env.step(actions[i])
        steps = spec["timesteps"] // n_envs
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        for i in range(steps):
            env.step(actions[i % 64])
        wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
        env.close()
        return {"steps": steps * n_envs, "wall_s": wall, "cpu_s": cpu, "steps_per_s": steps * n_envs / wall}

    from stable_baselines3 import PPO

    from sb3_ppo_variants import ClipPPO

    cls = {"PPO": PPO, "ClipPPO": ClipPPO}[spec["algo"]]

    def build() -> Any:
        return cls("MlpPolicy", make_env(kind, n_envs, seed), seed=seed, device="cpu", verbose=0, **ppo_kwargs(n_envs))

    build().learn(TOTAL_BATCH)  # warm-up: one rollout and one update
    model = build()
    rollout = {"wall": 0.0, "cpu": 0.0}
    collect = model.collect_rollouts

    def timed_collect(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        result = collect(*args, **kwargs)
        rollout["wall"] += time.perf_counter() - wall
        rollout["cpu"] += time.process_time() - cpu
        return result

    model.collect_rollouts = timed_collect  # type: ignore[method-assign]
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    model.learn(spec["timesteps"])
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    steps = int(model.num_timesteps)
    episodes = [info["r"] for info in model.ep_info_buffer]
    return {
        "steps": steps,
        "wall_s": wall,
        "cpu_s": cpu,
        "steps_per_s": steps / wall,
        "cpu_steps_per_s": steps / cpu,
        "rollout_wall_s": rollout["wall"],
        "rollout_steps_per_s": steps / rollout["wall"],
        "train_wall_s": wall - rollout["wall"],
        "last_100_episode_return": float(np.mean(episodes)) if episodes else float("nan"),
        "torch_threads": th.get_num_threads(),
        "package": sys.modules["sb3_ppo_variants"].__file__,
    }


# ---------------------------------------------------------------- orchestrator (imports neither torch nor SB3)


def snapshot_package(dest: Path) -> Path:
    """A copy of the package that every worker imports, so that edits during the run do not mix code versions."""
    target = dest / "snapshot"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(ROOT / "sb3_ppo_variants", target / "sb3_ppo_variants", ignore=shutil.ignore_patterns("__pycache__"))
    return target


def launch(spec: dict[str, Any], pythonpath: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(pythonpath)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=pythonpath)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed for {spec}:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**spec, **result, "load_1min": load}


def git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        return "unknown"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="vec_env_bench_"))
    pythonpath = snapshot_package(tmp)
    runs: list[dict[str, Any]] = []
    previous: dict[str, Any] | None = None
    if args.append:  # more rounds for an earlier vec_env.json: rounds (and their seeds) continue its numbering
        previous = json.loads((out / "vec_env.json").read_text())
        runs = previous["runs"]
    first = max((r["repeat"] for r in runs), default=-1) + 1
    algos = list(args.algos) + (["env-only"] if args.env_only else [])
    started = dt.datetime.now(dt.timezone.utc)
    try:
        for repeat in range(first, first + args.repeats):
            for n_envs in args.n_envs:
                for algo in algos:
                    kinds = list(ENV_KINDS) + (["sync"] if algo == "env-only" else [])
                    if repeat % 2:
                        kinds.reverse()
                    for kind in kinds:
                        timesteps = args.env_only_timesteps if algo == "env-only" else args.timesteps
                        spec = {
                            "algo": algo,
                            "env": kind,
                            "n_envs": n_envs,
                            "seed": args.seed + repeat,
                            "timesteps": timesteps,
                            "repeat": repeat,
                        }
                        record = launch(spec, pythonpath)
                        runs.append(record)
                        print(
                            f"[{repeat}] {algo:8s} n_envs={n_envs:3d} {kind:8s} {record['steps_per_s']:9.1f} steps/s"
                            + (f"  rollout {record['rollout_steps_per_s']:9.1f}" if "rollout_steps_per_s" in record else "")
                            + f"  load {record['load_1min']:.2f}",
                            flush=True,
                        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    meta = {
        "date_utc": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/vec_env.py " + " ".join(args.argv),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "git_head": git_head(),
        "versions": versions(),
        "repeats": args.repeats,
        "timesteps": args.timesteps,
        "total_batch": TOTAL_BATCH,
    }
    if previous is not None:
        meta["date_utc"] = f"{previous['meta']['date_utc']} and {meta['date_utc']}"
        meta["command"] = f"{previous['meta']['command']}, then {meta['command']}"
        meta["git_head"] = f"{previous['meta']['git_head']}, then {meta['git_head']}"
        meta["repeats"] = previous["meta"]["repeats"] + args.repeats
    data = {"meta": meta, "runs": runs}
    (out / "vec_env.json").write_text(json.dumps(data, indent=1))
    return data


def versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "stable-baselines3", "gymnasium", "numpy")}


# ---------------------------------------------------------------- report


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for algo in dict.fromkeys(r["algo"] for r in runs):
        for n_envs in sorted({r["n_envs"] for r in runs if r["algo"] == algo}):
            by_kind: dict[str, dict[int, dict[str, Any]]] = {}
            for r in runs:
                if r["algo"] == algo and r["n_envs"] == n_envs:
                    by_kind.setdefault(r["env"], {})[r["repeat"]] = r
            dummy = by_kind.get("dummy", {})
            for kind, per_repeat in by_kind.items():
                rs = [per_repeat[k] for k in sorted(per_repeat)]
                row = {
                    "algo": algo,
                    "n_envs": n_envs,
                    "env": kind,
                    "repeats": len(rs),
                    "steps_per_s": statistics.median(r["steps_per_s"] for r in rs),
                    "min": min(r["steps_per_s"] for r in rs),
                    "max": max(r["steps_per_s"] for r in rs),
                    "ratios": [per_repeat[k]["steps_per_s"] / dummy[k]["steps_per_s"] for k in per_repeat if k in dummy],
                    "load": statistics.median(r["load_1min"] for r in rs),
                    "cpu_ratio": statistics.median(
                        dummy[k]["cpu_s"] / dummy[k]["steps"] / (per_repeat[k]["cpu_s"] / per_repeat[k]["steps"])
                        for k in per_repeat
                        if k in dummy
                    ),
                }
                row["ratio"] = statistics.median(row["ratios"])
                if "rollout_steps_per_s" in rs[0]:
                    row["rollout_steps_per_s"] = statistics.median(r["rollout_steps_per_s"] for r in rs)
                    row["rollout_ratios"] = [
                        per_repeat[k]["rollout_steps_per_s"] / dummy[k]["rollout_steps_per_s"]
                        for k in per_repeat
                        if k in dummy
                    ]
                    row["rollout_ratio"] = statistics.median(row["rollout_ratios"])
                    row["rollout_share"] = statistics.median(r["rollout_wall_s"] / r["wall_s"] for r in rs)
                rows.append(row)
    return rows


def _span(values: Sequence[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def markdown(data: dict[str, Any]) -> str:
    meta, rows = data["meta"], summarise(data["runs"])
    loads = [r["load_1min"] for r in data["runs"]]
    v = meta["versions"]
    lines = [
        "# Gymnasium's vectorised CartPole through GymnasiumVecEnv vs DummyVecEnv",
        "",
        f"Date: {meta['date_utc']}. Command: `{meta['command']}` (HEAD {meta['git_head']}).",
        "",
        f"Machine: the development box, {meta['cpu']}, {meta['cpu_count']} logical CPUs **shared with other work**: "
        f"the 1-minute load average at the start of the runs was {min(loads):.1f} to {max(loads):.1f}, so these figures "
        "were measured under load; absolute steps/s move with it, the ratios of the back-to-back pairs are what to "
        f"read. One torch thread, CPU, Python {meta['python']}, torch {v['torch']}, SB3 {v['stable-baselines3']}, "
        f"Gymnasium {v['gymnasium']}, NumPy {v['numpy']}.",
        "",
        f"Settings: rl_zoo3's CartPole-v1 PPO (batch_size 256, n_epochs 20, gae_lambda 0.8, gamma 0.98, ent_coef 0, "
        f"lin_1e-3, clip lin_0.2) with n_steps = {meta['total_batch']} / n_envs, `learn({meta['timesteps']})` timed "
        f"after a one-update warm-up, fresh process per run, {meta['repeats']} rounds, medians. Ratio: adapter / "
        "DummyVecEnv, median of the per-round ratios. Rollout: time inside `collect_rollouts` (environment steps and "
        "the policy's forward passes); share: its part of `learn()`. CPU ratio: the same ratio of steps per second of "
        "process CPU time (less sensitive to the load of other processes).",
        "",
        "| algorithm | n_envs | environment | steps/s (min-max) | ratio (per-round min-max; CPU) | rollout steps/s "
        "| rollout ratio (min-max) | rollout share |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r["algo"] == "env-only":
            continue
        lines.append(
            f"| {r['algo']} | {r['n_envs']} | {LABELS[r['env']]} | {r['steps_per_s']:.0f} ({r['min']:.0f}-{r['max']:.0f}) "
            f"| {r['ratio']:.2f} ({_span(r['ratios'])}; CPU {r['cpu_ratio']:.2f}) | {r['rollout_steps_per_s']:.0f} "
            f"| {r['rollout_ratio']:.2f} ({_span(r['rollout_ratios'])}) | {r['rollout_share']:.0%} |"
        )
    env_only = [r for r in rows if r["algo"] == "env-only"]
    if env_only:
        lines += [
            "",
            "Environment alone (random actions, no policy, SB3 `VecEnv.step` calls):",
            "",
            "| n_envs | environment | env steps/s (min-max) | ratio to DummyVecEnv (CPU) |",
            "|---:|---|---:|---:|",
        ]
        for r in env_only:
            lines.append(
                f"| {r['n_envs']} | {LABELS[r['env']]} | {r['steps_per_s']:.0f} ({r['min']:.0f}-{r['max']:.0f}) | "
                f"{r['ratio']:.2f} ({r['cpu_ratio']:.2f}) |"
            )
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summarise(data["runs"]) if r["algo"] != "env-only"]
    algos = list(dict.fromkeys(r["algo"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, title in ((axes[0], "steps_per_s", "learn() steps/s"), (axes[1], "rollout_steps_per_s", "rollout steps/s")):
        for color, algo in zip(("tab:blue", "tab:red"), algos, strict=False):
            for kind, style in (("dummy", "--"), ("adapter", "-")):
                pts = sorted((r["n_envs"], r[key]) for r in rows if r["algo"] == algo and r["env"] == kind)
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, color=color, marker="o", label=f"{algo}, {LABELS[kind]}")
        ax.set_xscale("log", base=2)
        ax.set_xticks([r["n_envs"] for r in rows if r["algo"] == algos[0] and r["env"] == "dummy"])
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("n_envs (n_steps = 2048 / n_envs)")
        ax.set_title(f"CartPole-v1, {title} (median)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("measured under load on a shared 2-core machine, one torch thread", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(data: dict[str, Any], out: Path) -> None:
    text = markdown(data)
    (out / "vec_env.md").write_text(text)
    plot(data, out / "vec_env.png")
    print(text)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--n-envs", type=int, nargs="+", default=[8, 64, 256])
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=8 * TOTAL_BATCH, help="per timed learn() (default 8 updates)")
    parser.add_argument("--env-only", action="store_true", help="also time the environments alone")
    parser.add_argument("--env-only-timesteps", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--append", action="store_true", help="add --repeats rounds to <out>/vec_env.json")
    parser.add_argument("--quick", action="store_true", help="1 round, 2 updates, 8 and 64 envs")
    parser.add_argument("--render", help="rewrite the .md and .png of an earlier vec_env.json")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.repeats, args.timesteps, args.n_envs, args.env_only_timesteps = 1, 2 * TOTAL_BATCH, [8, 64], 20_000
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return
    if args.render:
        path = Path(args.render)
        write_report(json.loads(path.read_text()), path.parent)
        return
    write_report(run(args), Path(args.out))


if __name__ == "__main__":
    main()
