"""Hyperparameter tuning with Optuna: :func:`run_study` and the ``sb3-ppo-variants-tune`` command.

One study tunes one of our algorithms on one environment with our samplers (:mod:`sb3_ppo_variants.zoo.samplers`),
periodic evaluations reported to a pruner, several seeds per trial if asked, a trial-count and a time limit, and
ends with a summary: the best hyperparameters as a ready-to-paste ``zoo_configs`` entry, and plots.

- :mod:`~sb3_ppo_variants.tuning.study`: :func:`run_study`, the worker loop;
- :mod:`~sb3_ppo_variants.tuning.objective`: one trial (sampling, training, evaluation, reports to the pruner);
- :mod:`~sb3_ppo_variants.tuning.budget`: the budget count and the retries of trials of dead workers;
- :mod:`~sb3_ppo_variants.tuning.summary`: best trial, YAML entry, plots;
- :mod:`~sb3_ppo_variants.tuning.cli`: ``sb3-ppo-variants-tune`` (``python -m sb3_ppo_variants.tuning``).

Storage, workers, liveness and recovery are the shared :mod:`sb3_ppo_variants.workers`. The user guide is
``docs/tuning.md``.
"""

from sb3_ppo_variants.tuning.budget import Budget
from sb3_ppo_variants.tuning.objective import Objective, TrialSettings
from sb3_ppo_variants.tuning.study import run_study
from sb3_ppo_variants.tuning.summary import StudySummary, render_zoo_yaml, zoo_entry
from sb3_ppo_variants.workers.loop import FAIL_REASON_ATTR, RETRY_ATTR, WORKER_ATTR
from sb3_ppo_variants.workers.storage import STORAGE_ENV_VAR, StorageSpec, mask_url, resolve_storage

__all__ = [
    "FAIL_REASON_ATTR",
    "RETRY_ATTR",
    "STORAGE_ENV_VAR",
    "WORKER_ATTR",
    "Budget",
    "Objective",
    "StorageSpec",
    "StudySummary",
    "TrialSettings",
    "mask_url",
    "render_zoo_yaml",
    "resolve_storage",
    "run_study",
    "zoo_entry",
]
