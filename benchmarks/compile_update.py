"""Does ``torch.compile`` of the minibatch loss pay for its compile time on the CPU? (issue 16)

ClipPPO's ``learn()`` eager against ``learn()`` with the minibatch loss computation compiled by ``torch.compile``
(inductor, CPU), at two settings:

- ``CartPole-v1``: rl_zoo3's tuned PPO (n_envs 8, n_steps 32, batch_size 256, n_epochs 20, gae_lambda 0.8,
  gamma 0.98, ent_coef 0, learning_rate lin_1e-3, clip_range lin_0.2); the zoo trains it for 1e5 steps;
- ``HalfCheetah-v5``: SB3 PPO's defaults (1 env, n_steps 2048, batch_size 64, n_epochs 10); the zoo trains 1e6 steps.

What is compiled (the hook, :func:`compile_minibatch_loss`): the bound method ``model._minibatch_loss``, i.e. the
lean policy forward (features, MLP extractor, action and value heads, the lean distribution's log-probability and
entropy), advantage normalisation, ratio, ClipPPO's clipped surrogate, the value loss, the logged statistics and the
approximate KL, exactly the code eager ``learn()`` runs (its statistics are appended to a fresh dict per call and
moved to the update's lists outside the compiled code: appending to the growing lists inside it would make dynamo
guard on their length and recompile at every minibatch; likewise the update's clip range goes in as a 0-dim tensor, as
a float attribute is guarded on its value and would recompile at every update of the linear schedule, so the float32
bounds ``1 -/+ clip`` may differ from eager's by one rounding). AOTAutograd compiles the backward of that graph too, so
``loss.backward()`` runs inductor's fused backward kernels; the optimizer step (the direct fused-Adam call of
``common/optimizer.py``), the rollouts and GAE stay eager. The one change for the trace: the cached capability check
``common.distributions.lean_distributions_available()`` (a ``functools.cache`` function that dynamo would trace into,
breaking the graph four times at its ``fork_rng``) is wrapped in ``torch.compiler.assume_constant_result``, after one
eager call: it is a constant of the process. The loss is then one graph with no graph break on both settings.

Variants (``--variants``):

- ``eager``: plain ``learn()``;
- ``static``: ``torch.compile(..., dynamic=False)``; a new minibatch size (the short last minibatch when
  ``batch_size`` does not divide ``n_steps * n_envs``; not the case at these two settings) would recompile;
- ``mark_dynamic``: ``torch.compile(..., dynamic=None)`` with ``torch._dynamo.mark_dynamic`` on the minibatch size of
  every batch field: one graph with a symbolic batch size from the first call on (``dynamic=True`` fails to trace
  here: it makes the Python floats symbolic too, and ``ent_coef != 0`` then is no constant for
  ``torch.set_grad_enabled``, an ``InternalTorchDynamoError`` in torch 2.13);
- ``static_warm``: as ``static``, but with inductor's on-disk cache filled by the ``static`` run of the same round
  (what a second run on the same machine pays; the other compiled variants start from an empty cache);
- ``autotune``: ``mode="max-autotune-no-cudagraphs"`` (static; inductor benchmarks GEMM templates: slow to compile).

Method: every run is a fresh worker process (this script with ``--worker``): ``torch.set_num_threads(1)``,
``OMP_NUM_THREADS=1``, ``device="cpu"``, its own empty ``TORCHINDUCTOR_CACHE_DIR`` (except ``static_warm``). A model is
built (not timed), then

1. ``learn(warm-up)`` of ``--warmup-updates`` updates (3 on CartPole, 2 on HalfCheetah) is timed: it holds the
   compilation (and any recompilation, e.g. for the clip range that changes every update);
2. ``learn(steady, reset_num_timesteps=False)`` is timed: the steady-state steps/s.

The variants run interleaved (eager, static, ..., eager, static, ...) for ``--repeats`` rounds with the same seed per
round. Compile time = the median over rounds of (warm-up wall time of the variant - warm-up wall time of eager in the
same round). Break-even run length = compile time / (1 / eager steps/s - 1 / compiled steps/s) timesteps: beyond
it the compiled run finishes first. ``--check`` also measures the numerical agreement: in one process, an eager and
a compiled ClipPPO with the same seed each run one ``learn()`` of ``--check-updates`` updates, and the max abs
difference of their parameters is recorded (an eager-vs-eager pair gives the reference, 0 if training is
deterministic).

Outputs: ``<out>/<name>.json`` (every run, the summary, the machine's load average at each run) and
``<out>/<name>.md`` (tables). Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compile_update.py --repeats 3 --check --out benchmarks/results
    .venv/bin/python benchmarks/compile_update.py --quick --out /tmp/compile_smoke          # smoke test, minutes
    .venv/bin/python benchmarks/compile_update.py --envs CartPole-v1 --variants eager autotune --repeats 1
    .venv/bin/python benchmarks/compile_update.py --render benchmarks/results/compile_update.json
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
from collections import defaultdict
from pathlib import Path
from typing import Any

RESULT_MARKER = "@@COMPILE_RESULT@@ "
REPO = Path(__file__).resolve().parent.parent
VARIANTS = ("eager", "static", "mark_dynamic", "static_warm", "autotune")
DEFAULT_VARIANTS = ("eager", "static", "mark_dynamic", "static_warm")
ENVS = ("CartPole-v1", "HalfCheetah-v5")
#: timesteps of the zoo's runs (rl_zoo3 ppo.yml: CartPole-v1 n_timesteps 1e5; HalfCheetah at 1e6, SB3's MuJoCo runs)
ZOO_RUN_LENGTH = {"CartPole-v1": 100_000, "HalfCheetah-v5": 1_000_000}
WARMUP_UPDATES = {"CartPole-v1": 3, "HalfCheetah-v5": 2}
STEADY_TIMESTEPS = {"CartPole-v1": 65_536, "HalfCheetah-v5": 20_480}


# ---------------------------------------------------------------------------------------------- worker side


def make_model(env_id: str, seed: int) -> Any:
    """ClipPPO at the setting's hyperparameters (CartPole-v1: rl_zoo3's; HalfCheetah-v5: SB3's defaults)."""
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_ppo_variants import ClipPPO

    if env_id == "CartPole-v1":
        env = make_vec_env(env_id, n_envs=8, seed=seed)

        def linear(initial: float) -> Any:
            return lambda progress_remaining: progress_remaining * initial

        return ClipPPO(
            "MlpPolicy",
            env,
            n_steps=32,
            batch_size=256,
            n_epochs=20,
            gae_lambda=0.8,
            gamma=0.98,
            ent_coef=0.0,
            learning_rate=linear(1e-3),
            clip_range=linear(0.2),
            seed=seed,
            device="cpu",
        )
    env = make_vec_env(env_id, n_envs=1, seed=seed)
    return ClipPPO("MlpPolicy", env, seed=seed, device="cpu")


