"""Benchmark and demo clips with known motion: smooth camera pans and zooms over a still.

The high-resolution clip is the ground truth; the degraded input is made
with vidrestore's own operators, so the benchmark measures exactly the
inverse problem the solver is told about.
"""
from __future__ import annotations

import math

import cv2
import numpy as np
import torch


def camera_clip(still: np.ndarray, size: tuple[int, int], frames: int, *, pan: tuple[float, float] = (1.5, 0.5),
                zoom: float = 0.0, rotate: float = 0.0, source_scale: float = 1.0) -> torch.Tensor:
    """A virtual camera over `still` (H, W, 3 float [0,1]) → clip (F, 3, h, w) in [0, 1].

    pan: pixels per frame in output pixels; zoom: relative scale change per
    frame; rotate: degrees per frame; source_scale: still pixels per output
    pixel at frame 0 (>1 downsamples the still first, as a camera would).
    """
    h, w = size
    if source_scale != 1.0:
        still = cv2.resize(still, None, fx=1 / source_scale, fy=1 / source_scale, interpolation=cv2.INTER_AREA)
    H, W = still.shape[:2]
    cx0, cy0 = W / 2 - pan[0] * frames / 2, H / 2 - pan[1] * frames / 2
    out = []
    for f in range(frames):
        scale = (1 + zoom) ** f
        angle = math.radians(rotate * f)
        cx, cy = cx0 + pan[0] * f, cy0 + pan[1] * f
        # maps output pixel (u, v) to still coordinates around the moving centre
        a, b = math.cos(angle) / scale, math.sin(angle) / scale
        M = np.array([[a, -b, cx - a * (w - 1) / 2 + b * (h - 1) / 2],
                      [b, a, cy - b * (w - 1) / 2 - a * (h - 1) / 2]], dtype=np.float64)
        frame = cv2.warpAffine(still, M, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        out.append(np.clip(frame, 0, 1))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().contiguous()


def wobble_clip(still: np.ndarray, size: tuple[int, int], frames: int, *, amplitude: float = 3.0,
                wavelength: float = 48.0, speed: float = 0.25, source_scale: float = 1.0) -> torch.Tensor:
    """Non-rigid motion: a travelling sine-wave displacement field (like wind in foliage or heat haze)."""
    h, w = size
    if source_scale != 1.0:
        still = cv2.resize(still, None, fx=1 / source_scale, fy=1 / source_scale, interpolation=cv2.INTER_AREA)
    H, W = still.shape[:2]
    y0, x0 = (H - h) / 2, (W - w) / 2
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    out = []
    for f in range(frames):
        phase = 2 * math.pi * speed * f
        dx = amplitude * np.sin(2 * math.pi * yy / wavelength + phase)
        dy = amplitude * np.cos(2 * math.pi * xx / wavelength + 0.7 * phase)
        frame = cv2.remap(still, (xx + x0 + dx).astype(np.float32), (yy + y0 + dy).astype(np.float32),
                          cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        out.append(np.clip(frame, 0, 1))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().contiguous()
