# Every target installs what it needs into .venv from this repo's own files (pyproject.toml).
# torch is pinned to the tested release, 2.13.0, and comes from PyTorch's CPU wheel index (TORCH_INDEX): on Linux,
# PyPI's torch is the CUDA build, which pulls several GB of nvidia-* packages.
#   make install TORCH_INDEX=https://download.pytorch.org/whl/cu128   # a CUDA build from PyTorch's index instead
#   make install TORCH_INDEX=                                         # only pip's own indexes (PyPI: CUDA on Linux)
# The index is an *extra* index, given to the torch install alone: pip still sees its configured indexes and
# find-links (a mirror, a local wheel) and picks the highest match of torch==2.13.0, i.e. 2.13.0+cpu where the CPU
# index is reached. Where it cannot be reached, pip warns and retries for each package it looks up there (~10 s each,
# a minute or two in all), then goes on with the others; TORCH_INDEX= skips that wait.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH := torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast test-slow test-compat lint format type commit-checks benchmark docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--extra-index-url "$(TORCH_INDEX)")
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# the main job: train ClipPPO on CartPole-v1 (embedded preset) and print its evaluation return
demo: $(STAMP)
	$(PY) -m sb3_ppo_variants

# the default test run (learning runs are marked slow and left out)
test: $(STAMP)
	$(PY) -m pytest

# the developer's quick loop (about 1.5 min on 2 cores): the default run without the integration tests (subprocess
# runs, end-to-end runs of a command or a long training, the docs build)
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not integration"

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -v

# the default suite in two fresh venvs (not part of `test`): .venv-compat-newest with the newest releases and
# .venv-compat-min with every floor of pyproject.toml pinned; ARGS="--only min" runs one of them
test-compat:
	$(PYTHON) tools/test_compat.py --torch "$(TORCH)" $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check sb3_ppo_variants tests benchmarks tools

format: $(STAMP)
	$(PY) -m ruff format sb3_ppo_variants tests benchmarks tools
	$(PY) -m ruff check --fix sb3_ppo_variants tests benchmarks tools

type: $(STAMP)
	$(PY) -m mypy sb3_ppo_variants

commit-checks: format type lint

benchmark: $(STAMP)
	$(PY) benchmarks/throughput.py

# the documentation site (Sphinx: docs/*.md and the docstrings), warnings as errors; open docs/_build/html/index.html
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) .venv-compat-newest .venv-compat-min docs/_build build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache

# the built wheel, installed with [zoo] into a fresh venv in a temporary folder, runs the demo and a zoo training from
# outside the checkout with the shipped zoo_configs (by hand, not part of `test`); ARGS="--keep" keeps the folder
.PHONY: check-wheel
check-wheel:
	$(PYTHON) tools/check_wheel.py --torch "$(TORCH)" $(ARGS)
