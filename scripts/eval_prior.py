#!/usr/bin/env python
"""Evaluate a pixel prior on the held-out stills: one-step Tweedie denoising versus classical denoisers.

    python scripts/eval_prior.py                       # the embedded model; updates docs/model-card.md
    python scripts/eval_prior.py --model runs/prior_export --no-write

For each σ ∈ {0.05, 0.1, 0.2, 0.4} (pixel range [0, 1]) every held-out image
gets the same Gaussian noise (fixed seed). Tweedie: the timestep whose noise
level matches σ, x̂0 = (x_t − √(1−ᾱ) ε̂)/√ᾱ in one network call. Baselines:
BM3D (`bm3d_rgb` with the true σ), OpenCV non-local means (h chosen per σ
from a grid, best PSNR kept: oracle-tuned) and a Gaussian blur (σ_blur
oracle-tuned the same way). Also writes a grid of unconditional DDIM samples.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from stills import held_out_stills

from vidrestore.priors import load_pixel_prior
from vidrestore.samplers import ddim_timesteps

from benchlib import ROOT, markdown_table, write_section

SIGMAS = (0.05, 0.1, 0.2, 0.4)
CARD = ROOT / "docs" / "model-card.md"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


def tweedie_denoise(prior, noisy: np.ndarray, sigma: float) -> np.ndarray:
    """Noisy image in [0, 1] (H, W, 3) with noise std σ → the prior's posterior mean."""
    alphas = prior.alphas_cumprod
    target = 1.0 / (1.0 + 4.0 * sigma ** 2)  # model range is [-1, 1]: noise std 2σ
    t = int(torch.argmin((alphas - target).abs()))
    a = float(alphas[t])
    y = torch.from_numpy(noisy).permute(2, 0, 1)[None].float() * 2 - 1
    x_t = a ** 0.5 * y  # x_t = √ᾱ (x0 + 2σ n) has exactly the model's noise when ᾱ matches
    with torch.no_grad():
        _, x0 = prior.tweedie(x_t, t)
    return ((x0[0].permute(1, 2, 0).numpy() + 1) / 2).astype(np.float64)


def nlm_best(noisy: np.ndarray, clean: np.ndarray, sigma: float) -> float:
    u8 = (np.clip(noisy, 0, 1) * 255).round().astype(np.uint8)
    best = -math.inf
    for factor in (0.6, 0.8, 1.0, 1.3, 1.7):
        h = factor * sigma * 255
        out = cv2.fastNlMeansDenoisingColored(u8, None, h, h, 7, 21).astype(np.float64) / 255
        best = max(best, psnr(out, clean))
    return best


def blur_best(noisy: np.ndarray, clean: np.ndarray) -> float:
    return max(psnr(cv2.GaussianBlur(noisy, (0, 0), s), clean) for s in (0.5, 0.8, 1.2, 1.8, 2.5, 3.5))


def sample_grid(prior, path: Path, n: int = 16, size: int = 64, steps: int = 50, seed: int = 0) -> None:
    """Unconditional DDIM (η = 0) samples, 4 per row."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g)
    ts = ddim_timesteps(steps, prior.num_train_timesteps)
    with torch.no_grad():
        for i, t in enumerate(ts):
            eps, x0 = prior.tweedie(x, t)
            x0 = x0.clamp(-1, 1)
            if i + 1 < len(ts):
                a = float(prior.alphas_cumprod[ts[i + 1]])
                x = a ** 0.5 * x0 + (1 - a) ** 0.5 * eps
    imgs = ((x0 + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    rows = [np.concatenate(list(imgs[r * 4:(r + 1) * 4]), axis=1) for r in range(n // 4)]
    grid = (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.resize(grid[..., ::-1], None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None)
    p.add_argument("--no-bm3d", action="store_true")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "docs")
    args = p.parse_args()
    prior = load_pixel_prior(args.model, torch.device("cpu"))
    stills = held_out_stills()
    results: dict[str, dict[str, list[float]]] = {}
    for sigma in SIGMAS:
        for name, clean in stills.items():
            clean = clean.astype(np.float64)
            rng = np.random.default_rng(1234)
            noisy = clean + sigma * rng.standard_normal(clean.shape)
            row = results.setdefault(f"{sigma:g}", {})
            started = time.perf_counter()
            row.setdefault("vr-pixel-small (Tweedie, 1 NFE)", []).append(psnr(tweedie_denoise(prior, noisy, sigma), clean))
            tweedie_s = time.perf_counter() - started
            if not args.no_bm3d:
                import bm3d

                row.setdefault("BM3D (true σ)", []).append(psnr(bm3d.bm3d_rgb(noisy, sigma), clean))
            row.setdefault("non-local means (tuned h)", []).append(nlm_best(noisy, clean, sigma))
            row.setdefault("Gaussian blur (tuned)", []).append(blur_best(noisy, clean))
            row.setdefault("noisy input", []).append(psnr(noisy, clean))
            print(f"σ={sigma:g} {name}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in row.items())
                  + f" (Tweedie {tweedie_s:.2f} s)", flush=True)
    methods = list(next(iter(results.values())))
    table = markdown_table(["σ"] + methods, [[s] + [float(np.mean(results[s][m])) for m in methods] for s in results])
    print(table)
    if args.no_write:
        return
    (args.out / "prior-eval.json").write_text(json.dumps(
        {"images": list(stills), "psnr": results}, indent=2))
    sample_grid(prior, args.out / "prior-samples.png")
    write_section("prior-eval", "Mean PSNR (dB) over the held-out images "
                  f"({', '.join(stills)}), command `python scripts/eval_prior.py`:\n\n" + table, CARD)


if __name__ == "__main__":
    main()
