# Two commands matter: `make run` and `make test`. Everything else is a helper.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Node dependencies: the tests' (`ws` for the JS client against a real server, a MessagePack
# encoder; tests/js/package.json) and the load generator's (bench/package.json: tests/test_bench.py
# runs it small).
NODE_STAMP := tests/js/node_modules/.installed
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install node-deps system-deps run test browser lint style check bench soak clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

node-deps: $(NODE_STAMP)

$(NODE_STAMP): tests/js/package.json tests/js/package-lock.json bench/package.json bench/package-lock.json
	npm ci --no-audit --no-fund --prefix tests/js
	npm ci --no-audit --no-fund --prefix bench
	touch $(NODE_STAMP)

# Debian packages the tests need (headless Chromium for the dashboard, redis-server and nginx
# for scale-out).
system-deps:
	sh scripts/system-deps.sh

run: install
	$(BIN)/ticker serve --host $(HOST) --port $(PORT)

test: install system-deps node-deps
	$(BIN)/python -m pytest -q
	TICKER_PYTHON=$(abspath $(BIN))/python node --test tests/js/

# The dashboard in headless Chromium only (also part of `make test`).
browser: install system-deps
	$(BIN)/python -m pytest -q -m browser

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

style: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: lint

bench: install
	$(BIN)/python -m bench

# The soak test for TICKER_SOAK_S seconds (default 600; `make test` runs it for 15 s).
soak: install
	TICKER_SOAK_S=$${TICKER_SOAK_S:-600} $(BIN)/python -m pytest -q -s tests/test_soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/js/node_modules bench/node_modules
