# The README's commands. `make dev` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: dev test lint typecheck fuzz bench install migrate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/warehouse dev

test: $(STAMP)
	$(BIN)/ruff check app tests bench migrations
	$(BIN)/ruff format --check app tests bench migrations
	$(BIN)/mypy
	REQUIRE_DOCUMENTED_STATUSES=1 $(BIN)/pytest $(PYTEST_ARGS)

fuzz: $(STAMP)
	FUZZ_MAX_EXAMPLES=$${FUZZ_MAX_EXAMPLES:-200} $(BIN)/pytest -m fuzz tests/contract

bench: $(STAMP)
	$(BIN)/python bench/load.py

lint: $(STAMP)
	$(BIN)/ruff check app tests bench migrations
	$(BIN)/ruff format --check app tests bench migrations

typecheck: $(STAMP)
	$(BIN)/mypy

migrate: $(STAMP)
	$(BIN)/warehouse migrate

clean:
	rm -rf $(VENV) .data .mypy_cache .pytest_cache .ruff_cache
