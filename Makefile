# Everything a developer runs. `make run` and `make test` work on a fresh machine:
# they install uv (into .tools/) when it is missing and sync the locked environment.
SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.synced

.PHONY: help setup run test lint format proto bench clean

help:
	@echo "make run    build the page, start LiveKit (dev, 7880), one Piper worker (7001) and the orchestrator: open http://127.0.0.1:8080/"
	@echo "make test   set up and run the whole test suite"
	@echo "make lint   ruff, mypy, the layout check (scripts/check_layout.py) and tsc on the page"
	@echo "make proto  regenerate the gRPC stubs from proto/"
	@echo "make bench  run the benchmarks, write bench/results/<timestamp>.json"

$(CURDIR)/.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra piper --extra listening --extra dev
	@touch $@

setup: $(STAMP)

run: $(STAMP)
	scripts/run_local.sh

test: $(STAMP)
	scripts/system_deps.sh
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m scripts.check_layout
	scripts/build_web.sh --check

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

proto: $(STAMP)
	$(PY) -m scripts.gen_proto

bench: $(STAMP)
	scripts/system_deps.sh
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
