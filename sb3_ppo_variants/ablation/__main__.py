"""``python -m sb3_ppo_variants.ablation`` (also ``sb3-ppo-variants-ablation``): the PPO paper's Table 1 ablation.

Run a preset (rerun the same command to resume after an interruption; several copies, or several machines with the
same ``--storage`` and ``--study-name``, share the grid)::

    python -m sb3_ppo_variants.ablation --preset small --workers 2
    python -m sb3_ppo_variants.ablation run --preset full --workers 16 --storage postgresql+psycopg2://user@db/optuna

Other commands::

    python -m sb3_ppo_variants.ablation report --preset small     # table and plots from the study (even partial)
    python -m sb3_ppo_variants.ablation report --results logs/ablation/small/results.json
    python -m sb3_ppo_variants.ablation status --preset small     # what is done, running, failed
    python -m sb3_ppo_variants.ablation probe                     # steps/s per env, and each preset's expected cost
    python -m sb3_ppo_variants.ablation list                      # presets and settings
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import optuna

from sb3_ppo_variants.ablation.grid import ALL_SETTINGS, GRIDS, PAPER_ENVS, GridSpec, estimate_seconds, get_grid
from sb3_ppo_variants.cli_args import int_argument, timesteps_argument
from sb3_ppo_variants.workers.loop import PROGRESS_ATTR, sigterm_interrupts
from sb3_ppo_variants.workers.storage import StorageError, open_storage, resolve_storage

PROG = "python -m sb3_ppo_variants.ablation"
COMMANDS = ("run", "report", "status", "probe", "list")


class CLIError(Exception):
    """Bad command-line input: printed as ``error: ...`` with exit status 2."""


_positive_int = int_argument(1)
_seed = int_argument(0, "a seed (an int >= 0)")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def _add_location(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="small", choices=list(GRIDS), help="the grid (default: small)")
    parser.add_argument("-o", "--output-dir", type=Path, help="results, table, plots, journal (default: logs/ablation/PRESET)")
    parser.add_argument(
        "--storage",
        help="Optuna storage shared by all workers: a journal file path (default: OUTPUT_DIR/study.journal) or a "
        "database URL (postgresql+psycopg2://..., mysql+pymysql://..., sqlite:///...)",
    )
    parser.add_argument("--study-name", help="the study in the storage (default: ablation-PRESET)")


def _add_grid(parser: argparse.ArgumentParser) -> None:
    names = [s.name for s in ALL_SETTINGS]
    grid = parser.add_argument_group("grid overrides (the stored grid must match on resume)")
    grid.add_argument("--settings", nargs="+", choices=names, metavar="SETTING", help=f"subset of: {' '.join(names)}")
    grid.add_argument("--envs", nargs="+", metavar="ENV", help="Gymnasium ids (e.g. Hopper-v5)")
    grid.add_argument("--seeds", nargs="+", type=_seed, metavar="SEED", help="seeds (ints >= 0)")
    grid.add_argument("--timesteps", type=timesteps_argument, help="training steps per job (1e6 works)")
    grid.add_argument("--random-episodes", type=_positive_int, help="episodes of the random policy per env")


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser (``run`` is the default command)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Reproduce the PPO paper's Table 1 (arXiv 1707.06347): 11 surrogate-objective settings x MuJoCo "
        "envs x seeds, each run an Optuna grid trial; rerun the same command to resume.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run (or resume, or join) the grid, then write the report (default command)")
    _add_location(run)
    _add_grid(run)
    run.add_argument("-w", "--workers", type=_positive_int, default=1, help="worker processes on this machine (default 1)")
    run.add_argument("--no-wait", action="store_true", help="exit when nothing is left to start, even if jobs run elsewhere")
    run.add_argument(
        "--stale-after",
        type=_seconds,
        default=600.0,
        help="seconds without heartbeat before another machine's running job is re-run (default 600)",
    )
    run.add_argument("--heartbeat-interval", type=_seconds, default=30.0, help="seconds between heartbeats (default 30)")
    run.add_argument("--max-failures", type=_positive_int, default=3, help="failed attempts before a job is given up")
    run.add_argument("--progress-interval", type=_seconds, default=60.0, help="seconds between progress lines (0: none)")
    run.add_argument("--no-report", action="store_true", help="do not write the results file, table and plots")
    run.add_argument("--device", default="cpu", help="torch device of the models (default cpu: small MLPs)")

    report = sub.add_parser("report", help="write results.json, table.md and the plots from the study or a results file")
    _add_location(report)
    report.add_argument("--results", type=Path, help="a results.json to report on, instead of the study")
    report.add_argument("--reps", type=_positive_int, default=2000, help="bootstrap resamples (default 2000)")

    status = sub.add_parser("status", help="print which jobs are done, running, failed or missing")
    _add_location(status)

    probe = sub.add_parser("probe", help="measure training steps/s per env and estimate each preset's wall time")
    probe.add_argument("--envs", nargs="+", metavar="ENV", default=list(PAPER_ENVS), help="default: the paper's 7")
    probe.add_argument("--timesteps", type=timesteps_argument, default=4096, help="timed steps per measurement (default 4096)")
    probe.add_argument("--workers", type=_positive_int, default=2, help="workers to estimate the presets' cost for")

    sub.add_parser("list", help="print the presets and the settings")
    return parser


def _normalise_argv(argv: Sequence[str]) -> list[str]:
    """``run`` is the default command: insert it unless a command (or top-level help) comes first."""
    argv = list(argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv.insert(0, "run")
    return argv


def _check_envs(env_ids: Sequence[str]) -> None:
    import gymnasium as gym

    for env_id in env_ids:
        try:
            gym.spec(env_id)
        except Exception as exc:
            raise CLIError(f"unknown environment {env_id!r}: {exc}") from None


def _location(args: argparse.Namespace) -> tuple[Path, str | None, str]:
    output_dir = args.output_dir or Path("logs") / "ablation" / args.preset
    return output_dir, args.storage, args.study_name or f"ablation-{args.preset}"


def _spec(args: argparse.Namespace) -> GridSpec:
    spec = get_grid(args.preset).spec.with_overrides(
        settings=args.settings,
        envs=args.envs,
        seeds=args.seeds,
        timesteps=args.timesteps,
        random_episodes=args.random_episodes,
    )
    _check_envs(spec.envs)
    return spec


def _cmd_run(args: argparse.Namespace) -> int:
    from sb3_ppo_variants.ablation.runner import WorkerOptions, run_ablation

    try:
        spec = _spec(args)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    cpus = os.cpu_count() or 1
    if args.workers > cpus:
        print(f"warning: {args.workers} workers on {cpus} CPU cores: jobs will share cores and each will run slower")
    n_steps = int(spec.hyperparams["n_steps"])
    if spec.timesteps % n_steps:
        rounded = -(-spec.timesteps // n_steps) * n_steps
        print(f"note: SB3 trains whole rollouts of {n_steps} steps: each job trains {rounded:,} steps")
    output_dir, storage, study_name = _location(args)
    options = WorkerOptions(
        wait=not args.no_wait,
        stale_after=args.stale_after,
        heartbeat_interval=args.heartbeat_interval,
        max_failures=args.max_failures,
        poll_interval=min(10.0, max(1.0, args.heartbeat_interval)),
        device=args.device,
    )
    try:
        summary = run_ablation(
            spec,
            output_dir,
            storage=storage,
            study_name=study_name,
            workers=args.workers,
            options=options,
            progress_interval=args.progress_interval,
            report=not args.no_report,
        )
    except ValueError as exc:  # another grid in the study, a bad storage
        raise CLIError(str(exc)) from None
    return 1 if summary.given_up else 0


def _load_study(args: argparse.Namespace) -> tuple[optuna.Study, GridSpec, str]:
    """The existing study of the command's location, its grid, and where it is (a CLIError if there is none)."""
    from sb3_ppo_variants.ablation.runner import GRID_ATTR

    output_dir, storage, study_name = _location(args)
    spec = resolve_storage(storage, output_dir)
    if spec.kind == "journal" and not Path(spec.location).exists():
        raise CLIError(f"no study journal at {spec.location}: run the grid first, or pass --storage")
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(spec))
    except KeyError:
        raise CLIError(f"No study {study_name!r} in {spec.display}") from None
    if GRID_ATTR not in study.user_attrs:
        raise CLIError(f"Study {study_name!r} in {spec.display} is not an ablation study (no {GRID_ATTR!r})")
    return study, GridSpec.from_dict(study.user_attrs[GRID_ATTR]), spec.display


