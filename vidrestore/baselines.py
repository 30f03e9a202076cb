"""Classical baselines, run side by side with the diffusion methods.

Every function takes and returns clips ``(F, C, H, W)`` float32 in [0, 1] (outputs are
clipped to [0, 1]) on the input's device; the work is done with numpy / OpenCV on the
CPU (numpy FFTs for deconvolution), flow warps with torch.

* super-resolution: :func:`upscale` (bicubic / Lanczos, OpenCV).
* inpainting: :func:`inpaint_classical` (Telea / Navier-Stokes, OpenCV, per frame).
* deblurring with a known kernel: :func:`wiener_deconvolve`, :func:`richardson_lucy`.
* frame interpolation: :func:`interpolate_blend`, :func:`interpolate_flow_midpoint`.

Kernels are plain 2-D numpy arrays. By default they are applied as a true
convolution (``y = k * x``, the kernel flipped, as ``scipy.signal.convolve2d`` does),
centred at ``(kh // 2, kw // 2)``; pass ``kernel_mode="correlation"`` when the blur was
applied as a correlation (``torch.nn.functional.conv2d`` / ``cv2.filter2D``). For
symmetric kernels (Gaussian, uniform) the two are identical.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

from vidrestore.temporal.flow import consecutive_flows
from vidrestore.temporal.large_motion import fill_unreliable_flow, large_motion, shifted_flows
from vidrestore.temporal.occlusion import occlusion_mask
from vidrestore.temporal.trajectory import accelerations, flows_to_neighbours
from vidrestore.temporal.warp import backward_warp

__all__ = [
    "upscale",
    "inpaint_classical",
    "wiener_deconvolve",
    "richardson_lucy",
    "interpolate_blend",
    "interpolate_flow_midpoint",
    "interpolated_length",
]

_RESIZE = {"bicubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}
_INPAINT = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def _check_clip(clip: Tensor) -> Tensor:
    if not isinstance(clip, Tensor) or clip.dim() != 4:
        raise ValueError(f"expected a clip tensor (F,C,H,W), got {getattr(clip, 'shape', type(clip))}")
    return clip


def _frames_hwc(clip: Tensor) -> np.ndarray:
    """(F,C,H,W) tensor -> (F,H,W,C) float32 numpy (C-contiguous)."""
    return np.ascontiguousarray(clip.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy())


def _to_clip(frames: np.ndarray, like: Tensor) -> Tensor:
    """(F,H,W,C) numpy -> (F,C,H,W) float32 tensor in [0,1] on ``like``'s device."""
    t = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).permute(0, 3, 1, 2)
    return t.clamp_(0.0, 1.0).contiguous().to(like.device)


# ----------------------------------------------------------------------------- super-resolution


def upscale(
    clip: Tensor,
    scale: float,
    method: str = "bicubic",
    *,
    size: tuple[int, int] | None = None,
) -> Tensor:
    """Upscale every frame with OpenCV (``INTER_CUBIC`` or ``INTER_LANCZOS4``), clipped to [0, 1].

    Args:
        clip: ``(F, C, H, W)``.
        scale: factor; the output is ``(round(H*scale), round(W*scale))``.
        method: ``"bicubic"`` or ``"lanczos"``.
        size: optional explicit output ``(H, W)``, overriding ``scale``.
    """
    clip = _check_clip(clip)
    if method not in _RESIZE:
        raise ValueError(f"unknown upscale method {method!r}; choose one of {sorted(_RESIZE)}")
    f, c, h, w = clip.shape
    if size is None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        size = (max(1, int(round(h * scale))), max(1, int(round(w * scale))))
    oh, ow = size
    frames = _frames_hwc(clip)
    out = np.empty((f, oh, ow, c), dtype=np.float32)
    for i in range(f):
        for c0 in range(0, c, 4):  # cv2.resize handles up to 4 channels at once reliably
            r = cv2.resize(frames[i, :, :, c0 : c0 + 4], (ow, oh), interpolation=_RESIZE[method])
            out[i, :, :, c0 : c0 + 4] = r.reshape(oh, ow, -1)
    return _to_clip(out, clip)


# ----------------------------------------------------------------------------- inpainting


def _mask_frames(mask, f: int, h: int, w: int) -> np.ndarray:
    m = torch.as_tensor(mask).detach().to("cpu")
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[:, None]
    if m.dim() != 4 or m.shape[-2:] != (h, w) or m.shape[0] not in (1, f):
        raise ValueError(f"mask of shape {tuple(m.shape)} does not fit a clip of {f} frames of {h}x{w}")
    m = (m.float() > 0.5).any(dim=1).expand(f, h, w)
    return m.numpy()


