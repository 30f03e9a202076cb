#!/usr/bin/env python
"""Denoising benchmark: `vidrestore evaluate --task denoise` on clips made from the held-out stills.

    python scripts/bench_denoise.py                # σ = 10/255 and 25/255, all clips; writes docs/benchmarks.md
    python scripts/bench_denoise.py --quick        # one small clip

Degradation (applied by `vidrestore evaluate`, seeded): white Gaussian noise of std σ, then 8-bit rounding.
Methods (evaluate's names): the noisy `input`; `bm3d`, per-frame colour BM3D told the true σ; `nlm`,
OpenCV's multi-frame non-local means over 5 frames with h picked per clip from a grid around σ with the
ground truth (an oracle-tuned baseline); the diffusion prior with the `denoise` and `denoise-fast`
presets told the true σ; and `denoise-auto`, the default preset estimating σ itself (`--sigma auto`,
the command-line default). The `auto` σ error is |estimate − σ| / σ from that run's metrics JSON.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchlib import (
    EVALUATE_NOTE,
    ROOT,
    evaluate_clips,
    make_clips,
    markdown_table,
    summary_rows,
    truth_warping_error,
    write_section,
)

KEYS = ["psnr", "ssim", "warping_error", "seconds_per_frame"]
HEADER = ["method", "PSNR dB", "SSIM", "warping error", "s / frame"]
PRESETS = ["denoise", "denoise-fast"]
SIGMAS = {"10/255": 10 / 255, "25/255": 25 / 255}
AUTO_VARIANT = "denoise-auto:preset=denoise,degradation.sigma=auto"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs=2, default=[64, 64], help="frame size (H W)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--clips", nargs="+", default=None, help="clip names (still-motion), default: every pan")
    p.add_argument("--motions", nargs="+", default=["pan"], help="pan, zoom, wobble")
    p.add_argument("--model", default=None, help="prior for the diffusion methods (default: embedded)")
    p.add_argument("--methods", nargs="*", default=None, help="subset of evaluate's method names")
    p.add_argument("--set", dest="sets", action="append", default=[], help="extra --set for the solver runs")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_denoise")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    return p.parse_args()


def auto_error(work: Path, clips, sigma: float) -> tuple[float, float]:
    """(mean, max) relative error of the `denoise-auto` run's estimated σ over the clips."""
    errors = []
    for name in clips:
        metrics = json.loads((work / name / "report" / "runs" / "denoise-auto" / "output.mkv.metrics.json").read_text())
        errors.append(abs(metrics["sigma_y"] - sigma) / sigma)
    return sum(errors) / len(errors), max(errors)


def main():
    args = parse_args()
    size = tuple(args.size)
    clips = make_clips(size, args.frames, names=["coffee"] if args.quick else None, motions=tuple(args.motions))
    if args.clips:
        clips = {k: v for k, v in clips.items() if k in args.clips}
    methods = args.methods or ["input", "bm3d", "nlm", *PRESETS, "denoise-auto"]
    sections = []
    for index, (label, sigma) in enumerate(SIGMAS.items()):
        work = args.work / f"sigma{index}"
        per_method, commands = evaluate_clips(clips, "denoise", ["--sigma", f"{sigma:.6f}"], work,
                                              methods=methods, presets=PRESETS, variants=[AUTO_VARIANT],
                                              sets=args.sets, model=args.model)
        note = ""
        if "denoise-auto" in per_method:
            mean, worst = auto_error(work, clips, sigma)
            note = f" `auto` σ error: mean {100 * mean:.1f} %, worst {100 * worst:.1f} % of σ."
        sections.append(
            f"### σ = {label} ({len(clips)} clips: {', '.join(clips)}; {args.frames} frames of {size[1]}x{size[0]})"
            f"\n\nPer clip: `{commands[0]}` (then the other clips).\n\n"
            + markdown_table(HEADER, summary_rows(per_method, KEYS))
            + f"\n\nWarping error of the ground truth itself: {truth_warping_error(per_method):.5f}.{note}\n")
        print(sections[-1], flush=True)
    if not args.no_write:
        command = "python scripts/bench_denoise.py" + "".join(
            f" {a}" for a in (["--quick"] if args.quick else []) + (["--clips", *args.clips] if args.clips else []))
        text = (f"## Denoising\n\nCommand: `{command}`, {EVALUATE_NOTE}; `nlm` picks h with the ground truth, "
                "`bm3d` is told the true σ, as are `denoise` and `denoise-fast`; `denoise-auto` estimates it).\n\n"
                + "\n".join(sections))
        write_section("denoise", text)


if __name__ == "__main__":
    main()
