"""Backward warping of images along optical flow.

Convention (shared with :mod:`vidrestore.temporal.flow`): a flow tensor has shape
``(N, 2, H, W)``; channel 0 is the horizontal (x) displacement and channel 1 the
vertical (y) displacement, in pixels. ``backward_warp(img, flow)`` returns
``out(p) = img(p + flow(p))``, sampled bilinearly.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["backward_warp", "base_grid"]

_GRID_CACHE: dict[tuple, Tensor] = {}
_GRID_CACHE_MAX = 16


def base_grid(h: int, w: int, device: torch.device | str, dtype: torch.dtype) -> Tensor:
    """Pixel coordinates ``(1, H, W, 2)`` with ``[..., 0] = x`` and ``[..., 1] = y``.

    Cached per ``(H, W, device, dtype)``; the returned tensor must not be modified.
    """
    device = torch.device(device)
    key = (h, w, device, dtype)
    grid = _GRID_CACHE.get(key)
    if grid is None:
        ys = torch.arange(h, device=device, dtype=dtype)
        xs = torch.arange(w, device=device, dtype=dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack((gx, gy), dim=-1).unsqueeze(0)
        if len(_GRID_CACHE) >= _GRID_CACHE_MAX:
            _GRID_CACHE.clear()
        _GRID_CACHE[key] = grid
    return grid


def _gather(flat: Tensor, idx: Tensor) -> Tensor:
    """``flat`` (N, C, H*W), ``idx`` (N, H*W) long -> (N, C, H*W)."""
    return torch.gather(flat, 2, idx.unsqueeze(1).expand(-1, flat.shape[1], -1))


def backward_warp(
    image: Tensor,
    flow: Tensor,
    *,
    padding_mode: str = "border",
    mode: str = "bilinear",
) -> tuple[Tensor, Tensor]:
    """Sample ``image`` at ``p + flow(p)``.

    Args:
        image: ``(N, C, H, W)`` floating tensor.
        flow: ``(N, 2, H, W)`` (or ``(1, 2, H, W)``, broadcast over N) displacement in
            pixels, channel 0 = x, channel 1 = y.
        padding_mode: what out-of-frame samples read: ``"border"`` (default, the
            nearest edge pixel) or ``"zeros"``; ``inside`` marks them either way.
        mode: ``"bilinear"`` (default), ``"bicubic"`` or ``"nearest"``. Bilinear
            sampling at a half-pixel offset averages two pixels, a low-pass that
            costs several dB on textured frames; bicubic (Keys, a = −0.75, as
            ``grid_sample``) keeps the detail, for images rather than masks.

    Returns:
        ``(warped, inside)``: ``warped`` is ``(N, C, H, W)``, differentiable with
        respect to ``image`` (and, for bilinear, ``flow``); ``inside`` is
        ``(N, 1, H, W)`` in the image's dtype, 1.0 where ``p + flow(p)`` lies within the
        frame (``0 <= x <= W-1``, ``0 <= y <= H-1``) and 0.0 elsewhere.

    This is the same sampling as ``F.grid_sample(..., align_corners=True)`` (pixel
    centres on the integer grid), but done by gathering the four neighbours in pixel
    coordinates: no normalise/un-normalise round trip, so it is pixel-exact — a flow
    of exactly ``(1, 0)`` returns the right-hand neighbour bit for bit.
    """
    if image.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"expected image (N,C,H,W) and flow (N,2,H,W), got {tuple(image.shape)} and "
                         f"{tuple(flow.shape)}")
    if padding_mode not in ("border", "zeros"):
        raise ValueError(f"padding_mode must be 'border' or 'zeros', got {padding_mode!r}")
    if mode not in ("bilinear", "bicubic", "nearest"):
        raise ValueError(f"mode must be 'bilinear', 'bicubic' or 'nearest', got {mode!r}")
    n, c, h, w = image.shape
    if flow.shape[-2:] != (h, w):
        raise ValueError(f"flow size {tuple(flow.shape[-2:])} does not match image size {(h, w)}")
    if flow.shape[0] not in (1, n):
        raise ValueError(f"flow batch {flow.shape[0]} does not match image batch {n}")
    if not image.is_floating_point():
        image = image.float()
    # coordinates in at least float32, whatever the image dtype (half precision cannot
    # address pixels beyond 2048 exactly)
    cdtype = torch.float64 if image.dtype == torch.float64 else torch.float32
    flow = flow.to(device=image.device, dtype=cdtype)
    if flow.shape[0] != n:
        flow = flow.expand(n, -1, -1, -1)
    grid = base_grid(h, w, image.device, cdtype)[0]
    x = grid[..., 0] + flow[:, 0]  # (N, H, W)
    y = grid[..., 1] + flow[:, 1]

    eps = 1e-3
    with torch.no_grad():
        inside = (x >= -eps) & (x <= (w - 1) + eps) & (y >= -eps) & (y <= (h - 1) + eps)
        inside = inside.unsqueeze(1).to(image.dtype)

    flat = image.reshape(n, c, h * w)
    if padding_mode == "border":
        x = x.clamp(0, w - 1)
        y = y.clamp(0, h - 1)

    if mode == "bicubic":
        # grid_sample's normalised coordinates; exact integer flows still return exact pixels
        # because the cubic kernel is interpolating (weight 1 at 0, 0 at the other taps)
        # (in cdtype: half-precision normalised coordinates are off by a pixel beyond ~1000 px)
        grid_n = torch.stack((2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1), dim=-1)
        out = torch.nn.functional.grid_sample(image.to(cdtype), grid_n, mode="bicubic", padding_mode=padding_mode,
                                              align_corners=True)
        return out.to(image.dtype), inside

    if mode == "nearest":
        xi = torch.round(x).long()
        yi = torch.round(y).long()
        valid = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1)
        idx = (yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).reshape(n, -1)
        out = _gather(flat, idx)
        if padding_mode == "zeros":
            out = out * valid.reshape(n, 1, -1).to(image.dtype)
        return out.reshape(n, c, h, w), inside

    x0f = torch.floor(x)
    y0f = torch.floor(y)
    wx = (x - x0f).to(image.dtype).reshape(n, 1, -1)
    wy = (y - y0f).to(image.dtype).reshape(n, 1, -1)
    x0 = x0f.long()
    y0 = y0f.long()
    out = None
    for dy, wy_ in ((0, 1 - wy), (1, wy)):
        yy = y0 + dy
        for dx, wx_ in ((0, 1 - wx), (1, wx)):
            xx = x0 + dx
            idx = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).reshape(n, -1)
            weight = wy_ * wx_
            if padding_mode == "zeros":
                valid = (xx >= 0) & (xx <= w - 1) & (yy >= 0) & (yy <= h - 1)
                weight = weight * valid.reshape(n, 1, -1).to(image.dtype)
            term = _gather(flat, idx) * weight
            out = term if out is None else out + term
    return out.reshape(n, c, h, w), inside
