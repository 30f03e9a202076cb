#!/usr/bin/env python
"""Super-resolution benchmark on clips made from the held-out stills (known pans and zooms).

    python scripts/bench_superres.py                 # x4 and x8, writes docs/benchmarks.md
    python scripts/bench_superres.py --quick         # one clip, x4 only, no performance section

Methods: bicubic and Lanczos (OpenCV), `--model none` (classical least squares),
the diffusion prior with `--noise independent` and with `--noise shared` (the
default preset), and the `superres-fidelity` preset. Every diffusion run goes
through the CLI in its own process; outputs are lossless and scored against
the ground truth: PSNR, SSIM, warping error (flow from the truth) and flicker
(warping error of output − truth).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchlib import (ROOT, make_clips, markdown_table, method_runs, read_clip, run_classical, run_cli, run_cli_methods, score,
                      summary_rows, write_lossless, write_section)
from vidrestore import baselines
from vidrestore.operators import BoxDownsample
from vidrestore.priors import load_pixel_prior
from vidrestore.samplers import ddim_timesteps
from clips import quantize

DIFFUSION_METHODS = {
    "diffusion, independent noise": ["--noise", "independent"],
    "diffusion, shared noise": ["--noise", "shared"],
    "diffusion, warped noise": ["--noise", "warped"],
    "diffusion, shared noise + equivariance 0.5": ["--noise", "shared", "--set", "guidance.equivariance=0.5"],
    "diffusion, warped noise + equivariance 0.5": ["--noise", "warped", "--set", "guidance.equivariance=0.5"],
    "diffusion, superres-fidelity": ["--preset", "superres-fidelity"],
    "diffusion, superres (default preset)": ["--preset", "superres"],
    "diffusion, superres-fast": ["--preset", "superres-fast"],
}
KEYS = ["psnr", "ssim", "warping_error", "flicker", "sec_per_frame", "peak_memory_mb"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scales", type=int, nargs="+", default=[4, 8])
    p.add_argument("--lr-size", type=int, nargs=2, default=[32, 40], help="low-res frame size at x4 (H W); "
                   "x8 uses half of it, so every scale restores frames of the same size")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--clips4", nargs="+", default=["coffee-pan", "rocket-zoom", "chelsea-wobble"],
                   help="clips for x4 (still-motion; motions: pan, zoom, wobble)")
    p.add_argument("--clips8", nargs="+", default=["coffee-pan", "chelsea-wobble"], help="clips for x8")
    p.add_argument("--model", default=None, help="prior for the diffusion methods (default: embedded)")
    p.add_argument("--methods", nargs="*", default=None, help="subset of method names")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_superres")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--section", default="superres", help="docs/benchmarks.md section to (re)write")
    p.add_argument("--performance-only", action="store_true",
                   help="only the performance section (overhead and memory of the default preset)")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    return p.parse_args()


def run_methods(lr_path, truth, scale, work, args) -> dict[str, dict]:
    lr = read_clip(lr_path)
    rows = {}
    rows.update(run_classical({"bicubic": lambda: baselines.upscale(lr, scale, "bicubic"),
                               "Lanczos": lambda: baselines.upscale(lr, scale, "lanczos")}, truth, score, args.methods))
    rows.update(run_cli_methods(["superres", lr_path, "-x", scale], method_runs(DIFFUSION_METHODS, args.model), work,
                                truth, score, args.methods))
    return rows


def forward_only_seconds(model, shape, steps: int, chunk: int = 16) -> float:
    """Time of the denoiser's forward passes alone for `shape` frames and `steps` steps."""
    prior = load_pixel_prior(model, torch.device("cpu"))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    for t in ddim_timesteps(steps):
        for i in range(0, shape[0], chunk):
            prior.tweedie(x[i:i + chunk], t)
    return time.perf_counter() - started


