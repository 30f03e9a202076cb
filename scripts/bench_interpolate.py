#!/usr/bin/env python
"""Frame-interpolation (x2) benchmark on clips made from the held-out stills (known pans and zooms).

    python scripts/bench_interpolate.py              # all clips + a scene-cut clip, writes docs/benchmarks.md
    python scripts/bench_interpolate.py --quick      # one small clip

The ground-truth clip has (N−1)·2+1 frames; the input keeps every other frame.
Methods: frame blending and the DIS-flow midpoint warp (vidrestore.baselines),
vidrestore's initial estimate (flow midpoint + scene-cut handling), `--model
none` (what the default `interpolate` preset runs) and the diffusion prior with the
`interpolate-diffusion` preset, with and without guidance (whole CLI runs, each in its own process). PSNR and SSIM are measured
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
PRESETS = {"diffusion, interpolate-diffusion": ["--preset", "interpolate-diffusion"],
           "diffusion, interpolate-diffusion without guidance": ["--preset", "interpolate-diffusion",
                                                                  "--set", "guidance.equivariance=0"]}


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


def invented(clip: torch.Tensor, skip: tuple[int, ...] = ()) -> torch.Tensor:
    keep = torch.ones(clip.shape[0], dtype=torch.bool)
    keep[::FACTOR] = False
    keep[list(skip)] = False
    return clip[keep]


def scorer(cut_frames: tuple[int, ...] = ()):
    """Scores on the invented frames; those between two shots (`cut_frames`) have no knowable truth.

    Which shot a frame between the last input frame of one shot and the first
    of the next belongs to depends on where the cut fell in the unseen footage,
    so those frames are left out of PSNR/SSIM. What they must not be is a morph
    of the two shots: `cut_morph` is the mean absolute difference to the nearer
    of the two input frames (0 = a clean repeat).
    """
    def score(out: torch.Tensor, truth: torch.Tensor) -> dict:
        row = {"psnr_invented": M.psnr(invented(out, cut_frames), invented(truth, cut_frames)),
               "ssim_invented": M.ssim(invented(out, cut_frames), invented(truth, cut_frames)),
               "psnr_all": M.psnr(out, truth), "warping_error": M.warping_error(out, flow_source=truth)}
        if cut_frames:
            row["cut_morph"] = max(min((out[i] - out[i - 1]).abs().mean().item(),
                                       (out[i] - out[i + 1]).abs().mean().item()) for i in cut_frames)
        return row
    return score


def cut_clip(size, frames) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Two shots: the first half of a coffee pan, then a rocket pan (a cut between two input frames)."""
    a = make_clips(size, frames, names=["coffee"], motions=("pan",))["coffee-pan"]
    b = make_clips(size, frames, names=["rocket"], motions=("pan",))["rocket-pan"]
    half = (frames // 2) | 1  # odd: the cut falls between two kept frames
    return torch.cat([a[:half], b[half:]]), (half,)


def run_methods(truth: torch.Tensor, work: Path, args, score_interp) -> dict[str, dict]:
    lr = truth[::FACTOR]
    in_path = write_lossless(work / "input.mkv", lr)
    rows = {}
    classical = {"frame blending": lambda: baselines.interpolate_blend(lr, FACTOR),
                 "DIS-flow midpoint": lambda: baselines.interpolate_flow_midpoint(lr, FACTOR),
                 "DIS-flow midpoint, bicubic reads": lambda: baselines.interpolate_flow_midpoint(
                     lr, FACTOR, sampling="bicubic"),
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
                       motions=("pan",) if args.quick else ("pan", "zoom", "wobble"))
    cut_frames = {}
    if not args.quick:
        clips["coffee|rocket-cut"], cut_frames["coffee|rocket-cut"] = cut_clip(size, frames)
    per_method: dict[str, list[dict]] = {}
    by_motion: dict[str, dict[str, list[float]]] = {}
    cut_rows = []
    for clip_name, truth in clips.items():
        work = args.work / clip_name.replace("|", "_")
        work.mkdir(parents=True, exist_ok=True)
        write_lossless(work / "truth.mkv", truth)
        rows = run_methods(truth, work, args, scorer(cut_frames.get(clip_name, ())))
        truth_warp = M.warping_error(truth, flow_source=truth)
        for name, row in rows.items():
            per_method.setdefault(name, []).append(row | {"truth_warping_error": truth_warp})
            motion = "cut" if clip_name in cut_frames else clip_name.rsplit("-", 1)[1]
            by_motion.setdefault(name, {}).setdefault(motion, []).append(row["psnr_invented"])
            if "cut_morph" in row:
                cut_rows.append([name, row["cut_morph"]])
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
            + f"\n\nWarping error of the ground truth itself: {truth_warp:.5f}.\n"
            + "\nPSNR dB on the invented frames by kind of motion (mean over clips):\n\n"
            + markdown_table(["method", *next(iter(by_motion.values()))],
                             [[name, *[sum(v) / len(v) for v in motions.values()]] for name, motions in by_motion.items()])
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
