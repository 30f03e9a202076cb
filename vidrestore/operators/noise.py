"""The noise model y = A x + n: estimating the std of n from the input, and the data-consistency weight.

`estimate_sigma` follows the "flattest blocks" idea of noise-level
estimation: a high-pass that cancels every locally quadratic-times-linear
signal (Immerkær's 3×3 mask, the product of second differences in x and y,
normalised to keep the std of white noise) is measured per 8×8 block as an
RMS, and the 10th percentile of the block values over the sampled frames,
per channel, divided by what that percentile is for pure white noise, is the
noise std. Texture and edges raise some blocks, not the flattest ones;
blocks touching a saturated pixel (0 or 255, where noise is clipped) are left
out while enough others remain.

A frame needs room for flat blocks: with fewer than `MIN_BLOCKS` blocks per
frame every block is mostly texture, and the estimate is the texture's
(measured, scripts/bench_real_inputs.py: clean clips box-downsampled to 12×16,
one block per frame, estimated 2–15/255; at 24×32, six blocks, 0–3.8/255).
Such frames estimate to nothing (`estimate_sigma` says so): the user gives
`--sigma-y` if they know better.

An 8-bit input carries quantisation noise (uniform, std 1/(255·√12) ≈
0.29/255) and a clean natural clip a little texture even in its flattest
blocks. The estimate subtracts the quantisation variance and reports 0 under
`NOISE_FLOOR`, so clean inputs are solved exactly as with σ_y = 0. Measured
(scripts/bench_denoise.py clips, 64×64, 8 frames): clean 0.1–2.1/255 (cat fur
is the 2.1), σ = 2/255 → 2.0–3.2, 5 → 5.0–5.9, 10 → 10.0–10.7, 25 → 24.7–25.6.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: std of 8-bit rounding (uniform over one level), in [0, 1] units
QUANTISATION_STD = 1.0 / (255.0 * math.sqrt(12.0))
#: estimates below this (after removing the quantisation noise) are reported as 0
NOISE_FLOOR = 1.5 / 255.0
#: frames sampled for the estimate (from the start of the input)
ESTIMATE_FRAMES = 16
#: the high-pass: second difference in x times second difference in y, / 6 (white noise keeps its std)
HIGH_PASS = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], dtype=torch.float64) / 6.0
BLOCK = 8
#: fewer blocks than this per frame: the frames are too small to tell noise from texture
MIN_BLOCKS = 4
QUANTILE = 0.1
#: the QUANTILE of the block RMS of HIGH_PASS on unit white noise (measured: 12 × 32 frames of 128², 0.7936 ± 0.003)
QUANTILE_OF_UNIT_NOISE = 0.7936


def block_rms(frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, blocks) RMS of the high-pass per BLOCK×BLOCK block of one frame (C, H, W), and whether a block
    touches a saturated pixel."""
    x = frame.to(torch.float64)
    c, h, w = x.shape
    r = F.conv2d(x.reshape(c, 1, h, w), HIGH_PASS.view(1, 1, 3, 3)).reshape(c, h - 2, w - 2)
    sat = F.max_pool2d(((x <= 0) | (x >= 1)).to(torch.float64).reshape(c, 1, h, w), 3, 1).reshape(c, h - 2, w - 2)
    hb, wb = (h - 2) // BLOCK, (w - 2) // BLOCK
    r = r[:, :hb * BLOCK, :wb * BLOCK].reshape(c, hb, BLOCK, wb, BLOCK)
    sat = sat[:, :hb * BLOCK, :wb * BLOCK].reshape(c, hb, BLOCK, wb, BLOCK)
    return r.pow(2).mean(dim=(2, 4)).sqrt().reshape(c, -1), sat.amax(dim=(2, 4)).reshape(c, -1) > 0


def estimable(size: tuple[int, int]) -> bool:
    """Whether frames of `size` (H, W) hold enough blocks (`MIN_BLOCKS`) to tell noise from texture."""
    h, w = size
    return ((h - 2) // BLOCK) * ((w - 2) // BLOCK) >= MIN_BLOCKS


def estimate_sigma_channels(frames: torch.Tensor) -> list[float]:
    """Raw noise std per channel of a clip (F, C, H, W) in [0, 1], pooled over the frames (quantisation
    noise included); 0 for frames too small to tell (`estimable`)."""
    if frames.ndim != 4:
        raise ValueError(f"expected a clip (F, C, H, W), got {tuple(frames.shape)}")
    if not estimable(frames.shape[-2:]):
        return [0.0] * frames.shape[1]
    parts = [block_rms(frame) for frame in frames]
    rms, sat = torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)
    out = []
    for values, saturated in zip(rms, sat):
        kept = values[~saturated]
        if len(kept) < max(8, len(values) // 10):  # mostly saturated: clipped noise is better than none
            kept = values
        out.append(float(torch.quantile(kept, QUANTILE)) / QUANTILE_OF_UNIT_NOISE)
    return out


def estimate_sigma(frames: torch.Tensor) -> tuple[float, list[float]]:
    """(σ, σ per channel) of white Gaussian noise on an 8-bit clip (F, C, H, W) in [0, 1].

    Quantisation noise is removed (in variance) and estimates under `NOISE_FLOOR` are 0; σ is the
    mean over channels (the solver's noise model is one σ for every channel).
    """
    channels = []
    for raw in estimate_sigma_channels(frames):
        s = math.sqrt(max(raw * raw - QUANTISATION_STD ** 2, 0.0))
        channels.append(s if s >= NOISE_FLOOR else 0.0)
    return sum(channels) / len(channels), channels


def proximal_weight(sigma_y: float, alpha_bar: float, scale: float = 1.0) -> float:
    """DDS / DiffPIR data-consistency weight γ_t = scale · σ_y² / σ_t² for ‖A x − y‖² + γ_t ‖x − x̂0‖².

    σ_y is the measurement noise ([0, 1] units) and σ_t = √(1 − ᾱ_t) / (2 √ᾱ_t) the noise of x_t in the same
    units (the model's range is twice as wide): early steps trust the measurements, late ones the prior.
    """
    if sigma_y <= 0:
        return 0.0
    sigma_t_sq = (1.0 - alpha_bar) / (4.0 * max(alpha_bar, 1e-12))
    return scale * sigma_y * sigma_y / max(sigma_t_sq, 1e-12)


def timestep_for_sigma(alphas_cumprod: torch.Tensor, sigma: float, scale: float = 1.0) -> int:
    """The first timestep whose noise σ_t (in [0, 1] units, see `proximal_weight`) reaches scale · σ."""
    a = alphas_cumprod.to(torch.float64)
    sigma_t = ((1 - a) / (4 * a)).sqrt()
    above = torch.nonzero(sigma_t >= scale * sigma)
    return int(above[0]) if len(above) else len(a) - 1
