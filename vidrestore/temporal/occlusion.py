"""Occlusion masks by the forward-backward consistency check (Sundaram et al., 2010)."""

from __future__ import annotations

from torch import Tensor

from vidrestore.temporal.warp import backward_warp

__all__ = ["occlusion_mask"]


def occlusion_mask(
    flow_fw: Tensor,
    flow_bw: Tensor,
    *,
    alpha: float = 0.01,
    beta: float = 0.5,
) -> Tensor:
    """Where the correspondence of frame ``a``'s pixels in frame ``b`` can be trusted.

    Args:
        flow_fw: ``(N, 2, H, W)`` flow from ``a`` to ``b`` (``a(p) ≈ b(p + flow_fw(p))``).
        flow_bw: ``(N, 2, H, W)`` flow from ``b`` to ``a``.
        alpha, beta: the test ``|f + b̃|² < alpha (|f|² + |b̃|²) + beta`` with
            ``b̃(p) = flow_bw(p + f(p))``.

    Returns:
        ``(N, 1, H, W)`` float on the grid of frame ``a``: 1.0 where the check passes
        and ``p + f(p)`` lies inside frame ``b``, 0.0 elsewhere (occluded / out of frame).
    """
    if flow_fw.shape != flow_bw.shape:
        raise ValueError(f"flow shapes differ: {tuple(flow_fw.shape)} vs {tuple(flow_bw.shape)}")
    f = flow_fw.float()
    b_w, inside = backward_warp(flow_bw.to(f.device).float(), f)
    lhs = (f + b_w).pow(2).sum(dim=1, keepdim=True)
    rhs = alpha * (f.pow(2).sum(dim=1, keepdim=True) + b_w.pow(2).sum(dim=1, keepdim=True)) + beta
    return ((lhs < rhs).float() * inside).detach()
