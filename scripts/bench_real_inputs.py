#!/usr/bin/env python
"""Real-inputs benchmark: super-resolution of compressed and noisy low-res clips, the default against Lanczos.

    python scripts/bench_real_inputs.py                          # every clip, degradation and scale (slow on CPU)
    python scripts/bench_real_inputs.py --size 48 48 --frames 4 --clips coffee-fast --scales 2 4

Clips (from the held-out stills, ground truth known): pan, zoom, non-rigid
wobble, and fast motion with motion blur (5 output pixels per frame, each
frame the mean of 5 sub-frame positions over the shutter). Each is box
downsampled ×s, then degraded like footage arrives: libx264 at CRF 23 or 28
(`.mp4`, yuv420p), or Gaussian noise of σ = 3/255 (seeded) and 8-bit
rounding; `clean` keeps the 8-bit box-downsampled clip (the noise estimate
should find nothing there). The degraded clip is restored by `vidrestore superres -x s` with the
defaults (σ_y auto), optionally also with `--sigma-y 0` (exact data
consistency, as before the noise model), and upscaled with Lanczos; PSNR and
SSIM are against the ground truth. The table is printed; `--write` puts it in
docs/benchmarks.md (section `real-inputs`).
"""
from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

import torch
from clips import camera_clip
from stills import held_out_stills

from vidrestore import baselines
from vidrestore import metrics as M
from vidrestore import operators as ops
from vidrestore.artifacts import shared_remover
from vidrestore.io import quantize

from benchlib import MOTIONS, ROOT, markdown_table, read_clip, run_cli, write_clip, write_lossless, write_section

FPS = Fraction(24)
DEGRADATIONS = ("clean", "crf23", "crf28", "noise3")
NOISE_SIGMA = 3 / 255
#: fast motion: sub-frames per frame (the shutter) and output pixels per sub-frame
SHUTTER, FAST_PAN = 5, (1.0, 0.4)


def fast_clip(still, size: tuple[int, int], frames: int, source_scale: float = 1.5) -> torch.Tensor:
    """Fast camera motion with motion blur: each frame the mean of SHUTTER sub-frame positions."""
    sub = camera_clip(still, size, frames * SHUTTER, pan=FAST_PAN, source_scale=source_scale)
    return sub.view(frames, SHUTTER, *sub.shape[1:]).mean(1)


def make_clips(size: tuple[int, int], frames: int, names: list[str] | None) -> dict[str, torch.Tensor]:
    clips = {}
    for still_name, still in held_out_stills().items():
        for motion in ("pan", "zoom", "wobble", "fast"):
            name = f"{still_name}-{motion}"
            if names and name not in names:
                continue
            if motion == "fast":
                clip = fast_clip(still, size, frames)
            else:
                make, kwargs = MOTIONS[motion]
                clip = make(still, size, frames, source_scale=1.5, **kwargs)
            clips[name] = quantize(clip)
    return clips