def _cmd_report(args: argparse.Namespace) -> int:
    from sb3_ppo_variants.ablation.report import load_results, write_report
    from sb3_ppo_variants.ablation.runner import collect_results

    output_dir = _location(args)[0]
    if args.results is not None:
        try:
            results = load_results(args.results)
        except (FileNotFoundError, ValueError) as exc:
            raise CLIError(str(exc)) from None
        output_dir = args.output_dir or args.results.parent
    else:
        study, spec, where = _load_study(args)
        results = collect_results(study, spec, study.study_name, where)
    write_report(results, output_dir, reps=args.reps)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from sb3_ppo_variants.ablation.runner import grid_state

    study, spec, where = _load_study(args)
    state = grid_state(study, spec)
    print(f"study {study.study_name!r} in {where}: {spec.n_jobs} jobs, {state.n_trials} trials")
    for (setting, env_id, seed), point in state.points.items():
        if point.complete:
            trial = min(point.complete, key=lambda t: t.number)
            what = f"done     score {trial.user_attrs.get('score', float('nan')):10.1f}  (trial {trial.number})"
        elif point.running:
            trial = point.running[0]
            what = f"running  {int(trial.user_attrs.get(PROGRESS_ATTR, 0)):,}/{spec.timesteps:,} steps (trial {trial.number})"
        elif point.waiting:
            what = "queued"
        else:
            what = "todo"
        if point.failed:
            what += f"  [{len(point.failed)} failed attempt(s)]"
        print(f"  {setting:18s} {env_id:28s} seed {seed}: {what}")
    print(f"{state.count('complete')}/{spec.n_jobs} done, {state.count('running')} running")
    return 0


