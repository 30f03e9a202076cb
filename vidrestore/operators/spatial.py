"""Per-frame spatial degradations: box / bicubic downsampling, blur, per-pixel weights and the inpainting mask."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ._filters import AxisPad, Filter1d, check_boundary, exact_fp32
from .base import LinearOperator, _BufferCache, _check_frames, _shape4


def _check_scale(scale) -> int:
    if isinstance(scale, bool) or int(scale) != scale or int(scale) < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    return int(scale)


def _check_input(op: LinearOperator, x: torch.Tensor) -> None:
    op.output_shape(tuple(x.shape))


def _check_output(op: LinearOperator, y: torch.Tensor) -> None:
    op.input_shape(tuple(y.shape))


class _Downsample(LinearOperator):
    scale: int

    @property
    def normal_scale(self) -> float:
        return 1.0 / (self.scale * self.scale)

    def output_shape(self, input_shape):
        f, c, h, w = _shape4(input_shape, "input shape")
        s = self.scale
        if h % s or w % s:
            raise ValueError(f"{self.name}: height and width must be multiples of {s}, got {h}x{w}")
        return (f, c, h // s, w // s)

    def input_shape(self, output_shape):
        f, c, h, w = _shape4(output_shape, "output shape")
        return (f, c, h * self.scale, w * self.scale)

    def initial_estimate(self, y):
        """Bicubic upsampling (not clamped)."""
        _check_output(self, y)
        if self.scale == 1:
            return y.clone()
        return F.interpolate(y, scale_factor=self.scale, mode="bicubic", align_corners=False)


class BoxDownsample(_Downsample):
    """Area average over non-overlapping ``scale × scale`` blocks.

    ``Aᵀ y`` replicates each value over its block and divides by ``scale²``.
    """

    def __init__(self, scale: int):
        self.scale = _check_scale(scale)
        self.name = f"box_downsample(x{self.scale})"

    def A(self, x):
        _check_input(self, x)
        if self.scale == 1:
            return x.clone()
        return F.avg_pool2d(x, self.scale)

    def A_adjoint(self, y):
        _check_output(self, y)
        s = self.scale
        if s == 1:
            return y.clone()
        f, c, h, w = y.shape
        up = y.reshape(f, c, h, 1, w, 1).expand(f, c, h, s, w, s).reshape(f, c, h * s, w * s)
        return up / (s * s)

    def normal(self, x):
        return self.A_adjoint(self.A(x))


def cubic(x: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    """Keys' cubic convolution kernel (a = -0.5 as in MATLAB imresize)."""
    ax = x.abs()
    ax2, ax3 = ax * ax, ax * ax * ax
    inner = (a + 2) * ax3 - (a + 3) * ax2 + 1
    outer = a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a
    return torch.where(ax <= 1, inner, torch.where(ax < 2, outer, torch.zeros_like(ax)))


def bicubic_taps(scale: int) -> tuple[torch.Tensor, int]:
    """Normalised antialiased bicubic taps for integer downscaling and the offset of tap 0.

    Output pixel ``i`` is centred at input coordinate ``u = (i + 0.5)·s − 0.5``;
    input pixel ``j`` gets weight ``cubic((u − j) / s)`` (support ``4s``), normalised.
    """
    s = scale
    centre = 0.5 * s - 0.5
    lo = math.ceil(centre - 2 * s)
    hi = math.floor(centre + 2 * s)
    j = torch.arange(lo, hi + 1, dtype=torch.float64)
    w = cubic((centre - j) / s)
    nz = torch.nonzero(w.abs() > 1e-15).flatten()
    first, last = int(nz[0]), int(nz[-1])
    w = w[first:last + 1]
    return w / w.sum(), lo + first


class BicubicDownsample(_Downsample):
    """Antialiased bicubic downsampling by an integer factor, as MATLAB ``imresize``.

    Separable cubic kernel (a = −0.5) stretched by ``scale`` (support ``4·scale``),
    stride ``scale``. Boundary: ``'symmetric'`` (default; MATLAB's edge-repeating
    mirror), ``'reflect'`` or ``'replicate'``. The adjoint is exact.
    """

    def __init__(self, scale: int, boundary: str = "symmetric"):
        self.scale = _check_scale(scale)
        self.boundary = check_boundary(boundary)
        taps, offset = bicubic_taps(self.scale)
        self.taps = taps
        self._filter = Filter1d(taps, offset, self.scale, self.boundary)
        self.name = f"bicubic_downsample(x{self.scale}, {self.boundary})"

    def A(self, x):
        _check_input(self, x)
        x = self._filter.forward(x, 2)
        return self._filter.forward(x, 3)

    def A_adjoint(self, y):
        _check_output(self, y)
        h, w = y.shape[2] * self.scale, y.shape[3] * self.scale
        y = self._filter.adjoint(y, 3, w)
        return self._filter.adjoint(y, 2, h)


