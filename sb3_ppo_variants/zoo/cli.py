"""``sb3-ppo-variants-zoo``: rl_zoo3's own command line, with our algorithms registered.

The same sub-commands as rl_zoo3 2.9.2's ``rl_zoo3`` command (``train``, ``enjoy``, ``plot_train``,
``plot_from_file``, ``all_plots``) plus ``record_video`` (``python -m rl_zoo3.record_video``). The arguments go
unchanged to rl_zoo3's own entry points, after :func:`~sb3_ppo_variants.zoo.register_zoo`::

    sb3-ppo-variants-zoo train --algo kl_ppo --env CartPole-v1 -f logs
    sb3-ppo-variants-zoo enjoy --algo kl_ppo --env CartPole-v1 -f logs
    sb3-ppo-variants-zoo train --algo kl_ppo --env CartPole-v1 -optimize --n-trials 50 \\
        --storage logs/study.log --study-name kl_cartpole
    sb3-ppo-variants-zoo train --algo kl_ppo --env CartPole-v1 --storage logs/study.log \\
        --study-name kl_cartpole --trial-id 7

Two additions: for ``train`` with one of our algorithms and no ``-conf``/``--conf-file``, the hyperparameters come
from the file shipped in the package, ``zoo_configs/<algo>.yml`` (rl_zoo3 would look for its own
``hyperparams/<algo>.yml``, which does not exist for our names); and ``train -n/--n-timesteps`` must be a number of
steps >= 1 or -1 (rl_zoo3's default: the file's ``n_timesteps``), where rl_zoo3 itself silently trains the file's
whole budget for 0 or any negative number. Also available as ``python -m sb3_ppo_variants.zoo``.
"""

from __future__ import annotations

import argparse
import importlib.resources
import runpy
import sys
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import NamedTuple

from sb3_ppo_variants.registry import ZOO_ALGOS
from sb3_ppo_variants.zoo.registration import register_zoo, zoo_config

PROG = "sb3-ppo-variants-zoo"


class Command(NamedTuple):
    """A sub-command: how to run it (it reads ``sys.argv``) and a one-line description."""

    run: Callable[[], None]
    help: str


def _train() -> None:
    from rl_zoo3.train import train

    train()


def _enjoy() -> None:
    from rl_zoo3.enjoy import enjoy

    enjoy()


def _plot_train() -> None:
    from rl_zoo3.plots import plot_train

    plot_train()


def _plot_from_file() -> None:
    from rl_zoo3.plots import plot_from_file

    plot_from_file()


def _all_plots() -> None:
    from rl_zoo3.plots import all_plots

    all_plots()


def _record_video() -> None:
    # rl_zoo3.record_video is a script (its code sits under `if __name__ == "__main__"`), not a function.
    runpy.run_module("rl_zoo3.record_video", run_name="__main__")


COMMANDS: dict[str, Command] = {
    "train": Command(_train, "train an agent, or tune its hyperparameters with -optimize (rl_zoo3.train)"),
    "enjoy": Command(_enjoy, "load a trained agent and run it (rl_zoo3.enjoy)"),
    "record_video": Command(_record_video, "record a video of a trained agent (rl_zoo3.record_video)"),
    "plot_train": Command(_plot_train, "plot training curves (rl_zoo3.plots.plot_train)"),
    "plot_from_file": Command(_plot_from_file, "plot results saved by all_plots (rl_zoo3.plots.plot_from_file)"),
    "all_plots": Command(_all_plots, "plot evaluation results of several runs (rl_zoo3.plots.all_plots)"),
}


def usage() -> str:
    """The top-level help text."""
    lines = [
        f"usage: {PROG} COMMAND [ARGS...]",
        "",
        f"rl_zoo3's command line with ClipPPO, KLPenaltyPPO, REINFORCE and their masked variants registered as "
        f"--algo {', '.join(ZOO_ALGOS)}.",
        f"`{PROG} COMMAND --help` lists a command's arguments (they are rl_zoo3's, unchanged).",
        "",
        "commands:",
        *(f"  {name:<15} {command.help}" for name, command in COMMANDS.items()),
        "",
        "train: with one of our algorithms and no -conf/--conf-file, the hyperparameters are read from the file",
        "shipped in the package, zoo_configs/<algo>.yml.",
    ]
    return "\n".join(lines)


