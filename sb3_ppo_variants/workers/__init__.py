"""The distributed-worker layer of :mod:`sb3_ppo_variants.tuning` and :mod:`sb3_ppo_variants.ablation`.

A study lives in a shared Optuna storage (:mod:`~sb3_ppo_variants.workers.storage`: a journal file by default, or a
database URL); any number of workers, in processes of one machine or on several machines, claim its trials and run
them (:func:`~sb3_ppo_variants.workers.loop.work`). :mod:`~sb3_ppo_variants.workers.processes` tells machines and
processes apart. What a trial is, which trials a study needs and when it is done
belong to the client (tuning: a budget of finished trials; ablation: a grid of points).

**Trial attributes** (user attributes, one set for both clients): ``worker`` (``host``, ``machine``: host name,
Linux boot id and PID namespace, ``pid``, ``started``: the process start time, so that a reused PID is not
mistaken for the worker), ``fail_reason``, ``retry_of`` (a retry: the failed trials it replaces, oldest first),
``heartbeat`` (journal files) and ``progress``. Studies of the previous release resume: ``retry_history`` (tuning)
is read as ``retry_of``, ``start_time`` (ablation) as ``started`` and the ``fail_reason`` ``stale`` (ablation) as
a dead worker's (:data:`~.loop.OLD_NAMES`).

**Claiming.** With the study's claim lock held (:class:`~.storage.ClaimLock`, which the operating system or the
database server releases when its holder dies), a worker fails dead workers' trials, lets the client plan
(enqueue retries, count), asks for a trial, records its first heartbeat and signs it with its identity. So a
RUNNING trial without a signature, seen with the lock held, belongs to a worker killed between ask and sign.

**Dead workers** (:class:`~.loop.Liveness`): a trial of a worker on this machine whose process is gone (or a zombie)
is dead at once; for a journal file (one machine), so is one of a worker with this host name that ran before a
reboot or in an earlier container; otherwise the heartbeat decides after the grace period.

**What comes from Optuna, and what does not.**

- Databases: Optuna's heartbeats (``RDBStorage(heartbeat_interval, grace_period)``, ``record_heartbeat``) and
  :func:`optuna.storages.fail_stale_trials`. Optuna ignores a RUNNING trial that has no heartbeat yet, hence the
  first heartbeat at the claim.
- Journal files: Optuna 5's journal storage has no heartbeat, so the worker writes one in the ``heartbeat`` user
  attribute (:class:`~.loop.Heartbeat`), and the PID check above (no waiting for a grace period on one machine) is
  written by hand for every storage. The journal's write lock is an ``flock`` and the backend cuts off a torn last
  line before appending (:class:`~.storage.RepairingJournalBackend`; Optuna's leaves a killed writer's torn line,
  which breaks the journal at the next append).
- Retries are WAITING trials made with :meth:`optuna.Study.enqueue_trial` with the failed trial's parameters, not
  :class:`optuna.storages.RetryHeartbeatStaleTrialCallback` (``RetryFailedTrialCallback``): that callback runs only
  for trials failed by the heartbeat check (not for a dead local PID, an interrupt, or a journal), copies the
  failed trial's user attributes (its worker identity and failure reason) into the retry, is not run again if the
  worker is killed between failing a trial and adding its retry, and keeps its history in system attributes that
  the ablation's grid cannot set for a point. Here the client derives retries from the study each round
  (:func:`~.loop.needs_retry`): a FAIL trial without its retry gets one, whenever the kill came.

**Kill-safety.** Every step is one storage write, and each state a kill can leave is recovered by the next round of
any worker: a torn journal line is cut off; an unsigned claim is failed; a signed RUNNING trial of a dead process is
failed (a result written but not told is run again); a FAIL trial without its retry gets one. Tests kill workers
at named points (:data:`~.processes.KILL_ENV_VAR`). SIGTERM (:func:`~.loop.sigterm_interrupts`) and Ctrl-C fail the
running trial as interrupted and queue its retry.
"""
