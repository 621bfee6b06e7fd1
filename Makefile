# `make serve` and `make test` are the two commands of the README. Both create
# .venv and install the pinned dependencies (requirements.lock) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test check lint bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed-run: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install -q -c requirements.lock -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $@ $(VENV)/.installed-run

serve: $(VENV)/.installed-run
	$(BIN)/seau serve --host $(HOST) --port $(PORT)

# tus-js-client, pinned by package-lock.json, for the official-client tests.
tests/uploads/js/node_modules/.installed: tests/uploads/js/package-lock.json
	npm ci --prefix tests/uploads/js --no-audit --no-fund --loglevel=error
	touch $@

test: $(VENV)/.installed-dev tests/uploads/js/node_modules/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

check: lint test

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/core.py $(BENCH_ARGS)

# Re-pin after changing dependencies in pyproject.toml.
lock: $(VENV)/.installed-dev
	$(BIN)/pip freeze --exclude-editable | grep -v '^seau' > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