class Blur(LinearOperator):
    """Same-size 2-D convolution ``y = k * x`` of every frame and channel.

    True convolution (not correlation); the kernel's centre is at index
    ``(kh // 2, kw // 2)``. Boundary ``'reflect'`` (default), ``'replicate'`` or
    ``'symmetric'``. Rank-1 (separable) kernels such as Gaussian and uniform ones
    are applied as two 1-D passes. The kernel is used as given (the kernel
    factories normalise it to sum 1).
    """

    def __init__(self, kernel, boundary: str = "reflect", name: str | None = None):
        k = torch.as_tensor(np.asarray(kernel) if not torch.is_tensor(kernel) else kernel)
        k = k.detach().to(device="cpu", dtype=torch.float64)
        if k.dim() != 2 or k.numel() == 0:
            raise ValueError(f"blur kernel must be a non-empty 2-D array, got shape {tuple(k.shape)}")
        if not torch.isfinite(k).all():
            raise ValueError("blur kernel contains NaN or infinite values")
        self.kernel = k
        self.boundary = check_boundary(boundary)
        kh, kw = k.shape
        self.offset = (-(kh - 1 - kh // 2), -(kw - 1 - kw // 2))
        flipped = torch.flip(k, dims=(0, 1))
        self.separable = False
        u, sv, vh = torch.linalg.svd(flipped)
        if sv.numel() == 1 or sv[1] <= 1e-12 * sv[0]:
            col = u[:, 0] * sv[0].sqrt()
            row = vh[0, :] * sv[0].sqrt()
            if col.sum() < 0:
                col, row = -col, -row
            self.separable = True
            self._fh = Filter1d(col, self.offset[0], 1, self.boundary)
            self._fw = Filter1d(row, self.offset[1], 1, self.boundary)
        else:
            self._weight = _BufferCache(flipped.reshape(1, 1, kh, kw))
            self._kernel = _BufferCache(k.reshape(1, 1, kh, kw).clone())
            self._pads: dict[tuple[int, int], tuple[AxisPad, AxisPad]] = {}
        self.name = name or f"blur({kh}x{kw}, {self.boundary})"

    def output_shape(self, input_shape):
        return _shape4(input_shape, "input shape")

    def input_shape(self, output_shape):
        return _shape4(output_shape, "output shape")

    def _axis_pads(self, h: int, w: int):
        pads = self._pads.get((h, w))
        if pads is None:
            kh, kw = self.kernel.shape
            pads = (
                AxisPad(h, self.offset[0], h + kh - 1, self.boundary),
                AxisPad(w, self.offset[1], w + kw - 1, self.boundary),
            )
            self._pads[(h, w)] = pads
        return pads

    def A(self, x):
        _check_input(self, x)
        if self.separable:
            return self._fw.forward(self._fh.forward(x, 2), 3)
        f, c, h, w = x.shape
        ph, pw = self._axis_pads(h, w)
        v = pw.forward(ph.forward(x.reshape(f * c, 1, h, w), 2), 3)
        with exact_fp32(v):
            v = F.conv2d(v, self._weight.like(v))
        return v.reshape(f, c, h, w)

    def A_adjoint(self, y):
        _check_output(self, y)
        f, c, h, w = y.shape
        if self.separable:
            return self._fh.adjoint(self._fw.adjoint(y, 3, w), 2, h)
        ph, pw = self._axis_pads(h, w)
        kh, kw = self.kernel.shape
        v = F.pad(y.reshape(f * c, 1, h, w), (kw - 1, kw - 1, kh - 1, kh - 1))
        with exact_fp32(v):
            # transpose of the correlation with the flipped kernel: full correlation with the kernel
            v = F.conv2d(v, self._kernel.like(v))
        v = ph.adjoint(pw.adjoint(v, 3), 2)
        return v.reshape(f, c, h, w)

    def initial_estimate(self, y):
        _check_output(self, y)
        return y.clone()


class Diagonal(LinearOperator):
    """Per-pixel weights: ``A x = weights · x`` (same shape). Self-adjoint.

    ``weights`` has shape ``(F or 1, 1 or C, H, W)``, finite and non-negative (F = 1: the same
    weights for every frame). With ``weights = √n``, ``‖A x − √n ȳ‖²`` is the data term of ``n``
    independent unit-noise measurements of each pixel whose mean is ``ȳ`` (denoise's temporal
    fusion); ``normal_scale`` stays 1 because each of them measures one pixel.
    """

    def __init__(self, weights, name: str | None = None):
        w = weights if torch.is_tensor(weights) else torch.as_tensor(np.asarray(weights))
        w = w.detach()
        if w.dim() != 4:
            raise ValueError(f"weights must have shape (F or 1, 1 or C, H, W), got {tuple(w.shape)}")
        if w.dtype == torch.bool or not w.is_floating_point():
            w = w.to(torch.float32)
        self._check_values(w)
        self.weights = w
        self._buf = _BufferCache(w)
        self.name = name or self._describe()

    @staticmethod
    def _check_values(w: torch.Tensor) -> None:
        if w.numel() and (not torch.isfinite(w).all() or w.min() < 0):
            raise ValueError("weights must be finite and non-negative")

    def _describe(self) -> str:
        w = self.weights
        return f"diagonal({'per-frame' if w.shape[0] > 1 else 'static'}, mean {float(w.mean()):.3g})"

    @property
    def frames(self) -> int:
        """Number of frames the weights have (1 for static weights)."""
        return self.weights.shape[0]

    def output_shape(self, input_shape):
        f, c, h, w = _shape4(input_shape, "input shape")
        kf, kc, kh, kw = self.weights.shape
        if (kh, kw) != (h, w):
            raise ValueError(f"{self.name}: weights are {kh}x{kw} but the clip is {h}x{w}")
        if kf not in (1, f):
            raise ValueError(f"{self.name}: weights have {kf} frames but the clip has {f}")
        if kc not in (1, c):
            raise ValueError(f"{self.name}: weights have {kc} channels but the clip has {c}")
        return (f, c, h, w)

    def input_shape(self, output_shape):
        return self.output_shape(output_shape)

    def A(self, x):
        _check_input(self, x)
        return self._buf.like(x) * x

    A_adjoint = A

    def normal(self, x):
        _check_input(self, x)
        k = self._buf.like(x)
        return (k * k) * x

    def initial_estimate(self, y):
        """``y / weights`` where a weight is positive, 0 elsewhere."""
        _check_output(self, y)
        k = self._buf.like(y).expand_as(y)
        return torch.where(k > 0, y / k.clamp_min(torch.finfo(y.dtype).tiny), torch.zeros_like(y))

    def restrict_frames(self, start, stop):
        if self.frames == 1:
            return super().restrict_frames(start, stop)
        _check_frames(start, stop, self.frames)
        return type(self)(self.weights[start:stop])


class Mask(Diagonal):
    """Inpainting mask: ``A x = known · x`` (same shape; missing pixels become 0).

    ``known`` has shape ``(F or 1, 1 or C, H, W)`` with 1 = observed pixel and
    0 = missing (values in [0, 1]; a static mask, F = 1, applies to every frame).
    Self-adjoint.
    """

    @staticmethod
    def _check_values(w: torch.Tensor) -> None:
        if w.numel() and (not torch.isfinite(w).all() or w.min() < 0 or w.max() > 1):
            raise ValueError("mask values must lie in [0, 1] (1 = observed, 0 = missing)")

    def _describe(self) -> str:
        k = self.weights
        return f"mask({'per-frame' if k.shape[0] > 1 else 'static'}, {float(k.mean()):.0%} observed)"

    @property
    def known(self) -> torch.Tensor:
        """1 = observed pixel, 0 = missing."""
        return self.weights

    def initial_estimate(self, y):
        """``y`` on observed pixels; holes filled with the frame's mean observed colour."""
        _check_output(self, y)
        k = self._buf.like(y).expand_as(y)
        total = k.sum(dim=(2, 3), keepdim=True)
        mean = (k * y).sum(dim=(2, 3), keepdim=True) / total.clamp_min(torch.finfo(y.dtype).tiny)
        mean = torch.where(total > 0, mean, torch.zeros_like(mean))
        return y + (1 - k) * mean
