"""Masked algorithms against sb3-contrib's MaskablePPO: the learning budget, learning at that budget, and speed.

Environments (sb3-contrib's, with ``action_masks()``): ``discrete`` = ``InvalidActionEnvDiscrete(dim=20,
n_invalid_actions=10)`` and ``multi_discrete`` = ``InvalidActionEnvMultiDiscrete(dims=[5, 10], n_invalid_actions=6)``;
100 steps per episode, reward 1 per correct action (the best return is 100).

Modes (``python -m benchmarks.masking MODE --help``):

- ``budget``: MaskablePPO (settings below), evaluated every ``--eval-freq`` steps (20 episodes, deterministic, masked,
  sb3-contrib's ``evaluate_policy``); prints per seed the first step count at which the mean return is >= 90. The
  budget is the largest of the seeds (rounded up to the evaluation grid).
- ``learning --budget N``: each algorithm (MaskablePPO, MaskableClipPPO, MaskableKLPenaltyPPO, MaskableREINFORCE)
  trains N steps per env and seed and is evaluated once at the end (20 episodes, deterministic, masked).
- ``speed``: MaskablePPO vs MaskableClipPPO steps/s at identical settings on ``discrete`` (``learn(20480)`` after a
  one-rollout warm-up, construction excluded), each run in a fresh process, interleaved (A B A B ...), median of
  ``--repeats``, by wall time and by process CPU time; torch one thread.

Settings: 4 envs (``make_vec_env``); PPO family: SB3 PPO's defaults except ``n_steps=128`` (512 samples per update);
MaskableREINFORCE: ``use_baseline=True`` (the reward-to-go of an episode cut by the rollout is bootstrapped), one
gradient step per rollout, and per environment ``n_steps=32, learning_rate=1e-3`` (discrete) or ``n_steps=8,
learning_rate=2e-3`` (multi_discrete): REINFORCE makes one gradient step per rollout where PPO makes 80, so it needs
short rollouts to learn within MaskablePPO's budget (with PPO's ``n_steps=128`` it reached 51 to 73 on
multi_discrete).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

ENVS = ("discrete", "multi_discrete")
ALGOS = ("maskable_ppo", "clip_ppo_mask", "kl_ppo_mask", "reinforce_mask")
N_ENVS = 4
PPO_KWARGS: dict[str, Any] = dict(n_steps=128)
#: per environment: chosen on seed 0 among n_steps in {8, 16, 32, 128} x learning_rate in {1e-3, 2e-3, 3e-3} (7 tried)
REINFORCE_KWARGS: dict[str, dict[str, Any]] = {
    "discrete": dict(n_steps=32, learning_rate=1e-3, use_baseline=True),
    "multi_discrete": dict(n_steps=8, learning_rate=2e-3, use_baseline=True),
}


def _make_env(name: str):
    from sb3_contrib.common.envs import InvalidActionEnvDiscrete, InvalidActionEnvMultiDiscrete

    if name == "discrete":
        return InvalidActionEnvDiscrete(dim=20, n_invalid_actions=10)
    return InvalidActionEnvMultiDiscrete(dims=[5, 10], n_invalid_actions=6)


def _model(algo: str, env_name: str, seed: int):
    import torch as th
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_ppo_variants import MaskableClipPPO, MaskableKLPenaltyPPO, MaskableREINFORCE

    th.set_num_threads(1)
    classes = {
        "maskable_ppo": MaskablePPO,
        "clip_ppo_mask": MaskableClipPPO,
        "kl_ppo_mask": MaskableKLPenaltyPPO,
        "reinforce_mask": MaskableREINFORCE,
    }
    env = make_vec_env(lambda: _make_env(env_name), n_envs=N_ENVS, seed=seed)
    kwargs = REINFORCE_KWARGS[env_name] if algo == "reinforce_mask" else PPO_KWARGS
    return classes[algo]("MlpPolicy", env, seed=seed, device="cpu", **kwargs)


def _evaluate(model, env_name: str, seed: int) -> float:
    from sb3_contrib.common.maskable.evaluation import evaluate_policy
    from stable_baselines3.common.env_util import make_vec_env

    eval_env = make_vec_env(lambda: _make_env(env_name), n_envs=1, seed=10_000 + seed)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=20, deterministic=True, warn=False)
    return float(mean)


def budget(env_name: str, seed: int, eval_freq: int, max_steps: int) -> dict[str, Any]:
    """Steps until MaskablePPO's evaluation reaches a mean return >= 90 (None if not within ``max_steps``)."""
    model = _model("maskable_ppo", env_name, seed)
    curve = []
    while model.num_timesteps < max_steps:
        model.learn(eval_freq, reset_num_timesteps=False)
        mean = _evaluate(model, env_name, seed)
        curve.append((model.num_timesteps, mean))
        if mean >= 90:
            return {"env": env_name, "seed": seed, "steps": model.num_timesteps, "curve": curve}
    return {"env": env_name, "seed": seed, "steps": None, "curve": curve}


