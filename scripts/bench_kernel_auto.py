#!/usr/bin/env python
"""Blind blur benchmark: `deblur --kernel auto` against the known kernel, and how much a wrong σ costs.

    python scripts/bench_kernel_auto.py                      # the deblur benchmark's clips, σ 1 2 3
    python scripts/bench_kernel_auto.py --clips coffee-pan --sigmas 2 --offset-sigmas 2

Each clip (the held-out stills, pans and zooms, as in scripts/bench_deblur.py)
is blurred by a Gaussian of σ, rounded to 8 bits, and restored by `vidrestore
deblur` with the default preset twice: told the kernel (`--kernel
gaussian:σ`) and estimating it (`--kernel auto`, whose σ the metrics report).
`--offset-sigmas` also restores those blurs with a known kernel off by a few
per cent (`--offset-factors`), which shows how closely σ must be known for the PSNR to
follow. The table is printed; `--write` puts it in docs/benchmarks.md
(section `kernel-auto`).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from vidrestore import operators as ops
from vidrestore.io import quantize

from benchlib import ROOT, make_clips, markdown_table, run_cli, write_lossless, write_section


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs=2, default=[96, 128], help="frame size (H W)")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--clips", nargs="+", default=None, help="clip names (still-motion), default: all pans and zooms")
    p.add_argument("--sigmas", type=float, nargs="+", default=[1.0, 2.0, 3.0], help="true Gaussian σ (pixels)")
    p.add_argument("--offset-sigmas", type=float, nargs="*", default=[],
                   help="for these true σ, also restore with known kernels of σ × each --offset-factors")
    p.add_argument("--offset-factors", type=float, nargs="+", default=[0.9, 0.95, 1.05, 1.1])
    p.add_argument("--preset", default="deblur")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_kernel_auto")
    p.add_argument("--write", action="store_true", help="write the tables into docs/benchmarks.md")
    return p.parse_args()


def restore(source: Path, reference: Path, kernel: str, out: Path, preset: str) -> dict:
    return run_cli(["deblur", source, "--kernel", kernel, "-o", out, "--reference", reference, "--preset", preset],
                   out.with_name(out.name + ".metrics.json"))


def main():
    args = parse_args()
    clips = make_clips(tuple(args.size), args.frames)
    if args.clips:
        clips = {k: v for k, v in clips.items() if k in args.clips}
    if not clips:
        raise SystemExit("no clip matches --clips")
    rows, offset_rows, errors, losses = [], [], [], []
    for sigma in args.sigmas:
        for name, truth in clips.items():
            folder = args.work / f"{name}-s{sigma:g}"
            folder.mkdir(parents=True, exist_ok=True)
            reference = write_lossless(folder / "reference.mkv", truth)
            blurred = quantize(ops.Blur(ops.gaussian_kernel(sigma))(truth.double()).float().clamp(0, 1))
            source = write_lossless(folder / "input.mkv", blurred)
            known = restore(source, reference, f"gaussian:{sigma:g}", folder / "known.mkv", args.preset)
            auto = restore(source, reference, "auto", folder / "auto.mkv", args.preset)
            estimate = auto.get("blur_sigma_estimated")
            errors.append(None if estimate is None else 100 * (estimate / sigma - 1))
            losses.append(auto["psnr"] - known["psnr"])
            error = "–" if estimate is None else f"{errors[-1]:+.0f} %"
            rows.append([name, f"{sigma:g}", "–" if estimate is None else f"{estimate:.2f}", error,
                         f"{known['psnr']:.2f}", f"{auto['psnr']:.2f}", f"{losses[-1]:+.2f}"])
            print(" | ".join(rows[-1]), flush=True)
            if sigma in args.offset_sigmas:
                cells = [name, f"{sigma:g}", f"{known['psnr']:.2f}"]
                for factor in args.offset_factors:
                    m = restore(source, reference, f"gaussian:{sigma * factor:.4g}", folder / f"x{factor:g}.mkv",
                                args.preset)
                    cells.append(f"{m['psnr'] - known['psnr']:+.2f}")
                offset_rows.append(cells)
                print(" | ".join(cells), flush=True)
    within = sum(abs(d) <= 0.5 for d in losses)
    close = sum(e is not None and abs(e) <= 20 for e in errors)
    command = f"python scripts/bench_kernel_auto.py --sigmas {' '.join(f'{s:g}' for s in args.sigmas)}"
    command += f" --offset-sigmas {' '.join(f'{s:g}' for s in args.offset_sigmas)}" if args.offset_sigmas else ""
    command += f" --clips {' '.join(args.clips)}" if args.clips else ""
    text = (f"## Blind blur estimate (`deblur --kernel auto`, issue 20)\n\nCommand: `{command}` (CPU; preset "
            f"`{args.preset}`; {len(clips)} clips: {', '.join(clips)}; {args.frames} frames of "
            f"{args.size[1]}x{args.size[0]}, Gaussian blur then 8-bit rounding). PSNR dB against the ground truth.\n\n"
            + markdown_table(["clip", "true σ", "estimated σ", "error", "known kernel", "auto", "auto − known"], rows)
            + f"\n\nσ within 20 %: {close} of {len(rows)}; PSNR within 0.5 dB of the known kernel: {within} of "
            f"{len(rows)}.")
    if offset_rows:
        text += ("\n\nThe cost of a known but slightly wrong σ (PSNR dB relative to the true kernel):\n\n"
                 + markdown_table(["clip", "true σ", "true kernel"] + [f"σ × {f:g}" for f in args.offset_factors],
                                  offset_rows))
    print(text)
    if args.write:
        write_section("kernel-auto", text)


if __name__ == "__main__":
    main()
