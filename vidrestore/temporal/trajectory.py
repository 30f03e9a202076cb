"""Flows from an in-between time to its two neighbouring frames, for frame interpolation.

A pixel of frame ``i`` moves along a trajectory ``D(τ)`` (τ in frame intervals).
Linear motion is ``D(τ) = τ·F_{i→i+1}``. With the frame before as well, the
quadratic trajectory through three frames (Xu et al., "Quadratic Video
Interpolation", NeurIPS 2019) is::

    D(τ) = τ·v + τ²·a,   v = (F_{i→i+1} − F_{i→i−1}) / 2,   a = (F_{i→i+1} + F_{i→i−1}) / 2

which follows curved and accelerating motion (swaying foliage, a ball's arc)
that two frames cannot tell from a straight line.

Interpolation reads the neighbours *from the new frame's grid*. For linear
motion, Super SloMo's combination of both flows evaluated at the same pixel
approximates that inverse; the quadratic trajectory adds ``t(1−t)·a`` to both
of its flows (exact for a uniformly accelerating scene). Inverting each
trajectory exactly by fixed-point iteration was measured worse on pans and
zooms (−0.04 to −0.75 dB): it uses one flow per side, where Super SloMo's
combination averages the errors of the forward and backward flows.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from vidrestore.temporal.occlusion import occlusion_mask

__all__ = ["accelerations", "flows_to_neighbours"]


def accelerations(fwd: Tensor, bwd: Tensor, *, cuts: Sequence[int] = (),
                  visible: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Per frame ``k`` of the clip, the quadratic trajectory's acceleration ``a`` ``(N, 2, H, W)``.

    ``fwd[i]`` is ``F_{i→i+1}`` and ``bwd[i]`` is ``F_{i+1→i}``, as from
    :func:`~vidrestore.temporal.consecutive_flows`. ``a`` is used only where both
    flows it comes from pass the forward-backward check (``visible``: the
    ``(occlusion_mask(fwd, bwd), occlusion_mask(bwd, fwd))`` a caller already
    has), and is zero at the clip's ends and next to a shot boundary (``cuts``:
    indices of the first frames of shots), where the frame has no neighbour on
    one side.
    """
    n = fwd.shape[0] + 1
    accel = torch.zeros((n,) + tuple(fwd.shape[1:]), dtype=fwd.dtype, device=fwd.device)
    if n >= 3:
        seen_fwd, seen_bwd = visible if visible is not None else (occlusion_mask(fwd, bwd), occlusion_mask(bwd, fwd))
        # frame k (1 ≤ k ≤ n−2) has both F_{k→k+1} = fwd[k] and F_{k→k−1} = bwd[k−1]
        accel[1:-1] = (fwd[1:] + bwd[:-1]) / 2 * (seen_fwd[1:] * seen_bwd[:-1])
        for cut in cuts:
            accel[[k for k in (cut - 1, cut) if 0 <= k < n]] = 0
    return accel


def flows_to_neighbours(fwd: Tensor, bwd: Tensor, t: float, accel: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Flows ``(g0, g1)`` from the frame at time ``i + t`` to frames ``i`` and ``i + 1``,
    for every consecutive pair ``i``: ``I_{i+t}(p) ≈ I_i(p + g0(p)) ≈ I_{i+1}(p + g1(p))``.

    Without ``accel``, linear motion: Super SloMo's approximation (Jiang et al.,
    CVPR 2018). With the clip's :func:`accelerations`, the quadratic trajectory
    adds each end frame's acceleration.
    """
    g0 = -(1 - t) * t * fwd + t * t * bwd
    g1 = (1 - t) ** 2 * fwd - t * (1 - t) * bwd
    if accel is not None:
        g0 = g0 + t * (1 - t) * accel[:-1]
        g1 = g1 + t * (1 - t) * accel[1:]
    return g0, g1