def _cmd_probe(args: argparse.Namespace) -> int:
    from sb3_ppo_variants.ablation.runner import _duration, probe_throughput

    _check_envs(args.envs)
    rates = probe_throughput(list(args.envs), args.timesteps)
    print(f"\nExpected wall time with {args.workers} worker(s), one core each, at these rates:")
    for name, grid in GRIDS.items():
        missing = [env for env in grid.spec.envs if env not in rates]
        if missing:
            print(f"  {name:6s} (not estimated: no measurement for {', '.join(missing)})")
            continue
        seconds = estimate_seconds(grid.spec, rates, args.workers)  # type: ignore[arg-type]
        steps = grid.spec.total_timesteps
        print(f"  {name:6s} {grid.spec.n_jobs:4d} jobs, {steps:>12,} steps: {_duration(seconds)}")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    print("Presets:")
    for name, grid in GRIDS.items():
        print(f"  {name:6s} {grid.description}")
    print("\nSettings (the rows of the paper's Table 1, then rows the paper does not have):")
    for setting in ALL_SETTINGS:
        kwargs = ", ".join(f"{k}={v}" for k, v in setting.kwargs.items())
        paper = f"{setting.paper_score:.2f}" if math.isfinite(setting.paper_score) else "-"
        print(f"  {setting.name:20s} {setting.label:30s} {setting.algo}({kwargs})  paper: {paper}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 jobs given up after failures, 2 bad input, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(_normalise_argv(sys.argv[1:] if argv is None else argv))
    commands = {"run": _cmd_run, "report": _cmd_report, "status": _cmd_status, "probe": _cmd_probe, "list": _cmd_list}
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # the workers print their own lines, tracebacks included
    try:
        with sigterm_interrupts():  # a kill fails the running trial cleanly
            return commands[args.command](args)
    except (CLIError, StorageError) as exc:
        parser.exit(2, f"{PROG}: error: {exc}\n")
    except KeyboardInterrupt:
        print("\n[ablation] interrupted: rerun the same command to resume (finished jobs are kept)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
