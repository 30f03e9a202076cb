#!/usr/bin/env python
"""Make the demo's clip: a 12-frame pan over a held-out still, and its 4x box-downsampled version."""
import sys
from fractions import Fraction
from pathlib import Path

from clips import camera_clip
from stills import load_still

from vidrestore.io import VideoWriter, quantize, to_uint8
from vidrestore.operators import BoxDownsample

out = Path(sys.argv[1] if len(sys.argv) > 1 else "demo")
out.mkdir(parents=True, exist_ok=True)
hr = quantize(camera_clip(load_still("chelsea"), (128, 192), 12, pan=(1.5, 0.5), source_scale=1.5))
lr = quantize(BoxDownsample(4).A(hr))
for name, clip in (("truth.mkv", hr), ("input.mp4", lr)):
    with VideoWriter(out / name, Fraction(24), clip.shape[3], clip.shape[2], crf=12, overwrite=True) as writer:
        writer.write(to_uint8(clip))
print(out / "input.mp4")
