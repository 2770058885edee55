# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: demo test lint bench bench-quick bench-memory bench-scale chaos clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "harvester needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(RUNTIME)

demo: $(RUNTIME)
	$(BIN)/harvester demo

lint: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(DEV) lint
	bash scripts/ensure-postgres.sh
	bash scripts/ensure-system-packages.sh
	$(BIN)/pytest

# Side by side with img2dataset on three loopback workloads (BENCH_IMAGES=600 by default).
bench: $(DEV)
	$(BIN)/python -m bench.run

# The same, 100 images a workload and one round: a few minutes once the corpus is rendered.
bench-quick: $(DEV)
	BENCH_QUICK=1 $(BIN)/python -m bench.run

# 100,000 queued images: the daemon's RSS stays flat and under 400 MB.
bench-memory: $(RUNTIME)
	$(BIN)/python -m bench.memory

# The daemon against the emulator with every fault on, SIGKILLed at random (CHAOS_IMAGES=2000).
chaos: $(RUNTIME)
	$(BIN)/python -m bench.chaos

# The queue at millions of rows: 2M on PostgreSQL, 1M on SQLite, four claimers at once.
bench-scale: $(RUNTIME)
	bash scripts/ensure-postgres.sh
	$(BIN)/python -m bench.scale

clean:
	rm -rf $(VENV) harvester-demo .mypy_cache .pytest_cache .ruff_cache