def inpaint_classical(
    clip: Tensor,
    missing_mask,
    method: str = "telea",
    radius: float = 3,
) -> Tensor:
    """Fill missing pixels frame by frame with OpenCV Telea or Navier-Stokes inpainting.

    Args:
        clip: ``(F, C, H, W)``; values under the mask are ignored.
        missing_mask: ``(F, 1, H, W)`` or ``(1, 1, H, W)`` (also ``(H, W)``), values > 0.5 = missing.
        method: ``"telea"`` or ``"ns"``.
        radius: inpainting neighbourhood radius in pixels.

    Each channel is inpainted as a float32 image on the 0..255 scale (no 8-bit
    quantisation); known pixels are returned unchanged.
    """
    clip = _check_clip(clip)
    if method not in _INPAINT:
        raise ValueError(f"unknown inpainting method {method!r}; choose one of {sorted(_INPAINT)}")
    f, c, h, w = clip.shape
    miss = _mask_frames(missing_mask, f, h, w)
    frames = _frames_hwc(clip)
    out = frames.copy()
    for i in range(f):
        if not miss[i].any():
            continue
        m8 = miss[i].astype(np.uint8) * 255
        for ch in range(c):
            src = np.ascontiguousarray(frames[i, :, :, ch])
            # OpenCV's inpainting is tuned for 0..255 intensities (Telea on float32 data
            # in [0, 1] returns garbage), so work on the 0..255 scale, unquantised.
            filled = cv2.inpaint(src * 255.0, m8, float(radius), _INPAINT[method]) / 255.0
            out[i, :, :, ch] = np.where(miss[i], filled, src)
    return _to_clip(out, clip)


# ----------------------------------------------------------------------------- deconvolution


