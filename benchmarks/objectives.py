"""SPO and clip-higher against ClipPPO on MuJoCo tasks at equal budget, with the ratio's spread over training (issue 27).

Variants (docs/algorithms/spo.md and docs/algorithms/clip_higher.md describe them):

- ``clip_ppo``: ClipPPO at SB3's defaults (``clip_range=0.2``: SB3's PPO);
- ``clip_higher``: ClipPPO with DAPO's ``clip_range=(0.2, 0.28)`` (Yu et al. 2025, arXiv 2503.14476);
- ``spo``: SPO with the authors' ``epsilon=0.2`` (Xie et al., ICML 2025, arXiv 2401.16025).

Each (env, variant, seed) trains in this process (one torch thread) with SB3's PPO defaults (n_steps 2048, batch 64,
10 epochs, lr 3e-4, no observation normalisation) for ``--timesteps`` steps, and is evaluated deterministically on 10
episodes of a fresh env (seed + 1000). After every update the policy's probability ratio to the rollout policy,
``r = pi_new(a|s) / pi_rollout(a|s)``, is measured over the whole rollout: mean ``|r - 1|`` (the "ratio deviation" SPO's
paper plots; its code logs it per minibatch), the std of ``r`` and max ``|r - 1|``; they are logged as
``train/ratio_deviation``, ``train/ratio_std``, ``train/ratio_max_deviation`` and stored with the run. The learning
curves reuse :mod:`benchmarks.controls`' callback. Results go to ``--out/results.jsonl`` as each run finishes (a rerun
skips finished jobs); ``--report`` writes ``table.md``, ``curves.png`` and ``ratio_spread.png``.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/objectives.py --timesteps 100000     # 2 envs x 3 variants x 3 seeds
    python benchmarks/objectives.py --report
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

from benchmarks.controls import _curve, _load, train_and_evaluate
from sb3_ppo_variants import SPO, ClipPPO
from sb3_ppo_variants.core.buffers import samples_in_order

DEFAULT_OUT = os.path.join(os.path.dirname(__file__), "results", "clip_higher_spo", "mujoco")
DEFAULT_ENVS = ["HalfCheetah-v5", "Hopper-v5"]


class _RatioSpread:
    """After each update, the ratio of the updated policy to the rollout policy over the whole rollout.

    Only ``_on_update_end`` is overridden, not the loss methods, so the NumPy update still runs."""

    spread: list[dict[str, float]]

    def _on_update_end(self) -> None:
        super()._on_update_end()  # type: ignore[misc]
        buffer, policy = self.rollout_buffer, self.policy  # type: ignore[attr-defined]
        discrete = isinstance(self.action_space, spaces.Discrete)  # type: ignore[attr-defined]
        ratios = []
        with th.no_grad():
            for batch in samples_in_order(buffer, 4096):
                actions = batch.actions.long().flatten() if discrete else batch.actions
                log_prob = policy.get_distribution(batch.observations).log_prob(actions)
                ratios.append(th.exp(log_prob - batch.old_log_prob))
        ratio = th.cat(ratios)
        values = {
            "ratio_deviation": float((ratio - 1).abs().mean()),
            "ratio_std": float(ratio.std()),
            "ratio_max_deviation": float((ratio - 1).abs().max()),
        }
        self.__dict__.setdefault("spread", []).append(values)
        for key, value in values.items():
            self.logger.record(f"train/{key}", value)  # type: ignore[attr-defined]


class _SpreadClipPPO(_RatioSpread, ClipPPO):
    pass


class _SpreadSPO(_RatioSpread, SPO):
    pass


VARIANTS: dict[str, tuple[type, dict[str, Any]]] = {
    "clip_ppo": (_SpreadClipPPO, {}),
    "clip_higher": (_SpreadClipPPO, {"clip_range": (0.2, 0.28)}),
    "spo": (_SpreadSPO, {"epsilon": 0.2}),
}


def run(env_id: str, variant: str, seed: int, budget: int) -> dict[str, Any]:
    cls, kwargs = VARIANTS[variant]
    model = cls("MlpPolicy", make_vec_env(env_id, n_envs=1, seed=seed), seed=seed, device="cpu", **kwargs)
    result = train_and_evaluate(model, env_id, budget, seed)
    return {"env": env_id, "variant": variant, "seed": seed, "budget": budget, **result, "spread": model.spread}


def report(out: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _load(os.path.join(out, "results.jsonl"))
    envs = sorted({row["env"] for row in rows})
    lines: list[str] = []
    for env in envs:
        budget = max(row["budget"] for row in rows if row["env"] == env)
        lines += [
            f"**{env}** ({budget:,} steps, SB3's PPO defaults; mean ± std over seeds)",
            "",
            "| variant | seeds | eval return (10 episodes, deterministic) | training return, last 10% | mean \\|r-1\\| "
            "after each update | max \\|r-1\\| after each update (mean; largest) | s/run |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for variant in VARIANTS:
            runs = [row for row in rows if row["env"] == env and row["variant"] == variant]
            if not runs:
                continue
            evals = np.array([row["eval_mean"] for row in runs])
            lasts = np.array([row["train_last10pct"] for row in runs])
            deviation = np.mean([np.mean([u["ratio_deviation"] for u in row["spread"]]) for row in runs])
            max_dev = [u["ratio_max_deviation"] for row in runs for u in row["spread"]]
            seconds = np.mean([row["seconds"] for row in runs])
            lines.append(
                f"| {variant} | {len(runs)} | {evals.mean():.1f} ± {evals.std():.1f} | {np.nanmean(lasts):.1f} ± "
                f"{np.nanstd(lasts):.1f} | {deviation:.4f} | {np.mean(max_dev):.3f}; {np.max(max_dev):.3f} | {seconds:.0f} |"
            )
        lines.append("")
    table = "\n".join(lines)
    with open(os.path.join(out, "table.md"), "w") as file:
        file.write(table + "\n")

    colors = {"clip_ppo": "black", "clip_higher": "tab:blue", "spo": "tab:red"}
    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 3.4), squeeze=False)
    for ax, env in zip(axes[0], envs, strict=True):
        budget = max(row["budget"] for row in rows if row["env"] == env)
        x = np.linspace(budget / 25, budget, 25)
        for variant in VARIANTS:
            runs = [row for row in rows if row["env"] == env and row["variant"] == variant]
            if runs:
                mean = np.nanmean([_curve(row["episodes"], budget) for row in runs], axis=0)
                ax.plot(x, mean, color=colors[variant], label=f"{variant} ({len(runs)} seeds)")
        ax.set_title(f"{env}: training return (mean over seeds)", fontsize=9)
        ax.set_xlabel("environment steps")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=90)

    keys = (("ratio_deviation", "mean |r - 1|"), ("ratio_std", "std of r"), ("ratio_max_deviation", "max |r - 1|"))
    fig, axes = plt.subplots(len(envs), len(keys), figsize=(4.2 * len(keys), 2.8 * len(envs)), squeeze=False)
    for row_axes, env in zip(axes, envs, strict=True):
        for ax, (key, label) in zip(row_axes, keys, strict=True):
            for variant in VARIANTS:
                runs = [row for row in rows if row["env"] == env and row["variant"] == variant]
                if not runs:
                    continue
                n = min(len(row["spread"]) for row in runs)
                values = np.array([[u[key] for u in row["spread"][:n]] for row in runs])
                updates = np.arange(1, n + 1) * 2048
                ax.plot(updates, values.mean(axis=0), color=colors[variant], label=variant)
                ax.fill_between(updates, values.min(axis=0), values.max(axis=0), color=colors[variant], alpha=0.15)
            ax.set_title(f"{env}: {label} after each update", fontsize=9)
            ax.set_xlabel("environment steps", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.suptitle("The updated policy's ratio to the rollout policy over each whole rollout (mean over seeds, band: range)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "ratio_spread.png"), dpi=90)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="+", default=DEFAULT_ENVS)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=100_000, help="training budget of every run")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--report", action="store_true", help="only write table.md and the plots from the results")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if not args.report:
        th.set_num_threads(1)
        path = os.path.join(args.out, "results.jsonl")
        done = {(row["env"], row["variant"], row["seed"], row["budget"]) for row in _load(path)}
        for seed in args.seeds:  # seed-major: an interrupted study has every variant on the first seeds
            for env_id in args.envs:
                for variant in args.variants:
                    if (env_id, variant, seed, args.timesteps) in done:
                        continue
                    print(f"[objectives] {env_id} {variant} seed {seed}: {args.timesteps:,} steps ...", flush=True)
                    result = run(env_id, variant, seed, args.timesteps)
                    print(f"[objectives]   eval {result['eval_mean']:.1f} in {result['seconds']:.0f} s", flush=True)
                    with open(path, "a") as file:
                        file.write(json.dumps(result) + "\n")
    print(report(args.out))


if __name__ == "__main__":
    main()
