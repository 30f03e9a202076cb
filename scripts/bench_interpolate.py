#!/usr/bin/env python
"""Frame-interpolation (x2) benchmark on clips made from the held-out stills (known pans and zooms).

    python scripts/bench_interpolate.py              # all clips + a scene-cut clip, writes docs/benchmarks.md
    python scripts/bench_interpolate.py --quick      # one small clip

The ground-truth clip has (N−1)·2+1 frames; the input keeps every other frame.
Methods: frame blending and the DIS-flow midpoint warp (vidrestore.baselines),
vidrestore's initial estimate (flow midpoint + scene-cut handling), `--model
none` and the diffusion prior with the `interpolate` and `interpolate-fast`
presets (whole CLI runs, each in its own process). PSNR and SSIM are measured
on the invented frames only (the input frames are kept exactly by every
method); warping error (flow from the truth) on the whole output clip.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchlib import (ROOT, make_clips, markdown_table, method_runs, run_classical, run_cli_methods, summary_rows, write_lossless,
                      write_section)
from vidrestore import baselines
from vidrestore import metrics as M
from vidrestore.tasks import interpolate_initial_estimate

FACTOR = 2
KEYS = ["psnr_invented", "ssim_invented", "psnr_all", "warping_error", "sec_per_frame"]
PRESETS = {"diffusion, interpolate (default)": [], "diffusion, interpolate-fast": ["--preset", "interpolate-fast"]}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs=2, default=[96, 128], help="frame size (H W)")
    p.add_argument("--frames", type=int, default=17, help="ground-truth frames ((N-1)*2+1)")
    p.add_argument("--model", default=None, help="prior for the diffusion methods (default: embedded)")
    p.add_argument("--methods", nargs="*", default=None, help="subset of method names")
    p.add_argument("--set", dest="sets", action="append", default=[], help="extra --set for the diffusion runs")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_interpolate")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    return p.parse_args()


def invented(clip: torch.Tensor) -> torch.Tensor:
    keep = torch.ones(clip.shape[0], dtype=torch.bool)
    keep[::FACTOR] = False
    return clip[keep]


def score_interp(out: torch.Tensor, truth: torch.Tensor) -> dict:
    return {"psnr_invented": M.psnr(invented(out), invented(truth)),
            "ssim_invented": M.ssim(invented(out), invented(truth)),
            "psnr_all": M.psnr(out, truth), "warping_error": M.warping_error(out, flow_source=truth)}


def cut_clip(size, frames) -> torch.Tensor:
    """Two shots: the first half of a coffee pan, then a rocket pan (a cut between two input frames)."""
    a = make_clips(size, frames, names=["coffee"], motions=("pan",))["coffee-pan"]
    b = make_clips(size, frames, names=["rocket"], motions=("pan",))["rocket-pan"]
    half = (frames // 2) | 1  # odd: the cut falls between two kept frames
    return torch.cat([a[:half], b[half:]])


def run_methods(truth: torch.Tensor, work: Path, args) -> dict[str, dict]:
    lr = truth[::FACTOR]
    in_path = write_lossless(work / "input.mkv", lr)
    rows = {}
    classical = {"frame blending": lambda: baselines.interpolate_blend(lr, FACTOR),
                 "DIS-flow midpoint": lambda: baselines.interpolate_flow_midpoint(lr, FACTOR),
                 "initial estimate (midpoint + cuts)": lambda: interpolate_initial_estimate(lr, FACTOR)}
    rows.update(run_classical(classical, truth, score_interp, args.methods))
    rows.update(run_cli_methods(["interpolate", in_path, "-x", FACTOR], method_runs(PRESETS, args.model, args.sets),
                                work, truth, score_interp, args.methods))
    return rows


def main():
    args = parse_args()
    size = (64, 80) if args.quick else tuple(args.size)
    frames = 9 if args.quick else args.frames
    clips = make_clips(size, frames, names=["coffee"] if args.quick else None,
                       motions=("pan",) if args.quick else ("pan", "zoom"))
    if not args.quick:
        clips["coffee|rocket-cut"] = cut_clip(size, frames)
    per_method: dict[str, list[dict]] = {}
    for clip_name, truth in clips.items():
        work = args.work / clip_name.replace("|", "_")
        work.mkdir(parents=True, exist_ok=True)
        write_lossless(work / "truth.mkv", truth)
        rows = run_methods(truth, work, args)
        truth_warp = M.warping_error(truth, flow_source=truth)
        for name, row in rows.items():
            per_method.setdefault(name, []).append(row | {"truth_warping_error": truth_warp})
            print(f"{clip_name:18s} {name:36s} PSNR(invented) {row['psnr_invented']:.2f} "
                  f"SSIM(invented) {row['ssim_invented']:.3f} PSNR(all) {row['psnr_all']:.2f} "
                  f"warp {row['warping_error']:.5f} s/frame {row['sec_per_frame']:.3f}", flush=True)
    table = summary_rows(per_method, KEYS)
    truth_warp = sum(r["truth_warping_error"] for r in next(iter(per_method.values()))) / len(clips)
    text = (f"## Frame interpolation\n\nCommand: `python scripts/bench_interpolate.py{' --quick' if args.quick else ''}` "
            f"(CPU; diffusion runs are whole CLI runs, model loading and I/O included).\n\n"
            f"### x{FACTOR} ({len(clips)} clips: {', '.join(clips)}; {frames} frames of {size[1]}x{size[0]} "
            f"from {(frames - 1) // FACTOR + 1})\n\n"
            + markdown_table(["method", "PSNR dB (invented)", "SSIM (invented)", "PSNR dB (all)", "warping error",
                              "s / frame"], table)
            + f"\n\nWarping error of the ground truth itself: {truth_warp:.5f}.\n")
    print(text)
    if not args.no_write:
        write_section("interpolate", text)


if __name__ == "__main__":
    main()