def _symmetric_extend(x: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Mirror-extend ``(..., H, W)`` to ``(..., 2H, 2W)`` (edge pixels repeated).

    With ``H // 2`` rows mirrored on top and the rest at the bottom (same for columns) the
    extended image is periodic *and continuous* across its wrap-around, so FFT-based
    (circular) filtering behaves like filtering with symmetric boundary conditions and
    no wrap-around discontinuity causes ringing. Returns the offsets of the original.
    """
    h, w = x.shape[-2:]
    top, left = h // 2, w // 2
    pad = [(0, 0)] * (x.ndim - 2) + [(top, h - top), (left, w - left)]
    return np.pad(x, pad, mode="symmetric"), top, left


def _kernel_otf(kernel2d, shape: tuple[int, int], mode: str) -> np.ndarray:
    """rFFT of the kernel zero-padded to ``shape``, centred at (0, 0), as a convolution kernel."""
    k = np.asarray(kernel2d, dtype=np.float64)
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"expected a 2-D kernel, got shape {k.shape}")
    if not np.all(np.isfinite(k)):
        raise ValueError("kernel contains non-finite values")
    kh, kw = k.shape
    if mode == "correlation":
        # correlation with k centred at (kh//2, kw//2) == convolution with the flipped
        # kernel centred at (kh-1-kh//2, kw-1-kw//2)
        k = k[::-1, ::-1]
        cy, cx = kh - 1 - kh // 2, kw - 1 - kw // 2
    elif mode == "convolution":
        cy, cx = kh // 2, kw // 2
    else:
        raise ValueError(f"kernel_mode must be 'convolution' or 'correlation', got {mode!r}")
    H, W = shape
    if kh > H or kw > W:
        raise ValueError(f"kernel {kh}x{kw} is too large for frames of {H // 2}x{W // 2}")
    pad = np.zeros((H, W), dtype=np.float64)
    pad[:kh, :kw] = k
    pad = np.roll(pad, (-cy, -cx), axis=(0, 1))
    return np.fft.rfft2(pad)


def _deconvolve_frames(clip: Tensor, per_frame) -> Tensor:
    """Apply ``per_frame(ext (C, 2H, 2W) float64) -> (C, 2H, 2W)`` to each mirror-extended frame."""
    f, c, h, w = clip.shape
    frames = clip.detach().to("cpu", torch.float64).numpy()
    out = np.empty((f, c, h, w), dtype=np.float32)
    for i in range(f):
        ext, top, left = _symmetric_extend(frames[i])
        rec = per_frame(ext)
        out[i] = np.clip(rec[:, top : top + h, left : left + w], 0.0, 1.0)
    return torch.from_numpy(out).to(clip.device)


def wiener_deconvolve(
    clip: Tensor,
    kernel2d: np.ndarray,
    balance: float = 1e-3,
    *,
    kernel_mode: str = "convolution",
) -> Tensor:
    """Wiener deconvolution with a known blur kernel, frame by frame.

    ``X = conj(K) Y / (|K|² + balance)`` in the Fourier domain, where ``balance`` is the
    noise-to-signal power ratio (``1 / SNR``): larger values suppress noise and ringing,
    smaller values sharpen more. Frames are mirror-extended to twice their size (see
    :func:`_symmetric_extend`) before the FFT and cropped back, which limits boundary
    ringing.
    """
    clip = _check_clip(clip)
    if balance < 0:
        raise ValueError(f"balance must be non-negative, got {balance}")
    _, _, h, w = clip.shape
    size = (2 * h, 2 * w)
    otf = _kernel_otf(kernel2d, size, kernel_mode)
    filt = np.conj(otf) / (np.abs(otf) ** 2 + balance)
    return _deconvolve_frames(clip, lambda ext: np.fft.irfft2(np.fft.rfft2(ext) * filt, s=size))


def richardson_lucy(
    clip: Tensor,
    kernel2d: np.ndarray,
    iterations: int = 30,
    *,
    kernel_mode: str = "convolution",
    eps: float = 1e-7,
) -> Tensor:
    """Richardson-Lucy deconvolution with a known non-negative kernel, frame by frame.

    ``x ← x · Kᵀ(y / (K x)) / Kᵀ1``, initialised with the blurred frames, computed with
    FFTs on the mirror-extended frames (symmetric boundaries, so ``Kᵀ1 = sum(k)``).
    """
    clip = _check_clip(clip)
    k = np.asarray(kernel2d, dtype=np.float64)
    if k.ndim != 2 or np.any(k < 0) or k.sum() <= 0:
        raise ValueError("Richardson-Lucy needs a non-negative 2-D kernel with a positive sum")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    _, _, h, w = clip.shape
    size = (2 * h, 2 * w)
    otf = _kernel_otf(k, size, kernel_mode)
    otf_adj = np.conj(otf)
    ksum = float(k.sum())

    def run(y: np.ndarray) -> np.ndarray:
        y = np.maximum(y, 0.0)
        x = np.maximum(y, eps)
        for _ in range(iterations):
            blurred = np.fft.irfft2(np.fft.rfft2(x) * otf, s=size)
            ratio = y / np.maximum(blurred, eps)
            x = x * np.fft.irfft2(np.fft.rfft2(ratio) * otf_adj, s=size) / ksum
            np.maximum(x, 0.0, out=x)
        return x

    return _deconvolve_frames(clip, run)


# ----------------------------------------------------------------------------- interpolation


def interpolated_length(n_frames: int, factor: int) -> int:
    """Number of frames after interpolation by ``factor``: ``(N − 1)·factor + 1``."""
    return (n_frames - 1) * factor + 1 if n_frames > 0 else 0


def _check_factor(factor: int) -> int:
    if int(factor) != factor or factor < 1:
        raise ValueError(f"interpolation factor must be a positive integer, got {factor}")
    return int(factor)


def interpolate_blend(clip: Tensor, factor: int) -> Tensor:
    """Invent frames by cross-fading neighbours: frame ``i + t`` = ``(1−t)·x_i + t·x_{i+1}``.

    ``N`` frames become ``(N − 1)·factor + 1``; the original frames are kept at
    indices ``i·factor``.
    """
    clip = _check_clip(clip)
    factor = _check_factor(factor)
    n = clip.shape[0]
    if n < 2 or factor == 1:
        return clip.detach().clone().float()
    a, b = clip[:-1].detach().float(), clip[1:].detach().float()
    out = torch.empty((interpolated_length(n, factor),) + tuple(clip.shape[1:]), dtype=torch.float32,
                      device=clip.device)
    for j in range(factor):
        t = j / factor
        out[j : (n - 1) * factor : factor] = (1 - t) * a + t * b
    out[-1] = clip[-1]
    return out


def interpolate_flow_midpoint(clip: Tensor, factor: int, *, preset: str = "medium",
                              sampling: str = "bilinear", agreement: float | None = None,
                              motion: str = "linear", cuts: Sequence[int] = (), fill_above: float = 0.0):
    """Invent frames by bidirectional flow warps of the two neighbours (DIS flow).

    For a pair ``(I0, I1)`` with flows ``F01`` (0→1) and ``F10`` (1→0) and time ``t``,
    linear motion gives the flows from the new frame to its neighbours (Super SloMo)::

        Ft0 = −(1−t)·t·F01 + t²·F10        Ft1 = (1−t)²·F01 − t·(1−t)·F10

    and the new frame is the weighted mean of ``warp(I0, Ft0)`` and ``warp(I1, Ft1)``
    with weights ``(1−t)·V0`` and ``t·V1``. ``V1`` is the forward-backward check of
    ``I0``'s pixel that is sampled (warped along ``Ft0``): where that point is not
    visible in ``I1``, ``I1``'s sample is wrong and gets (almost) no weight; ``V0``
    likewise. Samples that fall outside their frame get no weight; if both do, the
    plain time-weighted mean is used.

    ``motion="quadratic"`` replaces the linear-motion flows by the quadratic
    trajectory through each frame's two neighbours
    (:func:`~vidrestore.temporal.trajectory.flows_to_neighbours`; no acceleration
    is taken across ``cuts``).

    ``sampling`` is how the images are read at the flow's sub-pixel positions
    (``"bilinear"``, the textbook choice, or ``"bicubic"``, which keeps detail
    that bilinear reads blur away: see :func:`backward_warp`).

    ``fill_above`` > 0 (pixels; 0 = off): frame pairs whose dominant shift
    reaches it get their flow measured after that shift
    (:func:`~vidrestore.temporal.large_motion.shifted_flows`), and in pairs whose
    motion reaches it, flows that fail the forward-backward check or leave the
    frame are filled from their reliable neighbours
    (:func:`~vidrestore.temporal.large_motion.fill_unreliable_flow`: the bands
    entering and leaving the frame under a fast pan).

    With ``agreement`` (a tolerance in [0, 1] units), also returns a mask
    ``(F_out, 1, H, W)`` of the pixels the flow determines: 1 on the input
    frames, where both neighbours see the point (in frame, forward-backward
    consistent) and give the same colour within the tolerance, and where only
    one of them sees it.
    """
    if motion not in ("linear", "quadratic"):
        raise ValueError(f"motion must be 'linear' or 'quadratic', got {motion!r}")
    clip = _check_clip(clip)
    factor = _check_factor(factor)
    n = clip.shape[0]
    if n < 2 or factor == 1:
        out = clip.detach().clone().float()
        return out if agreement is None else (out, torch.ones_like(out[:, :1]))
    x = clip.detach().float()
    fwd, bwd = consecutive_flows(x, preset=preset)
    fwd, bwd = fwd.to(x.device), bwd.to(x.device)
    if fill_above > 0:
        fwd, bwd = shifted_flows(x, fwd, bwd, fill_above, preset=preset)
    occ0 = occlusion_mask(fwd, bwd)  # on I0's grid: I0 pixel visible (consistently) in I1
    occ1 = occlusion_mask(bwd, fwd)  # on I1's grid
    if fill_above > 0:
        fast = large_motion(fwd, fill_above) | large_motion(bwd, fill_above)
        fwd, bwd = fill_unreliable_flow(fwd, occ0, fast), fill_unreliable_flow(bwd, occ1, fast)
    i0, i1 = x[:-1], x[1:]
    out = torch.empty((interpolated_length(n, factor),) + tuple(x.shape[1:]), dtype=torch.float32, device=x.device)
    out[0 : (n - 1) * factor : factor] = i0
    out[-1] = x[-1]
    agree = torch.ones_like(out[:, :1])
    floor = 0.02  # keeps a failed check from zeroing both sides
    accel = accelerations(fwd, bwd, cuts=cuts, visible=(occ0, occ1)) if motion == "quadratic" else None
    for j in range(1, factor):
        t = j / factor
        ft0, ft1 = flows_to_neighbours(fwd, bwd, t, accel)
        w0_img, in0 = backward_warp(i0, ft0, mode=sampling)
        w1_img, in1 = backward_warp(i1, ft1, mode=sampling)
        v1, _ = backward_warp(occ0, ft0)
        v0, _ = backward_warp(occ1, ft1)
        w0 = (1 - t) * in0 * (floor + v0)
        w1 = t * in1 * (floor + v1)
        tot = w0 + w1
        blend = (1 - t) * w0_img + t * w1_img
        mixed = (w0 * w0_img + w1 * w1_img) / tot.clamp(min=1e-8)
        out[j : (n - 1) * factor : factor] = torch.where(tot > 1e-8, mixed, blend).clamp(0, 1)
        if agreement is not None:
            # one side alone (the point is out of the other frame or hidden in it) is trusted too
            seen0, seen1 = (in0 * (v0 > 0.5)) > 0, (in1 * (v1 > 0.5)) > 0
            close = (w0_img - w1_img).abs().amax(dim=1, keepdim=True) <= agreement
            agree[j : (n - 1) * factor : factor] = ((seen0 & seen1 & close) | (seen0 ^ seen1)).float()
    return out if agreement is None else (out, agree)
