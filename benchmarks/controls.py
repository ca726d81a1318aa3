"""What each PPO control does: ClipPPO with one control on vs all off, on CartPole-v1, Pendulum-v1 and MuJoCo tasks.

Variants (docs/controls.md describes each control):

- ``baseline``: ClipPPO with the settings below (every control off: SB3's PPO);
- ``adaptive_lr``: ``adaptive_lr_target_kl=0.01`` (rsl_rl's default rule, adapted after each minibatch);
- ``adaptive_lr_update``: the same, adapted once per update;
- ``dual_clip``: ``dual_clip=3``;
- ``vf_clip_sb3`` / ``vf_clip_max``: ``clip_range_vf=0.2`` with SB3's form / the max form of baselines and CleanRL
  (the pair shows the form; both differ from the baseline by clipping the value at all);
- ``adv_norm_batch``: ``normalize_advantage_scope="batch"``;
- ``recompute_adv``: ``recompute_advantage=True``.

Each (env, variant, seed) trains in this process (one torch thread) for the env's budget and is evaluated
deterministically on 10 episodes of a fresh env (seed + 1000). Episode returns during training are kept for the
learning curves. Results go to ``--out/results.jsonl`` as each run finishes (a rerun skips finished jobs);
``--report`` writes ``table.md``, ``curves.png`` and ``learning_rates.png`` from them.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/controls.py         # 3 envs (~45 min on a busy 2-core box)
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/controls.py --envs Hopper-v5     # ~35 min more
    OMP_NUM_THREADS=1 python benchmarks/controls.py --envs CartPole-v1 --seeds 0 --variants baseline dual_clip
    python benchmarks/controls.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

import sb3_ppo_variants
from sb3_ppo_variants import ClipPPO

DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "controls")

#: Per env: training budget and ClipPPO settings. Constant learning rate and clip range (the adaptive rate replaces
#: a schedule, so a schedule in the baseline would mix two changes). The budgets fit the study in ~45 minutes here.
ENVS: dict[str, tuple[int, dict[str, Any]]] = {
    # rl_zoo3 ppo.yml's CartPole-v1 without its linear schedules
    "CartPole-v1": (
        30_000,
        dict(n_envs=8, n_steps=32, batch_size=256, n_epochs=20, gae_lambda=0.8, gamma=0.98, learning_rate=1e-3),
    ),
    # rl_zoo3 ppo.yml's tuned Pendulum-v1 (gSDE), 40% of its 1e5 budget
    "Pendulum-v1": (
        40_000,
        dict(
            n_envs=4,
            n_steps=1024,
            gae_lambda=0.95,
            gamma=0.9,
            n_epochs=10,
            learning_rate=1e-3,
            use_sde=True,
            sde_sample_freq=4,
        ),
    ),
    # SB3 defaults with a shorter rollout
    "InvertedPendulum-v5": (25_000, dict(n_envs=1, n_steps=512, batch_size=64, n_epochs=10)),
    # SB3 defaults (no observation normalisation), the start of learning only: 5% of the zoo's 1e6
    "Hopper-v5": (50_000, dict(n_envs=1, n_steps=2048, batch_size=64, n_epochs=10)),
}

#: What a plain run trains (~45 min here); Hopper-v5 (~35 min more) with ``--envs Hopper-v5``.
DEFAULT_ENVS = ["CartPole-v1", "Pendulum-v1", "InvertedPendulum-v5"]

VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "adaptive_lr": {"adaptive_lr_target_kl": 0.01},
    "adaptive_lr_update": {"adaptive_lr_target_kl": 0.01, "adaptive_lr_every": "update"},
    "dual_clip": {"dual_clip": 3.0},
    "vf_clip_sb3": {"clip_range_vf": 0.2},
    "vf_clip_max": {"clip_range_vf": 0.2, "value_clip_form": "max"},
    "adv_norm_batch": {"normalize_advantage_scope": "batch"},
    "recompute_adv": {"recompute_advantage": True},
}


class _Curve(BaseCallback):
    """Episode returns during training, with the timestep at which each episode ended, and the learning rate."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[tuple[int, float]] = []
        self.learning_rates: list[float] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.episodes.append((self.num_timesteps, float(info["episode"]["r"])))
        return True

    def _on_rollout_end(self) -> None:
        self.learning_rates.append(float(self.model.policy.optimizer.param_groups[0]["lr"]))


def run(env_id: str, variant: str, seed: int) -> dict[str, Any]:
    budget, settings = ENVS[env_id]
    settings = dict(settings)
    n_envs = settings.pop("n_envs")
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    model = ClipPPO("MlpPolicy", env, seed=seed, device="cpu", **settings, **VARIANTS[variant])
    return {"env": env_id, "variant": variant, "seed": seed, **train_and_evaluate(model, env_id, budget, seed)}


def train_and_evaluate(model: Any, env_id: str, budget: int, seed: int) -> dict[str, Any]:
    """Train ``model`` for ``budget`` steps with the learning-curve callback, then evaluate it deterministically on 10
    episodes of a fresh ``env_id`` (seed + 1000); closes both envs. Also used by :mod:`benchmarks.objectives`."""
    curve = _Curve()
    start = time.perf_counter()
    model.learn(budget, callback=curve)
    seconds = time.perf_counter() - start
    eval_env = make_vec_env(env_id, n_envs=1, seed=seed + 1000)
    returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True, return_episode_rewards=True)
    model.get_env().close()
    eval_env.close()
    last = [r for t, r in curve.episodes if t > 0.9 * budget]
    return {
        "timesteps": model.num_timesteps,
        "eval_mean": float(np.mean(returns)),
        "train_last10pct": float(np.mean(last)) if last else float("nan"),
        "seconds": seconds,
        "episodes": curve.episodes,
        "learning_rates": curve.learning_rates,
    }


