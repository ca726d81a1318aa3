"""The PPO paper's Table 1 ablation (arXiv 1707.06347): 11 surrogate settings x MuJoCo envs x seeds, in one command.

``python -m sb3_ppo_variants.ablation --preset small --workers 2`` runs the grid (each (setting, env, seed) one
trial of an Optuna grid study, resumable and shareable between machines) and writes ``results.json``, ``table.md``
(the paper's layout, its numbers next to ours) and learning-curve plots.

- :mod:`~sb3_ppo_variants.ablation.grid`: the settings, the paper's hyperparameters, the named grids, jobs
- :mod:`~sb3_ppo_variants.ablation.runner`: training a job, the study and its results, the workers' plan
  (the workers themselves: :mod:`sb3_ppo_variants.workers`)
- :mod:`~sb3_ppo_variants.ablation.report`: normalisation, rliable aggregates, table, plots
"""

from sb3_ppo_variants.ablation.grid import (
    ALL_SETTINGS,
    EXTRA_SETTINGS,
    GRIDS,
    PAPER_ENVS,
    PAPER_HYPERPARAMS,
    SETTINGS,
    Grid,
    GridSpec,
    Job,
    Setting,
    estimate_seconds,
    get_grid,
    get_setting,
)
from sb3_ppo_variants.ablation.report import load_results, normalise, summarise, write_report
from sb3_ppo_variants.ablation.runner import (
    JobResult,
    RunSummary,
    WorkerOptions,
    collect_results,
    probe_throughput,
    random_policy_score,
    run_ablation,
    run_job,
)

__all__ = [
    "ALL_SETTINGS",
    "EXTRA_SETTINGS",
    "GRIDS",
    "PAPER_ENVS",
    "PAPER_HYPERPARAMS",
    "SETTINGS",
    "Grid",
    "GridSpec",
    "Job",
    "JobResult",
    "RunSummary",
    "Setting",
    "WorkerOptions",
    "collect_results",
    "estimate_seconds",
    "get_grid",
    "get_setting",
    "load_results",
    "normalise",
    "probe_throughput",
    "random_policy_score",
    "run_ablation",
    "run_job",
    "summarise",
    "write_report",
]
