#!/usr/bin/env python3
"""Run the default test suite against the newest releases and against the declared minimums (``make test-compat``).

newest: ``.venv-compat-newest`` gets pip's newest release of every dependency that our caps allow; torch is the
        version given by ``--torch`` (the Makefile's pinned CPU build: other releases are several-GB CUDA builds).
min:    ``.venv-compat-min`` gets every ``>=`` floor of pyproject.toml (dependencies, all extras and the build
        system's setuptools) pinned ``==`` through a pip constraints file, so the resolver cannot pick newer
        versions of what we declare; packages without a floor and transitive ones float.

Both install the package with its ``[dev]`` extras (editable, so the suite tests this checkout), print the versions
of the key packages and run ``python -m pytest`` (pyproject's addopts: the default suite). Exits non-zero when an
install or a suite fails. Needs Python >= 3.11 (tomllib) to run; the venvs use the same interpreter.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
OWN_NAME = "sb3-ppo-variants"
KEY_PACKAGES = (
    "torch", "stable-baselines3", "sb3-contrib", "rl_zoo3", "optuna", "gymnasium", "numpy", "tqdm", "rich", "PyYAML",
    "matplotlib", "pandas", "plotly", "rliable", "mujoco", "box2d", "box2d-py", "pytest", "setuptools",
    "scipy", "sqlalchemy", "arch", "shimmy",
)  # fmt: skip
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")


def floors() -> dict[str, str]:
    """``{name: version}`` for every ``name>=version`` in pyproject.toml (dependencies, extras, build system)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = list(project["project"]["dependencies"]) + list(project["build-system"]["requires"])
    for extra in project["project"]["optional-dependencies"].values():
        requirements += extra
    found: dict[str, str] = {}
    for requirement in requirements:
        match = REQUIREMENT.match(requirement)
        if match is None or match.group(1).lower() == OWN_NAME:
            continue
        name = match.group(1).lower().replace("_", "-")
        for specifier in match.group(2).split(","):
            if specifier.strip().startswith(">="):
                version = specifier.strip()[2:].strip()
                if found.setdefault(name, version) != version:
                    raise SystemExit(f"pyproject.toml declares two floors for {name}: {found[name]} and {version}")
    return found


def run(command: list[str], env: dict[str, str]) -> int:
    print("+", " ".join(command), flush=True)
    return subprocess.call(command, cwd=ROOT, env=env)


def install(venv: Path, kind: str, torch: str, env: dict[str, str]) -> int:
    """A fresh venv holding the package with its [dev] extras: the newest releases, or the declared floors."""
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "install", "--progress-bar", "off"]
    if run([sys.executable, "-m", "venv", "--clear", str(venv)], env) or run([*pip, "--upgrade", "pip"], env):
        return 1
    if kind == "newest":
        build = [*pip, "--upgrade", "setuptools", "wheel"]
        package = [*pip, "--no-build-isolation", torch, "-e", ".[dev]"]
    else:
        constraints = venv / "constraints.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in sorted(floors().items())))
        print(f"constraints ({constraints}):\n{constraints.read_text()}", flush=True)
        # gymnasium < 1.3's box2d extra builds box2d-py from source: it needs swig on PATH (gymnasium's docs: pip install swig)
        build = [*pip, "-c", str(constraints), "setuptools", "wheel", "swig"]
        package = [*pip, "--no-build-isolation", "-c", str(constraints), "-e", ".[dev]"]
    return run(build, env) or run(package, env)


def versions(venv: Path, env: dict[str, str]) -> str:
    script = (
        "import importlib.metadata as m\n"
        f"for name in {KEY_PACKAGES!r}:\n"
        "    try: print(f'  {name:<18} {m.version(name)}')\n"
        "    except m.PackageNotFoundError: print(f'  {name:<18} -')\n"
    )
    return subprocess.run([str(venv / "bin" / "python"), "-c", script], env=env, capture_output=True, text=True).stdout


def check(kind: str, torch: str, reuse: bool, pytest_args: list[str]) -> tuple[bool, str]:
    """Install (unless reused) and test one venv; returns (passed, a summary of versions, results and times)."""
    venv = ROOT / f".venv-compat-{kind}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "VIRTUAL_ENV": str(venv)}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # as if activated: tools pip installs (swig) are found
    print(f"\n===== {kind}: {venv.name} =====", flush=True)
    start = time.monotonic()
    if not (reuse and (venv / "bin" / "python").exists()) and install(venv, kind, torch, env):
        return False, f"{kind}: install FAILED after {time.monotonic() - start:.0f} s"
    installed = time.monotonic()
    listing = versions(venv, env)
    print(f"{kind} versions:\n{listing}", flush=True)
    command = [str(venv / "bin" / "python"), "-m", "pytest", *pytest_args]
    print("+", " ".join(command), flush=True)
    pytest = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    counts = ""  # pytest's last "=== ... ===" line: the pass/fail counts and time
    for line in pytest.stdout or ():
        print(line, end="", flush=True)
        counts = line.strip("= \n") if line.startswith("=") else counts
    code = pytest.wait()
    done = time.monotonic()
    verdict = "passed" if code == 0 else f"FAILED (pytest exit {code})"
    return (
        code == 0,
        f"{kind}: {verdict} ({counts}); install {installed - start:.0f} s, suite {done - installed:.0f} s\n{listing}",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("newest", "min"), help="run one of the two venvs")
    parser.add_argument("--torch", default="torch==2.13.0", help="torch requirement of the newest venv")
    parser.add_argument("--reuse", action="store_true", help="keep an existing venv instead of reinstalling it")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args()
    results = [
        check(kind, args.torch, args.reuse, args.pytest_args) for kind in ("newest", "min") if args.only in (None, kind)
    ]
    print("\n===== test-compat summary =====")
    for _, summary in results:
        print(summary)
    return 0 if all(passed for passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