def compile_minibatch_loss(model: Any, variant: str) -> None:
    """Replace ``model._minibatch_loss`` by its ``torch.compile``d version (the same code, see the module docstring)."""
    import torch as th

    from sb3_ppo_variants._lean import distributions

    if not getattr(distributions, "_compile_benchmark_patched", False):
        check = distributions.lean_distributions_available
        check()  # decided once, eagerly; the traced code then reads the constant
        distributions.lean_distributions_available = th.compiler.assume_constant_result(lambda: check())  # type: ignore[assignment]
        distributions._compile_benchmark_patched = True  # type: ignore[attr-defined]
    options: dict[str, Any] = {"backend": "inductor", "dynamic": None if variant == "mark_dynamic" else False}
    if variant == "autotune":
        options["mode"] = "max-autotune-no-cudagraphs"
    compiled = th.compile(model._minibatch_loss, **options)

    def minibatch_loss(batch: Any, calls: Any, clip_range_vf: Any, stats: dict[str, list[Any]]) -> Any:
        if variant == "mark_dynamic":
            # the minibatch size (dim 0 of every field) symbolic from the first call on
            for field in batch:
                if isinstance(field, th.Tensor) and field.dim() > 0:
                    th._dynamo.mark_dynamic(field, 0)
        # the traced code appends its statistics to an empty dict: appending to the update's growing lists would
        # guard on their length and recompile at every minibatch (up to the recompile limit, then eager)
        local: dict[str, list[Any]] = defaultdict(list)
        # the clip range of this update (a float attribute, changing every update with a schedule) goes in as a
        # 0-dim tensor: dynamo guards a float attribute on its value and would recompile at every update
        clip_range = model._current_clip_range
        if clip_range is not None:
            model._current_clip_range = th.tensor(clip_range)
        try:
            loss, approx_kl = compiled(batch, calls, clip_range_vf, local)
        finally:
            model._current_clip_range = clip_range
        for key, values in local.items():
            stats[key].extend(values)
        return loss, approx_kl

    model._minibatch_loss = minibatch_loss


