"""The run's noise level: `degradation.sigma_y` as given, or ("auto") estimated once from the input.

The estimate (`vidrestore.operators.noise.estimate_sigma`) reads the first
`ESTIMATE_FRAMES` frames of the input, once per run, before any window is
solved; every window (and every worker) then solves with the same number, so
windows agree and a resumed run estimates the same value again. The metrics
JSON reports `sigma_y` (the number solved with), `sigma_y_estimated` and,
when estimated, `sigma_y_channels`.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

from vidrestore.config import RunConfig
from vidrestore.io import read_frames, to_tensor
from vidrestore.operators.noise import ESTIMATE_FRAMES, estimate_sigma
from vidrestore.tasks.base import AUTO


def estimate_input_sigma(path: Path, fps: Fraction | None = None, frames: int = ESTIMATE_FRAMES
                         ) -> tuple[float, list[float]]:
    """(σ, σ per channel) of the first `frames` frames of a video or frame folder."""
    reader = read_frames(path, frames, folder_fps=fps)
    try:
        batch = next(iter(reader))
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()
    return estimate_sigma(to_tensor(batch[:frames]))


def resolve_noise(cfg: RunConfig, input_path: Path, fps: Fraction | None = None) -> tuple[RunConfig, dict]:
    """`cfg` with the noise level a number, and what the metrics JSON says about it."""
    level = cfg.degradation.noise_level
    if level != AUTO:
        return cfg, {"sigma_y": float(level), "sigma_y_estimated": False}
    sigma, channels = estimate_input_sigma(input_path, fps)
    resolved = dataclasses.replace(cfg, degradation=cfg.degradation.with_noise_level(sigma))
    return resolved, {"sigma_y": round(sigma, 6), "sigma_y_estimated": True,
                      "sigma_y_channels": [round(c, 6) for c in channels]}
