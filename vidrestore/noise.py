"""The run's noise level: `degradation.sigma_y` as given, or ("auto") estimated once from the input.

The estimate (`vidrestore.operators.noise.estimate_sigma`) reads the first
`ESTIMATE_FRAMES` frames of the input, once per run, before any window is
solved; every window (and every worker) then solves with the same number, so
windows agree and a resumed run estimates the same value again. The metrics
JSON reports `sigma_y` (the number solved with), `sigma_y_estimated` and,
when estimated, `sigma_y_channels` and `blocking` (the 8×8 block-boundary
ratio and the std of per-block offsets it explains,
`vidrestore.operators.blind.blocking`): blocking is structured noise, and
σ_y = √(σ_noise² + σ_blocking²). A clean input (no noise above the floor, no
blocking above `BLOCK_RATIO`) still estimates to 0: exact data consistency.
Frames too small to tell noise from texture (`operators.noise.estimable`) are
solved as noise-free, with a warning.
"""
from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from pathlib import Path

import torch

from vidrestore.config import RunConfig
from vidrestore.io import read_frames, to_tensor
from vidrestore.operators.blind import blocking
from vidrestore.operators.noise import ESTIMATE_FRAMES, estimable, estimate_sigma
from vidrestore.tasks.base import AUTO


def read_head(path: Path, fps: Fraction | None = None, frames: int = ESTIMATE_FRAMES) -> torch.Tensor:
    """The first `frames` frames of a video or frame folder, (F, 3, H, W) in [0, 1]."""
    reader = read_frames(path, frames, folder_fps=fps)
    try:
        batch = next(iter(reader))
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()
    return to_tensor(batch[:frames])


def resolve_noise(cfg: RunConfig, input_path: Path, fps: Fraction | None = None,
                  head: torch.Tensor | None = None, floor: float = 0.0) -> tuple[RunConfig, dict, list[str]]:
    """`cfg` with the noise level a number, what the metrics JSON says about it, and warnings for the user
    (`head`: the input's first frames, when already read; `floor`: the least an "auto" level resolves to, e.g.
    what the artifact remover leaves in `head`)."""
    level = cfg.degradation.noise_level
    if level != AUTO:
        return cfg, {"sigma_y": float(level), "sigma_y_estimated": False}, []
    head = read_head(input_path, fps) if head is None else head
    if not estimable(head.shape[-2:]):
        h, w = head.shape[-2:]
        resolved = dataclasses.replace(cfg, degradation=cfg.degradation.with_noise_level(floor))
        return resolved, {"sigma_y": floor, "sigma_y_estimated": False}, [
            f"frames of {w}x{h} are too small to tell noise from texture: solved as "
            + (f"σ_y {floor:g} (what removing compression artifacts leaves)" if floor else "noise-free")
            + " (give --sigma-y if the input is noisy)"]
    noise, channels = estimate_sigma(head)
    ratio, block = blocking(head)
    sigma = math.hypot(noise, block) if block > 0 else noise  # no blocking: the noise estimate, bit for bit
    sigma = max(sigma, floor)
    resolved = dataclasses.replace(cfg, degradation=cfg.degradation.with_noise_level(sigma))
    return resolved, {"sigma_y": round(sigma, 6), "sigma_y_estimated": True,
                      "sigma_y_channels": [round(c, 6) for c in channels],
                      "blocking": {"ratio": round(ratio, 4), "sigma": round(block, 6)}}, []
