"""Flow under large motion: a global shift found first, and flow filled where it cannot be trusted.

DIS searches a few pixels around its coarse estimate: on a 256x128 frame it
loses a pan of 32 px between frames on some content (the `rocket` still of
scripts/bench_peers.py: 5.4 px mean error, 0.07 px with the shift first).
:func:`shifted_flows` measures the dominant translation of each frame pair
by phase correlation and, where it is large, runs DIS on the pair with the
second frame moved back by it, then adds it to the residual flow.

Under a fast pan a band as wide as the motion also enters or leaves the
frame between two input frames; nothing matches there and the flow fails
the forward-backward check. :func:`fill_unreliable_flow` fills such flows
from their reliable neighbours (a push-pull interpolation, `fill_smooth`),
which continues the motion of the rest of the frame into the band: right for
camera motion, a plain guess for objects. The occlusion weights still decide
which neighbour frame is read. OpenCV's Telea inpainting, used before, left
the filled flow alternating by ±0.6 px from column to column, which read the
band's only source frame a fraction of a pixel off: the invented frames of
scripts/bench_peers.py's fast pans gained 4.0–10.4 dB from the change (coffee
×2 16 px 44.43 → 49.46 dB, rocket ×4 16 px 43.98 → 54.35).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

from vidrestore.temporal.flow import estimate_flow, to_gray_uint8
from vidrestore.temporal.propagation import fill_smooth

__all__ = ["dominant_shift", "shifted_flows", "fill_unreliable_flow", "large_motion"]

#: the share of pixels whose motion `large_motion` measures (the 90th percentile ignores a still background)
MOTION_QUANTILE = 0.9
#: phase correlation peaks below this (in [0, 1]) name no dominant shift
MIN_RESPONSE = 0.2


def dominant_shift(src: Tensor, dst: Tensor) -> tuple[float, float, float]:
    """(dx, dy, response) with ``src(p) ≈ dst(p + (dx, dy))`` for most pixels, by phase correlation (Hann window)."""
    g0, g1 = (to_gray_uint8(f[None])[0].astype(np.float64) for f in (src, dst))
    window = cv2.createHanningWindow(g0.shape[::-1], cv2.CV_64F)
    (dx, dy), response = cv2.phaseCorrelate(g0, g1, window)
    return float(dx), float(dy), float(response)


def _moved_back(frame: Tensor, dx: float, dy: float) -> Tensor:
    """`frame` (C, H, W) read at ``p + (dx, dy)`` (bilinear, edges repeated)."""
    image = np.ascontiguousarray(frame.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy())
    h, w = image.shape[:2]
    moved = cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h),
                           flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return torch.from_numpy(moved.reshape(h, w, -1)).permute(2, 0, 1).to(frame)


def shifted_flows(clip: Tensor, fwd: Tensor, bwd: Tensor, threshold: float, *, preset: str = "medium"
                  ) -> tuple[Tensor, Tensor]:
    """`fwd`, `bwd` (from :func:`consecutive_flows` on `clip`) re-estimated where a pair shifts ≥ `threshold` px.

    For such a pair, DIS runs between the first frame and the second moved back
    by the dominant shift ``d``, and the flow is that residual plus ``d``.
    """
    fwd, bwd = fwd.clone(), bwd.clone()
    for i in range(clip.shape[0] - 1):
        a, b = clip[i], clip[i + 1]
        dx, dy, response = dominant_shift(a, b)
        if response < MIN_RESPONSE or np.hypot(dx, dy) < threshold:
            continue
        shift = torch.tensor([dx, dy], dtype=fwd.dtype, device=fwd.device).view(2, 1, 1)
        fwd[i] = estimate_flow(a[None], _moved_back(b, dx, dy)[None], preset=preset)[0].to(fwd) + shift
        bwd[i] = estimate_flow(b[None], _moved_back(a, -dx, -dy)[None], preset=preset)[0].to(bwd) - shift
    return fwd, bwd


def large_motion(flow: Tensor, threshold: float) -> Tensor:
    """``(N,)`` bool: the flows whose 90th-percentile displacement is at least `threshold` pixels."""
    magnitude = flow.detach().float().norm(dim=1).flatten(1)
    return magnitude.quantile(MOTION_QUANTILE, dim=1) >= threshold


def fill_unreliable_flow(flow: Tensor, reliable: Tensor, which: Tensor | None = None) -> Tensor:
    """`flow` ``(N, 2, H, W)`` with the pixels where `reliable` ``(N, 1, H, W)`` < 0.5 filled from the others.

    Only the flows `which` ``(N,)`` marks are changed (default: all); a flow with
    no reliable pixel, or no unreliable one, is kept as it is.
    """
    out = flow.clone()
    good = (reliable.detach() >= 0.5).to(flow.dtype)
    for i in range(flow.shape[0]):
        if (which is not None and not bool(which[i])) or bool(good[i].all()) or not bool(good[i].any()):
            continue
        out[i:i + 1] = fill_smooth(flow[i:i + 1], good[i:i + 1])
    return out