def dynamo_counts() -> dict[str, int]:
    from torch._dynamo.utils import counters

    return {
        "unique_graphs": int(counters["stats"]["unique_graphs"]),
        "graph_breaks": int(sum(counters["graph_break"].values())),
        "recompiles": int(sum(counters["recompiles"].values())) if "recompiles" in counters else 0,
    }


def run_worker(env_id: str, variant: str, seed: int, warmup_updates: int, steady: int) -> dict[str, Any]:
    import torch as th

    th.set_num_threads(1)
    model = make_model(env_id, seed)
    if variant != "eager":
        compile_minibatch_loss(model, variant)
    per_update = model.n_steps * model.n_envs
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    model.learn(warmup_updates * per_update)
    warm_wall, warm_cpu = time.perf_counter() - t0, time.process_time() - c0
    counts_warm = dynamo_counts() if variant != "eager" else {}
    start = model.num_timesteps
    t0, c0 = time.perf_counter(), time.process_time()
    model.learn(steady, reset_num_timesteps=False)
    steady_wall, steady_cpu = time.perf_counter() - t0, time.process_time() - c0
    steps = model.num_timesteps - start
    return {
        "env": env_id,
        "variant": variant,
        "seed": seed,
        "warmup_timesteps": warmup_updates * per_update,
        "warmup_wall_s": warm_wall,
        "warmup_cpu_s": warm_cpu,
        "steady_timesteps": steps,
        "steady_wall_s": steady_wall,
        "steady_cpu_s": steady_cpu,
        "steps_per_s": steps / steady_wall,
        "dynamo_after_warmup": counts_warm,
        "dynamo_at_end": dynamo_counts() if variant != "eager" else {},
        "load_avg_1min_before": load,
        "load_avg_1min_after": os.getloadavg()[0],
    }


def run_check(env_id: str, seed: int, updates: int) -> dict[str, Any]:
    """Max abs parameter difference after ``learn()`` of ``updates`` updates: eager vs compiled (static), and eager vs
    eager. One ``learn()`` call per model: the schedules run from progress 1 to 0 over it (a ``learn()`` of a single
    update would train at progress 0, i.e. a zero learning rate with the linear schedules)."""
    import torch as th

    th.set_num_threads(1)
    models = {name: make_model(env_id, seed) for name in ("eager", "eager_again", "compiled")}
    compile_minibatch_loss(models["compiled"], "static")
    initial = th.nn.utils.parameters_to_vector(models["eager"].policy.parameters()).detach().clone()
    per_update = models["eager"].n_steps * models["eager"].n_envs
    for model in models.values():
        # the models share the global random generators: re-seed each one (torch, numpy, its envs) before it trains
        model.set_random_seed(seed)
        model.learn(updates * per_update)
    params = {name: th.nn.utils.parameters_to_vector(m.policy.parameters()).detach() for name, m in models.items()}
    return {
        "env": env_id,
        "seed": seed,
        "updates": updates,
        "max_abs_diff_compiled": float((params["compiled"] - params["eager"]).abs().max()),
        "max_abs_diff_eager_again": float((params["eager_again"] - params["eager"]).abs().max()),
        "max_abs_change_from_init": float((params["eager"] - initial).abs().max()),
        "dynamo": dynamo_counts(),
    }


# ---------------------------------------------------------------------------------------------- orchestrator


def spawn(args: list[str], cache_dir: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONPATH": str(REPO),
        "TORCHINDUCTOR_CACHE_DIR": cache_dir,
        "PYTHONWARNINGS": "ignore",
    }
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    raise RuntimeError(f"worker {args} failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")


