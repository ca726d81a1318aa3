"""The budget of a tuning study and its retries (workers, liveness and recovery are :mod:`sb3_ppo_variants.workers`).

**Budget.** ``n_trials`` is the number of *finished* trials the study should hold, over all workers and all runs
of the command. A trial counts when it is COMPLETE, PRUNED or FAIL, except a FAIL trial that has been retried
(its retry counts instead). RUNNING and WAITING trials hold a place too, so that workers never start more trials
than the budget (:class:`Budget`). A rerun after an interruption therefore only tops the study up.

**Retries** (:func:`enqueue_retries`): a FAIL trial cut short for a reason unrelated to its parameters (see
:func:`sb3_ppo_variants.workers.loop.needs_retry`) is replaced by a WAITING trial with the same parameters, at
most ``max_retry`` times per original trial; ``retry_of`` lists the failed trials it replaces.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from sb3_ppo_variants.workers.loop import OLD_NAMES, RETRY_ATTR, needs_retry, retried_numbers, retry_of

logger = logging.getLogger("sb3_ppo_variants.tuning")

#: User attributes of a failed trial that its retry does not inherit (they describe the failed attempt).
ATTEMPT_ATTRS = frozenset({"worker", "fail_reason", "heartbeat", "progress", RETRY_ATTR, OLD_NAMES[RETRY_ATTR]})


@dataclass(frozen=True)
class Budget:
    """How the trials of a study stand against ``n_trials``.

    :param n_trials: The target number of finished trials (None: unlimited)
    :param finished: COMPLETE + PRUNED + FAIL trials, not counting FAIL trials that were retried
    :param running: RUNNING trials
    :param waiting: WAITING trials (retries and enqueued trials)
    :param retried: FAIL trials replaced by a retry (not counted)
    """

    n_trials: int | None
    finished: int
    running: int
    waiting: int
    retried: int

    @classmethod
    def of(cls, trials: Sequence[FrozenTrial], n_trials: int | None) -> Budget:
        """Count ``trials`` (all the trials of the study)."""
        retried = retried_numbers(list(trials))
        states = [t.state if not (t.state == TrialState.FAIL and t.number in retried) else None for t in trials]
        finished = sum(1 for state in states if state is not None and state.is_finished())
        return cls(n_trials, finished, states.count(TrialState.RUNNING), states.count(TrialState.WAITING), states.count(None))

    @property
    def remaining(self) -> float:
        """Trials that may still be started beyond the running and waiting ones (``inf`` without a limit)."""
        return math.inf if self.n_trials is None else max(0, self.n_trials - self.finished - self.running - self.waiting)

    @property
    def done(self) -> bool:
        """Whether ``n_trials`` trials are finished."""
        return self.n_trials is not None and self.finished >= self.n_trials


def enqueue_retries(study: optuna.Study, max_retry: int | None) -> list[int]:
    """Enqueue a retry of each FAIL trial that needs one and has none yet (call it with the claim lock held).

    :param study: The study
    :param max_retry: Retries allowed per original trial (None: unlimited)
    :return: The numbers of the trials retried
    """
    trials = study.get_trials(deepcopy=False)
    replaced = retried_numbers(trials)
    retried = []
    for failed in trials:
        history = [*retry_of(failed), failed.number]
        if not needs_retry(failed) or failed.number in replaced or (max_retry is not None and len(history) > max_retry):
            continue
        user_attrs = {key: value for key, value in failed.user_attrs.items() if key not in ATTEMPT_ATTRS}
        study.enqueue_trial(dict(failed.params), user_attrs={**user_attrs, RETRY_ATTR: history})
        logger.info("Trial %d will be retried with the same parameters (retry %d)", failed.number, len(history))
        retried.append(failed.number)
    return retried
