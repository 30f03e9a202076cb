"""Optical flow with OpenCV's DIS (Dense Inverse Search); no weights needed.

Convention: ``estimate_flow(src, dst)`` returns ``flow`` with
``src(p) ≈ dst(p + flow(p))``, i.e. ``backward_warp(dst, flow) ≈ src``. Flow tensors
are ``(N, 2, H, W)`` float32 in pixels, channel 0 = x (horizontal), 1 = y.

Flow is computed on grayscale uint8 frames (luma ``0.299 R + 0.587 G + 0.114 B``)
on the CPU, and returned on the device of ``src``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = ["estimate_flow", "consecutive_flows", "to_gray_uint8", "DIS_PRESETS"]

DIS_PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}

# DIS refuses frames smaller than 12 px; smaller frames are edge-padded to this size.
_MIN_SIZE = 16


def to_gray_uint8(frames: Tensor) -> np.ndarray:
    """``(N, C, H, W)`` in [0, 1] -> ``(N, H, W)`` uint8 luma (C=3), the channel (C=1) or the channel mean."""
    if frames.dim() != 4:
        raise ValueError(f"expected (N,C,H,W) frames, got shape {tuple(frames.shape)}")
    x = frames.detach().to("cpu", torch.float32)
    c = x.shape[1]
    if c == 3:
        g = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    elif c == 1:
        g = x[:, 0]
    else:
        g = x.mean(dim=1)
    return (g.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).numpy()


def _mask_to_uint8(mask, n: int, h: int, w: int) -> np.ndarray:
    """Mask broadcastable to ``(N, 1, H, W)`` (non-zero = ignore) -> ``(N, H, W)`` uint8 {0, 255}."""
    m = torch.as_tensor(mask).detach().to("cpu")
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[:, None]
    if m.dim() != 4 or m.shape[-2:] != (h, w) or m.shape[0] not in (1, n):
        raise ValueError(f"mask of shape {tuple(m.shape)} does not fit frames ({n}, *, {h}, {w})")
    m = (m != 0).any(dim=1)
    m = m.expand(n, h, w)
    return m.numpy().astype(np.uint8) * 255


def _fill_holes(gray: np.ndarray, mask_u8: np.ndarray | None) -> np.ndarray:
    if mask_u8 is None:
        return gray
    out = gray.copy()
    for i in range(gray.shape[0]):
        if mask_u8[i].any():
            out[i] = cv2.inpaint(gray[i], mask_u8[i], 3, cv2.INPAINT_TELEA)
    return out


def _gaussian_blur(gray: np.ndarray, sigma: float) -> np.ndarray:
    """``(N, H, W)`` uint8 frames blurred in float and rounded back to uint8."""
    size = 2 * int(np.ceil(3 * sigma)) + 1
    out = [cv2.GaussianBlur(g.astype(np.float32), (size, size), sigma, borderType=cv2.BORDER_REFLECT) for g in gray]
    return np.clip(np.rint(np.stack(out)), 0, 255).astype(np.uint8)


def estimate_flow(
    src: Tensor,
    dst: Tensor,
    mask=None,
    dst_mask=None,
    *,
    preset: str = "medium",
    blur: float = 0.0,
) -> Tensor:
    """Dense flow from ``src`` to ``dst`` such that ``src(p) ≈ dst(p + flow(p))``.

    Args:
        src, dst: ``(N, C, H, W)`` frames in [0, 1] (C = 3 or 1; ``(C, H, W)`` also accepted).
        mask: optional pixels of ``src`` to ignore (non-zero = ignore), broadcastable to
            ``(N, 1, H, W)`` — e.g. inpainting holes. Before flow estimation the holes are
            filled by OpenCV Telea inpainting of the grayscale frame (radius 3), so DIS
            sees smooth content there instead of the hole's fill value; the flow inside
            the holes is therefore an interpolation of the surroundings.
        dst_mask: the same for ``dst``; defaults to ``mask``.
        preset: DIS preset, ``"ultrafast"``, ``"fast"`` or ``"medium"`` (default).
        blur: Gaussian σ in pixels applied to both grayscale frames (after hole filling)
            before DIS; 0 = off. Upsampled low-resolution frames carry aliasing that does
            not move with the scene, and blurring it away measures the motion better.

    Returns:
        ``(N, 2, H, W)`` float32 flow on ``src``'s device.
    """
    if src.dim() == 3:
        src = src.unsqueeze(0)
    if dst.dim() == 3:
        dst = dst.unsqueeze(0)
    if src.shape != dst.shape:
        raise ValueError(f"src and dst shapes differ: {tuple(src.shape)} vs {tuple(dst.shape)}")
    if preset not in DIS_PRESETS:
        raise ValueError(f"unknown DIS preset {preset!r}; choose one of {sorted(DIS_PRESETS)}")
    if blur < 0:
        raise ValueError(f"blur must be >= 0, got {blur}")
    n, _, h, w = src.shape
    out = np.zeros((n, 2, h, w), dtype=np.float32)
    if n == 0:
        return torch.from_numpy(out).to(src.device)

    g0 = to_gray_uint8(src)
    g1 = to_gray_uint8(dst)
    if dst_mask is None:
        dst_mask = mask
    g0 = _fill_holes(g0, None if mask is None else _mask_to_uint8(mask, n, h, w))
    g1 = _fill_holes(g1, None if dst_mask is None else _mask_to_uint8(dst_mask, n, h, w))
    if blur > 0:
        g0, g1 = _gaussian_blur(g0, blur), _gaussian_blur(g1, blur)

    ph, pw = max(0, _MIN_SIZE - h), max(0, _MIN_SIZE - w)
    if ph or pw:
        pad = ((0, 0), (0, ph), (0, pw))
        g0 = np.pad(g0, pad, mode="edge")
        g1 = np.pad(g1, pad, mode="edge")

    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[preset])
    for i in range(n):
        f = dis.calc(np.ascontiguousarray(g0[i]), np.ascontiguousarray(g1[i]), None)
        out[i] = f[:h, :w].transpose(2, 0, 1)
    return torch.from_numpy(out).to(src.device)


def consecutive_flows(clip: Tensor, mask=None, *, preset: str = "medium", blur: float = 0.0
                      ) -> tuple[Tensor, Tensor]:
    """Flows between consecutive frames of a clip ``(F, C, H, W)``.

    Args:
        clip: ``(F, C, H, W)`` in [0, 1].
        mask: optional per-frame (``(F, 1, H, W)``) or static (``(1, 1, H, W)``) pixels to
            ignore (see :func:`estimate_flow`).
        blur: Gaussian σ applied before DIS (see :func:`estimate_flow`).

    Returns:
        ``(flows_fwd, flows_bwd)``, each ``(F-1, 2, H, W)``: ``flows_fwd[i]`` goes from
        frame ``i`` to ``i+1`` (``clip[i](p) ≈ clip[i+1](p + flows_fwd[i](p))``),
        ``flows_bwd[i]`` from frame ``i+1`` to ``i``.
    """
    if clip.dim() != 4:
        raise ValueError(f"expected a clip (F,C,H,W), got shape {tuple(clip.shape)}")
    f, _, h, w = clip.shape
    if f < 2:
        empty = torch.zeros((0, 2, h, w), dtype=torch.float32, device=clip.device)
        return empty, empty.clone()
    m0 = m1 = None
    if mask is not None:
        m = torch.as_tensor(mask)
        if m.dim() == 2:
            m = m[None, None]
        elif m.dim() == 3:
            m = m[:, None]
        if m.shape[0] == 1:
            m0 = m1 = m
        elif m.shape[0] == f:
            m0, m1 = m[:-1], m[1:]
        else:
            raise ValueError(f"mask has {m.shape[0]} frames, clip has {f}")
    a, b = clip[:-1], clip[1:]
    fwd = estimate_flow(a, b, m0, m1, preset=preset, blur=blur)
    bwd = estimate_flow(b, a, m1, m0, preset=preset, blur=blur)
    return fwd, bwd
