# Quick start: `make run` and `make test`. Both create .venv if missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=python3"; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mfrnn phase --out runs/phase

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_simulate.py
	$(BIN)/python benchmarks/bench_dmft.py
	$(BIN)/python benchmarks/bench_phase.py
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) runs
