"""rl_zoo3's own tuned PPO configs train with our algorithms: every ``ppo.yml`` entry whose env is installed.

For each entry of rl_zoo3's ``hyperparams/ppo.yml`` and each of ``clip_ppo`` and ``kl_ppo``, this runs::

    sb3-ppo-variants-zoo train --algo ALGO --env ENV --conf-file <rl_zoo3>/hyperparams/ppo.yml -n 1000 \
        --seed 0 --eval-freq -1 -f <tmp> --device cpu     # -n: max(1000, n_steps * n_envs)

in a subprocess of its own (rl_zoo3's ExperimentManager builds the model from the entry, so every key of the entry
reaches our constructor), and records pass/fail/skip with the reason. An entry is skipped when its environment cannot
be made here (Atari, PyBullet, MiniGrid, mujoco-py's -v2 tasks). The budget is 1,000 steps, or one whole rollout
(``n_steps * n_envs``) where that is longer: a shorter ``-n`` would still run one rollout, but the ``lin_`` schedules'
progress would then go below 0 (a negative learning rate, in SB3's ``PPO`` as in ours).

    python benchmarks/zoo_ppo_yml.py                     # all entries, both algorithms
    python benchmarks/zoo_ppo_yml.py --envs CartPole-v1  # some of them

Writes ``benchmarks/results/zoo_ppo_yml.md`` (a table) and prints it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

DEFAULT_OUT = Path(__file__).parent / "results" / "zoo_ppo_yml.md"
ALGOS = ("clip_ppo", "kl_ppo")


def ppo_yml() -> Path:
    import rl_zoo3

    return Path(rl_zoo3.__file__).parent / "hyperparams" / "ppo.yml"


def why_not_installed(env_id: str) -> str | None:
    """None if the environment can be made here, else the reason it cannot."""
    if env_id in ("default", "atari"):
        return "not an environment (rl_zoo3's shared entries)"
    try:
        gym.make(env_id).close()
    except Exception as exc:  # a missing package or a removed version
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    return None


def budget(entry: dict[str, Any]) -> int:
    """1,000 steps, or one whole rollout of the entry if that is longer (SB3 PPO's default n_steps is 2048)."""
    return max(1000, int(entry.get("n_steps", 2048)) * int(entry.get("n_envs", 1)))


def train(algo: str, env_id: str, config: Path, timeout: float, steps: int) -> tuple[bool, str, float]:
    """Run our zoo command on one entry; (passed, last line of the error, seconds)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable,
            "-m",
            "sb3_ppo_variants.zoo",
            "train",
            "--algo",
            algo,
            "--env",
            env_id,
            "--conf-file",
            str(config),
            "-n",
            str(steps),
            "--seed",
            "0",
            "--eval-freq",
            "-1",
            "-f",
            folder,
            "--device",
            "cpu",
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
        except subprocess.TimeoutExpired:
            return False, f"timed out after {timeout:.0f} s", time.perf_counter() - start
    lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line or "DependencyNotInstalled" in line]
    message = "" if result.returncode == 0 else (errors or lines or [f"exit code {result.returncode}"])[-1]
    return result.returncode == 0, message, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", nargs="*", default=None, help="only these entries (default: all)")
    parser.add_argument("--algos", nargs="*", default=list(ALGOS), choices=ALGOS)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per training subprocess")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    config = ppo_yml()
    entries: dict[str, Any] = yaml.safe_load(config.read_text())
    rows = []
    for env_id in entries:
        if args.envs is not None and env_id not in args.envs:
            continue
        reason = why_not_installed(env_id)
        for algo in args.algos:
            if reason is not None:
                rows.append((env_id, algo, "skipped", reason, 0.0))
                continue
            passed, message, seconds = train(algo, env_id, config, args.timeout, budget(entries[env_id]))
            rows.append((env_id, algo, "trained" if passed else "FAILED", message, seconds))
            print(f"{env_id} {algo}: {rows[-1][2]} {message} ({seconds:.0f} s)", file=sys.stderr, flush=True)

    counts = {status: sum(row[2] == status for row in rows) for status in ("trained", "FAILED", "skipped")}
    lines = [
        "# rl_zoo3's ppo.yml through `sb3-ppo-variants-zoo train`",
        "",
        f"Command: `python benchmarks/zoo_ppo_yml.py {' '.join(argv or sys.argv[1:])}`; config `{config}`; "
        f"{datetime.date.today().isoformat()}; max(1,000, one rollout) steps per run, seed 0.",
        "",
        f"{len(entries)} entries; runs: {counts['trained']} trained, {counts['FAILED']} failed, {counts['skipped']} skipped.",
        "",
        "| entry | algo | result | reason / error | seconds |",
        "|---|---|---|---|---:|",
    ]
    lines += [f"| {env} | {algo} | {status} | {message} | {seconds:.0f} |" for env, algo, status, message, seconds in rows]
    text = "\n".join(lines) + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 1 if counts["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
