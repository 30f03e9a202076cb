#!/usr/bin/env python
"""Denoising benchmark: `vidrestore evaluate --task denoise` on clips made from the held-out stills.

    python scripts/bench_denoise.py                # σ = 10/255 and 25/255, all clips; writes docs/benchmarks.md
    python scripts/bench_denoise.py --quick        # one small clip

Degradation (applied by `vidrestore evaluate`, seeded): white Gaussian noise of std σ, then 8-bit rounding.
Methods (evaluate's names): the noisy `input`; `bm3d`, per-frame colour BM3D told the true σ; `nlm`,
OpenCV's multi-frame non-local means over 5 frames with h picked per clip from a grid around σ with the
ground truth (an oracle-tuned baseline); the diffusion prior with the `denoise` and `denoise-fast`
presets told the true σ (evaluate tells the solvers the σ it adds). Then `denoise-fast` once more
through `vidrestore denoise` on each report's `input.mkv` with σ estimated (`--sigma auto`, the
command-line default): the `auto` σ error is |estimate − σ| / σ from that run's metrics JSON.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from benchlib import (
    EVALUATE_NOTE,
    ROOT,
    evaluate_clips,
    make_clips,
    markdown_table,
    run_cli,
    summary_rows,
    truth_warping_error,
    write_section,
)

KEYS = ["psnr", "ssim", "swd", "sharpness", "warping_error", "seconds_per_frame"]
HEADER = ["method", "PSNR dB", "SSIM", "SWD", "sharpness", "warping error", "s / frame"]
PRESETS = ["denoise", "denoise-fast"]
SIGMAS = {"10/255": 10 / 255, "25/255": 25 / 255}
AUTO_PRESET = "denoise-fast"


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


def auto_runs(work: Path, clips, sigma: float, model: str | None) -> tuple[list[dict], str]:
    """`vidrestore denoise` with σ estimated on each clip's evaluate input: its metrics (with `sigma_error`,
    |estimate − σ| / σ) per clip, and the first command."""
    rows, first = [], ""
    for name in clips:
        report = work / name / "report"
        args = ["denoise", report / "input.mkv", "-o", work / name / "auto.mkv", "--reference",
                report / "reference.mkv", "--preset", AUTO_PRESET, *(["--model", model] if model else [])]
        first = first or "vidrestore " + " ".join(str(a).replace(f"{ROOT}/", "") for a in args)
        metrics = run_cli(args, work / name / "auto.metrics.json")
        rows.append(metrics | {"sigma_error": abs(metrics["sigma_y"] - sigma) / sigma,
                               "seconds_per_frame": metrics["seconds"] / metrics["frames"]})
    return rows, first


def main():
    args = parse_args()
    size = tuple(args.size)
    clips = make_clips(size, args.frames, names=["coffee"] if args.quick else None, motions=tuple(args.motions))
    if args.clips:
        clips = {k: v for k, v in clips.items() if k in args.clips}
    methods = args.methods or ["input", "bm3d", "nlm", *PRESETS]
    sections = []
    for index, (label, sigma) in enumerate(SIGMAS.items()):
        work = args.work / f"sigma{index}"
        per_method, commands = evaluate_clips(clips, "denoise", ["--sigma", f"{sigma:.6f}"], work,
                                              methods=methods, presets=PRESETS, sets=args.sets,
                                              model=args.model)
        auto, auto_command = auto_runs(work, clips, sigma, args.model)
        per_method[f"{AUTO_PRESET}, σ auto"] = auto
        errors = [r["sigma_error"] for r in auto]
        note = (f" `auto` σ error (`{auto_command}`, then the other clips): "
                f"mean {100 * sum(errors) / len(errors):.1f} %, worst {100 * max(errors):.1f} % of σ.")
        sections.append(
            f"### σ = {label} ({len(clips)} clips: {', '.join(clips)}; {args.frames} frames of {size[1]}x{size[0]})"
            f"\n\nPer clip: `{commands[0]}` (then the other clips).\n\n"
            + markdown_table(HEADER, summary_rows(per_method, KEYS))
            + f"\n\nWarping error of the ground truth itself: {truth_warping_error(per_method):.5f}.{note}\n")
        print(sections[-1], flush=True)
    if not args.no_write:
        command = "python scripts/bench_denoise.py" + "".join(
            f" {a}" for a in (["--quick"] if args.quick else []) + (["--clips", *args.clips] if args.clips else [])
            + (["--motions", *args.motions] if args.motions != ["pan"] else []))
        text = (f"## Denoising\n\nCommand: `{command}`, {EVALUATE_NOTE}; `nlm` picks h with the ground truth, "
                "`bm3d` is told the true σ, as are `denoise` and `denoise-fast`; the last row estimates it).\n\n"
                + "\n".join(sections))
        write_section("denoise", text)


if __name__ == "__main__":
    main()
