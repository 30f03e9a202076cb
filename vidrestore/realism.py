"""Realism next to PSNR, computed without network weights, for clips ``(F, C, H, W)`` in [0, 1].

* :func:`sliced_wasserstein` — the sliced Wasserstein distance (SWD) between the
  distributions of 7×7 patches of the Laplacian pyramids of a clip and of its
  reference, level by level (Karras et al. 2018, "Progressive growing of GANs",
  §5): patches are normalised per channel with their own set's mean and std,
  projected on random unit directions, and the sorted projections compared.
  Only the *distribution* of patches counts, not where they are: plausible detail
  in the wrong place scores well here and badly in PSNR; blur scores badly in
  both. The random directions and patch positions come from a ``torch.Generator``
  with a fixed seed, so the number is deterministic, symmetric in its two
  arguments and exactly 0 for identical clips.
* :func:`sharpness_ratio` — gradient energy of the clip over that of the
  reference: below 1 is blurrier than the truth, above 1 sharper (or noisier).

The pyramid uses OpenCV's 5-tap Gaussian ``pyrDown`` / ``pyrUp``; projections in float32, the final mean in float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = ["PATCH", "SWDResult", "laplacian_pyramid", "sliced_wasserstein", "sharpness_ratio"]

PATCH = 7                 # patch side, as in Karras et al.
MIN_LEVEL_SIZE = 16       # the coarsest level (the Gaussian remainder) is at least this small side
MAX_PATCHES = 8192        # patches per level and clip (Karras: 16384; half keeps evaluate quick on a CPU)
PROJECTIONS = 256         # random directions (Karras: 4 repeats of 128)
SEED = 0x5D                # the fixed seed of directions and patch positions


@dataclass(frozen=True)
class SWDResult:
    """SWD per pyramid level, finest first, and their mean."""

    per_level: list[float]

    @property
    def mean(self) -> float:
        return float(sum(self.per_level) / len(self.per_level)) if self.per_level else math.nan


def _frames(clip: Tensor) -> list[np.ndarray]:
    clip = torch.as_tensor(clip).detach()
    if clip.dim() == 3:
        clip = clip.unsqueeze(0)
    frames = [f.permute(1, 2, 0).to(torch.float32).cpu().numpy() for f in clip]
    return [f[..., 0] if f.shape[2] == 1 else f for f in frames]  # OpenCV drops a single channel's axis


def laplacian_pyramid(clip: Tensor, min_size: int = MIN_LEVEL_SIZE) -> list[Tensor]:
    """Levels ``(F, C, h, w)``, finest first: band-pass differences, then the low-pass remainder whose
    smaller side is below ``2 * min_size`` (a clip smaller than that is one level, itself)."""
    current = _frames(clip)
    levels: list[list[np.ndarray]] = []
    while min(current[0].shape[:2]) >= 2 * min_size:
        down = [cv2.pyrDown(f) for f in current]
        up = [cv2.pyrUp(d, dstsize=(f.shape[1], f.shape[0])) for d, f in zip(down, current)]
        levels.append([f - u for f, u in zip(current, up)])
        current = down
    levels.append(current)
    return [torch.from_numpy(np.stack([np.atleast_3d(f) for f in level])).permute(0, 3, 1, 2) for level in levels]


def _positions(f: int, h: int, w: int, limit: int, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Top-left corners of the patches: every one when there are at most `limit`, else `limit` drawn."""
    ny, nx = h - PATCH + 1, w - PATCH + 1
    total = f * ny * nx
    index = torch.arange(total) if total <= limit else torch.randint(0, total, (limit,), generator=gen)
    return index // (ny * nx), (index // nx) % ny, index % nx


def _descriptors(level: Tensor, where: tuple[Tensor, Tensor, Tensor]) -> Tensor:
    """Patches ``(N, C·7·7)``, each channel normalised by the set's own mean and std."""
    frame, top, left = where
    offsets = torch.arange(PATCH)
    rows = (top[:, None] + offsets)[:, :, None]      # (N, 7, 1)
    cols = (left[:, None] + offsets)[:, None, :]     # (N, 1, 7)
    patches = level.to(torch.float32).permute(0, 2, 3, 1)[frame[:, None, None], rows, cols]  # (N, 7, 7, C)
    mean = patches.mean(dim=(0, 1, 2), keepdim=True)
    std = patches.std(dim=(0, 1, 2), keepdim=True).clamp_min(1e-8)  # a flat level stays flat, not NaN
    return ((patches - mean) / std).flatten(1)


def sliced_wasserstein(x: Tensor, ref: Tensor, *, min_size: int = MIN_LEVEL_SIZE, patches: int = MAX_PATCHES,
                       projections: int = PROJECTIONS, seed: int = SEED) -> SWDResult:
    """SWD between the Laplacian-pyramid patch distributions of `x` and `ref` (same shape), per level.

    Both clips are read at the same patch positions with the same directions, so the result is
    symmetric and 0 for identical clips; the value is the mean absolute difference of the sorted
    projections (an L1 Wasserstein distance per direction), averaged over directions.
    """
    x, ref = torch.as_tensor(x), torch.as_tensor(ref)
    if x.shape != ref.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs reference {tuple(ref.shape)}")
    if min(x.shape[-2:]) < PATCH:
        raise ValueError(f"SWD needs frames of at least {PATCH}x{PATCH}, got {tuple(x.shape[-2:])}")
    gen = torch.Generator().manual_seed(seed)
    per_level = []
    for a, b in zip(laplacian_pyramid(x, min_size), laplacian_pyramid(ref, min_size)):
        f, c, h, w = a.shape
        if min(h, w) < PATCH:
            break
        where = _positions(f, h, w, patches, gen)
        da, db = _descriptors(a, where), _descriptors(b, where)
        directions = torch.randn(da.shape[1], projections, generator=gen, dtype=torch.float32)
        directions /= directions.norm(dim=0, keepdim=True)
        # one direction per row, sorted by NumPy (several times faster than torch.sort on a CPU)
        pa = np.sort((directions.T @ da.T).numpy(), axis=1)
        pb = np.sort((directions.T @ db.T).numpy(), axis=1)
        per_level.append(float(np.abs(pa - pb).mean(dtype=np.float64)))
    return SWDResult(per_level)


def gradient_energy(clip: Tensor) -> float:
    """Mean squared horizontal and vertical finite difference over the clip."""
    clip = torch.as_tensor(clip).detach().to(torch.float64)
    dy, dx = clip.diff(dim=-2), clip.diff(dim=-1)
    return float(dy.pow(2).mean() + dx.pow(2).mean())


def sharpness_ratio(x: Tensor, ref: Tensor) -> float:
    """Gradient energy of `x` over that of `ref`: 1 for identical clips, below 1 when `x` is blurrier."""
    x, ref = torch.as_tensor(x), torch.as_tensor(ref)
    if x.shape != ref.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs reference {tuple(ref.shape)}")
    energy_x, energy_ref = gradient_energy(x), gradient_energy(ref)
    if energy_ref == 0:
        return 1.0 if energy_x == 0 else math.inf
    return energy_x / energy_ref
