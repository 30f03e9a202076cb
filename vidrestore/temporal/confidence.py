"""Soft flow confidence from the forward-backward consistency error (robust equivariance guidance).

The occlusion test (`occlusion_mask`) is binary: a correspondence passes or
not. On tiny, aliased, noisy or fast-moving inputs DIS returns flow that
passes it and is still wrong by a pixel or more, and guidance pulls the
frames towards a wrong warp at full strength. `flow_confidence` weights each
pixel by exp(−‖f + b̃‖² / (2 s²)), b̃ the backward flow read at the forward
flow's target and s the `scale` (pixels): a consistent pair keeps weight 1, a
pair off by s keeps 0.61, off by 2 s 0.14. The guidance's masks are
multiplied by it (`guidance.reliability` = s; 0 = off, the binary mask alone).
"""
from __future__ import annotations

import torch
from torch import Tensor

from vidrestore.temporal.warp import backward_warp

__all__ = ["flow_confidence"]


def flow_confidence(flow_fw: Tensor, flow_bw: Tensor, scale: float) -> Tensor:
    """(N, 1, H, W) weights in [0, 1] on the grid of frame a: how far the flow a → b and the flow b → a
    (read at p + flow_fw(p)) are from undoing each other, relative to `scale` pixels."""
    if flow_fw.shape != flow_bw.shape:
        raise ValueError(f"flow shapes differ: {tuple(flow_fw.shape)} vs {tuple(flow_bw.shape)}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale!r}")
    f = flow_fw.float()
    b_w, _ = backward_warp(flow_bw.to(f.device).float(), f)
    error = (f + b_w).pow(2).sum(dim=1, keepdim=True)
    return torch.exp(-error / (2.0 * scale * scale)).detach()