def _load(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return [json.loads(line) for line in file if line.strip()]


def _curve(episodes: list[list[float]], budget: int, points: int = 25) -> np.ndarray:
    """At ``points`` steps across the budget, the mean return of the episodes that ended in the trailing tenth of it."""
    steps = np.array([t for t, _ in episodes])
    rewards = np.array([r for _, r in episodes])
    out = np.full(points, np.nan)
    for i, end in enumerate(np.linspace(budget / points, budget, points)):
        mask = (steps > end - budget / 10) & (steps <= end)
        if mask.any():
            out[i] = rewards[mask].mean()
    return out


def report(out: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _load(os.path.join(out, "results.jsonl"))
    envs = [env for env in ENVS if any(row["env"] == env for row in rows)]
    variants = [v for v in VARIANTS if any(row["variant"] == v for row in rows)]
    lines: list[str] = []
    for env in envs:
        lines += [
            f"**{env}** ({ENVS[env][0]:,} steps; mean ± std over seeds)",
            "",
            "| variant | seeds | eval return (10 episodes, deterministic) | training return, last 10% | "
            "training return, whole run | s/run |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for variant in variants:
            runs = [row for row in rows if row["env"] == env and row["variant"] == variant]
            if not runs:
                continue
            evals = np.array([row["eval_mean"] for row in runs])
            lasts = np.array([row["train_last10pct"] for row in runs])
            wholes = np.array([np.mean([r for _, r in row["episodes"]]) for row in runs])
            seconds = np.mean([row["seconds"] for row in runs])
            lines.append(
                f"| {variant} | {len(runs)} | {evals.mean():.1f} ± {evals.std():.1f} | {np.nanmean(lasts):.1f} ± "
                f"{np.nanstd(lasts):.1f} | {wholes.mean():.1f} ± {wholes.std():.1f} | {seconds:.0f} |"
            )
        lines.append("")
    table = "\n".join(lines)
    with open(os.path.join(out, "table.md"), "w") as file:
        file.write(table + "\n")

    # one panel per (env, control): the control (colour) against the baseline (black), mean over seeds
    controls = [v for v in variants if v != "baseline"]
    fig, axes = plt.subplots(len(envs), len(controls), figsize=(2.6 * len(controls), 2.3 * len(envs)), squeeze=False)
    for row_axes, env in zip(axes, envs, strict=True):
        budget = ENVS[env][0]
        mean_curves = {}
        for variant in variants:
            runs = [row for row in rows if row["env"] == env and row["variant"] == variant]
            if runs:
                mean_curves[variant] = (len(runs), np.nanmean([_curve(row["episodes"], budget) for row in runs], axis=0))
        x = np.linspace(budget / 25, budget, 25)
        for ax, variant in zip(row_axes, controls, strict=True):
            if "baseline" in mean_curves:
                ax.plot(x, mean_curves["baseline"][1], color="black", linewidth=1.2)
            if variant in mean_curves:
                ax.plot(x, mean_curves[variant][1], color="tab:red", linewidth=1.4)
                ax.set_title(f"{variant} ({mean_curves[variant][0]} seeds)", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        row_axes[0].set_ylabel(f"{env}\ntraining return", fontsize=8)
    fig.suptitle("Each control (red) against ClipPPO with every control off (black); mean training return over seeds")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=80)

    # the adapted learning rate at the start of each rollout, seed 0
    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 3.2), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        for variant in ("baseline", "adaptive_lr", "adaptive_lr_update"):
            runs = [row for row in rows if row["env"] == env and row["variant"] == variant and row["seed"] == 0]
            if runs:
                rates = runs[0]["learning_rates"]
                steps = np.linspace(0, runs[0]["timesteps"], len(rates), endpoint=False)
                ax.step(steps, rates, where="post", label=variant)
        ax.set_yscale("log")
        ax.set_title(f"{env}: learning rate at each rollout (seed 0)")
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "learning_rates.png"), dpi=90)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=DEFAULT_ENVS, choices=list(ENVS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--report", action="store_true", help="only write table.md and the plots from the results")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if not args.report:
        th.set_num_threads(1)
        print(f"sb3_ppo_variants from {os.path.dirname(sb3_ppo_variants.__file__)}", flush=True)
        path = os.path.join(args.out, "results.jsonl")
        done = {(row["env"], row["variant"], row["seed"]) for row in _load(path)}
        # seed-major order: an interrupted study still has every variant for the first seeds
        jobs = [(e, v, s) for s in args.seeds for e in args.envs for v in args.variants if (e, v, s) not in done]
        for index, (env_id, variant, seed) in enumerate(jobs):
            result = run(env_id, variant, seed)
            with open(path, "a") as file:
                file.write(json.dumps(result) + "\n")
            print(
                f"[{index + 1}/{len(jobs)}] {env_id} {variant} seed {seed}: eval {result['eval_mean']:.1f}, "
                f"train(last 10%) {result['train_last10pct']:.1f}, {result['seconds']:.0f} s",
                flush=True,
            )
    print(report(args.out))


if __name__ == "__main__":
    main()
