"""Where the time of one environment step goes, unprofiled: SB3's PPO against ClipPPO and KLPenaltyPPO (and with
``--comparisons a2c``, SB3's A2C against REINFORCE).

Each measured ``learn()`` runs in a fresh process with one torch thread (as in ``throughput.py``, whose settings it
uses), after a one-rollout warm-up, with three wall-clock timers around the phases of SB3's training loop:

- ``env.step``: the vectorised environment's ``step`` (DummyVecEnv, Monitor and the environment: the same code for
  SB3 and for ours);
- ``rest of the rollout``: ``collect_rollouts`` minus ``env.step`` (the policy step, sampling, the buffer, callbacks,
  GAE);
- ``train``: the update (minibatches, forward, backward, optimizer).

Timers cost about a microsecond per call, and there is no profiler: unlike ``throughput.py --profile`` the figures are
the real time per environment step. The rounds are interleaved (SB3, ours, ours, SB3, ...), the same seed per round;
the tables show the median over rounds of the microseconds per environment step::

    python benchmarks/phases.py --envs CartPole-v1 HalfCheetah-v5 --comparisons ppo a2c --repeats 3 --out benchmarks/results

The ``2x budget`` column is half of SB3's time per step: what an algorithm must take to run twice SB3's steps/s.
Outputs: ``<out>/phases.json`` and ``<out>/phases.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.throughput import (
    ALL_ENVS,
    RESULT_MARKER,
    SBX_LABEL,
    _cpu_name,
    _spec,
    build_model,
    build_settings,
    git_state,
    launch_worker,
    snapshot_package,
)

#: the phases, in the order of the tables
PHASES = ("env.step", "rest of the rollout", "train")


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One timed ``learn()`` in this process: microseconds per environment step, in total and per phase."""
    import torch as th

    th.set_num_threads(1)
    build_model(spec, spec["seed"] + 100_000).learn(spec["warmup_timesteps"])
    model = build_model(spec, spec["seed"])
    seconds = {"env.step": 0.0, "collect_rollouts": 0.0, "train": 0.0}

    def timed(owner: Any, name: str, key: str) -> None:
        call = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                seconds[key] += time.perf_counter() - start

        setattr(owner, name, wrapper)  # on the algorithm and the VecEnv objects, not on the policy

    timed(model, "collect_rollouts", "collect_rollouts")
    timed(model, "train", "train")
    timed(model.env, "step", "env.step")
    start = time.perf_counter()
    model.learn(spec["timesteps"])
    total = time.perf_counter() - start
    steps = int(model.num_timesteps)
    per_step = {
        "total": total,
        "env.step": seconds["env.step"],
        "rest of the rollout": seconds["collect_rollouts"] - seconds["env.step"],
        "train": seconds["train"],
    }
    return {
        "steps": steps,
        "us_per_step": {key: 1e6 * value / steps for key, value in per_step.items()},
        "load_avg_1min": os.getloadavg()[0],
    }


def measure(
    envs: Sequence[str], repeats: int, seed: int, pythonpath: Path, families: Sequence[str] = ("ppo",)
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{setting: {algorithm label: [result per round]}}``, rounds interleaved; ``families`` as throughput.py's
    ``--comparisons`` (ppo: SB3 PPO, ClipPPO, KLPenaltyPPO; a2c: SB3 A2C, REINFORCE)."""
    from tqdm import tqdm

    settings = build_settings(envs, families, reinforce_baseline=False)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tqdm(total=sum(len(s.algos) for s in settings) * repeats, file=sys.stderr, unit="run") as bar:
        for setting in settings:
            results[setting.name] = {algo.label: [] for algo in setting.algos if algo.label != SBX_LABEL}
            for repeat in range(repeats):
                for algo in setting.algos:
                    if algo.label == SBX_LABEL:
                        continue
                    bar.set_description(f"{setting.name} | {algo.label}")
                    spec = _spec(setting, algo, setting.timesteps, seed + repeat, warmup=setting.rollout_size)
                    results[setting.name][algo.label].append(launch_worker(spec, pythonpath, script=Path(__file__)))
                    bar.update()
    return results


def markdown(results: dict[str, dict[str, list[dict[str, Any]]]], meta: dict[str, Any]) -> str:
    """The tables: median microseconds per environment step, per phase."""
    lines = [
        f"# Where the time of an environment step goes ({meta['date']})",
        "",
        f"Machine: {meta['cpu']}, load average (1 min) after the runs {meta['load_min']:.2f} to {meta['load_max']:.2f}; "
        f"torch {meta['torch']} with 1 thread. Code: HEAD {meta['git']['head']}. Command: "
        f"`python benchmarks/phases.py {' '.join(meta['argv'])}`. Median over {meta['repeats']} interleaved rounds of "
        "the microseconds per environment step (wall clock, no profiler).",
        "",
    ]
    for setting, by_algo in results.items():
        baseline = next(iter(by_algo))  # SB3's algorithm runs first in every setting
        sb3_total = statistics.median(r["us_per_step"]["total"] for r in by_algo[baseline])
        lines += [
            f"## {setting}",
            "",
            "| algorithm | total µs/step | " + " | ".join(PHASES) + " | steps/s | 2x budget (µs) |",
            "|---|---:|" + "---:|" * len(PHASES) + "---:|---:|",
        ]
        for label, runs in by_algo.items():
            med = {key: statistics.median(r["us_per_step"][key] for r in runs) for key in ("total", *PHASES)}
            cells = " | ".join(f"{med[key]:.1f}" for key in PHASES)
            lines.append(f"| {label} | {med['total']:.1f} | {cells} | {1e6 / med['total']:.0f} | {sb3_total / 2:.1f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: a worker, or the measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "HalfCheetah-v5"], choices=ALL_ENVS)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--comparisons",
        nargs="+",
        default=["ppo"],
        choices=["ppo", "a2c"],
        help="ppo: SB3 PPO vs ClipPPO vs KLPenaltyPPO; a2c: SB3 A2C vs REINFORCE (throughput.py's settings)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the first round (round r: seed + r)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"), help="output directory")
    parser.add_argument("--worker", metavar="SPEC_JSON", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        import warnings

        warnings.filterwarnings("ignore")
        sys.stdout.write(RESULT_MARKER + json.dumps(run_worker(json.loads(args.worker))) + "\n")
        return
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    pythonpath = snapshot_package(args.out / "tmp")
    results = measure(args.envs, args.repeats, args.seed, pythonpath, args.comparisons)
    loads = [r["load_avg_1min"] for by_algo in results.values() for runs in by_algo.values() for r in runs]
    import torch

    meta = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "cpu": f"{_cpu_name()} ({os.cpu_count()} logical CPUs)",
        "torch": torch.__version__,
        "git": git_state(),
        "argv": list(argv if argv is not None else sys.argv[1:]),
        "repeats": args.repeats,
        "load_min": min(loads),
        "load_max": max(loads),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "phases.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    text = markdown(results, meta)
    (args.out / "phases.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