def summarise(runs: list[dict[str, Any]], env_id: str, variants: list[str]) -> dict[str, Any]:
    by_round: dict[int, dict[str, dict[str, Any]]] = {}
    for run in runs:
        if run["env"] == env_id:
            by_round.setdefault(run["round"], {})[run["variant"]] = run
    eager_sps = statistics.median(r["eager"]["steps_per_s"] for r in by_round.values())
    out: dict[str, Any] = {"eager_steps_per_s": eager_sps, "variants": {}}
    for variant in variants:
        sps = [r[variant]["steps_per_s"] for r in by_round.values() if variant in r]
        if not sps:
            continue
        entry: dict[str, Any] = {
            "steps_per_s_median": statistics.median(sps),
            "steps_per_s_range": [min(sps), max(sps)],
            "speedup_median_of_rounds": statistics.median(
                r[variant]["steps_per_s"] / r["eager"]["steps_per_s"] for r in by_round.values() if variant in r
            ),
            "warmup_wall_s_median": statistics.median(r[variant]["warmup_wall_s"] for r in by_round.values() if variant in r),
        }
        if variant != "eager":
            extra = [r[variant]["warmup_wall_s"] - r["eager"]["warmup_wall_s"] for r in by_round.values() if variant in r]
            compile_s = statistics.median(extra)
            saved_per_step = 1 / eager_sps - 1 / entry["steps_per_s_median"]
            entry["compile_s_median"] = compile_s
            entry["compile_s_range"] = [min(extra), max(extra)]
            entry["saved_us_per_timestep"] = saved_per_step * 1e6
            entry["break_even_timesteps"] = compile_s / saved_per_step if saved_per_step > 0 else None
            zoo = ZOO_RUN_LENGTH[env_id]
            entry["zoo_run_timesteps"] = zoo
            entry["zoo_run_eager_s"] = zoo / eager_sps
            entry["zoo_run_compiled_s"] = compile_s + zoo / entry["steps_per_s_median"]
            entry["dynamo_at_end"] = next(r[variant]["dynamo_at_end"] for r in by_round.values() if variant in r)
        out["variants"][variant] = entry
    return out


def render(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        "# torch.compile of the minibatch loss: compile time against steady-state speed (ClipPPO, CPU)",
        "",
        f"Date: {meta['date_utc']}. Command: `{meta['command']}` (git HEAD {meta['git_head']}). Machine: {meta['machine']}, "
        f"torch {meta['torch']}, one thread. Load average (1, 5, 15 min) at the start {meta['loadavg_start']}, "
        f"at the end {meta['loadavg_end']}; each run's 1-min load is in the JSON.",
        "",
        "Compile time: the extra wall time of the first updates (warm-up) over eager's, median over rounds. "
        "Break-even: the run length (timesteps) beyond which the compiled run, compile included, finishes first. "
        "`static_warm`: inductor's on-disk cache already filled (a second run on the same machine).",
        "",
    ]
    for env_id, summary in report["summary"].items():
        lines += [
            f"## {env_id} (zoo run: {ZOO_RUN_LENGTH[env_id]:.0e} timesteps)",
            "",
            "| variant | steps/s (median, range) | vs eager (median of rounds) | compile time s (range) | "
            "break-even timesteps | zoo run eager s | zoo run compiled s |",
            "|---|---|---|---|---|---|---|",
        ]
        for variant, e in summary["variants"].items():
            lo, hi = e["steps_per_s_range"]
            if variant == "eager":
                zoo_s = ZOO_RUN_LENGTH[env_id] / e["steps_per_s_median"]
                lines.append(f"| eager | {e['steps_per_s_median']:.0f} ({lo:.0f}-{hi:.0f}) | 1.00 | - | - | {zoo_s:.0f} | - |")
                continue
            c_lo, c_hi = e["compile_s_range"]
            be = e["break_even_timesteps"]
            be_text = f"{be:.2e}" if be is not None else "never (not faster)"
            lines.append(
                f"| {variant} | {e['steps_per_s_median']:.0f} ({lo:.0f}-{hi:.0f}) | {e['speedup_median_of_rounds']:.2f} | "
                f"{e['compile_s_median']:.1f} ({c_lo:.1f}-{c_hi:.1f}) | {be_text} | {e['zoo_run_eager_s']:.0f} | "
                f"{e['zoo_run_compiled_s']:.0f} |"
            )
        lines.append("")
        graphs = {v: e.get("dynamo_at_end") for v, e in summary["variants"].items() if v != "eager"}
        lines += [f"Dynamo counters at the end of a run (graphs, graph breaks, recompiles): `{json.dumps(graphs)}`", ""]
    if report.get("checks"):
        lines += [
            "## Numerical agreement (same seed, one `learn()` of a few updates, max abs parameter difference)",
            "",
            "| env | updates | compiled (static) - eager | eager - eager | max abs change of a parameter in training |",
            "|---|---|---|---|---|",
        ]
        for check in report["checks"]:
            lines.append(
                f"| {check['env']} | {check['updates']} | {check['max_abs_diff_compiled']:.2e} | "
                f"{check['max_abs_diff_eager_again']:.2e} | {check['max_abs_change_from_init']:.2e} |"
            )
        lines.append("")
    return "\n".join(lines)


