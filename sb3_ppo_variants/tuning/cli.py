"""``sb3-ppo-variants-tune`` (also ``python -m sb3_ppo_variants.tuning``): tune one algorithm on one env with Optuna.

Embedded (a journal file in the output directory; rerun the same command to continue after an interruption)::

    sb3-ppo-variants-tune --algo clip_ppo --env CartPole-v1 --n-trials 50 --n-timesteps 50000

Shared by several workers and machines through a database; the URL is read from an environment variable so that
its password stays off the command line, and it is never printed::

    export OPTUNA_DB='postgresql://optuna:secret@db.example.org:5432/optuna'
    sb3-ppo-variants-tune --algo kl_ppo --env CartPole-v1 --n-trials 100 --study-name kl-cartpole --storage env:OPTUNA_DB

Every option is a parameter of :func:`sb3_ppo_variants.tuning.run_study`.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from sb3_ppo_variants.cli_args import int_argument, timesteps_argument
from sb3_ppo_variants.workers.loop import sigterm_interrupts
from sb3_ppo_variants.workers.storage import STORAGE_ENV_VAR

PROG = "sb3-ppo-variants-tune"


_trial_count = int_argument(1, "an int >= 1 or 'none'")


def _n_trials(text: str) -> int | None:
    return None if text.lower() in ("none", "inf") else _trial_count(text)


def _optional_int(text: str) -> int | None:
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or 'none', got {text!r}") from None


def parse_hyperparams(items: Sequence[str]) -> dict[str, Any]:
    """``["learning_rate=3e-4", "n_epochs:5"]`` to ``{"learning_rate": 0.0003, "n_epochs": 5}``.

    A value is a Python literal (number, bool, None, string, list, dict) when it parses as one, else the string
    itself (``lin_0.001``). ``key:value`` (rl_zoo3's spelling) is accepted as well as ``key=value``.

    :raises ValueError: naming ``--hyperparams`` for an item without a separator or with an empty key
    """
    hyperparams: dict[str, Any] = {}
    for item in items:
        separators = [index for index in (item.find("="), item.find(":")) if index > 0]
        if not separators:
            raise ValueError(f"--hyperparams: expected key=value, got {item!r}")
        cut = min(separators)
        key, text = item[:cut].strip(), item[cut + 1 :].strip()
        if not key.isidentifier():
            raise ValueError(f"--hyperparams: {key!r} (from {item!r}) is not a parameter name")
        try:
            hyperparams[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            hyperparams[key] = text
    return hyperparams


class _DefaultsOnce(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: ...)" after each help text, except where the text already says its default, or where
    the default is None, False or empty (then the text says what happens without the option)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "(default" in text or action.default in (None, False, []) or action.default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sb3-ppo-variants-tune``."""
    from sb3_ppo_variants import ALGOS
    from sb3_ppo_variants.tuning.study import PRUNER_NAMES, SAMPLER_NAMES

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Tune ClipPPO, KLPenaltyPPO or REINFORCE on one environment with Optuna. Rerun the same command "
        "to continue the study: only the missing trials run.",
        formatter_class=_DefaultsOnce,
    )
    study = parser.add_argument_group("study")
    study.add_argument("--algo", required=True, choices=list(ALGOS), help="algorithm")
    study.add_argument("--env", required=True, dest="env_id", help="Gymnasium environment id")
    study.add_argument(
        "--n-trials",
        type=_n_trials,
        default=100,
        help="finished trials the study should hold, all workers together ('none': no limit)",
    )
    study.add_argument(
        "--timeout", type=float, default=None, help="seconds after which this worker starts no new trial (default: no limit)"
    )
    study.add_argument(
        "--n-timesteps",
        type=timesteps_argument,
        default=100_000,
        dest="n_timesteps_per_trial",
        help="training steps per trial and seed",
    )
    study.add_argument("--n-seeds", type=int, default=1, help="seeds per trial (objective: mean final return over seeds)")
    study.add_argument("--n-envs", type=int, default=8, help="parallel training environments")
    study.add_argument("--eval-freq", type=int, default=None, help="steps between evaluations (default: 5 per seed)")
    study.add_argument("--n-eval-episodes", type=int, default=5, help="episodes per evaluation")
    study.add_argument(
        "--hyperparams",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="constructor arguments fixed for every trial (Python literals), e.g. n_epochs=5 policy=MlpPolicy "
        "(default: none, all sampled)",
    )
    study.add_argument("--normalize", action="store_true", help="wrap the envs in VecNormalize")
    study.add_argument("--seed", type=int, default=0, help="first training seed (the same seeds for every trial)")
    search = parser.add_argument_group("search")
    search.add_argument("--sampler", choices=SAMPLER_NAMES, default="tpe", help="Optuna sampler")
    search.add_argument("--pruner", choices=PRUNER_NAMES, default="median", help="Optuna pruner")
    search.add_argument(
        "--n-startup-trials", type=int, default=10, help="random trials before TPE, and finished trials before pruning"
    )
    search.add_argument(
        "--sampler-seed", type=int, default=None, help="sampler seed (single worker only; default: none, a random seed)"
    )
    storage = parser.add_argument_group("storage and workers")
    storage.add_argument(
        "--storage",
        default=None,
        help=f"database URL, journal file, or env:VARNAME (default: ${STORAGE_ENV_VAR} if set, else "
        "OUTPUT_DIR/study.journal); a password is never printed",
    )
    storage.add_argument("--study-name", default=None, help="study name (default: ALGO-ENV)")
    storage.add_argument(
        "-o",
        "--output-dir",
        default=None,
        help="journal, summary, YAML entry and plots (default: logs/tuning/STUDY_NAME, or STUDY_NAME-2, -3 ... beside it "
        "when it holds another study's results; a given directory holding them is refused)",
    )
    storage.add_argument(
        "--heartbeat-interval", type=_optional_int, default=60, help="seconds between heartbeats ('none': off)"
    )
    storage.add_argument(
        "--grace-period",
        type=int,
        default=None,
        help="seconds without heartbeat before a trial is stale (default: 2x interval)",
    )
    storage.add_argument(
        "--max-retry", type=_optional_int, default=2, help="retries of a trial whose worker died ('none': no limit)"
    )
    storage.add_argument(
        "--no-wait", action="store_true", help="exit when nothing is left to start, without waiting for other workers' trials"
    )
    run = parser.add_argument_group("run")
    run.add_argument("--device", default="cpu", help="torch device")
    run.add_argument("--num-threads", type=int_argument(0), default=1, help="torch threads per worker (0: torch's default)")
    run.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    run.add_argument("-q", "--quiet", action="store_true", help="only warnings and the final summary")
    run.add_argument("-v", "--verbose", action="store_true", help="debug lines too")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sb3-ppo-variants-tune``; return the exit status (0 ok, 1 storage error, 2 bad arguments, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    logging.basicConfig(format="%(asctime)s %(message)s", datefmt="%H:%M:%S", level=logging.WARNING)
    verbose = 0 if args.quiet else (2 if args.verbose else 1)
    logging.getLogger("sb3_ppo_variants.tuning").setLevel(
        logging.WARNING if verbose == 0 else (logging.DEBUG if verbose == 2 else logging.INFO)
    )

    import optuna
    import torch

    from sb3_ppo_variants.tuning.study import run_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    try:
        hyperparams = parse_hyperparams(args.hyperparams)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        with sigterm_interrupts():  # SIGTERM: the trial is failed and retried
            same_names = {key: value for key, value in vars(args).items() if key in inspect.signature(run_study).parameters}
            extra = {"wait_for_running": not args.no_wait, "plots": not args.no_plots, "verbose": verbose}
            summary = run_study(**{**same_names, "hyperparams": hyperparams, **extra})
    except (ValueError, TypeError) as exc:
        parser.error(str(exc))
    except RuntimeError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; run the same command again to continue the study", file=sys.stderr)
        return 130
    print(summary.format())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
