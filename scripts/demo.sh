#!/usr/bin/env bash
# Make .venv, install vidrestore, make a small clip, super-resolve it 4x with the embedded prior, show the metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -c "import torch" 2>/dev/null || python -m pip install -q --disable-pip-version-check "torch==2.13.0"
python -m pip install -q --disable-pip-version-check -e ".[dev]"
export HF_HUB_OFFLINE=1
mkdir -p demo
input=$(python scripts/make_demo_clip.py demo)
echo "input: $input (48x32, 12 frames; ground truth demo/truth.mkv)"
vidrestore superres "$input" -x 4 -o demo/restored.mp4 --reference demo/truth.mkv --overwrite
echo "output: demo/restored.mp4"
echo "metrics: demo/restored.mp4.metrics.json"
cat demo/restored.mp4.metrics.json
