"""Scene-cut (shot boundary) detection by colour-histogram distance.

Each frame gets a joint colour histogram (``bins`` levels per channel, ``bins**3``
cells for RGB; 64 levels for grayscale), normalised to sum 1. The distance between
consecutive frames is the total-variation distance ``0.5 * sum |h_i - h_{i+1}|`` in
[0, 1]. A new shot starts at frame ``i+1`` when ``d_i`` is

* above the absolute ``threshold``, and
* more than ``ratio`` times the median distance of the neighbouring pairs within
  ``window`` pairs on either side (the adaptive part: busy, fast-moving footage has a
  higher baseline distance than a static shot).

Histogram cues miss cuts between shots of very similar colour distributions; that is
accepted for a baseline detector.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["detect_scene_cuts", "scene_cut_distances"]


def _histograms(clip: Tensor, bins: int) -> Tensor:
    x = clip.detach().float().clamp(0, 1)
    f, c = x.shape[:2]
    if c >= 3:
        q = (x[:, :3] * bins).long().clamp_(max=bins - 1)
        idx = q[:, 0] * bins * bins + q[:, 1] * bins + q[:, 2]
        cells = bins**3
    else:
        levels = 64
        q = (x.mean(dim=1) * levels).long().clamp_(max=levels - 1)
        idx = q
        cells = levels
    idx = idx.reshape(f, -1)
    h = torch.zeros(f, cells, dtype=torch.float64, device=x.device)
    h.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    return h / idx.shape[1]


def scene_cut_distances(clip: Tensor, bins: int = 8) -> Tensor:
    """``(F-1,)`` float64 total-variation histogram distances between consecutive frames."""
    if clip.dim() != 4:
        raise ValueError(f"expected a clip (F,C,H,W), got shape {tuple(clip.shape)}")
    if clip.shape[0] < 2:
        return torch.zeros(0, dtype=torch.float64)
    h = _histograms(clip, bins)
    return (0.5 * (h[1:] - h[:-1]).abs().sum(dim=1)).cpu()


def detect_scene_cuts(
    clip: Tensor,
    threshold: float = 0.3,
    *,
    ratio: float = 3.0,
    window: int = 8,
    bins: int = 8,
) -> list[int]:
    """Indices of frames that start a new shot (frame 0 is never listed).

    Args:
        clip: ``(F, C, H, W)`` in [0, 1].
        threshold: absolute minimum histogram distance (in [0, 1]) for a cut.
        ratio: a cut's distance must also exceed ``ratio`` × the median distance of the
            other pairs within ``window`` pairs (skipped when there are none).
        window: half-width, in frame pairs, of the neighbourhood for the adaptive test.
        bins: histogram levels per colour channel.
    """
    d = scene_cut_distances(clip, bins).tolist()
    cuts: list[int] = []
    for i, di in enumerate(d):
        if di <= threshold:
            continue
        neigh = [d[j] for j in range(max(0, i - window), min(len(d), i + window + 1)) if j != i]
        if neigh:
            med = float(torch.tensor(neigh).median())
            if di <= ratio * med:
                continue
        cuts.append(i + 1)
    return cuts