def learning(algo: str, env_name: str, seed: int, steps: int) -> dict[str, Any]:
    model = _model(algo, env_name, seed)
    start = time.perf_counter()
    model.learn(steps)
    seconds = time.perf_counter() - start
    return {
        "algo": algo,
        "env": env_name,
        "seed": seed,
        "steps": model.num_timesteps,
        "mean_return": _evaluate(model, env_name, seed),
        "learn_s": seconds,
    }


def speed_worker(algo: str, steps: int) -> dict[str, Any]:
    """Steps/s of ``learn(steps)`` after a one-rollout warm-up (construction excluded)."""
    _model(algo, "discrete", 0).learn(N_ENVS * PPO_KWARGS["n_steps"])
    model = _model(algo, "discrete", 1)
    start, cpu = time.perf_counter(), time.process_time()
    model.learn(steps)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "algo": algo,
        "steps": model.num_timesteps,
        "wall_s": wall,
        "cpu_s": cpu,
        "steps_per_s": model.num_timesteps / wall,
    }


def _run_worker(args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.masking", "worker", *args], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.masking", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p_budget = sub.add_parser("budget")
    p_budget.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    p_budget.add_argument("--seeds", type=int, default=3)
    p_budget.add_argument("--eval-freq", type=int, default=2048)
    p_budget.add_argument("--max-steps", type=int, default=100_000)
    p_learning = sub.add_parser("learning")
    p_learning.add_argument("--budget", type=int, nargs="+", required=True, help="steps, one per env in --envs order")
    p_learning.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    p_learning.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p_learning.add_argument("--seeds", type=int, default=3)
    p_speed = sub.add_parser("speed")
    p_speed.add_argument("--steps", type=int, default=20_480)
    p_speed.add_argument("--repeats", type=int, default=3)
    p_worker = sub.add_parser("worker")
    p_worker.add_argument("algo", choices=ALGOS)
    p_worker.add_argument("steps", type=int)
    args = parser.parse_args(argv)

    if args.mode == "worker":
        print(json.dumps(speed_worker(args.algo, args.steps)))
        return
    if args.mode == "budget":
        for env_name in args.envs:
            for seed in range(args.seeds):
                print(json.dumps(budget(env_name, seed, args.eval_freq, args.max_steps)), flush=True)
        return
    if args.mode == "learning":
        if len(args.budget) != len(args.envs):
            parser.error("--budget needs one value per env of --envs")
        for env_name, steps in zip(args.envs, args.budget, strict=True):
            for algo in args.algos:
                for seed in range(args.seeds):
                    print(json.dumps(learning(algo, env_name, seed, steps)), flush=True)
        return
    runs: dict[str, list[dict[str, Any]]] = {"maskable_ppo": [], "clip_ppo_mask": []}
    for _ in range(args.repeats):
        for algo in runs:  # interleaved: A B A B ...
            result = _run_worker([algo, str(args.steps)])
            runs[algo].append(result)
            print(json.dumps(result), flush=True)
    medians = {algo: statistics.median(r["steps_per_s"] for r in results) for algo, results in runs.items()}
    # process CPU time is less sensitive than wall time to the other work on a shared machine
    cpu = {algo: statistics.median(r["steps"] / r["cpu_s"] for r in results) for algo, results in runs.items()}
    summary = {
        "median_steps_per_s": medians,
        "ratio": medians["clip_ppo_mask"] / medians["maskable_ppo"],
        "median_steps_per_cpu_s": cpu,
        "cpu_ratio": cpu["clip_ppo_mask"] / cpu["maskable_ppo"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
