"""Blind estimates from the input alone: compression blocking, a Gaussian blur's σ, and whether a clip is an upscale.

All three read the luma (Rec. 601 weights) of a clip (F, C, H, W) in [0, 1],
pooled over its frames, and subtract the 8-bit quantisation noise where they
compare energies.

* `blocking`: block-transform codecs (JPEG, MPEG-2/4, H.264 without its
  deblocking filter) leave steps on the 8×8 grid. The mean squared first
  difference across grid lines (positions 7|8) is compared with the median of
  the interior positions (1..5; 0 and 6 sit next to the line, where
  deblocking filters smooth): the excess e is what independent per-block
  offsets of std s add (2 s²), so s = √(e / 2) is folded into σ_y as
  structured noise. Measured (scripts/bench_real_inputs.py clips, box ×2 / ×4 then
  libx264 CRF 23 / 28, 16×20 to 64×80 pixels): x264's in-loop deblocking
  leaves no 8×8 signature at these sizes (ratio 0.1–1.7 for clean and
  compressed clips alike; one clean 32×40 clip reaches 1.75), so the test
  is strict (`BLOCK_RATIO` 2) and finds little there. JPEG at quality 10
  (no deblocking) gives ratios 2.2–7 and s = 0.020–0.066 against a true error
  RMS of 0.032–0.072 (same clips, 32×40 to 128×160).
* `estimate_gaussian_blur`: a natural clip's power spectrum falls as a power
  of the frequency ω; a Gaussian blur of std σ multiplies it by exp(−σ² ω²).
  The radially binned log spectrum (Hann window, quantisation and input noise
  subtracted, bins above `FLOOR_FACTOR` × that floor) is fitted by least squares with
  log P = c − α log ω − σ² ω²; σ is the fit's. Measured on the deblur benchmark's clips
  (9 clips of 3 stills × pan / zoom / wobble, Gaussian σ 1–3): within 14 % at 128×160,
  within 18 % at 64×80; after frame averaging (uniform:5) the motion blur adds to it
  (σ 1: up to 36 % off, σ 2: 18 %).
* `nyquist_ratio`: a box or bicubic downsample of real detail aliases, so it
  has energy up to the Nyquist frequency; an upscale (bicubic, Lanczos) has
  almost none above its source's Nyquist. Per axis, the power in the top
  band (`TOP_BAND`..1 of Nyquist) over the power in a middle band, floor
  subtracted; the larger axis counts. Measured (same clips, 16×20 to 64×80):
  box downsamples 0.021–0.38, after CRF 23 / 28 0.018–0.20; bicubic ×2
  upscales of them 0.004–0.026, Lanczos ×2 and bicubic ×4 at most 0.004.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from vidrestore.operators.noise import QUANTISATION_STD

#: block grid of the codecs that leave blocking (JPEG, MPEG, H.264's 8×8 transform)
GRID = 8
#: the grid line's mean squared difference must exceed the interior median by this factor to count as blocking
BLOCK_RATIO = 2.0
#: frames smaller than this many grid cells per axis are not judged (too few grid lines to tell)
MIN_GRID_CELLS = 4
#: spectrum bins used by the blur fit must hold this many times the white-noise floor
FLOOR_FACTOR = 2.0
#: radial frequency range (radians per pixel) of the blur fit, and its number of bins
FIT_LOW, FIT_BINS = 0.1, 30
#: nyquist_ratio: top band (fraction of Nyquist) and the middle band it is compared with
TOP_BAND = 0.7
MIDDLE_BAND = (0.2, 0.45)
#: the middle band must hold this many times the floor, else the clip has too little detail to tell
DETAIL_FACTOR = 8.0
#: below this nyquist_ratio a superres input looks like an upscale (between the measured ranges above)
UPSCALE_RATIO = 0.012


def luma(frames: torch.Tensor) -> np.ndarray:
    """(F, H, W) float64 luma of a clip (F, C, H, W) (one channel: itself)."""
    if frames.ndim != 4:
        raise ValueError(f"expected a clip (F, C, H, W), got {tuple(frames.shape)}")
    x = frames.detach().to("cpu", torch.float64)
    if x.shape[1] == 3:
        x = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    else:
        x = x.mean(dim=1)
    return x.numpy()


def blocking(frames: torch.Tensor) -> tuple[float, float]:
    """(ratio, σ) of 8×8 blocking: grid-line over interior mean squared difference, and the std of per-block
    offsets that explains the excess (0 below `BLOCK_RATIO`, or for frames too small to judge)."""
    g = luma(frames)
    _, h, w = g.shape
    if min(h, w) < MIN_GRID_CELLS * GRID:
        return 1.0, 0.0
    dh = np.diff(g, axis=2) ** 2  # dh[..., j]: between columns j and j + 1
    dv = np.diff(g, axis=1) ** 2
    profile = np.array([(dh[:, :, k::GRID].mean() + dv[:, k::GRID, :].mean()) / 2 for k in range(GRID)])
    interior = float(np.median(profile[1:GRID - 2]))
    line = float(profile[GRID - 1])
    if interior <= 0:
        return 1.0, 0.0
    ratio = line / interior
    sigma = math.sqrt(max(line - interior, 0.0) / 2) if ratio > BLOCK_RATIO else 0.0
    return ratio, sigma


def _floor(window: np.ndarray, noise_std: float) -> float:
    """Power of white noise (8-bit rounding + `noise_std`) through `window`, per spectrum sample."""
    return float((window ** 2).sum()) * (QUANTISATION_STD ** 2 + noise_std ** 2)


def estimate_gaussian_blur(frames: torch.Tensor, noise_std: float = 0.0) -> float | None:
    """σ (pixels) of a Gaussian blur of the clip, from its spectrum's fall-off; None when too little of the
    spectrum stands above the noise floor to fit (a flat or tiny clip)."""
    g = luma(frames)
    _, h, w = g.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.zeros((h, w))
    for frame in g:
        power += np.abs(np.fft.fft2((frame - frame.mean()) * window)) ** 2
    power /= len(g)
    wy, wx = np.fft.fftfreq(h) * 2 * np.pi, np.fft.fftfreq(w) * 2 * np.pi
    radius = np.sqrt(wy[:, None] ** 2 + wx[None, :] ** 2)
    edges = np.linspace(FIT_LOW, np.pi, FIT_BINS + 1)
    r, p = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        inside = (radius >= low) & (radius < high)
        if inside.any():
            r.append(radius[inside].mean())
            p.append(power[inside].mean())
    r, p = np.array(r), np.array(p)
    floor = _floor(window, noise_std)
    keep = p > FLOOR_FACTOR * floor
    if keep.sum() < 4:
        return None
    design = np.stack([np.ones(keep.sum()), -np.log(r[keep]), -r[keep] ** 2], axis=1)
    coef, *_ = np.linalg.lstsq(design, np.log(p[keep] - floor), rcond=None)
    return math.sqrt(max(float(coef[2]), 0.0))


def nyquist_ratio(frames: torch.Tensor) -> float | None:
    """Power near Nyquist over power in a middle band (per axis, the larger); None when the middle band holds
    too little detail to tell (a smooth or tiny clip)."""
    g = luma(frames)
    ratios = []
    for axis in (1, 2):
        n = g.shape[axis]
        if n < 8:
            continue
        window = np.hanning(n)
        shape = [1, 1, 1]
        shape[axis] = n
        z = (g - g.mean(axis=axis, keepdims=True)) * window.reshape(shape)
        power = (np.abs(np.fft.rfft(z, axis=axis)) ** 2).mean(axis=(0, 3 - axis))
        freq = np.fft.rfftfreq(n) * 2  # in units of Nyquist
        floor = _floor(window, 0.0)
        middle = power[(freq > MIDDLE_BAND[0]) & (freq <= MIDDLE_BAND[1])]
        top = power[freq > TOP_BAND]
        if not len(middle) or not len(top) or middle.mean() - floor <= DETAIL_FACTOR * floor:
            continue
        ratios.append(max(top.mean() - floor, 0.0) / (middle.mean() - floor))
    return max(ratios) if ratios else None
