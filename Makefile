# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
PY      ?= python3.11
VENV    ?= .venv
BIN      = $(VENV)/bin
# CPU-usable torch builds that lie on this machine's disk; an unpinned torch pulls GBs of CUDA wheels.
TORCH    = torch==2.14.1 torchvision==0.29.1
STAMP    = $(VENV)/.installed

.PHONY: setup test test-slow lint demo bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]' $(TORCH)
	@touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

demo: $(STAMP)
	$(BIN)/latentomni demo

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --out runs/bench/results.json

clean:
	rm -rf runs build .pytest_cache
