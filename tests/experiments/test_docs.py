"""The documentation site builds without a single warning (what ``make docs`` runs, into a temporary folder).

Sphinx runs with ``-W --keep-going``: a broken link between pages, a missing image, a page left out of every
toctree, a docstring that is not valid reStructuredText or a module that autodoc cannot import fails the test, and
the output lists every warning at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_docs_build_without_warnings(tmp_path):
    html = tmp_path / "html"
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", "html"]
    command += ["-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(html)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"sphinx-build failed (exit {result.returncode}):\n{output}"
    assert "WARNING" not in output, output
    # the API reference really comes from the docstrings
    assert "kl_target" in (html / "algorithms" / "kl_penalty_ppo.html").read_text(encoding="utf-8")
    assert "surrogate_loss" in (html / "api.html").read_text(encoding="utf-8")
