#!/usr/bin/env python3
"""Build the wheel and run it from a fresh venv outside the checkout (``make check-wheel``; not part of the tests).

What a user gets from ``pip install sb3-ppo-variants``: the wheel is built from a copy of this checkout's files (the
ones git tracks or would add, so stale ``build/`` folders and ignored files cannot leak in), installed with its
``[zoo]`` extra into a new venv in a temporary folder, and two commands run there, from a folder outside the checkout:

- ``python -m sb3_ppo_variants --timesteps 2000``: the demo, which reads its preset from the shipped YAML;
- ``sb3-ppo-variants-zoo train --algo clip_ppo --env CartPole-v1 -n 2000 -f <tmp>/logs``: rl_zoo3 with the shipped
  ``zoo_configs/clip_ppo.yml``.

It also lists the ``zoo_configs`` files inside the wheel and prints where the installed package reads them from.
Prints a report and exits non-zero when a step fails. Needs the package index for the build requirements, torch and
the wheel's dependencies. ``--keep`` keeps the temporary folder (its path is printed).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TAIL_LINES = 15
#: Prints where the installed package and its YAML files are, to show the run does not read the checkout.
WHERE = (
    "import sb3_ppo_variants; from sb3_ppo_variants.zoo import zoo_config; "
    "print('package:', sb3_ppo_variants.__file__); print('config: ', zoo_config('clip_ppo'))"
)


def copy_checkout(destination: Path) -> None:
    """Copy the files git tracks, and the untracked ones it does not ignore, to ``destination``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is still listed
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


def step(report: list[str], title: str, command: list[str], cwd: Path, env: dict[str, str]) -> bool:
    """Run ``command``, print its output as it goes, and add one line (and the output's tail on failure) to ``report``."""
    print(f"\n=== {title}\n+ {' '.join(command)}", flush=True)
    start = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    with subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            tail.append(line.rstrip("\n"))
    seconds = time.monotonic() - start
    report.append(f"{'ok  ' if process.returncode == 0 else 'FAIL'} {title} ({seconds:.0f} s)")
    if process.returncode != 0:
        report.extend(f"       {line}" for line in tail)
    return process.returncode == 0


def wheel_configs(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return sorted(name for name in archive.namelist() if "zoo_configs/" in name)


def check(work: Path, torch: str) -> list[str]:
    report: list[str] = []
    source, dist, venv, run_dir = work / "source", work / "dist", work / "venv", work / "run"
    for folder in (source, dist, run_dir):
        folder.mkdir()
    copy_checkout(source)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--progress-bar", "off", "-w", str(dist), str(source)]
    if not step(report, "build the wheel", pip_wheel, work, env):
        return report
    (wheel,) = dist.glob("*.whl")
    configs = wheel_configs(wheel)
    report.append(f"{'ok  ' if configs else 'FAIL'} {wheel.name} holds {len(configs)} zoo_configs files")
    report.extend(f"       {name}" for name in configs)
    if not step(report, "create the venv", [sys.executable, "-m", "venv", str(venv)], work, env):
        return report
    python, bin_dir = str(venv / "bin" / "python"), venv / "bin"
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # as if activated
    install = [python, "-m", "pip", "install", "--progress-bar", "off", torch, f"{wheel}[zoo]"]
    if not step(report, f"install {torch} and the wheel with [zoo]", install, run_dir, env):
        return report
    step(report, "where the installed package reads its configs", [python, "-c", WHERE], run_dir, env)
    step(report, "python -m sb3_ppo_variants --timesteps 2000", [python, "-m", "sb3_ppo_variants", "--timesteps", "2000"],
         run_dir, env)  # fmt: skip
    zoo = [str(bin_dir / "sb3-ppo-variants-zoo"), "train", "--algo", "clip_ppo", "--env", "CartPole-v1", "-n", "2000"]
    logs = work / "logs"
    if step(report, "sb3-ppo-variants-zoo train --algo clip_ppo --env CartPole-v1 -n 2000", [*zoo, "-f", str(logs)],
            run_dir, env):  # fmt: skip
        saved = sorted(logs.glob("clip_ppo/CartPole-v1_*/CartPole-v1.zip"))
        report.append(f"{'ok  ' if saved else 'FAIL'} the zoo run saved {saved[0] if saved else 'no model'}")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", default="torch==2.13.0", help="the torch requirement to install first (the CPU build)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sb3-ppo-variants-check-wheel-"))
    try:
        report = check(work, args.torch)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    failed = any(line.startswith("FAIL") for line in report)
    print(f"\n=== report ({'kept in ' + str(work) if args.keep else 'temporary folder removed'})")
    print("\n".join(report))
    print("FAILED" if failed else "all steps passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
