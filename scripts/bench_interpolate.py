#!/usr/bin/env python
"""Frame-interpolation (x2) benchmark: `vidrestore evaluate` on clips made from the held-out stills.

    python scripts/bench_interpolate.py              # pans, zooms, wobbles + a scene-cut clip; writes docs/benchmarks.md
    python scripts/bench_interpolate.py --quick      # one small clip

The ground-truth clip has (N−1)·2+1 frames; evaluate's input keeps every other
frame. Methods (evaluate's names): frame blending (`blend`), the DIS-flow
midpoint warp (linear motion, Super SloMo's flows) with textbook bilinear
reads (`flow-midpoint`) and with bicubic reads (`flow-midpoint-bicubic`);
`initial`, vidrestore's initial estimate (quadratic trajectories, bicubic
reads, scene-cut repeats) and `none` (`--model none`, what the default
`interpolate` preset runs); the diffusion prior with the
`interpolate-diffusion` preset, and with Warped Diffusion's equivariance
guidance on (λ = 1.5, the old preset's start t = 100 and 4 steps). PSNR and SSIM are
measured on the invented frames only (every method keeps the input frames
exactly), from the restored clips each report holds; warping error (flow
from the truth) on the whole output clip. The frame between the two shots of
the cut clip has no knowable truth: it is left out of every score but the
check that it is not a morph.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from vidrestore import metrics as M

from benchlib import (
    EVALUATE_NOTE,
    ROOT,
    evaluate_clips,
    make_clips,
    markdown_table,
    read_clip,
    summary_rows,
    write_section,
)

FACTOR = 2
VARIANTS = ["interpolate-diffusion-guided:preset=interpolate-diffusion,guidance.equivariance=1.5,"
            "sampler.start_t=100,sampler.steps=4,sampler.eta=0.15"]
PRESETS = ["interpolate-diffusion"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs=2, default=[96, 128], help="frame size (H W)")
    p.add_argument("--frames", type=int, default=17, help="ground-truth frames ((N-1)*2+1)")
    p.add_argument("--model", default=None, help="prior for the diffusion methods (default: embedded)")
    p.add_argument("--methods", nargs="*", default=None, help="subset of evaluate's method names")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_interpolate")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    return p.parse_args()


def invented(clip: torch.Tensor, skip: tuple[int, ...] = ()) -> torch.Tensor:
    keep = torch.ones(clip.shape[0], dtype=torch.bool)
    keep[::FACTOR] = False
    keep[list(skip)] = False
    return clip[keep]


def score(out: torch.Tensor, truth: torch.Tensor, cut_frames: tuple[int, ...] = ()) -> dict:
    """Scores on the invented frames; those between two shots (`cut_frames`) have no knowable truth.

    Which shot a frame between the last input frame of one shot and the first
    of the next belongs to depends on where the cut fell in the unseen footage,
    so those frames are left out of PSNR/SSIM. What they must not be is a morph
    of the two shots: `cut_morph` is the mean absolute difference to the nearer
    of the two input frames (0 = a clean repeat).
    """
    known = [i for i in range(out.shape[0]) if i not in cut_frames]
    row = {"psnr_invented": M.psnr(invented(out, cut_frames), invented(truth, cut_frames)),
           "ssim_invented": M.ssim(invented(out, cut_frames), invented(truth, cut_frames)),
           "psnr_all": M.psnr(out[known], truth[known]),
           "warping_error": warping_error_within_shots(out, truth, cut_frames)}
    if cut_frames:
        row["cut_morph"] = max(min((out[i] - out[i - 1]).abs().mean().item(),
                                   (out[i] - out[i + 1]).abs().mean().item()) for i in cut_frames)
    return row


def warping_error_within_shots(clip: torch.Tensor, truth: torch.Tensor, cut_frames: tuple[int, ...]) -> float:
    """Warping error (flow from the truth) over the pairs that do not touch a frame between two shots."""
    pairs = [v for i, v in enumerate(M.warping_error_per_pair(clip, truth))
             if not math.isnan(v) and i not in cut_frames and i + 1 not in cut_frames]
    return mean(pairs)


def cut_clip(size, frames) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Two shots: the first half of a coffee pan, then a rocket pan (a cut between two input frames)."""
    a = make_clips(size, frames, names=["coffee"], motions=("pan",))["coffee-pan"]
    b = make_clips(size, frames, names=["rocket"], motions=("pan",))["rocket-pan"]
    half = (frames // 2) | 1  # odd: the cut falls between two kept frames
    return torch.cat([a[:half], b[half:]]), (half,)


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def main():
    args = parse_args()
    size = (64, 80) if args.quick else tuple(args.size)
    frames = 9 if args.quick else args.frames
    clips = make_clips(size, frames, names=["coffee"] if args.quick else None,
                       motions=("pan",) if args.quick else ("pan", "zoom", "wobble"))
    cut_frames = {}
    if not args.quick:
        clips["coffee-rocket-cut"], cut_frames["coffee-rocket-cut"] = cut_clip(size, frames)
    per_method, commands = evaluate_clips(clips, "interpolate", ["-x", str(FACTOR)], args.work, methods=args.methods,
                                          presets=PRESETS, variants=VARIANTS, model=args.model)
    # rescore every restored clip on the invented frames (leaving out the frame between two shots)
    rows: dict[str, list[dict]] = {}
    by_motion: dict[str, dict[str, list[float]]] = {}
    cut_rows = []
    for index, (clip_name, truth) in enumerate(clips.items()):
        report = args.work / clip_name / "report"
        motion = "cut" if clip_name in cut_frames else clip_name.rsplit("-", 1)[1]
        for method, reports in per_method.items():
            out = read_clip(report / "runs" / method / "output.mkv")
            row = score(out, truth, cut_frames.get(clip_name, ())) | {
                "seconds_per_frame": reports[index]["seconds_per_frame"]}
            rows.setdefault(method, []).append(row)
            by_motion.setdefault(method, {}).setdefault(motion, []).append(row["psnr_invented"])
            if "cut_morph" in row:
                cut_rows.append([method, row["cut_morph"]])
            print(f"{clip_name:18s} {method:36s} PSNR(invented) {row['psnr_invented']:.2f}", flush=True)
    keys = ["psnr_invented", "ssim_invented", "psnr_all", "warping_error", "seconds_per_frame"]
    table = summary_rows(rows, keys)
    truth_warp = mean(warping_error_within_shots(truth, truth, cut_frames.get(name, ())) for name, truth in clips.items())
    command = "python scripts/bench_interpolate.py" + (" --quick" if args.quick else "")
    text = (f"## Frame interpolation\n\nCommand: `{command}`, {EVALUATE_NOTE}; PSNR and SSIM re-measured on the "
            f"invented frames of each report's restored clips).\n\n"
            f"### x{FACTOR} ({len(clips)} clips: {', '.join(clips)}; {frames} frames of {size[1]}x{size[0]} "
            f"from {(frames - 1) // FACTOR + 1})\n\nPer clip: `{commands[0]}` (then the other clips).\n\n"
            + markdown_table(["method", "PSNR dB (invented)", "SSIM (invented)", "PSNR dB (all)", "warping error",
                              "s / frame"], table)
            + f"\n\nWarping error of the ground truth itself: {truth_warp:.5f}.\n"
            + "\nPSNR dB on the invented frames by kind of motion (mean over clips):\n\n"
            + markdown_table(["method", *next(iter(by_motion.values()))],
                             [[name, *[mean(v) for v in motions.values()]] for name, motions in by_motion.items()])
            + ("\n\nThe frame between the two shots of the cut clip is left out of PSNR/SSIM: which shot it "
               "belongs to depends on where the cut fell in footage nobody has. It must not be a morph; mean "
               "absolute difference to the nearer input frame (0 = a clean repeat):\n\n"
               + markdown_table(["method", "cut frame vs nearer input frame"], cut_rows) if cut_rows else "")
            + "\n")
    print(text)
    if not args.no_write:
        write_section("interpolate", text)


if __name__ == "__main__":
    main()
