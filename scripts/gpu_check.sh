#!/usr/bin/env bash
# The GPU check, one command (a few minutes): Piper first audio over texts of varied lengths
# (each a new input shape), CUDA against the CPU; and, with CosyVoice 2 weights, CosyVoice
# first audio and real-time factor at 1, 2 and 4 concurrent streams with a zero-shot voice the
# check registers itself, then a cancel that must leave no LLM thread and no upstream state.
# A part this environment cannot run is reported as skipped, with why. JSON to
# $OUT/gpu_check.json (or --out), tables on stdout. Without an NVIDIA GPU it says so and
# exits 2, measuring nothing.
#
#   scripts/gpu_check.sh                                             # Piper CUDA vs CPU
#   scripts/gpu_check.sh --cosyvoice-model-dir /models/CosyVoice2-0.5B   # + CosyVoice
#   (--reference-clip WAV --reference-text TEXT: the zero-shot voice; default: Piper speaks one)
#
# Piper on CUDA needs onnxruntime's GPU build in place of the CPU one. GPU_CHECK_PYTHON picks
# the interpreter (default: .venv-gpu if it exists, else .venv); make .venv-gpu once, with
# network access, by:
#   UV_PROJECT_ENVIRONMENT=.venv-gpu uv sync --frozen --extra piper-gpu --extra dev \
#       --no-install-package onnxruntime
# CosyVoice needs torch and CosyVoice's source as well: run the same command in the CosyVoice
# image (docker/Dockerfile.tts-cosyvoice), which has no Piper, so give it a reference clip:
#   docker run --gpus all --user "$(id -u)" -v <weights>:/models/CosyVoice2-0.5B -v $PWD:/src \
#       -w /src --entrypoint scripts/gpu_check.sh -e GPU_CHECK_PYTHON=python \
#       voice-orchestrator/tts-cosyvoice --cosyvoice-model-dir /models/CosyVoice2-0.5B \
#       --reference-clip /src/ref.wav --reference-text "..." --out /src/gpu_check.json
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${GPU_CHECK_PYTHON:-}" ]; then
  if [ -x .venv-gpu/bin/python ]; then GPU_CHECK_PYTHON=.venv-gpu/bin/python
  else GPU_CHECK_PYTHON=.venv/bin/python; fi
fi
exec "$GPU_CHECK_PYTHON" -m scripts.gpu_check "$@"
