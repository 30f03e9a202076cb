#!/usr/bin/env python
"""Deblurring benchmark: `vidrestore evaluate` on clips made from the held-out stills (known pans and zooms).

    python scripts/bench_deblur.py                # both degradations, all clips; writes docs/benchmarks.md
    python scripts/bench_deblur.py --quick        # one small clip, both degradations

Degradations (applied by `vidrestore evaluate` with the operator the solvers invert):
  * spatial: Gaussian blur σ = 2 (`--kernel gaussian:2`);
  * combined: frame averaging over 5 frames and Gaussian σ = 1
    (`--temporal uniform:5 --kernel gaussian:1`).
Methods (evaluate's names): the blurred `input`; `wiener` (balance chosen per
clip from a grid with the ground truth: an oracle-tuned baseline) and
`richardson-lucy` (30 iterations) with the true spatial kernel, frame by frame
(they cannot undo frame averaging); `initial`, vidrestore's initial estimate
(temporal Tikhonov + Wiener); `none` (`--model none`), and the diffusion prior
with the `deblur` and `deblur-fast` presets. Each clip's report (tables, plots,
strips, restored clips) stays under `--work`; the table is the mean over clips.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchlib import EVALUATE_NOTE, ROOT, evaluate_clips, evaluate_table, make_clips, write_section

KEYS = ["psnr", "ssim", "swd", "sharpness", "warping_error", "flicker", "seconds_per_frame"]
HEADER = ["method", "PSNR dB", "SSIM", "SWD", "sharpness", "warping error", "flicker", "s / frame"]
PRESETS = ["deblur", "deblur-fast"]
DEGRADATIONS = {
    "Gaussian σ=2": ["--kernel", "gaussian:2"],
    "frame averaging uniform:5 + Gaussian σ=1": ["--kernel", "gaussian:1", "--temporal", "uniform:5"],
}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs=2, default=[96, 128], help="frame size (H W)")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--clips", nargs="+", default=None, help="clip names (still-motion), default: all pans and zooms")
    p.add_argument("--model", default=None, help="prior for the diffusion methods (default: embedded)")
    p.add_argument("--methods", nargs="*", default=None, help="subset of evaluate's method names")
    p.add_argument("--set", dest="sets", action="append", default=[], help="extra --set for the solver runs")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_deblur")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    return p.parse_args()


def main():
    args = parse_args()
    size = (64, 80) if args.quick else tuple(args.size)
    frames = 8 if args.quick else args.frames
    clips = make_clips(size, frames, names=["coffee"] if args.quick else None,
                       motions=("pan",) if args.quick else ("pan", "zoom"))
    if args.clips:
        clips = {k: v for k, v in clips.items() if k in args.clips}
    sections = []
    for deg_index, (deg_name, deg_args) in enumerate(DEGRADATIONS.items()):
        per_method, commands = evaluate_clips(clips, "deblur", deg_args, args.work / f"deg{deg_index}",
                                              methods=args.methods, presets=PRESETS, sets=args.sets,
                                              model=args.model)
        sections.append(evaluate_table(
            f"{deg_name} (`{' '.join(deg_args)}`; {len(clips)} clips: {', '.join(clips)}; {frames} frames of "
            f"{size[1]}x{size[0]})", per_method, commands, HEADER, KEYS))
        print(sections[-1], flush=True)
    if not args.no_write:
        command = "python scripts/bench_deblur.py" + "".join(
            f" {a}" for a in (["--quick"] if args.quick else []) + (["--clips", *args.clips] if args.clips else []))
        text = (f"## Deblurring\n\nCommand: `{command}`, {EVALUATE_NOTE}; `wiener` picks its balance with the "
                "ground truth).\n\n" + "\n".join(sections))
        write_section("deblur", text)


if __name__ == "__main__":
    main()
