"""The ablation's results: the results file, normalised scores, the Table 1 layout, and the plots.

- **Results file** (``results.json``, written by :func:`write_report` from
  :func:`sb3_ppo_variants.ablation.runner.collect_results`): the grid, each env's random-policy score, and one
  record per job (setting, env, seed, steps, score, learning curve, wall time, trial), plus the missing and failed
  points. Everything else is computed from it (``python -m sb3_ppo_variants.ablation report --results FILE``).
- **Normalisation** (:func:`normalise`), as in the paper: per env, a run's score ``s`` becomes
  ``(s - random) / (best - random)``, with ``random`` the mean return of a uniform random policy and ``best`` the
  best setting's score on that env (its mean over seeds). So the random policy is 0 and the best setting is 1.
- **Aggregation** (:func:`summarise`) per setting over all its runs (seeds x envs): the paper's plain mean, and the
  interquartile mean (IQM), each with a 95% stratified-bootstrap confidence interval from ``rliable`` (runs are
  resampled within each env).
- **Table** (:func:`markdown_report`) in the layout of the paper's Table 1, with the paper's numbers next to ours,
  and the raw scores per env. **Plots**: learning curves, one panel per env with each setting's mean over seeds and
  its 95% bootstrap band (:func:`plot_learning_curves`), and the aggregate scores with their intervals
  (:func:`plot_scores`).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sb3_ppo_variants.ablation.grid import ALL_GROUPS, GROUPS, GridSpec, settings_in_table_order

if TYPE_CHECKING:
    import pandas as pd

#: Identifies the format of ``results.json``.
RESULTS_FORMAT = "sb3_ppo_variants.ablation.results/1"
#: Bootstrap resamples of the table's confidence intervals, and of the learning curves' bands.
TABLE_REPS = 2000
CURVE_REPS = 500
#: Points of each learning curve on the common grid of steps.
CURVE_POINTS = 100

Log = Callable[[str], None]


# ---------------------------------------------------------------------------------------------------- results file


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write ``data`` as JSON atomically (a temporary file renamed), so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(_dumps(data) + "\n")
    os.replace(tmp, path)
    return path


def _dumps(data: dict[str, Any]) -> str:
    """JSON with one line per top-level key, and one line per item of a top-level list (a job and its curve)."""
    parts = []
    for key, value in data.items():
        if isinstance(value, list) and value:
            items = ",\n  ".join(json.dumps(item) for item in value)
            parts.append(f"{json.dumps(key)}: [\n  {items}\n ]")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value)}")
    return "{\n " + ",\n ".join(parts) + "\n}"


def load_results(path: str | Path) -> dict[str, Any]:
    """Read a results file written by :func:`write_report` (a ValueError if it is not one)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"No results file at {path}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != RESULTS_FORMAT:
        raise ValueError(f"{path} is not an ablation results file (expected format {RESULTS_FORMAT!r})")
    return data


# ---------------------------------------------------------------------------------------------------- normalisation


def job_frame(results: dict[str, Any]) -> pd.DataFrame:
    """One row per job: setting, env, seed, score, timesteps, n_episodes, wall_time_s, diverged."""
    import pandas as pd

    columns = ["setting", "env", "seed", "score", "timesteps", "n_episodes", "wall_time_s", "diverged"]
    rows = [
        {**{key: job[key] for key in columns if key in job}, "diverged": job.get("diverged_at") is not None}
        for job in results["jobs"]
    ]
    return pd.DataFrame(rows, columns=columns)


