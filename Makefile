# Two commands do all set-up: `make up` and `make test` (README).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	@echo "Installing Meterline and its dependencies into $(VENV) (first run: about a minute) ..."
	$(BIN)/pip install --quiet --progress-bar on -e ".[dev]"
	touch $(STAMP)

up: $(STAMP)
	$(BIN)/meterline up --demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

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
