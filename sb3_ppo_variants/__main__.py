"""``python -m sb3_ppo_variants``: train an agent with an embedded preset and show the result.

Default: ClipPPO on CartPole-v1 with rl-baselines3-zoo's tuned PPO hyperparameters, 100k steps (about a minute
on one CPU core), then a deterministic evaluation over 20 episodes and a learning-curve PNG (with matplotlib).
Training and evaluation run on one torch (and BLAS) thread, the fastest for this small policy, with the rule of the
``threads="auto"`` setting (sb3_ppo_variants.threads); the line printed before training says what it did.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_ppo_variants.callbacks import EpisodeReturnRecorder
from sb3_ppo_variants.cli_args import int_argument, timesteps_argument
from sb3_ppo_variants.presets import PRESET_PAIRS, get_preset
from sb3_ppo_variants.threads import count_parameters, limited_threads

PROG = "python -m sb3_ppo_variants"


def _plot(episodes: list[tuple[int, float, int]], title: str, path: str) -> bool:
    """Write the learning curve to ``path``; False when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    steps = np.array([e[0] for e in episodes])
    returns = np.array([e[1] for e in episodes])
    window = max(1, min(20, len(returns) // 5))
    smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, returns, ".", alpha=0.25, label="episode return")
    ax.plot(steps[window - 1 :], smooth, label=f"moving mean ({window})")
    ax.set(xlabel="environment steps", ylabel="return", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _config_path(algo: str) -> str:
    """Where the preset's file lies: relative to the working directory when inside it (a clone), else absolute."""
    from sb3_ppo_variants.zoo.registration import zoo_config

    path = os.path.abspath(str(zoo_config(algo)))
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


def main(argv: list[str] | None = None) -> int:
    pairs = ", ".join(f"{a}/{e}" for a, e in sorted(PRESET_PAIRS))
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="clip_ppo", help="clip_ppo, kl_ppo, reinforce or spo (default: clip_ppo)")
    parser.add_argument("--env", default="CartPole-v1", help=f"environment id; presets exist for: {pairs}")
    parser.add_argument(
        "--timesteps", type=timesteps_argument, default=None, help="training budget, >= 1 (1e5 works; default: the preset's)"
    )
    parser.add_argument("--seed", type=int_argument(0, "a seed (an int >= 0)"), default=0)
    parser.add_argument("--eval-episodes", type=int_argument(1), default=20, help="evaluation episodes (default: 20)")
    parser.add_argument("--plot", default="learning_curve.png", help="where to write the learning curve ('' to skip)")
    parser.add_argument("--save", default="", help="save the trained model to this path")
    parser.add_argument("--no-progress-bar", action="store_true")
    args = parser.parse_args(argv)

    try:
        preset = get_preset(args.algo, args.env)
    except (KeyError, ValueError) as exc:
        parser.error(str(exc.args[0]))
    timesteps = preset.n_timesteps if args.timesteps is None else args.timesteps
    model = preset.make_model(seed=args.seed)
    name = type(model).__name__
    print(f"Training {name} on {preset.env_id} for {timesteps:,} steps, seed {args.seed}")
    print(f"  hyperparameters ({_config_path(preset.algo)}): n_envs={preset.n_envs}, {preset.hyperparams}")
    recorder = EpisodeReturnRecorder()
    with limited_threads("auto", count_parameters(model.policy), owner=f"  {name}", verbose=1):
        start = time.perf_counter()
        model.learn(timesteps, callback=recorder, progress_bar=not args.no_progress_bar)
        elapsed = time.perf_counter() - start
        print(f"Trained in {elapsed:.0f} s ({timesteps / elapsed:,.0f} steps/s), {len(recorder.episodes)} training episodes")

        eval_env = make_vec_env(preset.env_id, n_envs=1, seed=10_000 + args.seed)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    print(f"Evaluation ({args.eval_episodes} episodes, deterministic): mean return {mean:.1f} +/- {std:.1f}")
    if args.plot and recorder.episodes:
        title = f"{name} on {preset.env_id} (seed {args.seed})"
        if _plot(recorder.episodes, title, args.plot):
            print(f"Learning curve: {os.path.abspath(args.plot)}")
        else:
            print("Learning curve not written: matplotlib is not installed (pip install matplotlib)")
    if args.save:
        model.save(args.save)
        print(f"Model saved to {args.save}.zip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