def main():
    args = parse_args()
    if args.performance_only:
        text = performance_section(args)
        print(text)
        if not args.no_write:
            write_section("superres-performance", text)
        return
    scales = [4] if args.quick else args.scales
    sections = []
    for scale in scales:
        h, w = args.lr_size[0] * 4, args.lr_size[1] * 4
        lr_h, lr_w = h // scale, w // scale
        wanted = ["coffee-pan"] if args.quick else (args.clips4 if scale == 4 else args.clips8)
        clips = {k: v for k, v in make_clips((h, w), args.frames, motions=("pan", "zoom", "wobble")).items()
                 if k in wanted}
        per_method: dict[str, list[dict]] = {}
        for clip_name, truth in clips.items():
            work = args.work / f"x{scale}" / clip_name
            work.mkdir(parents=True, exist_ok=True)
            write_lossless(work / "truth.mkv", truth)
            lr_path = write_lossless(work / "input.mkv", quantize(BoxDownsample(scale).A(truth)))
            rows = run_methods(lr_path, truth, scale, work, args)
            truth_warp = score(truth, truth)["warping_error"]
            for name, row in rows.items():
                per_method.setdefault(name, []).append(row | {"truth_warping_error": truth_warp})
                print(f"x{scale} {clip_name:16s} {name:36s} PSNR {row['psnr']:.2f} SSIM {row['ssim']:.3f} "
                      f"warp {row['warping_error']:.5f} flicker {row['flicker']:.5f} "
                      f"s/frame {row['sec_per_frame']:.3f}", flush=True)
        table = summary_rows(per_method, KEYS)
        truth_warp = sum(r["truth_warping_error"] for r in next(iter(per_method.values()))) / len(clips)
        residuals = {n: max(r["residual"] for r in rows) for n, rows in per_method.items() if "residual" in rows[0]}
        sections.append(
            f"### x{scale} box super-resolution ({len(clips)} clips: {', '.join(clips)}; "
            f"{args.frames} frames of {w}x{h} from {lr_w}x{lr_h})\n\n"
            + markdown_table(["method", "PSNR dB", "SSIM", "warping error", "flicker", "s / frame", "peak MB"], table)
            + f"\n\nWarping error of the ground truth itself: {truth_warp:.5f}. Largest data-consistency residual "
            + "‖Ax̂−y‖/‖y‖ (before 8-bit rounding): "
            + ", ".join(f"{n}: {v:.2e}" for n, v in residuals.items()) + ".\n")
        print(sections[-1])

    if not args.quick and not args.no_write and args.section == "superres":
        write_section("superres-performance", performance_section(args))
    if not args.no_write:
        command = "python scripts/bench_superres.py" + (
            f" --section {args.section} --methods " + " ".join(f"'{m}'" for m in args.methods) if args.methods else "")
        text = (f"{'## Super-resolution' if args.section == 'superres' else '### Presets'}\n\nCommand: `{command}` "
                "(CPU: 2 cores; diffusion runs are whole CLI runs, model loading and I/O included).\n\n"
                + "\n".join(sections))
        write_section(args.section, text)


def performance_section(args) -> str:
    """Overhead versus the denoiser alone, and memory for 16 versus 160 frames."""
    work = args.work / "performance"
    work.mkdir(parents=True, exist_ok=True)
    scale, frames = 4, 16
    truth = make_clips((128, 160), frames, names=["rocket"], motions=("pan",))["rocket-pan"]
    lr_path = write_lossless(work / "input16.mkv", quantize(BoxDownsample(scale).A(truth)))
    model_args = ["--model", args.model] if args.model else []
    m = run_cli(["superres", lr_path, "-x", scale, "-o", work / "out16.mkv", "--chunk", 16, *model_args],
                work / "m16.json")
    forward = forward_only_seconds(args.model, (frames, 3, 128, 160), m["nfe"])
    long = make_clips((64, 64), 160, names=["rocket"], motions=("pan",))["rocket-pan"]
    mem = {}
    for n in (16, 160):
        lr = write_lossless(work / f"long{n}.mkv", quantize(BoxDownsample(scale).A(long[:n])))
        mem[n] = run_cli(["superres", lr, "-x", scale, "-o", work / f"long_out{n}.mkv", "--preset", "superres-fast",
                          "--chunk", 16, *model_args], work / f"long{n}.json")
    return (
        "### Performance\n\n"
        + markdown_table(["measure", "value"], [
            ["frames x size x NFE", f"{frames} x 160x128 x {m['nfe']}"],
            ["denoiser forward passes alone (s)", forward],
            ["whole CLI run, default preset (s)", m["seconds"]],
            ["ratio (target ≤ 1.25)", m["seconds"] / forward],
            ["peak memory, 16 frames of 64x64, superres-fast (MB)", mem[16]["peak_memory_mb"]],
            ["peak memory, 160 frames of 64x64, superres-fast (MB)", mem[160]["peak_memory_mb"]],
            ["ratio 160 / 16 (target ≤ 1.10)", mem[160]["peak_memory_mb"] / mem[16]["peak_memory_mb"]],
        ]) + "\n")


if __name__ == "__main__":
    main()
