"""Soak test: long training runs that watch the process memory and the finiteness of the networks.

For each algorithm and environment (one configuration at a time, each in a fresh worker process so that its memory
is its own), train ``--timesteps`` steps (default 1,000,000) and, from a callback:

- every ``--sample-every`` steps (default 10,000), read the process's resident memory (``VmRSS`` of
  ``/proc/self/status``; where there is no ``/proc``, the peak ``ru_maxrss`` of ``resource`` stands in) and the
  wall time;
- after every policy update (at each rollout start, and at the end), check that every network parameter is finite,
  and that the update's logged losses (``train/*loss*``) are finite. A non-finite value counts as a NaN occurrence
  and stops that configuration; so does the package's own ``FloatingPointError`` (its divergence guard).

Reported per configuration: RSS at ``--baseline-at`` steps (default 100,000: allocator, lazy initialisation and
caches have settled by then) and at the last periodic sample (the end of the budget), the growth between them in
percent, the least-squares slope of RSS after the baseline (MiB per 100k steps: separates a steady leak from noise),
the maximum RSS (sampled, and the kernel's ``VmHWM`` peak), NaN occurrences, steps/s (``learn()`` wall time). Pass
criteria, printed per configuration: no NaN occurrence and RSS growth after the baseline < ``--max-growth``
(default 5%).

Settings: :func:`sb3_ppo_variants.presets.get_preset` where ``PRESET_PAIRS`` has the pair (its ``n_timesteps`` replaced by
``--timesteps``); otherwise :data:`FALLBACKS`: REINFORCE on Pendulum-v1 has no preset, and REINFORCE without a
baseline only learns from episodes that end inside a rollout, so it gets ``n_steps=1000`` (Pendulum's episodes are
exactly 200 steps and all envs start together, so every episode fits in a rollout).

Run (from the repository root)::

    .venv/bin/python benchmarks/soak.py --quick                                       # smoke test, all 6 configs
    .venv/bin/python benchmarks/soak.py --algos clip_ppo --envs CartPole-v1          # one configuration, 1M steps
    nohup .venv/bin/python benchmarks/soak.py > soak.log 2>&1 &                       # the full matrix

``--quick``: 32,768 steps per configuration, baseline at 16,384 steps, a sample every 1,024 steps (the growth figure
of so short a run is only a check that the pipeline works). Outputs in ``--out`` (default
``benchmarks/results/soak/``): ``<name>.json`` (settings, every sample, summaries), ``<name>.md`` (the table, also
printed) and ``<name>.png`` (RSS vs timesteps, one line per configuration). Each configuration's result is written
as soon as it ends (``<out>/tmp/<name>_<algo>_<env>.json``), so a long matrix can be inspected while it runs.

Cost: a configuration runs at its algorithm's training speed (``throughput.py``). Measured with ``--quick`` on the
shared 2-core machine this was written on (load average about 5): ClipPPO/KLPenaltyPPO about 1,500-1,700 steps/s on
CartPole-v1 and 950 on Pendulum-v1 (gSDE, 10 epochs), REINFORCE about 7,000 and 3,000. So 1M steps take about
10-13 minutes (ClipPPO or KLPenaltyPPO on CartPole-v1), 18 (on Pendulum-v1), 2.5 and 6 (REINFORCE), and the full
matrix (3 algorithms x 2 environments x 1M steps = 6M steps) about 65 minutes at that load: run it with ``nohup``,
preferably on a quiet machine, one matrix at a time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import platform
import subprocess
import sys
import time
from typing import Any

ALGOS = ("clip_ppo", "kl_ppo", "reinforce")
ENVS = ("CartPole-v1", "Pendulum-v1")
REPO = pathlib.Path(__file__).resolve().parent.parent

#: (algo, env) pairs without a preset: n_envs and constructor arguments
FALLBACKS: dict[tuple[str, str], dict[str, Any]] = {
    ("reinforce", "Pendulum-v1"): {
        "n_envs": 4,
        "hyperparams": dict(n_steps=1000, gamma=0.9, learning_rate=1e-3, use_baseline=False),
        "source": "soak.py fallback (no preset): whole 200-step episodes in each rollout",
    },
}


# ---------------------------------------------------------------------------------------------------- worker side


def read_rss_mib() -> tuple[float, float | None]:
    """(current RSS, peak RSS) of this process in MiB: ``VmRSS``/``VmHWM`` of /proc, else ``ru_maxrss`` for both."""
    try:
        fields = {}
        with open("/proc/self/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0]) / 1024  # kB
        return fields["VmRSS"], fields.get("VmHWM")
    except (OSError, KeyError, ValueError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
        return peak, peak


def settings_for(algo: str, env_id: str) -> dict[str, Any]:
    """n_envs, constructor arguments and their source for one configuration (preset, else fallback)."""
    from sb3_ppo_variants.presets import PRESET_PAIRS, get_preset

    if (algo, env_id) in PRESET_PAIRS:
        preset = get_preset(algo, env_id)
        return {
            "n_envs": preset.n_envs,
            "hyperparams": dict(preset.hyperparams),
            "normalize": preset.normalize,
            "source": f"presets.get_preset({algo!r}, {env_id!r}): {preset.source}",
        }
    if (algo, env_id) in FALLBACKS:
        return {"normalize": False, **FALLBACKS[(algo, env_id)]}
    raise KeyError(f"No preset and no fallback settings for {algo} on {env_id}")


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Train one configuration with the soak callback; return its samples and summary."""
    import numpy as np
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_ppo_variants import ALGOS as CLASSES

    th.set_num_threads(1)
    th.set_num_interop_threads(1)

    class SoakCallback(BaseCallback):
        """Samples RSS every ``sample_every`` steps; checks parameters and losses after every update."""

        def __init__(self, sample_every: int):
            super().__init__()
            self.sample_every = sample_every
            self.next_sample = 0
            self.samples: list[dict[str, float]] = []
            self.checks = 0
            self.nan_occurrences = 0
            self.first_nan: dict[str, Any] | None = None
            self.t0 = 0.0
            self.next_progress = 0

        def sample(self, phase: str = "step") -> None:
            rss, hwm = read_rss_mib()
            seconds = time.perf_counter() - self.t0
            self.samples.append(
                {"timesteps": self.num_timesteps, "rss_mib": rss, "hwm_mib": hwm, "seconds": seconds, "phase": phase}
            )

        def check_finite(self) -> None:
            self.checks += 1
            bad = [name for name, p in self.model.policy.named_parameters() if not bool(th.isfinite(p).all())]
            bad += [
                key
                for key, value in self.model.logger.name_to_value.items()
                if key.startswith("train/") and "loss" in key and not np.isfinite(value)
            ]
            if bad:
                self.nan_occurrences += 1
                if self.first_nan is None:
                    self.first_nan = {"timesteps": self.num_timesteps, "where": bad[:10]}

        def _on_training_start(self) -> None:
            self.t0 = time.perf_counter()
            self.sample("start")
            self.next_sample = self.sample_every
            self.next_progress = max(args.timesteps // 10, 1)

        def _on_rollout_start(self) -> None:
            self.check_finite()  # the previous update's parameters and losses

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_sample:
                self.sample()
                while self.next_sample <= self.num_timesteps:
                    self.next_sample += self.sample_every
                if args.progress and self.num_timesteps >= self.next_progress:
                    self.next_progress += max(args.timesteps // 10, 1)
                    last = self.samples[-1]
                    rate = last["timesteps"] / last["seconds"] if last["seconds"] > 0 else float("nan")
                    print(f"  {self.num_timesteps:,} steps, RSS {last['rss_mib']:.1f} MiB, {rate:.0f} steps/s", flush=True)
            return self.nan_occurrences == 0

        def _on_training_end(self) -> None:
            self.check_finite()
            self.sample("end")

    settings = settings_for(args.algo, args.env)
    env = make_vec_env(args.env, n_envs=settings["n_envs"], seed=args.seed)
    if settings["normalize"]:
        env = VecNormalize(env)
    hyperparams = dict(settings["hyperparams"])
    model = CLASSES[args.algo]("MlpPolicy", env, seed=args.seed, device="cpu", verbose=0, **hyperparams)
    callback = SoakCallback(args.sample_every)
    rss_before, _ = read_rss_mib()
    error = None
    start = time.perf_counter()
    try:
        model.learn(args.timesteps, callback=callback)
    except FloatingPointError as exc:  # the package's divergence guard: a NaN occurrence
        callback.nan_occurrences += 1
        callback.first_nan = callback.first_nan or {"timesteps": model.num_timesteps, "where": [str(exc)]}
        error = str(exc)
        callback.sample("end")
    seconds = time.perf_counter() - start
    return {
        "algo": args.algo,
        "env": args.env,
        "class": type(model).__name__,
        "n_envs": settings["n_envs"],
        "hyperparams": {
            k: v if isinstance(v, (int, float, str, bool, type(None))) else repr(v) for k, v in hyperparams.items()
        },
        "normalize": settings["normalize"],
        "source": settings["source"],
        "seed": args.seed,
        "timesteps_requested": args.timesteps,
        "timesteps": model.num_timesteps,
        "seconds": seconds,
        "steps_per_s": model.num_timesteps / seconds if seconds > 0 else float("nan"),
        "rss_before_learn_mib": rss_before,
        "samples": callback.samples,
        "finite_checks": callback.checks,
        "nan_occurrences": callback.nan_occurrences,
        "first_nan": callback.first_nan,
        "error": error,
        "final_beta": getattr(model, "current_beta", None),
    }


# ---------------------------------------------------------------------------------------------------- summary, outputs


def summarize(result: dict[str, Any], baseline_at: int, max_growth: float) -> dict[str, Any]:
    """RSS at the baseline and at the end, growth, slope, maxima, and the pass verdict of one configuration."""
    samples = result["samples"]
    # growth and slope from the periodic samples only, all taken mid-rollout; the one right after the last update
    # (phase "end") also holds that update's temporaries, which the next rollout would reuse: it counts for the maximum
    periodic = [s for s in samples if s.get("phase", "step") == "step"] or samples
    after = [s for s in periodic if s["timesteps"] >= baseline_at]
    base = after[0] if after else None
    end = periodic[-1]
    growth = (end["rss_mib"] - base["rss_mib"]) / base["rss_mib"] * 100 if base else float("nan")
    slope = float("nan")
    if len(after) >= 3:
        xs = [s["timesteps"] for s in after]
        ys = [s["rss_mib"] for s in after]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        var_x = sum((x - mean_x) ** 2 for x in xs)
        if var_x > 0:
            slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var_x * 100_000
    hwm = [s["hwm_mib"] for s in samples if s.get("hwm_mib") is not None]
    no_nan = result["nan_occurrences"] == 0
    growth_ok = base is not None and growth < max_growth
    return {
        "baseline_timesteps": base["timesteps"] if base else None,
        "rss_baseline_mib": base["rss_mib"] if base else None,
        "end_timesteps": end["timesteps"],
        "rss_end_mib": end["rss_mib"],
        "rss_after_learn_mib": samples[-1]["rss_mib"],
        "growth_pct": growth,
        "slope_mib_per_100k": slope,
        "rss_max_mib": max(s["rss_mib"] for s in samples),
        "rss_peak_hwm_mib": max(hwm) if hwm else None,
        "no_nan": no_nan,
        "growth_ok": growth_ok,
        "passed": no_nan and growth_ok,
    }


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and value != value) else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    """The results table (also printed)."""
    lines = [
        f"# Soak test ({report['started']})",
        "",
        f"Machine: {report['machine']}; load average (1, 5, 15 min) at the start {report['loadavg_start']}, "
        f"at the end {report['loadavg_end']}; torch {report['torch']} with 1 thread, SB3 {report['sb3']}; "
        f"package source hash {report['source_hash']} (git HEAD {report['git_head']}).",
        "",
        f"Budget {report['timesteps']:,} steps per configuration; RSS sampled every {report['sample_every']:,} steps; "
        f"growth = RSS at the last periodic sample vs RSS at the first sample >= {report['baseline_at']:,} steps; slope: "
        "least squares over the samples after it; max RSS includes the sample right after `learn()`. "
        "Pass: no NaN occurrence (parameters and `train/*loss*` checked after every update) "
        f"and growth < {report['max_growth']}%.",
        "",
        "| algorithm | env | n_envs | steps | steps/s | RSS @baseline MiB | RSS end MiB | growth % | slope MiB/100k "
        "| max RSS MiB (VmHWM) | NaN | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in report["runs"]:
        s = run["summary"]
        verdict = "PASS" if s["passed"] else "FAIL" + ("" if s["no_nan"] else " (NaN)") + ("" if s["growth_ok"] else " (RSS)")
        lines.append(
            f"| {run['class']} | {run['env']} | {run['n_envs']} | {run['timesteps']:,} | {run['steps_per_s']:.0f} "
            f"| {_fmt(s['rss_baseline_mib'])} | {_fmt(s['rss_end_mib'])} | {_fmt(s['growth_pct'], '+.2f')} "
            f"| {_fmt(s['slope_mib_per_100k'], '+.2f')} | {_fmt(s['rss_max_mib'])} ({_fmt(s['rss_peak_hwm_mib'])}) "
            f"| {run['nan_occurrences']} | {verdict} |"
        )
    for run in report["runs"]:
        if run.get("error") or run.get("first_nan"):
            lines.append(f"\n{run['class']} {run['env']}: first NaN {run['first_nan']}; error: {run.get('error')}")
    for failed in report.get("failed", []):
        lines.append(f"\n{failed['algo']} {failed['env']}: the worker failed (exit code {failed['returncode']}), no result")
    lines += ["", "Settings:", ""]
    for run in report["runs"]:
        lines.append(f"- {run['class']} {run['env']}: {run['source']}; {run['hyperparams']}")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: pathlib.Path) -> None:
    """RSS vs timesteps, one line per configuration, the baseline marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    for run in report["runs"]:
        xs = [s["timesteps"] for s in run["samples"]]
        ys = [s["rss_mib"] for s in run["samples"]]
        ax.plot(xs, ys, label=f"{run['class']} {run['env']} ({run['summary']['growth_pct']:+.1f}%)", linewidth=1.2)
    ax.axvline(report["baseline_at"], color="grey", linestyle="--", linewidth=0.8, label="baseline")
    ax.set_xlabel("timesteps")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(f"Soak test: resident memory during training ({report['timesteps']:,} steps per configuration)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted((REPO / "sb3_ppo_variants").rglob("*.py")):
        digest.update(path.relative_to(REPO).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _git_head() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _versions() -> dict[str, str]:
    """torch and SB3 versions, read without importing them into the orchestrator."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for key, dist in (("torch", "torch"), ("sb3", "stable-baselines3")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = "unknown"
    return out


def _machine() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            name = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{name} ({os.cpu_count()} logical CPUs)"


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Run every configuration in its own worker process, one at a time; write JSON, Markdown and PNG."""
    out = pathlib.Path(args.out)
    (out / "tmp").mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": _machine(),
        "python": platform.python_version(),
        **_versions(),
        "source_hash": source_hash(),
        "git_head": _git_head(),
        "timesteps": args.timesteps,
        "sample_every": args.sample_every,
        "baseline_at": args.baseline_at,
        "max_growth": args.max_growth,
        "seed": args.seed,
        "loadavg_start": _loadavg(),
        "runs": [],
        "failed": [],
    }
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for env_id in args.envs:
        for algo in args.algos:
            result_path = out / "tmp" / f"{args.name}_{algo}_{env_id}.json"
            command = [
                sys.executable,
                str(pathlib.Path(__file__).resolve()),
                "--worker",
                "--algo",
                algo,
                "--env",
                env_id,
                "--timesteps",
                str(args.timesteps),
                "--sample-every",
                str(args.sample_every),
                "--seed",
                str(args.seed),
                "--result",
                str(result_path),
                *(["--progress"] if args.progress else []),
            ]
            print(f"[soak] {algo} on {env_id}: {args.timesteps:,} steps ...", flush=True)
            completed = subprocess.run(command, env=env_vars, cwd=REPO, check=False)
            if completed.returncode != 0 or not result_path.exists():
                print(f"[soak] worker for {algo} {env_id} failed with exit code {completed.returncode}", flush=True)
                report["failed"].append({"algo": algo, "env": env_id, "returncode": completed.returncode})
                continue
            run = json.loads(result_path.read_text())
            run["summary"] = summarize(run, args.baseline_at, args.max_growth)
            report["runs"].append(run)
            s = run["summary"]
            print(
                f"[soak] {run['class']} {env_id}: {run['timesteps']:,} steps at {run['steps_per_s']:.0f} steps/s; "
                f"RSS {_fmt(s['rss_baseline_mib'])} -> {_fmt(s['rss_end_mib'])} MiB ({_fmt(s['growth_pct'], '+.2f')}%), "
                f"max {_fmt(s['rss_max_mib'])} MiB; NaN occurrences {run['nan_occurrences']}; "
                f"{'PASS' if s['passed'] else 'FAIL'}",
                flush=True,
            )
    report["loadavg_end"] = _loadavg()
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    table = markdown(report)
    (out / f"{args.name}.md").write_text(table)
    if report["runs"]:
        plot(report, out / f"{args.name}.png")
    print(table)
    print(f"Pass criteria: no NaN occurrence, RSS growth after the first {args.baseline_at:,} steps < {args.max_growth}%.")
    for run in report["runs"]:
        s = run["summary"]
        print(
            f"  {run['class']:>13} {run['env']:<12} no NaN: {'yes' if s['no_nan'] else 'NO'}; "
            f"growth {_fmt(s['growth_pct'], '+.2f')}% < {args.max_growth}%: {'yes' if s['growth_ok'] else 'NO'} "
            f"-> {'PASS' if s['passed'] else 'FAIL'}"
        )
    print(f"Wrote {out / args.name}.json, .md, .png")
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--envs", nargs="+", default=list(ENVS))
    parser.add_argument("--timesteps", type=int, default=None, help="steps per configuration (default 1,000,000)")
    parser.add_argument("--sample-every", type=int, default=None, help="RSS sample period in steps (default 10,000)")
    parser.add_argument("--baseline-at", type=int, default=None, help="reference point of the growth (default 100,000)")
    parser.add_argument("--max-growth", type=float, default=5.0, help="pass threshold of the RSS growth, in percent")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small budget: 32,768 steps, baseline at 16,384")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "soak"))
    parser.add_argument("--name", default=None, help="output file stem (default: soak, or soak_quick with --quick)")
    parser.add_argument("--progress", action="store_true", help="print the RSS every tenth of the budget")
    # worker mode (internal)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--algo", help=argparse.SUPPRESS)
    parser.add_argument("--env", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = (32_768, 1_024, 16_384) if args.quick else (1_000_000, 10_000, 100_000)
    for name, default in zip(("timesteps", "sample_every", "baseline_at"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.name is None:
        args.name = "soak_quick" if args.quick else "soak"
    for name in ("timesteps", "sample_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not args.worker and args.baseline_at >= args.timesteps:
        parser.error("--baseline-at must be smaller than --timesteps")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        result = run_worker(args)
        pathlib.Path(args.result).write_text(json.dumps(result))
        return
    run_all(args)


if __name__ == "__main__":
    main()
