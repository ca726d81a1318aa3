"""The end of a study: best trial, an rl_zoo3 ``zoo_configs`` entry for it, plots and a JSON/CSV record.

Files written to the output directory (each replaced atomically, so that several workers finishing together leave
whole files):

- ``best_zoo_config.yml``: the best trial as an entry of ``zoo_configs/<algo>.yml`` (rl_zoo3's format);
- ``summary.json``: best value, parameters and hyperparameters, trial counts and the reasons of failed trials;
- ``trials.csv``: :meth:`optuna.Study.trials_dataframe` (when pandas is installed);
- ``optimization_history.png``, ``param_importances.png``, ``intermediate_values.png`` (when matplotlib is
  installed; the importances need at least 2 complete trials, and a plot that cannot be drawn is skipped with the
  reason given in the summary).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from sb3_ppo_variants.tuning.budget import Budget
from sb3_ppo_variants.tuning.objective import TrialSettings, json_safe
from sb3_ppo_variants.workers.loop import FAIL_REASON_ATTR, retried_numbers
from sb3_ppo_variants.zoo.samplers import CONVERTERS

logger = logging.getLogger("sb3_ppo_variants.tuning")

ZOO_YAML_FILENAME = "best_zoo_config.yml"
SUMMARY_FILENAME = "summary.json"
TRIALS_FILENAME = "trials.csv"
#: Minimum number of complete trials for the parameter-importance plot.
MIN_TRIALS_FOR_IMPORTANCES = 2


@dataclass
class StudySummary:
    """The outcome of :func:`~sb3_ppo_variants.tuning.run_study`.

    :param study_name: The study
    :param storage: Where it is stored (password masked)
    :param settings: The trial settings of the study
    :param budget: Finished / running / waiting trials against ``n_trials``
    :param state_counts: Number of trials in each Optuna state (retried FAIL trials included)
    :param best_trial: Number of the best complete trial (None if there is none)
    :param best_value: Its value: mean final evaluation return over the seeds
    :param best_params: Its raw parameters (the sampler's transformed space, as ``trial.params``)
    :param best_hyperparams: Its constructor arguments (converted parameters and the fixed hyperparameters)
    :param zoo_yaml: The rl_zoo3 ``zoo_configs`` entry of the best trial, ready to paste (None without a best trial)
    :param failures: ``(number, state, reason)`` of the trials that failed or diverged
    :param files: Files written, by kind
    :param skipped: Outputs that were not written, with the reason
    :param study: The Optuna study itself
    """

    study_name: str
    storage: str
    settings: TrialSettings
    budget: Budget
    state_counts: dict[str, int]
    best_trial: int | None
    best_value: float | None
    best_params: dict[str, Any]
    best_hyperparams: dict[str, Any]
    zoo_yaml: str | None
    failures: list[tuple[int, str, str]]
    files: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    study: optuna.Study | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable description (no secrets)."""
        return {
            "study_name": self.study_name,
            "storage": self.storage,
            "settings": self.settings.to_attr(),
            "n_trials": self.budget.n_trials,
            "finished": self.budget.finished,
            "running": self.budget.running,
            "waiting": self.budget.waiting,
            "retried": self.budget.retried,
            "state_counts": self.state_counts,
            "best_trial": self.best_trial,
            "best_value": self.best_value,
            "best_params": self.best_params,
            "best_hyperparams": {key: json_safe(value) for key, value in self.best_hyperparams.items()},
            "failures": [{"trial": n, "state": state, "reason": reason} for n, state, reason in self.failures],
            "files": {kind: str(path) for kind, path in self.files.items()},
            "skipped": self.skipped,
        }

    def format(self) -> str:
        """The human-readable summary printed at the end of a study."""
        s = self.settings
        target = "no limit" if self.budget.n_trials is None else str(self.budget.n_trials)
        lines = [
            f"Study {self.study_name!r} ({s.algo} on {s.env_id}, {s.n_timesteps} steps x {s.n_seeds} seed(s) per trial)",
            f"  storage: {self.storage}",
            f"  finished trials: {self.budget.finished} of {target}"
            + (f", {self.budget.running} running" if self.budget.running else "")
            + (f", {self.budget.waiting} waiting" if self.budget.waiting else "")
            + "  ("
            + ", ".join(f"{state} {count}" for state, count in self.state_counts.items() if count)
            + ")",
        ]
        if self.budget.retried:
            lines.append(f"  {self.budget.retried} failed trial(s) replaced by a retry")
        lines += [f"  trial {number} {state}: {reason}" for number, state, reason in self.failures]
        if self.best_trial is None:
            lines.append("  no complete trial yet: no best hyperparameters")
        else:
            lines.append(f"  best trial: {self.best_trial}, value {self.best_value:.4g} (mean final evaluation return)")
            lines.append("")
            lines.append(f"zoo_configs/{s.algo}.yml entry (rl_zoo3 format):")
            lines.append(self.zoo_yaml or "")
        lines += [f"  wrote {kind}: {path}" for kind, path in self.files.items()]
        lines += [f"  skipped {kind}: {reason}" for kind, reason in self.skipped.items()]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- zoo entry


def _python_source(value: Any) -> str:
    """Python source for a ``policy_kwargs`` value, as rl_zoo3 evaluates it (with ``nn`` = ``torch.nn``)."""
    from torch import nn

    if isinstance(value, Mapping):
        if all(isinstance(key, str) and key.isidentifier() for key in value):
            return "dict(" + ", ".join(f"{key}={_python_source(item)}" for key, item in value.items()) + ")"
        return "{" + ", ".join(f"{key!r}: {_python_source(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_python_source(item) for item in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, type):
        name = value.__name__
        if getattr(nn, name, None) is value:
            return f"nn.{name}"
        return f"{value.__module__}.{value.__qualname__}"
    return repr(value)


def zoo_entry(settings: TrialSettings, hyperparams: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """An rl_zoo3 hyperparameter entry: ``{env_id: {n_envs, n_timesteps, policy, [normalize], hyperparameters...}}``.

    ``policy_kwargs`` becomes the string rl_zoo3 evaluates (``"dict(net_arch=..., activation_fn=nn.ReLU)"``).

    :param settings: The study's settings (env, n_envs, per-trial budget, policy, normalize)
    :param hyperparams: Constructor arguments of the trial
    """
    entry: dict[str, Any] = {"n_envs": settings.n_envs, "n_timesteps": settings.n_timesteps, "policy": settings.policy}
    if settings.normalize:
        entry["normalize"] = True
    for key, value in hyperparams.items():
        if key == "policy_kwargs":
            entry[key] = _python_source(value)
        elif value is None or isinstance(value, (bool, int, float, str)):
            entry[key] = value
        elif isinstance(value, (list, tuple, Mapping)):
            entry[key] = json_safe(value)
        else:
            raise TypeError(f"hyperparameter {key}={value!r} cannot be written to a YAML config")
    return {settings.env_id: entry}


def render_zoo_yaml(entry: Mapping[str, Any], comment: str) -> str:
    """YAML text of a zoo entry, under ``# comment`` lines (``# Tuned`` first, as in rl_zoo3's files)."""
    header = "".join(f"# {line}\n" for line in ["Tuned", *comment.splitlines()])
    return header + yaml.safe_dump(dict(entry), sort_keys=False, default_flow_style=False, width=127)


# ---------------------------------------------------------------------------------------------------- files


def _write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def _save_figure(plot: Callable[[], Any], path: Path) -> None:
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        axes = plot()
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    figure = first.get_figure()
    try:
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
        figure.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(figure)


def write_plots(study: optuna.Study, output_dir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Optimization history, parameter importances and intermediate values as PNG files.

    :return: ``(written, skipped)``: paths by plot name, and the reason for each plot not drawn
    """
    from optuna.visualization import matplotlib as optuna_mpl

    written: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    plots: dict[str, tuple[Callable[[], Any], str | None]] = {
        "optimization_history": (
            lambda: optuna_mpl.plot_optimization_history(study, target_name="mean final eval return"),
            None if complete else "no complete trial",
        ),
        "param_importances": (
            lambda: optuna_mpl.plot_param_importances(study),
            None
            if len(complete) >= MIN_TRIALS_FOR_IMPORTANCES
            else f"needs at least {MIN_TRIALS_FOR_IMPORTANCES} complete trials, the study has {len(complete)}",
        ),
        "intermediate_values": (
            lambda: optuna_mpl.plot_intermediate_values(study),
            None if any(t.intermediate_values for t in trials) else "no trial reported an evaluation",
        ),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if not optuna_mpl.is_available():
            return written, dict.fromkeys(plots, "matplotlib is not installed (pip install matplotlib)")
    for name, (plot, reason) in plots.items():
        if reason is not None:
            skipped[name] = reason
            continue
        path = output_dir / f"{name}.png"
        try:
            _save_figure(plot, path)
        except Exception as exc:  # a plot must never fail the study
            skipped[name] = f"{type(exc).__name__}: {exc}"
        else:
            written[name] = path
    return written, skipped


def _failures(trials: list[FrozenTrial]) -> list[tuple[int, str, str]]:
    """``(number, state, reason)`` of the failed and diverged trials, with the retry that replaced each, if any."""
    retried_by = retried_numbers(trials)
    failures = []
    for trial in trials:
        reason = trial.user_attrs.get(FAIL_REASON_ATTR)
        if trial.state != TrialState.FAIL and not reason:
            continue
        if not reason:
            # Optuna's heartbeat check fails a stale trial without a reason (a finished trial takes no attribute).
            reason = (
                "no heartbeat from its worker within the grace period" if trial.number in retried_by else "no reason recorded"
            )
        if trial.number in retried_by:
            reason = f"{reason}; retried as trial {retried_by[trial.number]}"
        failures.append((trial.number, trial.state.name, str(reason)))
    return failures


def summarize(
    study: optuna.Study,
    settings: TrialSettings,
    storage: str,
    n_trials: int | None,
    output_dir: Path | None,
    plots: bool = True,
) -> StudySummary:
    """Collect the outcome of a study and, with ``output_dir``, write the files listed in the module docstring.

    :param study: The study
    :param settings: Its trial settings
    :param storage: Its storage, password masked
    :param n_trials: The budget of finished trials (None: unlimited)
    :param output_dir: Where to write the files (None: write nothing)
    :param plots: Draw the PNG plots
    """
    trials = study.get_trials(deepcopy=False)
    counts = {state.name: sum(1 for trial in trials if trial.state == state) for state in TrialState}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best: FrozenTrial | None = study.best_trial if complete else None
    best_hyperparams: dict[str, Any] = {}
    zoo_yaml = None
    if best is not None:
        best_hyperparams = {**CONVERTERS[settings.algo](best.params), **settings.hyperparams}
        comment = (
            f"{settings.env_id}: trial {best.number} of study {study.study_name!r} (sb3-ppo-variants-tune), "
            f"mean final eval return {best.value:.4g}\n"
            f"over {settings.n_seeds} seed(s) of {settings.n_timesteps} steps; raise n_timesteps for a full run"
        )
        zoo_yaml = render_zoo_yaml(zoo_entry(settings, best_hyperparams), comment)
    summary = StudySummary(
        study_name=study.study_name,
        storage=storage,
        settings=settings,
        budget=Budget.of(trials, n_trials),
        state_counts=counts,
        best_trial=None if best is None else best.number,
        best_value=None if best is None else best.value,
        best_params={} if best is None else dict(best.params),
        best_hyperparams=best_hyperparams,
        zoo_yaml=zoo_yaml,
        failures=_failures(trials),
        study=study,
    )
    if output_dir is None:
        return summary
    output_dir.mkdir(parents=True, exist_ok=True)
    if zoo_yaml is not None:
        summary.files["zoo_config"] = _write_text(output_dir / ZOO_YAML_FILENAME, zoo_yaml)
    else:
        summary.skipped["zoo_config"] = "no complete trial"
    try:
        frame = study.trials_dataframe()
    except ImportError:
        summary.skipped["trials_csv"] = "pandas is not installed"
    else:
        summary.files["trials_csv"] = _write_text(output_dir / TRIALS_FILENAME, frame.to_csv(index=False))
    if plots:
        written, skipped = write_plots(study, output_dir)
        summary.files.update(written)
        summary.skipped.update(skipped)
    path = output_dir / SUMMARY_FILENAME
    summary.files["summary"] = path
    _write_text(path, json.dumps(summary.to_json(), indent=2) + "\n")
    return summary
