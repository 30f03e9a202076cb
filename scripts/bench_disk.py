#!/usr/bin/env python
"""Peak disk use of one run's output folder while it runs.

    python scripts/bench_disk.py                 # 300 frames of 640x360, superres x2 --model none -> .mp4
    python scripts/bench_disk.py --frames 60 --suffix .mkv

The input (ffmpeg's testsrc2, libx264 CRF 18) is made in a temporary folder
apart from the output's folder, so that only what the run writes is counted: a
thread sums the allocated blocks of everything under the output's folder every
0.1 s (the work folder, segments, hidden temporary outputs, the final output).
Prints the peak, the output's size, their ratio and one window's share of the
output (output bytes x chunk / frames); and the peak without the resume state
(`*.npy` in the work folder: the float32 overlap frames kept for the cross-fade,
a fixed size per run, about 2 x (overlap + 2) frames x W x H x 12 bytes while a
state is replaced) next to the frames themselves.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import imageio_ffmpeg


def tree_bytes(folder: Path, skip_state: bool = False) -> int:
    """Allocated bytes of every file under `folder` (files may vanish while we walk); with
    `skip_state`, without the resume state's `.npy` files."""
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in files + dirs:
            if skip_state and name.endswith(".npy"):
                continue
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


class Peak(threading.Thread):
    """Polls `tree_bytes(folder)` every `interval` seconds until stopped; keeps the maxima
    with and without the resume state."""

    def __init__(self, folder: Path, interval: float = 0.1):
        super().__init__(daemon=True)
        self.folder, self.interval, self.peak, self.peak_frames, self.samples = folder, interval, 0, 0, 0
        self.done = threading.Event()

    def sample(self) -> None:
        self.peak = max(self.peak, tree_bytes(self.folder))
        self.peak_frames = max(self.peak_frames, tree_bytes(self.folder, skip_state=True))
        self.samples += 1

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)

    def stop(self) -> int:
        self.done.set()
        self.join()
        self.sample()
        return self.peak


def make_input(path: Path, frames: int, size: str) -> None:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                    "-frames:v", str(frames), "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", "-y", str(path)],
                   check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--suffix", default=".mp4", help=".mp4, .mkv or '' for a PNG folder")
    parser.add_argument("--chunk", type=int, default=16, help="the run's runtime.chunk (the default is 16)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="vidrestore-bench-disk-") as scratch:
        scratch = Path(scratch)
        source = scratch / "in" / "in.mp4"
        out_dir = scratch / "out"
        source.parent.mkdir()
        out_dir.mkdir()
        make_input(source, args.frames, args.size)
        output = out_dir / f"OUT{args.suffix}"
        cmd = [sys.executable, "-m", "vidrestore", "superres", str(source), "-x", "2", "--model", "none",
               "--chunk", str(args.chunk), "-o", str(output), "--quiet"]
        peak = Peak(out_dir)
        started = time.perf_counter()
        peak.start()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        peak_bytes = peak.stop()
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
        output_bytes = tree_bytes(output) if output.is_dir() else output.stat().st_blocks * 512
        window = output_bytes * args.chunk / args.frames
    print(f"input: {args.frames} frames of {args.size}, superres x2 --model none -> {output.name}, "
          f"{seconds:.1f} s, {peak.samples} samples")
    print(f"peak bytes:   {peak_bytes:>14,d}")
    print(f"output bytes: {output_bytes:>14,d}")
    print(f"peak/output:  {peak_bytes / output_bytes:14.2f}")
    print(f"peak without the resume state (*.npy): {peak.peak_frames:,d} ({peak.peak_frames / output_bytes:.2f} x output)")
    print(f"one window:   {window:>14,.0f}  ({args.chunk} of {args.frames} frames of the output)")


if __name__ == "__main__":
    main()
