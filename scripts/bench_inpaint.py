#!/usr/bin/env python
"""Video-inpainting benchmark: `vidrestore evaluate` on clips made from the held-out stills (known pans and zooms).

    python scripts/bench_inpaint.py               # static and moving boxes, all clips; writes docs/benchmarks.md
    python scripts/bench_inpaint.py --quick       # one small clip, static box only

Masks: a static box (`--box X,Y,W,H`) and a box moving across the frame (a
per-frame mask video, `--mask`), each covering ~10% of the frame; evaluate
paints the hole black. Methods (evaluate's names): OpenCV `telea` and
`navier-stokes` per frame; `initial`, vidrestore's initial estimate (known
pixels propagated along DIS flow from the other frames, Telea for the rest);
`none` (`--model none`) and the diffusion prior with the `inpaint` and
`inpaint-fast` presets. PSNR inside the hole and over the whole frame, SSIM,
warping error and flicker (flow from the truth) of the whole clip.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from benchlib import EVALUATE_NOTE, ROOT, evaluate_clips, evaluate_table, make_clips, write_lossless, write_section

KEYS = ["psnr_unknown", "psnr", "ssim", "swd", "sharpness", "warping_error", "flicker", "seconds_per_frame"]
HEADER = ["method", "PSNR dB (hole)", "PSNR dB (frame)", "SSIM", "SWD", "sharpness", "warping error", "flicker", "s / frame"]
PRESETS = ["inpaint", "inpaint-fast"]
AREA = 0.10


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs=2, default=[96, 128], help="frame size (H W)")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--clips", nargs="+", default=None, help="clip names (still-motion), default: all pans and zooms")
    p.add_argument("--model", default=None, help="prior for the diffusion methods (default: embedded)")
    p.add_argument("--methods", nargs="*", default=None, help="subset of evaluate's method names")
    p.add_argument("--set", dest="sets", action="append", default=[], help="extra --set for the solver runs")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_inpaint")
    p.add_argument("--masks", nargs="+", choices=["static", "moving"], default=None,
                   help="mask kinds (default: both; --quick: static)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    return p.parse_args()


def box_size(h: int, w: int) -> tuple[int, int]:
    """A box with the frame's aspect ratio covering ~AREA of it."""
    side = math.sqrt(AREA)
    return max(1, round(h * side)), max(1, round(w * side))


def static_box(h: int, w: int) -> tuple[int, int, int, int]:
    bh, bw = box_size(h, w)
    return (w - bw) // 2, (h - bh) // 2, bw, bh  # X, Y, W, H


def moving_missing(frames: int, h: int, w: int) -> torch.Tensor:
    """(F, 3, H, W) mask clip, 1 = missing, of a box sweeping horizontally across the frame centre."""
    bh, bw = box_size(h, w)
    y0 = (h - bh) // 2
    missing = torch.zeros(frames, 3, h, w)
    for f in range(frames):
        x0 = round((w - bw) * f / max(frames - 1, 1))
        missing[f, :, y0:y0 + bh, x0:x0 + bw] = 1
    return missing


def main():
    args = parse_args()
    size = (64, 80) if args.quick else tuple(args.size)
    frames = 8 if args.quick else args.frames
    h, w = size
    clips = make_clips(size, frames, names=["coffee"] if args.quick else None,
                       motions=("pan",) if args.quick else ("pan", "zoom"))
    if args.clips:
        clips = {k: v for k, v in clips.items() if k in args.clips}
    masks = args.masks or (("static",) if args.quick else ("static", "moving"))
    sections = []
    for mask_kind in masks:
        if mask_kind == "static":
            task_args = ["--box", ",".join(map(str, static_box(h, w)))]
        else:
            def task_args(name, folder):  # one mask video per clip folder, beside its reference
                return ["--mask", write_lossless(folder / "mask.mkv", moving_missing(frames, h, w))]
        per_method, commands = evaluate_clips(clips, "inpaint", task_args, args.work / mask_kind,
                                              methods=args.methods, presets=PRESETS, sets=args.sets,
                                              model=args.model)
        bh, bw = box_size(h, w)
        sections.append(evaluate_table(
            f"{mask_kind} {bw}x{bh} box ({100 * bw * bh / (h * w):.0f}% of the frame; {len(clips)} clips: "
            f"{', '.join(clips)}; {frames} frames of {w}x{h})", per_method, commands, HEADER, KEYS))
        print(sections[-1], flush=True)
    if not args.no_write:
        command = "python scripts/bench_inpaint.py" + "".join(
            f" {a}" for a in (["--quick"] if args.quick else []) + (["--clips", *args.clips] if args.clips else []))
        text = f"## Inpainting\n\nCommand: `{command}`, {EVALUATE_NOTE}).\n\n" + "\n".join(sections)
        write_section("inpaint", text)


if __name__ == "__main__":
    main()