class _PeekError(Exception):
    """The partial parse of the train arguments failed; rl_zoo3's full parser will report the problem."""


class _PeekParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _PeekError(message)


def peek_train_args(args: Sequence[str]) -> tuple[str | None, bool]:
    """The ``--algo`` of train arguments and whether they name a hyperparameter file, as rl_zoo3 will parse them.

    Uses argparse with rl_zoo3's option strings (``--algo``, ``-conf``/``--conf-file``), so every spelling it accepts
    (``--algo=x``, unambiguous prefixes such as ``--conf``) is understood the same way.

    :param args: The arguments after ``train``
    :return: ``(algo, has_config)``; ``algo`` is rl_zoo3's default ``"ppo"`` when not given, ``None`` when the
        arguments do not parse (rl_zoo3 then reports the error itself)
    """
    parser = _PeekParser(add_help=False, exit_on_error=False)
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("-conf", "--conf-file", dest="conf_file", default=None)
    try:
        known, _ = parser.parse_known_args(list(args))
    except (_PeekError, argparse.ArgumentError):
        return None, False
    return known.algo, known.conf_file is not None


def check_train_args(args: Sequence[str]) -> str | None:
    """The error of train arguments that rl_zoo3 would accept and misread, or None.

    ``-n/--n-timesteps`` 0 or below -1: rl_zoo3 trains the config's whole budget for any value <= 0 without a word;
    only -1, its default, means that. Values that are not ints are left to rl_zoo3's parser, which reports them.

    :param args: The arguments after ``train``
    """
    parser = _PeekParser(add_help=False, exit_on_error=False)
    parser.add_argument("-n", "--n-timesteps", dest="n_timesteps", default="-1")
    try:
        known, _ = parser.parse_known_args(list(args))
        n_timesteps = int(known.n_timesteps)
    except (_PeekError, argparse.ArgumentError, ValueError):
        return None
    if n_timesteps < 1 and n_timesteps != -1:
        return (
            f"argument -n/--n-timesteps: expected a number of steps >= 1, or -1 for the config's n_timesteps (rl_zoo3 "
            f"would train the whole budget of the config), got {n_timesteps}"
        )
    return None


def with_default_config(args: Sequence[str], stack: ExitStack) -> list[str]:
    """Train arguments with ``--conf-file <our zoo_configs/<algo>.yml>`` put first, when they need it.

    Unchanged when the algorithm is not ours or a hyperparameter file is given.

    :param args: The arguments after ``train``
    :param stack: Keeps the file available on disk (:func:`importlib.resources.as_file`) while it is open
    :return: The arguments to pass to rl_zoo3's ``train``
    """
    algo, has_config = peek_train_args(args)
    if has_config or algo not in ZOO_ALGOS:
        return list(args)
    path = stack.enter_context(importlib.resources.as_file(zoo_config(algo)))
    return ["--conf-file", str(path), *args]


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``sb3-ppo-variants-zoo COMMAND [ARGS...]``: register our algorithms, then run rl_zoo3's COMMAND on ARGS.

    :param argv: The arguments after the program name (default: ``sys.argv[1:]``)
    :raises SystemExit: 0 after ``--help``; 2 for a missing or unknown command, or a train budget
        (:func:`check_train_args`) that rl_zoo3 would misread
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if args else sys.stderr)
        raise SystemExit(0 if args else 2)
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"{usage()}\n\n{PROG}: error: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(2)
    if name == "train" and (problem := check_train_args(rest)) is not None:
        print(f"{PROG} train: error: {problem}", file=sys.stderr)
        raise SystemExit(2)
    register_zoo()
    saved_argv = sys.argv
    with ExitStack() as stack:
        if name == "train":
            rest = with_default_config(rest, stack)
        # rl_zoo3's scripts parse sys.argv; the program name shows as "sb3-ppo-variants-zoo train" in their usage.
        sys.argv = [f"{PROG} {name}", *rest]
        try:
            COMMANDS[name].run()
        finally:
            sys.argv = saved_argv
