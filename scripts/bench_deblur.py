#!/usr/bin/env python
"""Deblurring benchmark on clips made from the held-out stills (known pans and zooms).

    python scripts/bench_deblur.py                # both degradations, all clips; writes docs/benchmarks.md
    python scripts/bench_deblur.py --quick        # one small clip, both degradations

Degradations (made with vidrestore's own operators, exactly as the CLI models them):
  * spatial: Gaussian blur σ = 2 (`--kernel gaussian:2`);
  * combined: frame averaging over 5 frames and Gaussian σ = 1
    (`--temporal uniform:5 --kernel gaussian:1`).
Methods: Wiener deconvolution (balance chosen per clip from a grid, with the
ground truth: an oracle-tuned baseline) and Richardson-Lucy (30 iterations)
with the true spatial kernel, frame by frame (they cannot undo frame
averaging); vidrestore's initial estimate (temporal Tikhonov + Wiener);
`--model none`, and the diffusion prior with the `deblur` and `deblur-fast`
presets (whole CLI runs, each in its own process). PSNR, SSIM and warping error
(flow from the truth) over the whole clip.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchlib import (ROOT, make_clips, markdown_table, method_runs, run_classical, run_cli_methods, summary_rows, write_lossless,
                      write_section)
from clips import quantize
from vidrestore import baselines
from vidrestore import metrics as M
from vidrestore import operators as ops
from vidrestore.tasks import deblur_initial_estimate

KEYS = ["psnr", "ssim", "warping_error", "sec_per_frame"]
PRESETS = {"diffusion, deblur (default)": [], "diffusion, deblur-fast": ["--preset", "deblur-fast"]}
DEGRADATIONS = {
    "Gaussian σ=2": {"kernel": "gaussian:2", "temporal": None},
    "frame averaging uniform:5 + Gaussian σ=1": {"kernel": "gaussian:1", "temporal": "uniform:5"},
}
WIENER_BALANCES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs=2, default=[96, 128], help="frame size (H W)")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--model", default=None, help="prior for the diffusion methods (default: embedded)")
    p.add_argument("--methods", nargs="*", default=None, help="subset of method names")
    p.add_argument("--set", dest="sets", action="append", default=[], help="extra --set for the diffusion runs")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_deblur")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    return p.parse_args()


def make_operator(spec: dict) -> ops.LinearOperator:
    parts = []
    if spec["temporal"]:
        parts.append(ops.TemporalBlur(ops.temporal_kernel(spec["temporal"])))
    parts.append(ops.Blur(ops.parse_kernel_spec(spec["kernel"])))
    return parts[0] if len(parts) == 1 else ops.Compose(*parts)


def score_clip(out, truth) -> dict:
    return {"psnr": M.psnr(out, truth), "ssim": M.ssim(out, truth),
            "warping_error": M.warping_error(out, flow_source=truth)}


def run_methods(truth: torch.Tensor, spec: dict, work: Path, args) -> dict[str, dict]:
    operator = make_operator(spec)
    y = quantize(operator.A(truth))
    in_path = write_lossless(work / "input.mkv", y)
    kernel = ops.parse_kernel_spec(spec["kernel"]).numpy()
    rows = {}

    def wiener_oracle():
        outs = [quantize(baselines.wiener_deconvolve(y, kernel, b)) for b in WIENER_BALANCES]
        return max(outs, key=lambda o: M.psnr(o, truth))

    classical = {"blurred input": lambda: y,
                 "Wiener, true kernel (oracle balance)": wiener_oracle,
                 "Richardson-Lucy, true kernel (30 it.)": lambda: baselines.richardson_lucy(y, kernel, 30),
                 "initial estimate (temporal Tikhonov + Wiener)": lambda: deblur_initial_estimate(y, operator)}
    rows.update(run_classical(classical, truth, score_clip, args.methods))
    cli_deg = ["--kernel", spec["kernel"]] + (["--temporal", spec["temporal"]] if spec["temporal"] else [])
    rows.update(run_cli_methods(["deblur", in_path, *cli_deg], method_runs(PRESETS, args.model, args.sets), work,
                                truth, score_clip, args.methods))
    return rows


def main():
    args = parse_args()
    size = (64, 80) if args.quick else tuple(args.size)
    frames = 8 if args.quick else args.frames
    clips = make_clips(size, frames, names=["coffee"] if args.quick else None,
                       motions=("pan",) if args.quick else ("pan", "zoom"))
    sections = []
    for deg_index, (deg_name, spec) in enumerate(DEGRADATIONS.items()):
        per_method: dict[str, list[dict]] = {}
        for clip_name, truth in clips.items():
            work = args.work / f"deg{deg_index}" / clip_name
            work.mkdir(parents=True, exist_ok=True)
            write_lossless(work / "truth.mkv", truth)
            rows = run_methods(truth, spec, work, args)
            for name, row in rows.items():
                per_method.setdefault(name, []).append(row)
                print(f"{deg_name[:24]:24s} {clip_name:14s} {name:46s} PSNR {row['psnr']:.2f} SSIM {row['ssim']:.3f} "
                      f"warp {row['warping_error']:.5f} s/frame {row['sec_per_frame']:.3f}", flush=True)
        table = summary_rows(per_method, KEYS)
        truth_warp = sum(M.warping_error(t, flow_source=t) for t in clips.values()) / len(clips)
        cli = " ".join(f"--{k} {v}" for k, v in spec.items() if v)
        sections.append(
            f"### {deg_name} (`{cli}`; {len(clips)} clips: {', '.join(clips)}; {frames} frames of "
            f"{size[1]}x{size[0]})\n\n"
            + markdown_table(["method", "PSNR dB", "SSIM", "warping error", "s / frame"], table)
            + f"\n\nWarping error of the ground truth itself: {truth_warp:.5f}.\n")
        print(sections[-1])
    if not args.no_write:
        text = (f"## Deblurring\n\nCommand: `python scripts/bench_deblur.py{' --quick' if args.quick else ''}` "
                "(CPU; diffusion runs are whole CLI runs, model loading and I/O included).\n\n" + "\n".join(sections))
        write_section("deblur", text)


if __name__ == "__main__":
    main()
