#!/usr/bin/env python
"""Video-inpainting benchmark on clips made from the held-out stills (known pans and zooms).

    python scripts/bench_inpaint.py               # static and moving boxes, all clips; writes docs/benchmarks.md
    python scripts/bench_inpaint.py --quick       # one small clip, static box only

Masks: a static box (`--box X,Y,W,H`) and a box moving across the frame (a
per-frame mask video), each covering ~10% of the frame; the input has the
hole painted black. Methods: OpenCV Telea and Navier-Stokes per frame
(vidrestore.baselines), vidrestore's initial estimate (known pixels propagated
along DIS flow from the other frames, Telea for the rest), `--model none` and
the diffusion prior with the `inpaint` and `inpaint-fast` presets (whole CLI
runs, each in its own process). PSNR inside the hole and over the whole frame,
SSIM and warping error (flow from the truth) of the whole clip.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from benchlib import (ROOT, make_clips, markdown_table, method_runs, run_classical, run_cli_methods, summary_rows, write_lossless,
                      write_section)
from vidrestore import baselines
from vidrestore import metrics as M
from vidrestore.tasks import inpaint_initial_estimate

KEYS = ["psnr_hole", "psnr", "ssim", "warping_error", "sec_per_frame"]
PRESETS = {"diffusion, inpaint (default)": [], "diffusion, inpaint-fast": ["--preset", "inpaint-fast"]}
AREA = 0.10


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs=2, default=[96, 128], help="frame size (H W)")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--model", default=None, help="prior for the diffusion methods (default: embedded)")
    p.add_argument("--methods", nargs="*", default=None, help="subset of method names")
    p.add_argument("--set", dest="sets", action="append", default=[], help="extra --set for the diffusion runs")
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


def moving_known(frames: int, h: int, w: int) -> torch.Tensor:
    """(F, 1, H, W) known-mask of a box sweeping horizontally across the frame centre."""
    bh, bw = box_size(h, w)
    y0 = (h - bh) // 2
    known = torch.ones(frames, 1, h, w)
    for f in range(frames):
        x0 = round((w - bw) * f / max(frames - 1, 1))
        known[f, :, y0:y0 + bh, x0:x0 + bw] = 0
    return known


def psnr_hole(out: torch.Tensor, truth: torch.Tensor, known: torch.Tensor) -> float:
    hole = (1 - known).expand_as(truth)
    mse = float(((out - truth) ** 2 * hole).sum() / hole.sum())
    return float("inf") if mse == 0 else 10 * math.log10(1 / mse)


def score_inpaint(out, truth, known) -> dict:
    return {"psnr_hole": psnr_hole(out, truth, known), "psnr": M.psnr(out, truth), "ssim": M.ssim(out, truth),
            "warping_error": M.warping_error(out, flow_source=truth)}


def run_methods(truth: torch.Tensor, known: torch.Tensor, mask_args: list, work: Path, args) -> dict[str, dict]:
    y = truth * known
    in_path = write_lossless(work / "input.mkv", y)
    rows = {}
    classical = {"OpenCV Telea (per frame)": lambda: baselines.inpaint_classical(y, 1 - known, "telea"),
                 "OpenCV Navier-Stokes (per frame)": lambda: baselines.inpaint_classical(y, 1 - known, "ns"),
                 "initial estimate (flow propagation + Telea)": lambda: inpaint_initial_estimate(y, known)}
    def scorer(out, truth):
        assert torch.equal(out * known, y * known), "known pixels changed"
        return score_inpaint(out, truth, known)

    rows.update(run_classical(classical, truth, scorer, args.methods))
    rows.update(run_cli_methods(["inpaint", in_path, *mask_args], method_runs(PRESETS, args.model, args.sets), work,
                                truth, scorer, args.methods))
    return rows


def main():
    args = parse_args()
    size = (64, 80) if args.quick else tuple(args.size)
    frames = 8 if args.quick else args.frames
    h, w = size
    clips = make_clips(size, frames, names=["coffee"] if args.quick else None,
                       motions=("pan",) if args.quick else ("pan", "zoom"))
    masks = args.masks or (("static",) if args.quick else ("static", "moving"))
    sections = []
    for mask_kind in masks:
        per_method: dict[str, list[dict]] = {}
        for clip_name, truth in clips.items():
            work = args.work / mask_kind / clip_name
            work.mkdir(parents=True, exist_ok=True)
            if mask_kind == "static":
                x, y0, bw, bh = static_box(h, w)
                known = torch.ones(1, 1, h, w)
                known[..., y0:y0 + bh, x:x + bw] = 0
                mask_args = ["--box", f"{x},{y0},{bw},{bh}"]
            else:
                known = moving_known(frames, h, w)
                mask_path = write_lossless(work / "mask.mkv", (1 - known).expand(-1, 3, -1, -1))
                mask_args = ["--mask", mask_path]
            write_lossless(work / "truth.mkv", truth)
            rows = run_methods(truth, known, mask_args, work, args)
            for name, row in rows.items():
                per_method.setdefault(name, []).append(row)
                print(f"{mask_kind:7s} {clip_name:14s} {name:44s} PSNR(hole) {row['psnr_hole']:.2f} "
                      f"PSNR {row['psnr']:.2f} SSIM {row['ssim']:.3f} warp {row['warping_error']:.5f} "
                      f"s/frame {row['sec_per_frame']:.3f}", flush=True)
        table = summary_rows(per_method, KEYS)
        truth_warp = sum(M.warping_error(t, flow_source=t) for t in clips.values()) / len(clips)
        bh, bw = box_size(h, w)
        sections.append(
            f"### {mask_kind} {bw}x{bh} box ({100 * bw * bh / (h * w):.0f}% of the frame; {len(clips)} clips: "
            f"{', '.join(clips)}; {frames} frames of {w}x{h})\n\n"
            + markdown_table(["method", "PSNR dB (hole)", "PSNR dB (frame)", "SSIM", "warping error", "s / frame"],
                             table)
            + f"\n\nWarping error of the ground truth itself: {truth_warp:.5f}.\n")
        print(sections[-1])
    if not args.no_write:
        text = (f"## Inpainting\n\nCommand: `python scripts/bench_inpaint.py{' --quick' if args.quick else ''}` "
                "(CPU; diffusion runs are whole CLI runs, model loading and I/O included).\n\n" + "\n".join(sections))
        write_section("inpaint", text)


if __name__ == "__main__":
    main()
