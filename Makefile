# Every target bootstraps what it needs: a fresh clone runs `make demo` or `make test` directly.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_STAMP := .state/.system-packages
NODE_STAMP := node_modules/.installed
CHECKOV_STAMP := .venv-checkov/.installed-3.3.30

.PHONY: setup system node demo console test lint typecheck static unit bench clean

setup: $(STAMP) $(SYSTEM_STAMP) $(NODE_STAMP) $(CHECKOV_STAMP)

$(STAMP): pyproject.toml setup.py emulator/pyproject.toml requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	# The local ARM emulator: its own package, for the demo and the tests, never deployed.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e emulator
	touch $@

$(SYSTEM_STAMP): tools/ensure-system-packages.sh
	bash tools/ensure-system-packages.sh
	mkdir -p .state && touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CHECKOV_STAMP): tools/checkov.sh
	bash tools/checkov.sh --install-only

demo: $(STAMP) $(SYSTEM_STAMP)
	$(PY) -m autoremediation.demo

# The operator console on loopback, over the demo's jobs (after `make demo`: the per-user job store).
console: $(STAMP)
	$(PY) -m autoremediation.cli console

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check autoremediation emulator
	$(VENV)/bin/mypy

test: setup lint
	$(PY) -m pytest -n 2 -p no:cacheprovider

bench: setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) .venv-checkov node_modules .state .pytest_cache .mypy_cache .ruff_cache