def git_head() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True)
        return head.stdout.strip() + (" (+ uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of round 0 (round i: seed + i)")
    parser.add_argument("--steady", type=int, default=None, help="steady-state timesteps (default per env)")
    parser.add_argument("--check", action="store_true", help="also measure the parameter agreement with eager")
    parser.add_argument("--check-updates", type=int, default=5)
    parser.add_argument(
        "--check-only", action="store_true", help="only the agreement check, added to an existing <out>/<name>.json"
    )
    parser.add_argument("--quick", action="store_true", help="1 round, short steady phase (smoke test)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--name", default="compile_update")
    parser.add_argument("--render", metavar="JSON", help="only re-render the .md of a saved JSON")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        kind, *rest = args.worker
        if kind == "run":
            env_id, variant, seed, warmup, steady = rest
            result = run_worker(env_id, variant, int(seed), int(warmup), int(steady))
        else:
            env_id, seed, updates = rest
            result = run_check(env_id, int(seed), int(updates))
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return

    if args.render:
        report = json.loads(Path(args.render).read_text())
        Path(args.render).with_suffix(".md").write_text(render(report) + "\n")
        print(render(report))
        return

    import torch  # only for the version string

    if args.check_only:
        path = Path(args.out) / f"{args.name}.json"
        report = json.loads(path.read_text())
        with tempfile.TemporaryDirectory(prefix="compile_check_") as tmp:
            new = [spawn(["check", env_id, str(args.seed), str(args.check_updates)], tmp) for env_id in args.envs]
        # replaces earlier checks of the same env and number of updates, keeps the others
        done = {(check["env"], check["updates"]) for check in new}
        report["checks"] = [c for c in report.get("checks", []) if (c["env"], c.get("updates")) not in done] + new
        report["meta"]["check_command"] = " ".join([Path(sys.executable).name, *sys.argv])
        report["meta"]["check_git_head"] = git_head()
        report["meta"]["check_loadavg"] = [round(x, 2) for x in os.getloadavg()]
        path.write_text(json.dumps(report, indent=1) + "\n")
        path.with_suffix(".md").write_text(render(report) + "\n")
        print(render(report))
        return

    if "eager" not in args.variants:
        args.variants.insert(0, "eager")
    repeats = 1 if args.quick else args.repeats
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "meta": {
            "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "git_head": git_head(),
            "machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".replace("  ", " "),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "repeats": repeats,
        },
        "runs": [],
        "summary": {},
        "checks": [],
    }
    for env_id in args.envs:
        steady = args.steady or (STEADY_TIMESTEPS[env_id] // (4 if args.quick else 1))
        for rnd in range(repeats):
            seed = args.seed + rnd
            with tempfile.TemporaryDirectory(prefix="compile_bench_") as tmp:
                for variant in args.variants:
                    # a fresh, empty inductor cache for each compiled run; static_warm reuses this round's static one
                    cache = os.path.join(tmp, "static" if variant in ("static", "static_warm") else variant)
                    if variant == "static_warm" and not os.path.isdir(cache):
                        continue
                    if variant == "static":
                        shutil.rmtree(cache, ignore_errors=True)
                    run = spawn(["run", env_id, variant, str(seed), str(WARMUP_UPDATES[env_id]), str(steady)], cache)
                    run["round"] = rnd
                    report["runs"].append(run)
                    print(
                        f"{env_id} round {rnd} {variant:12s} warm-up {run['warmup_wall_s']:6.1f} s  "
                        f"steady {run['steps_per_s']:7.0f} steps/s  load {run['load_avg_1min_before']:.2f}",
                        flush=True,
                    )
        report["summary"][env_id] = summarise(report["runs"], env_id, args.variants)
        if args.check:
            with tempfile.TemporaryDirectory(prefix="compile_check_") as tmp:
                report["checks"].append(spawn(["check", env_id, str(args.seed), str(args.check_updates)], tmp))
    report["meta"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    text = render(report)
    (out / f"{args.name}.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