def normalise(frame: pd.DataFrame, random_scores: dict[str, float]) -> pd.DataFrame:
    """Add ``random``, ``best`` and ``normalised`` columns: ``(score - random) / (best - random)`` per env.

    ``best`` is the best setting's mean score over seeds on the env. Where ``best <= random`` (no setting beats the
    random policy) the env cannot be normalised: ``normalised`` is NaN.

    :param frame: Rows with ``setting``, ``env``, ``score``
    :param random_scores: The random policy's mean return per env
    """
    missing = sorted(set(frame["env"]) - set(random_scores))
    if missing:
        raise ValueError(f"No random-policy score for env(s) {missing}")
    frame = frame.copy()
    setting_means = frame.groupby(["env", "setting"])["score"].mean()
    best = setting_means.groupby(level="env").max()
    frame["random"] = frame["env"].map(random_scores).astype(float)
    frame["best"] = frame["env"].map(best).astype(float)
    span = frame["best"] - frame["random"]
    frame["normalised"] = np.where(span > 0, (frame["score"] - frame["random"]) / span.where(span > 0, 1.0), np.nan)
    return frame


@dataclass
class SettingSummary:
    """One row of the table: a setting's aggregate normalised score.

    :param name: Setting name
    :param label: Row text
    :param group: Row group
    :param paper: The paper's score
    :param n_runs: Runs with a normalised score (runs on envs that cannot be normalised are left out)
    :param mean: Plain mean over runs (the paper's aggregate)
    :param mean_ci: 95% stratified-bootstrap interval of the mean (NaNs if the grid is incomplete)
    :param iqm: Interquartile mean over runs (NaN if the grid is incomplete)
    :param iqm_ci: Its 95% interval
    :param diverged: Runs whose training diverged
    :param n_total: All finished runs of the setting
    """

    name: str
    label: str
    group: str
    paper: float
    n_runs: int
    mean: float
    mean_ci: tuple[float, float]
    iqm: float
    iqm_ci: tuple[float, float]
    diverged: int
    n_total: int = 0


def summarise(results: dict[str, Any], reps: int = TABLE_REPS, seed: int = 0) -> tuple[list[SettingSummary], pd.DataFrame]:
    """Per setting: plain mean and IQM of the normalised scores with rliable's bootstrap intervals.

    rliable needs a full (seeds x envs) matrix per setting; a setting with a missing run (an unfinished grid) gets
    only its plain mean. Envs that cannot be normalised (see :func:`normalise`) are left out.

    :return: the rows in table order, and the normalised job frame
    """
    from rliable import library as rly
    from rliable import metrics

    spec = GridSpec.from_dict(results["grid"])
    frame = job_frame(results)
    random_scores = {env: float(score["mean"]) for env, score in results["random_scores"].items()}
    normalised = frame.assign(random=[], best=[], normalised=[]) if frame.empty else normalise(frame, random_scores)
    usable = normalised[np.isfinite(normalised["normalised"].to_numpy(dtype=float))] if len(normalised) else normalised
    envs = [env for env in spec.envs if env in set(usable["env"])]

    matrices: dict[str, np.ndarray] = {}
    for name in spec.settings:
        setting_runs = usable[usable["setting"] == name]
        table = setting_runs.pivot_table(index="seed", columns="env", values="normalised") if len(setting_runs) else None
        if table is not None and envs and table.shape == (len(spec.seeds), len(envs)) and not table.isna().any().any():
            matrices[name] = table[envs].to_numpy(dtype=float)

    def aggregates(scores: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_mean(scores), metrics.aggregate_iqm(scores)])

    points: dict[str, np.ndarray] = {}
    intervals: dict[str, np.ndarray] = {}
    if matrices:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # arch: "random_state is deprecated"
            points, intervals = rly.get_interval_estimates(
                matrices, aggregates, reps=reps, random_state=np.random.RandomState(seed)
            )

    rows = []
    for setting in settings_in_table_order(spec.settings):
        runs = usable[usable["setting"] == setting.name]
        all_runs = normalised[normalised["setting"] == setting.name] if len(normalised) else normalised
        mean = float(runs["normalised"].mean()) if len(runs) else math.nan
        low, high = intervals.get(setting.name, np.full((2, 2), math.nan))  # rows: low, high; columns: mean, IQM
        mean_ci, iqm_ci = (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))
        iqm = float(points[setting.name][1]) if setting.name in points else math.nan
        diverged = int(all_runs["diverged"].sum()) if len(all_runs) else 0
        rows.append(
            SettingSummary(
                setting.name,
                setting.label,
                setting.group,
                setting.paper_score,
                len(runs),
                mean,
                mean_ci,
                iqm,
                iqm_ci,
                diverged,
                len(all_runs),
            )
        )
    return rows, normalised


