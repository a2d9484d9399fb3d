# Two commands from a fresh clone:  make demo  (set up, train the demo run)  and  make test.
PYTHON ?= python3
VENV ?= .venv
# torch for this machine; on a GPU workstation use e.g. TORCH="torch torchvision" (CUDA build).
TORCH ?= torch==2.14.1 torchvision==0.29.1
PY310 ?= $(shell for p in $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10) \
  $$(command -v python3.10); do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' \
  2>/dev/null && echo "$$p" && break; done)
# The suite mostly waits on real processes (trainers, supervisors, watchdog budgets, Slurm,
# a browser): four workers keep two cores busy. A test goes to whichever worker is free; the
# tests of a file with a module fixture (a trained run, a Slurm cluster) stay on one worker,
# so that it is built once (tests/conftest.py). make test is CI's tier: every acceptance point;
# make test-all adds the extended tier (tests marked extended: what a CI test already verifies
# in another way, and build details beyond the acceptance points).
PYTEST_ARGS ?= -n 4 --dist loadgroup

.PHONY: demo test test-all test-core-py310 lint setup clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q $(TORCH)
	$(VENV)/bin/python -m pip install -q -e '.[test]'
	touch $@

demo: setup
	$(VENV)/bin/dinowm run --preset demo
	$(VENV)/bin/dinowm runs --limit 5

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-core-py310
	$(MAKE) --no-print-directory lint

test-all: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) -m 'not randomized'
	$(MAKE) --no-print-directory test-core-py310
	$(MAKE) --no-print-directory lint

# The torch-free tests on Python 3.10, the user's conda version: the flat modules, the store,
# the CLI basics and the supervisor's parts; not the supervised runs in tests/supervise/, which
# spawn the trainer (torch), nor the 10-second store load test (it already ran above), nor
# `dinowm serve` in a browser (textual-serve and selenium are the main venv's).
PY310_TESTS = tests/core tests/store tests/cli tests/supervise tests/cluster/test_options.py \
  --ignore=tests/supervise/test_lifecycle.py --ignore=tests/supervise/test_nvml.py \
  --ignore=tests/supervise/test_one_supervisor.py --ignore=tests/supervise/test_supervisor.py \
  --ignore=tests/supervise/test_dist_runs.py --ignore=tests/cli/test_serve.py

test-core-py310:
	@if [ -z "$(PY310)" ]; then echo "test-core-py310: no python3.10 found, skipped"; exit 0; fi; \
	set -e; test -x .venv310/bin/python || $(PY310) -m venv .venv310; \
	if [ ! -f .venv310/.installed ] || [ pyproject.toml -nt .venv310/.installed ]; then \
	  .venv310/bin/python -m pip install -q click rich textual sqlite-utils 'tomli>=2' nvidia-ml-py \
	    'pytest>=8,<9.2' pytest-timeout pytest-xdist hypothesis && \
	  .venv310/bin/python -m pip install -q --no-deps -e . && touch .venv310/.installed; fi; \
	.venv310/bin/python -m pytest $(PY310_TESTS) -p no:cacheprovider -n 2 -k 'not for_10_seconds'

# The architecture's import contracts (pyproject.toml [tool.importlinter]; make test runs them
# through tests/test_architecture.py too), ruff's rules and format, and mypy ([tool.ruff] and
# [tool.mypy]): make test ends with this.
lint: setup
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check dinowm tui
	$(VENV)/bin/ruff format --check dinowm tui
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) .venv310 .pytest_cache
