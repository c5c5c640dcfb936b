# Two entry points: `make run` (the quick default grid) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= 2

$(BIN)/snakemake: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and exactly pinned, so pip never resolves an unpinned (multi-GB) build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/snakemake

run: install
	$(BIN)/snakemake --cores $(CORES) --workflow-profile workflow/profiles/local

report: run
	$(BIN)/snakemake --cores 1 --report results/report.zip

# PYTEST_ARGS='-m "not slow"' leaves out the tests that start Snakemake (CI runs them all)
test: install
	$(BIN)/pytest -q $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/run_all.py --out results/bench

.PHONY: install run report test bench
