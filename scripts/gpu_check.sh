#!/usr/bin/env bash
# The prepared GPU check (about 5 minutes on one GPU): CUDA tests, the embedded prior's throughput at 1280x720
# (fp32 / fp16 / bf16, torch.compile off / on), a tiny SD pipeline end to end (superres, and edit with a tiny ControlNet); a JSON report of every case.
# Usage: scripts/gpu_check.sh [OUT.json]
# Runs from the repository root with the project's .venv if there is one, else the machine's python3 with
# the repository on PYTHONPATH (a lent GPU machine has torch and no network: missing packages travel as wheels).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
if ! "$PY" -c "import torch, diffusers, transformers, cv2, typer, rich, yaml, imageio_ffmpeg, pytest" 2>/dev/null; then
  echo "gpu_check: $PY lacks a package vidrestore needs (torch diffusers transformers opencv typer rich pyyaml imageio-ffmpeg pytest)" >&2
  exit 3
fi
timeout 480 "$PY" scripts/gpu_check.py --out "${1:-gpu_check.json}"