# ---------------------------------------------------------------------------------------------------- table


def _count(items: Sequence[Any], noun: str) -> str:
    return f"{len(items)} {noun}{'s' if len(items) != 1 else ''}"


def _fmt(value: float, digits: int = 2) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.{digits}f}"


def _with_ci(value: float, interval: tuple[float, float]) -> str:
    if not math.isfinite(value):
        return "n/a"
    if not all(math.isfinite(v) for v in interval):
        return _fmt(value)
    return f"{value:.2f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def markdown_report(
    results: dict[str, Any], rows: Sequence[SettingSummary], normalised: pd.DataFrame, reps: int = TABLE_REPS
) -> str:
    """The report: the paper's Table 1 layout with its numbers and ours, then the raw scores per env.

    ``reps``: the number of bootstrap resamples the intervals in ``rows`` were computed with (quoted in the text).
    """
    spec = GridSpec.from_dict(results["grid"])
    n_done = len(results["jobs"])
    best_ours = max((r.mean for r in rows if math.isfinite(r.mean)), default=math.nan)
    best_paper = max((r.paper for r in rows if math.isfinite(r.paper)), default=math.nan)
    paper_envs = len(spec.envs) == 7 and spec.timesteps == 1_000_000 and len(spec.seeds) == 3
    lines = [
        "## PPO paper, Table 1: surrogate objectives compared",
        "",
        f"Grid: {_count(spec.settings, 'setting')} x {_count(spec.envs, 'env')} ({', '.join(spec.envs)}) x "
        f"{_count(spec.seeds, 'seed')}, {spec.timesteps:,} steps per run; {n_done} of {spec.n_jobs} runs done.",
        "",
        "Score of a run: the mean return of its last 100 training episodes. Normalised per env so that a uniform random "
        "policy is 0 and the best setting (its mean over seeds) is 1, then aggregated over all runs of a setting: the "
        "paper's plain mean, and the interquartile mean (IQM); [95% stratified-bootstrap confidence intervals] from "
        f"rliable ({reps} resamples of the runs within each env).",
    ]
    if not paper_envs:
        lines += [
            "",
            "The paper's column is over its 7 envs, 1M steps and 3 seeds; this grid is smaller, so compare the ranking "
            "of the settings rather than the values.",
        ]
    lines += ["", "| Algorithm | Paper | Ours: mean | Ours: IQM | Runs |", "|---|---:|---:|---:|---:|"]
    group = None
    for row in rows:
        if row.group != group and group is not None:
            lines.append("| | | | | |")
        group = row.group
        paper = (
            "n/a"
            if not math.isfinite(row.paper)
            else f"**{row.paper:.2f}**"
            if row.paper == best_paper
            else f"{row.paper:.2f}"
        )
        ours = _with_ci(row.mean, row.mean_ci)
        if math.isfinite(row.mean) and row.mean == best_ours:
            ours = f"**{ours}**"
        notes = [f"{row.n_total - row.n_runs} not normalisable"] if row.n_total > row.n_runs else []
        notes += [f"{row.diverged} diverged"] if row.diverged else []
        runs = f"{row.n_total}" + (f" ({', '.join(notes)})" if notes else "")
        lines.append(f"| {row.label} | {paper} | {ours} | {_with_ci(row.iqm, row.iqm_ci)} | {runs} |")

    random_scores = results["random_scores"]
    lines += [
        "",
        "### Raw scores per env",
        "",
        "Mean ± std over seeds of the runs' scores (mean return of the last 100 training episodes); the random policy's "
        "mean return over its episodes; and each setting's normalised score (mean over seeds) in brackets.",
        "",
        "| Setting | " + " | ".join(spec.envs) + " |",
        "|---|" + "---:|" * len(spec.envs),
    ]
    random_cells = [f"{s['mean']:.1f} ({s['episodes']} ep.)" if (s := random_scores.get(env)) else "n/a" for env in spec.envs]
    lines.append("| Random policy | " + " | ".join(random_cells) + " |")
    for row in rows:
        cells = []
        for env in spec.envs:
            runs = normalised[(normalised["setting"] == row.name) & (normalised["env"] == env)]
            if runs.empty:
                cells.append("—")
                continue
            std = float(runs["score"].std(ddof=0))
            norm = float(runs["normalised"].mean())
            cells.append(f"{runs['score'].mean():.1f} ± {std:.1f} ({_fmt(norm)})")
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")

    normalised_envs = set(normalised.dropna(subset=["normalised"])["env"])
    unnormalised = sorted(set(normalised["env"]) - normalised_envs)
    if unnormalised:
        lines += ["", f"Left out of the aggregate: {', '.join(unnormalised)} (no setting beat the random policy)."]
    if results["missing"]:
        running = sum(1 for m in results["missing"] if m["running"])
        lines += ["", f"Missing: {len(results['missing'])} runs ({running} running)."]
    lines += [
        "",
        "Hyperparameters (all settings): " + ", ".join(f"`{k}={v}`" for k, v in spec.hyperparams.items()) + "; "
        "everything else is SB3's default.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- plots


def _colors(settings: Sequence[str]) -> dict[str, Any]:
    """One color family per row group of Table 1, shades within the group."""
    import matplotlib

    cmaps = {
        "No clipping or penalty": "Greys",
        "Clipping": "Blues",
        "Adaptive KL": "Greens",
        "Fixed KL": "Oranges",
        "Beyond the paper": "Purples",
    }
    colors: dict[str, Any] = {}
    for group in ALL_GROUPS:
        members = [s for s in settings_in_table_order(settings) if s.group == group]
        cmap = matplotlib.colormaps[cmaps[group]]
        for i, setting in enumerate(members):
            colors[setting.name] = "black" if group == GROUPS[0] else cmap(0.45 + 0.5 * (i + 1) / (len(members) + 1))
    return colors


def curve_matrix(curves: Sequence[Sequence[Sequence[float]]], frames: np.ndarray) -> np.ndarray:
    """Curves ``[[t, r], ...]`` interpolated onto ``frames`` (NaN before a curve's first point): (runs, frames)."""
    out = np.full((len(curves), len(frames)), np.nan)
    for i, curve in enumerate(curves):
        if len(curve):
            points = np.asarray(curve, dtype=float)
            out[i] = np.interp(frames, points[:, 0], points[:, 1], left=np.nan, right=points[-1, 1])
    return out


def plot_learning_curves(results: dict[str, Any], path: str | Path, reps: int = CURVE_REPS, seed: int = 0) -> Path:
    """One panel per env: each setting's mean learning curve over seeds, with a 95% stratified-bootstrap band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from rliable import library as rly

    spec = GridSpec.from_dict(results["grid"])
    colors = _colors(spec.settings)
    ncols = min(4, len(spec.envs))
    nrows = math.ceil(len(spec.envs) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(10.0, 4.2 * ncols), 3.3 * nrows + 1.2), squeeze=False)
    first_frame = min((job["curve"][0][0] for job in results["jobs"] if job["curve"]), default=spec.timesteps)
    frames = np.unique(np.linspace(first_frame, spec.timesteps, CURVE_POINTS).round())
    for ax, env in zip(axes.flat, spec.envs, strict=False):
        for setting in settings_in_table_order(spec.settings):
            curves = [j["curve"] for j in results["jobs"] if j["env"] == env and j["setting"] == setting.name]
            if not curves:
                continue
            matrix = curve_matrix(curves, frames)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN frames before the first episode
                mean = np.nanmean(matrix, axis=0)
            marker = "o" if len(frames) == 1 else None
            ax.plot(frames, mean, color=colors[setting.name], label=setting.label, lw=1.3, marker=marker)
            if len(curves) > 1:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", (FutureWarning, RuntimeWarning))
                    _, interval = rly.get_interval_estimates(
                        {"s": matrix[:, None, :]},
                        lambda x: np.nanmean(x, axis=(0, 1)),
                        reps=reps,
                        random_state=np.random.RandomState(seed),
                    )
                ax.fill_between(frames, interval["s"][0], interval["s"][1], color=colors[setting.name], alpha=0.15, lw=0)
        random_score = results["random_scores"].get(env)
        if random_score is not None:
            ax.axhline(random_score["mean"], color="grey", ls=":", lw=1, label="Random policy")
        ax.set_title(env)
        ax.set_xlabel("timesteps")
        ax.grid(alpha=0.25)
    for ax in axes[:, 0]:
        ax.set_ylabel("mean return, last 100 episodes")
    for ax in list(axes.flat)[len(spec.envs) :]:
        ax.axis("off")
    # every setting that has a curve in any panel, once, in the table's order, then the random policy
    by_label: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            by_label.setdefault(label, handle)
    order = [setting.label for setting in settings_in_table_order(spec.settings)] + ["Random policy"]
    labels = [label for label in order if label in by_label]
    handles = [by_label[label] for label in labels]
    legend_rows = math.ceil(len(labels) / 4)
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize="small", frameon=False)
    band = ", 95% bootstrap band" if len(spec.seeds) > 1 else ""
    fig.suptitle(f"Training returns: mean over {len(spec.seeds)} seed{'s' if len(spec.seeds) > 1 else ''}{band}")
    fig.tight_layout(rect=(0, (0.25 + 0.2 * legend_rows) / fig.get_figheight(), 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_scores(rows: Sequence[SettingSummary], path: str | Path) -> Path:
    """Mean and IQM of the normalised scores per setting, with their 95% intervals, next to the paper's mean."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = _colors([r.name for r in rows])
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.42 * len(rows) + 1.2), sharey=True)
    y = np.arange(len(rows))[::-1]
    for ax, metric in zip(axes, ("mean", "iqm"), strict=True):
        for yi, row in zip(y, rows, strict=True):
            value = getattr(row, metric)
            low, high = getattr(row, f"{metric}_ci")
            if math.isfinite(low) and math.isfinite(high):
                ax.barh(yi, high - low, left=low, height=0.6, color=colors[row.name], alpha=0.7)
            if math.isfinite(value):
                ax.vlines(value, yi - 0.3, yi + 0.3, color="k")
            if metric == "mean":
                ax.plot(row.paper, yi, marker="x", color="crimson", ls="none", label="paper" if yi == y[0] else None)
        ax.set_title({"mean": "Mean (the paper's aggregate)", "iqm": "IQM"}[metric])
        ax.set_xlabel("normalised score")
        ax.axvline(0, color="grey", lw=0.8)
        ax.grid(alpha=0.25, axis="x")
    axes[0].set_yticks(y, [r.label for r in rows])
    axes[0].legend(loc="best", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    results: dict[str, Any], output_dir: str | Path, reps: int = TABLE_REPS, curve_reps: int = CURVE_REPS, log: Log = print
) -> dict[str, Path]:
    """Write ``results.json``, ``table.md``, ``learning_curves.png`` and ``scores.png`` into ``output_dir``."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    files = {"results": write_json(results, output_dir / "results.json")}
    if not results["jobs"]:
        log(f"[ablation] no finished job yet: wrote only {files['results']}")
        return files
    rows, normalised = summarise(results, reps=reps)
    table = markdown_report(results, rows, normalised, reps=reps)
    files["table"] = output_dir / "table.md"
    files["table"].write_text(table)
    files["curves"] = plot_learning_curves(results, output_dir / "learning_curves.png", reps=curve_reps)
    files["scores"] = plot_scores(rows, output_dir / "scores.png")
    for key, path in files.items():
        log(f"[ablation] {key}: {path}")
    return files
