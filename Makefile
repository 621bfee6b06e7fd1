# `make serve` and `make check` are the two commands of the README. Both create
# .venv and install the pinned, hashed dependencies on first use: requirements.lock
# (what the server runs on) for `make serve`, requirements-dev.lock (the same and the
# tools) for the rest. `make lock` writes both.
# `make check` (what CI runs, .ci/run) is `make lint`, then the suite under coverage;
# `make test` is the suite alone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test check lint cover bench lock lowest clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# pip refuses hashes in a constraints file (`-c`) next to a requirement without one
# (seau itself): the lock is installed on its own, every file checked against its
# hashes, then seau with --no-deps, built by the locked setuptools (no isolated build
# environment fetched unchecked); `pip check` fails if the lock misses a dependency.
$(VENV)/.installed-run: pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@

$(VENV)/.installed-dev: pyproject.toml requirements-dev.lock | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements-dev.lock
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	touch $@ $(VENV)/.installed-run

serve: $(VENV)/.installed-run
	$(BIN)/seau serve --host $(HOST) --port $(PORT)

# tus-js-client, pinned by package-lock.json, for the official-client tests.
tests/uploads/js/node_modules/.installed: tests/uploads/js/package-lock.json
	npm ci --prefix tests/uploads/js --no-audit --no-fund --loglevel=error
	touch $@

# oauth2-mock-server, pinned by package-lock.json: the real OpenID provider of the tests.
tests/support/oidc/node_modules/.installed: tests/support/oidc/package-lock.json
	npm ci --prefix tests/support/oidc --no-audit --no-fund --loglevel=error
	touch $@

# Uppy and esbuild, pinned by package-lock.json: tests/web/test_uppy.py bundles the
# client of docs/direct-uploads.md with them.
tests/web/uppy/node_modules/.installed: tests/web/uppy/package-lock.json
	npm ci --prefix tests/web/uppy --no-audit --no-fund --loglevel=error
	touch $@

test: $(VENV)/.installed-dev tests/uploads/js/node_modules/.installed \
		tests/support/oidc/node_modules/.installed tests/web/uppy/node_modules/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

# Lint, format, types (mypy --strict over src, tests and bench, as [tool.mypy] files
# says) and the import rules of [tool.importlinter]: about half a minute.
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# The whole suite under coverage; fails below [tool.coverage.report] fail_under, so
# PYTEST_ARGS that select part of the suite will fail the floor. By default on two
# pytest-xdist workers, in the work units that tests/conftest.py makes (Ceph's tests on
# one worker): 18-26 min where one process took 39 (docs/decisions.md, "Test suite
# time"). PYTEST_XDIST= (empty) runs it in this process. (Not `-n 0 --dist ...`:
# pytest-cov would then wait for workers' data.)
PYTEST_XDIST ?= -n 2 --dist loadgroup
cover: $(VENV)/.installed-dev tests/uploads/js/node_modules/.installed \
		tests/support/oidc/node_modules/.installed tests/web/uppy/node_modules/.installed
	$(BIN)/pytest $(PYTEST_XDIST) --cov --cov-report=term --durations=15 $(PYTEST_ARGS)

check: lint cover

# The lowest dependency versions pyproject.toml allows, and the unit tests that need no
# database server on them (.ci/lowest): proves the lower bounds. .ci/run runs it after `check`.
lowest:
	.ci/lowest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/core.py $(BENCH_ARGS)

# Re-pin after changing dependencies in pyproject.toml: uv (pinned) resolves for the
# lowest Python seau supports, keeps the versions already locked unless pyproject.toml
# rules them out (`make lock LOCK_ARGS=--upgrade` moves everything to the newest), and
# writes every file's hash. The run lock takes its versions from the dev lock, so the
# two never disagree; both carry setuptools, seau's build backend.
UV_VERSION := 0.13.9
LOCK_UV := $(VENV)/lock-tools/bin/uv
LOCK_PYTHON := 3.11
BUILD_REQUIRES = $(PYTHON) -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires'], sep='\n')"
UV_COMPILE = $(LOCK_UV) pip compile -q --python-version $(LOCK_PYTHON) --generate-hashes \
	--custom-compile-command 'make lock' $(LOCK_ARGS)

$(LOCK_UV):
	$(PYTHON) -m venv $(VENV)/lock-tools
	$(VENV)/lock-tools/bin/pip install -q uv==$(UV_VERSION)

lock: $(LOCK_UV)
	$(BUILD_REQUIRES) | $(UV_COMPILE) --extra dev -o requirements-dev.lock pyproject.toml -
	$(BUILD_REQUIRES) | $(UV_COMPILE) -c requirements-dev.lock -o requirements.lock pyproject.toml -

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
