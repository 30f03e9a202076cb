"""Private helpers: explicit boundary extension with an exact adjoint, and
strided 1-D / 2-D correlation along one axis of a tensor (with its transpose).

All maps here are linear and their adjoints are computed exactly (no autograd):
boundary extension is a gather (``index_select``) whose adjoint folds the padded
values back onto the pixels they were copied from, using small dense 0/1
matrices for the padded margins (deterministic on every device, unlike
``index_add_`` on CUDA).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

BOUNDARIES = ("reflect", "replicate", "symmetric")


def check_boundary(boundary: str) -> str:
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary must be one of {', '.join(BOUNDARIES)}, got {boundary!r}")
    return boundary


def boundary_index(positions: torch.Tensor, n: int, boundary: str) -> torch.Tensor:
    """Map (possibly out-of-range) integer positions onto ``[0, n)``.

    reflect:   ... 2 1 | 0 1 2 ... n-1 | n-2 ...   (edge not repeated, numpy 'reflect')
    symmetric: ... 1 0 | 0 1 2 ... n-1 | n-1 ...   (edge repeated, MATLAB imresize)
    replicate: ... 0 0 | 0 1 2 ... n-1 | n-1 ...
    Reflections repeat periodically, so any amount of padding is valid.
    """
    p = positions.to(torch.long)
    if boundary == "replicate" or n == 1:
        return p.clamp(0, n - 1)
    if boundary == "reflect":
        period = 2 * (n - 1)
        q = torch.remainder(p, period)
        return torch.where(q < n, q, period - q)
    if boundary == "symmetric":
        period = 2 * n
        q = torch.remainder(p, period)
        return torch.where(q < n, q, period - 1 - q)
    raise ValueError(f"unknown boundary {boundary!r}")


class AxisPad:
    """Extend an axis of length ``n`` to padded positions ``start … start+length-1``.

    ``forward`` gathers; ``adjoint`` is its exact transpose.
    """

    def __init__(self, n: int, start: int, length: int, boundary: str):
        self.n, self.start, self.length = n, start, length
        positions = torch.arange(start, start + length)
        self.index = boundary_index(positions, n, boundary)
        self.trivial = start == 0 and length == n
        # padded positions [a, b) map one-to-one onto [a + start, b + start)
        a = min(max(-start, 0), length)
        b = min(max(n - start, a), length)
        self.core = (a, b)
        self.margins = []  # (padded_from, padded_len, col_lo, matrix (padded_len x cols))
        for lo, hi in ((0, a), (b, length)):
            if hi > lo:
                idx = self.index[lo:hi]
                c0, c1 = int(idx.min()), int(idx.max()) + 1
                m = torch.zeros(hi - lo, c1 - c0, dtype=torch.float64)
                m[torch.arange(hi - lo), idx - c0] = 1.0
                self.margins.append((lo, hi - lo, c0, m))
        self._cache: dict = {}

    def _on(self, x: torch.Tensor):
        key = (x.device, x.dtype)
        hit = self._cache.get(key)
        if hit is None:
            hit = (
                self.index.to(x.device),
                [(lo, ln, c0, m.to(device=x.device, dtype=x.dtype)) for lo, ln, c0, m in self.margins],
            )
            self._cache[key] = hit
        return hit

    def forward(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        if self.trivial:
            return x
        index, _ = self._on(x)
        return x.index_select(dim, index)

    def adjoint(self, g: torch.Tensor, dim: int) -> torch.Tensor:
        if self.trivial:
            return g
        _, margins = self._on(g)
        dim = dim % g.dim()
        shape = list(g.shape)
        shape[dim] = self.n
        out = g.new_zeros(shape)
        a, b = self.core
        if b > a:
            out.narrow(dim, a + self.start, b - a).add_(g.narrow(dim, a, b - a))
        for lo, ln, c0, m in margins:
            with exact_fp32(g):
                part = g.narrow(dim, lo, ln).movedim(dim, -1) @ m
            out.narrow(dim, c0, m.shape[1]).add_(part.movedim(-1, dim))
        return out


@contextlib.contextmanager
def exact_fp32(x: torch.Tensor):
    """Disable TF32 convolutions and matmuls on CUDA float32 so that A and Aᵀ stay
    exact adjoints (restores the caller's settings afterwards)."""
    if not (x.is_cuda and x.dtype == torch.float32):
        yield
        return
    matmul = torch.get_float32_matmul_precision()
    if matmul != "highest":
        torch.set_float32_matmul_precision("highest")
    try:
        with _exact_cudnn():
            yield
    finally:
        if matmul != "highest":
            torch.set_float32_matmul_precision(matmul)


@contextlib.contextmanager
def _exact_cudnn():
    cudnn = torch.backends.cudnn
    conv = getattr(cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9
        old = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = old
        return
    old = cudnn.allow_tf32
    cudnn.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32 = old


def _view(x: torch.Tensor, dim: int):
    """View ``x`` as (B, 1, N, M) with the filtered axis as N (or (B, 1, 1, N) if M == 1)."""
    dim = dim % x.dim()
    shape = x.shape
    b = 1
    for s in shape[:dim]:
        b *= s
    m = 1
    for s in shape[dim + 1:]:
        m *= s
    if m == 1:
        return x.reshape(b, 1, 1, shape[dim]), 3
    return x.reshape(b, 1, shape[dim], m), 2


class Filter1d:
    """Strided correlation along one axis with explicit boundary extension.

    ``out[i] = Σ_t taps[t] · x_ext[i·stride + offset + t]`` for ``i < n // stride``,
    where ``x_ext`` extends ``x`` beyond its ends according to ``boundary``.
    """

    def __init__(self, taps: torch.Tensor, offset: int, stride: int, boundary: str):
        taps = torch.as_tensor(taps, dtype=torch.float64).flatten()
        self.taps = taps
        self.length = taps.numel()
        self.offset = int(offset)
        self.stride = int(stride)
        self.boundary = check_boundary(boundary)
        self._pads: dict[int, AxisPad] = {}
        self._weights: dict = {}

    def out_length(self, n: int) -> int:
        return n // self.stride

    def _pad(self, n: int) -> AxisPad:
        pad = self._pads.get(n)
        if pad is None:
            n_out = self.out_length(n)
            pad = AxisPad(n, self.offset, (n_out - 1) * self.stride + self.length, self.boundary)
            self._pads[n] = pad
        return pad

    def _weight(self, x: torch.Tensor, axis: int) -> torch.Tensor:
        key = (x.device, x.dtype, axis)
        w = self._weights.get(key)
        if w is None:
            w = self.taps.to(device=x.device, dtype=x.dtype)
            w = w.reshape(1, 1, -1, 1) if axis == 2 else w.reshape(1, 1, 1, -1)
            self._weights[key] = w
        return w

    def forward(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        dim = dim % x.dim()
        n = x.shape[dim]
        n_out = self.out_length(n)
        pad = self._pad(n)
        v, axis = _view(x, dim)
        v = pad.forward(v, axis)
        stride = (self.stride, 1) if axis == 2 else (1, self.stride)
        with exact_fp32(v):
            v = F.conv2d(v, self._weight(v, axis), stride=stride)
        shape = list(x.shape)
        shape[dim] = n_out
        return v.reshape(shape)

    def adjoint(self, y: torch.Tensor, dim: int, n: int) -> torch.Tensor:
        """Transpose of ``forward`` for an input axis of length ``n``."""
        dim = dim % y.dim()
        pad = self._pad(n)
        v, axis = _view(y, dim)
        stride = (self.stride, 1) if axis == 2 else (1, self.stride)
        with exact_fp32(v):
            if self.stride == 1:
                # transpose of a stride-1 correlation: full correlation with the flipped
                # taps (much faster on CPU than conv_transpose2d)
                m = self.length - 1
                v = F.pad(v, (0, 0, m, m) if axis == 2 else (m, m, 0, 0))
                v = F.conv2d(v, torch.flip(self._weight(v, axis), dims=(axis,)))
            else:
                v = F.conv_transpose2d(v, self._weight(v, axis), stride=stride)
        assert v.shape[axis] == pad.length
        v = pad.adjoint(v, axis)
        shape = list(y.shape)
        shape[dim] = n
        return v.reshape(shape)


def filter_matrix(taps: torch.Tensor, offset: int, stride: int, n: int, boundary: str) -> torch.Tensor:
    """Dense ``(n // stride) × n`` float64 matrix of :class:`Filter1d` on an axis of length ``n``
    (boundary extension folded in). Used where ``n`` is small, e.g. along the frame axis."""
    taps = torch.as_tensor(taps, dtype=torch.float64).flatten()
    n_out = n // stride
    rows = torch.arange(n_out).repeat_interleave(taps.numel())
    positions = (torch.arange(n_out)[:, None] * stride + offset + torch.arange(taps.numel())[None, :]).flatten()
    cols = boundary_index(positions, n, check_boundary(boundary))
    m = torch.zeros(n_out, n, dtype=torch.float64)
    m.index_put_((rows, cols), taps.repeat(n_out), accumulate=True)
    return m