def degrade(low: torch.Tensor, kind: str, path: Path, seed: int = 0) -> Path:
    """The low-res clip as footage arrives: through libx264 at a CRF (`.mp4`), or noisy and 8-bit (`.mkv`)."""
    if kind == "clean":
        return write_lossless(path.with_suffix(".mkv"), low, FPS)
    if kind.startswith("crf"):
        return write_clip(path.with_suffix(".mp4"), low, FPS, int(kind[3:]))
    noise = torch.randn(low.shape, generator=torch.Generator().manual_seed(seed))
    return write_lossless(path.with_suffix(".mkv"), quantize(low + NOISE_SIGMA * noise), FPS)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, nargs=2, default=[96, 128], help="high-res frame size (H W)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--clips", nargs="+", default=None, help="still-motion names (motion: pan, zoom, wobble, fast)")
    p.add_argument("--scales", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--degradations", nargs="+", default=list(DEGRADATIONS), choices=DEGRADATIONS)
    p.add_argument("--sigma0", action="store_true", help="also run with --sigma-y 0 (exact data consistency)")
    p.add_argument("--deblock-off", action="store_true",
                   help="also run compressed inputs with --deblock off (the default before the artifact remover)")
    p.add_argument("--model", default=None, help="prior (default: embedded)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_real_inputs")
    p.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    return p.parse_args()


def main():
    args = parse_args()
    size = tuple(args.size)
    if any(s % k for s in size for k in args.scales):
        raise SystemExit(f"--size {size} must be divisible by every scale {args.scales}")
    clips = make_clips(size, args.frames, args.clips)
    if not clips:
        raise SystemExit("no clip matches --clips")
    rows = []
    for kind in args.degradations:
        for scale in args.scales:
            scores: dict[str, list[tuple[float, float]]] = {}
            for name, truth in clips.items():
                folder = args.work / f"{name}-x{scale}-{kind}"
                folder.mkdir(parents=True, exist_ok=True)
                reference = write_lossless(folder / "reference.mkv", truth, FPS)
                source = degrade(quantize(ops.BoxDownsample(scale).A(truth)), kind, folder / "input")
                y = read_clip(source)
                lanczos = quantize(baselines.upscale(y, scale, "lanczos"))
                scores.setdefault("lanczos", []).append((M.psnr(lanczos, truth), float(M.ssim(lanczos, truth))))
                compressed = kind.startswith("crf")
                if compressed:  # the artifact remover alone, then Lanczos: what the prior adds on top of it
                    clean_y = quantize(shared_remover(torch.device("cpu"))(y))
                    up = quantize(baselines.upscale(clean_y, scale, "lanczos"))
                    scores.setdefault("deblock lanczos", []).append((M.psnr(up, truth), float(M.ssim(up, truth))))
                runs = {"default": []} | ({"sigma_y 0": ["--sigma-y", "0"]} if args.sigma0 else {})
                runs |= {"deblock off": ["--deblock", "off"]} if args.deblock_off and compressed else {}
                for method, extra in runs.items():
                    out = folder / f"{method.replace(' ', '')}.mkv"
                    cli = ["superres", source, "-x", scale, "-o", out, "--reference", reference, *extra]
                    cli += ["--model", args.model] if args.model else []
                    m = run_cli(cli, out.with_name(out.name + ".metrics.json"))
                    scores.setdefault(method, []).append((m["psnr"], m["ssim"]))
                    if method == "default":
                        scores.setdefault("sigma_y auto (/255)", []).append((m["sigma_y"] * 255, 0.0))
                print(f"{name} x{scale} {kind}: " + ", ".join(f"{k} {v[-1][0]:.2f}" for k, v in scores.items()),
                      flush=True)
            mean = {k: (sum(p for p, _ in v) / len(v), sum(s for _, s in v) / len(v)) for k, v in scores.items()}
            def cell(method):
                return f"{mean[method][0]:.2f} / {mean[method][1]:.4f}" if method in mean else "—"

            row = [kind, f"x{scale}", cell("lanczos"), cell("default"), f"{mean['default'][0] - mean['lanczos'][0]:+.2f}"]
            row += [cell("sigma_y 0")] if args.sigma0 else []
            row += [cell("deblock lanczos")] + ([cell("deblock off")] if args.deblock_off else [])
            row.append(f"{mean['sigma_y auto (/255)'][0]:.2f}")
            rows.append(row)
    header = ["input", "scale", "Lanczos PSNR / SSIM", "default PSNR / SSIM", "default − Lanczos dB"]
    header += ["σ_y = 0 PSNR / SSIM"] if args.sigma0 else []
    header += ["deblock + Lanczos"] + (["`--deblock off`"] if args.deblock_off else [])
    header += ["σ_y auto (/255)"]
    table = markdown_table(header, rows)
    command = "python scripts/bench_real_inputs.py " + " ".join(
        [f"--size {size[0]} {size[1]}", f"--frames {args.frames}", f"--scales {' '.join(map(str, args.scales))}"]
        + ([f"--clips {' '.join(args.clips)}"] if args.clips else []) + (["--sigma0"] if args.sigma0 else [])
        + ([f"--degradations {' '.join(args.degradations)}"] if args.degradations != list(DEGRADATIONS) else [])
        + (["--deblock-off"] if args.deblock_off else []))
    text = (f"## Real inputs\n\nCommand: `{command}` (CPU; {len(clips)} clips: {', '.join(clips)}; {args.frames} "
            f"frames of {size[1]}x{size[0]}; means over clips).\n\n{table}")
    print(text)
    if args.write:
        write_section("real-inputs", text)


if __name__ == "__main__":
    main()
