"""Learning checks: train the embedded presets over several seeds and compare with the issues' thresholds.

Each (algo, env, seed) trains the preset of :mod:`sb3_ppo_variants.presets` for its budget, then evaluates the
final model deterministically on a fresh environment (20 episodes by default). Results are appended to a JSON-lines
file as each run finishes, so an interrupted run resumes with only the missing jobs.

    python benchmarks/learning.py                          # every preset with a threshold, seeds 0 1 2
    python benchmarks/learning.py --algo kl_ppo --env Pendulum-v1 --seeds 0
    python benchmarks/learning.py --report                 # print the table of what is in the results file

The slow tests (``benchmarks/tests/test_learning.py``) call :func:`train_and_evaluate` for one seed each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ppo_variants.presets import PRESET_PAIRS, Preset, get_preset

#: DAPO's clip-higher (Yu et al. 2025, arXiv 2503.14476: eps_low 0.2, eps_high 0.28); CartPole's zoo entry decays
#: clip_range linearly (lin_0.2), so its clip-higher row decays both sides
CLIP_HIGHER = (("clip_range", (0.2, 0.28)),)
CLIP_HIGHER_LINEAR = (("clip_range", ("lin_0.2", "lin_0.28")),)

#: (algo, env, preset overrides as a tuple of items) -> minimum mean evaluation return: from the issues, and for the
#: objectives of issue 27 the zoo's threshold (rl-baselines3-zoo's PPO mean - std, benchmarks/zoo_results.py) at the
#: zoo's PPO budget
THRESHOLDS: dict[tuple[str, str, tuple[tuple[str, Any], ...]], float] = {
    ("clip_ppo", "CartPole-v1", ()): 475.0,
    ("clip_ppo", "Pendulum-v1", ()): -250.0,
    ("kl_ppo", "CartPole-v1", ()): 475.0,
    ("kl_ppo", "Pendulum-v1", ()): -250.0,
    ("reinforce", "CartPole-v1", ()): 475.0,
    ("reinforce", "CartPole-v1", (("use_baseline", True),)): 475.0,
    ("reinforce", "Acrobot-v1", ()): -100.0,  # the preset has use_baseline=True
    ("spo", "CartPole-v1", ()): 500.0,
    ("spo", "Pendulum-v1", ()): -276.4,
    ("spo", "LunarLander-v3", ()): 210.3,
    ("clip_ppo", "CartPole-v1", CLIP_HIGHER_LINEAR): 500.0,
    ("clip_ppo", "Pendulum-v1", CLIP_HIGHER): -276.4,
    ("clip_ppo", "LunarLander-v3", CLIP_HIGHER): 210.3,
    ("clip_ppo", "LunarLander-v3", ()): 210.3,
}

DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "learning.jsonl")


@dataclass
class RunResult:
    """One training run and its final evaluation."""

    algo: str
    env_id: str
    overrides: dict[str, Any]
    seed: int
    timesteps: int
    eval_mean: float
    eval_std: float
    eval_episodes: int
    seconds: float
    steps_per_second: float
    threshold: float | None

    @property
    def passed(self) -> bool | None:
        return None if self.threshold is None else self.eval_mean >= self.threshold


def train_and_evaluate(
    preset: Preset,
    seed: int,
    overrides: dict[str, Any] | None = None,
    timesteps: int | None = None,
    eval_episodes: int = 20,
) -> RunResult:
    """Train ``preset`` with ``seed`` (and hyperparameter ``overrides``) and evaluate the final model."""
    th.set_num_threads(1)
    overrides = dict(overrides or {})
    budget = int(timesteps or preset.n_timesteps)
    model = preset.make_model(seed=seed, **overrides)
    start = time.perf_counter()
    model.learn(budget)
    seconds = time.perf_counter() - start
    eval_env = make_vec_env(preset.env_id, n_envs=1, seed=10_000 + seed)
    train_env = model.get_env()
    if isinstance(train_env, VecNormalize):  # evaluate with frozen training statistics and raw rewards
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        eval_env.obs_rms = train_env.obs_rms
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)
    key = (preset.algo, preset.env_id, tuple(sorted(overrides.items())))
    return RunResult(
        preset.algo,
        preset.env_id,
        overrides,
        seed,
        budget,
        float(mean),
        float(std),
        eval_episodes,
        seconds,
        budget / seconds,
        THRESHOLDS.get(key),
    )


def _load(path: str) -> list[RunResult]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [RunResult(**json.loads(line)) for line in f if line.strip()]


def _report(results: list[RunResult]) -> str:
    groups: dict[tuple[str, str, str, int], list[RunResult]] = {}
    for r in results:
        groups.setdefault((r.algo, r.env_id, json.dumps(r.overrides, sort_keys=True), r.timesteps), []).append(r)
    lines = [
        "| algo | env | overrides | steps | seeds | eval return per seed | mean ± std over seeds | threshold "
        "| all seeds pass |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (algo, env_id, overrides, steps), runs in sorted(groups.items()):
        runs = sorted(runs, key=lambda r: r.seed)
        means = np.array([r.eval_mean for r in runs])
        threshold = runs[0].threshold
        verdict = "" if threshold is None else ("yes" if all(r.passed for r in runs) else "NO")
        per_seed = ", ".join(f"{r.eval_mean:.1f}" for r in runs)
        lines.append(
            f"| {algo} | {env_id} | {overrides if overrides != '{}' else ''} | {steps:,} | {len(runs)} | {per_seed} | "
            f"{means.mean():.1f} ± {means.std():.1f} | {'' if threshold is None else threshold} | {verdict} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", help="only this algorithm")
    parser.add_argument("--env", help="only this environment")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--overrides", choices=["any", "none", "some"], default="any", help="only rows without/with overrides")
    parser.add_argument("--timesteps", type=int, default=None, help="override the presets' budgets")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSON-lines results file (appended; finished jobs are skipped)")
    parser.add_argument("--report", action="store_true", help="only print the table of the results file")
    args = parser.parse_args(argv)

    if not args.report:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        jobs = [
            (algo, env_id, dict(overrides), seed)
            for (algo, env_id, overrides) in THRESHOLDS
            if (args.algo in (None, algo))
            and (args.env in (None, env_id))
            and (algo, env_id) in PRESET_PAIRS
            and args.overrides in ("any", "some" if overrides else "none")
            for seed in args.seeds
        ]
        done = {(r.algo, r.env_id, json.dumps(r.overrides, sort_keys=True), r.seed, r.timesteps) for r in _load(args.out)}
        for algo, env_id, overrides, seed in jobs:
            preset = get_preset(algo, env_id)
            budget = int(args.timesteps or preset.n_timesteps)
            if (algo, env_id, json.dumps(overrides, sort_keys=True), seed, budget) in done:
                continue
            print(
                f"[learning] {algo} {env_id} {overrides or ''} seed {seed}: {budget:,} steps ...", file=sys.stderr, flush=True
            )
            result = train_and_evaluate(preset, seed, overrides, budget, args.eval_episodes)
            print(
                f"[learning]   eval {result.eval_mean:.1f} ± {result.eval_std:.1f} in {result.seconds:.0f} s "
                f"({result.steps_per_second:,.0f} steps/s), threshold {result.threshold}",
                file=sys.stderr,
                flush=True,
            )
            with open(args.out, "a") as f:
                f.write(json.dumps(asdict(result)) + "\n")
    print(_report(_load(args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
