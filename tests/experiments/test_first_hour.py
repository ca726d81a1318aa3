"""A newcomer's first hour (issue 28): the demo's arguments and messages, the zoo's step budget, the install lines of
the README and the Makefile, and the package metadata. The tuning items are in test_tuning.py, threads in
test_threads.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sb3_ppo_variants import ClipPPO
from sb3_ppo_variants.__main__ import main as demo
from sb3_ppo_variants.zoo.cli import check_train_args
from sb3_ppo_variants.zoo.cli import main as zoo_main

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()

# ---------------------------------------------------------------------------------------------------- the demo


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "many"])
def test_demo_refuses_a_bad_budget(capsys, value):
    with pytest.raises(SystemExit) as info:
        demo(["--timesteps", value])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "argument --timesteps: expected a" in err and repr(value) in err
    assert "Training" not in err


def test_demo_usage_names_the_command(capsys):
    with pytest.raises(SystemExit):
        demo(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m sb3_ppo_variants ")
    assert "__main__.py" not in out


def _run_demo(tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # the config file lies outside: its absolute path is printed
    assert demo(["--timesteps", "512", "--eval-episodes", "1", "--plot", "curve.png", "--no-progress-bar"]) == 0
    return capsys.readouterr().out


def test_demo_names_files_that_exist_and_says_what_threads_did(tmp_path, capsys, monkeypatch):
    out = _run_demo(tmp_path, capsys, monkeypatch)
    assert "for 512 steps" in out
    config = re.search(r"hyperparameters \((.+?)\):", out)
    assert config is not None and Path(config.group(1)).is_file(), out
    assert Path(config.group(1)).name == "clip_ppo.yml"
    assert "ClipPPO: threads='auto':" in out  # what the thread setting did (here: the test session's 1 thread kept)
    assert f"Learning curve: {tmp_path / 'curve.png'}" in out and (tmp_path / "curve.png").is_file()


def test_demo_says_when_it_cannot_plot(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if matplotlib were not installed
    out = _run_demo(tmp_path, capsys, monkeypatch)
    assert "Learning curve not written: matplotlib is not installed (pip install matplotlib)" in out
    assert not (tmp_path / "curve.png").exists()


# ---------------------------------------------------------------------------------------------------- the zoo


@pytest.mark.parametrize("args", [["-n", "-5"], ["-n", "0"], ["--n-timesteps=-3"], ["--algo", "clip_ppo", "-n", "-2"]])
def test_zoo_train_refuses_a_budget_rl_zoo3_would_ignore(capsys, args):
    with pytest.raises(SystemExit) as info:
        zoo_main(["train", *args])
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert "sb3-ppo-variants-zoo train: error: argument -n/--n-timesteps: expected a number of steps >= 1, or -1" in err


@pytest.mark.parametrize("args", [[], ["-n", "-1"], ["-n", "1000"], ["-n", "ten"], ["--algo", "clip_ppo"]])
def test_zoo_train_budget_left_to_rl_zoo3(args):
    assert check_train_args(args) is None  # -1 is rl_zoo3's default; a non-int is reported by rl_zoo3's own parser


# ---------------------------------------------------------------------------------------------------- learn()


def test_learn_with_a_string_budget_names_what_is_expected(make_model):
    model = make_model(ClipPPO)
    with pytest.raises(TypeError, match=r"`total_timesteps` must be a number of steps"):
        model.learn("10000")


# ---------------------------------------------------------------------------------------------------- README, Makefile


def test_readme_install_lines_do_not_ask_a_registry_for_this_package():
    lines = [line for line in README.splitlines() if line.lstrip().startswith("pip install")]
    assert lines
    for line in lines:
        assert '"sb3-ppo-variants[' not in line or "@ git+" in line, line  # not on PyPI: a path, a wheel or a git URL
    assert 'pip install ".[zoo,plots,envs]"' in README
    assert "python -m pip wheel --no-deps -w dist ." in README
    assert "pip install torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu" in README


def test_readme_names_what_the_commands_cost_and_need():
    ablation = [line for line in README.splitlines() if line.startswith("sb3-ppo-variants-ablation")]
    assert ablation and "--preset tiny" in ablation[0] and "smoke test" in ablation[0]
    assert any("--preset small" in line and "40 min" in line for line in ablation)
    assert "`tensorboard_log=...` needs the `tensorboard` package (`pip install tensorboard`" in README


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_makefile_torch_index_is_a_variable_with_the_cpu_default():
    def dry_run(*args: str) -> str:
        return subprocess.run(["make", "-n", "-B", "install", *args], cwd=REPO, capture_output=True, text=True).stdout

    torch_line = next(line for line in dry_run().splitlines() if '"torch==2.13.0"' in line)
    assert torch_line.endswith('--extra-index-url "https://download.pytorch.org/whl/cpu"')
    assert "--extra-index-url" not in dry_run("TORCH_INDEX=")
    assert '--extra-index-url "file:///mirror"' in dry_run("TORCH_INDEX=file:///mirror")


def test_pyproject_license_is_an_spdx_string():
    """setuptools deprecates the ``{ text = ... }`` table (a warning at every install); the string needs >= 77."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT"
    floor = next(r for r in pyproject["build-system"]["requires"] if r.startswith("setuptools"))
    version = tuple(int(part) for part in floor.split(">=")[1].split("."))
    assert version >= (77, 0, 1)
