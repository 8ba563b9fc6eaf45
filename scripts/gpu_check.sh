#!/usr/bin/env bash
# One short GPU check (a few minutes): Piper first audio on CUDA against the CPU on the
# benchmark texts and, with CosyVoice 2 weights mounted, CosyVoice first audio and real-time
# factor at 1, 2 and 4 concurrent streams. JSON to $OUT/gpu_check.json (or --out), a table on
# stdout. Without an NVIDIA GPU it says so and exits 2, measuring nothing.
#
#   scripts/gpu_check.sh                                   # Piper CUDA vs CPU
#   COSYVOICE_MODEL_DIR=/models/CosyVoice2-0.5B scripts/gpu_check.sh   # + CosyVoice
#
# Piper on CUDA needs onnxruntime's GPU build in place of the CPU one. GPU_CHECK_PYTHON picks
# the interpreter (default: .venv-gpu if it exists, else .venv); make .venv-gpu once, with
# network access, by:
#   UV_PROJECT_ENVIRONMENT=.venv-gpu uv sync --frozen --extra piper-gpu --extra dev \
#       --no-install-package onnxruntime
# CosyVoice needs torch and CosyVoice's source as well: run it in the CosyVoice image
# (docker/Dockerfile.tts-cosyvoice), e.g.
#   docker run --gpus all --user "$(id -u)" -v <weights>:/models/CosyVoice2-0.5B -v $PWD:/src -w /src \
#       --entrypoint python voice-orchestrator/tts-cosyvoice -m scripts.gpu_check --out /src/gpu_check.json
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${GPU_CHECK_PYTHON:-}" ]; then
  if [ -x .venv-gpu/bin/python ]; then GPU_CHECK_PYTHON=.venv-gpu/bin/python
  else GPU_CHECK_PYTHON=.venv/bin/python; fi
fi
exec "$GPU_CHECK_PYTHON" -m scripts.gpu_check "$@"
