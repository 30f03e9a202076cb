"""Temporal degradations along the frame axis: frame averaging and frame subsampling."""

from __future__ import annotations

import numpy as np
import torch

from ._filters import check_boundary, exact_fp32, filter_matrix
from .base import LinearOperator, _BufferCache, _check_frames, _shape4


class TemporalBlur(LinearOperator):
    """Frame averaging: ``y[f] = Σ_t k[t] · x[f − t + r]`` (true 1-D convolution along F).

    ``kernel1d`` is a 1-D array of odd length ``2r + 1`` (see
    :func:`~vidrestore.operators.kernels.temporal_kernel`) or a spec string such
    as ``"uniform:5"``. Same number of frames out as in; the clip is extended
    beyond its first and last frame by ``'reflect'`` (default), ``'replicate'``
    or ``'symmetric'`` -- never circularly. ``temporal_radius`` is ``r``.
    """

    def __init__(self, kernel1d, boundary: str = "reflect", name: str | None = None):
        spec = None
        if isinstance(kernel1d, str):
            from .kernels import temporal_kernel

            spec = kernel1d
            kernel1d = temporal_kernel(kernel1d)
        k = kernel1d if torch.is_tensor(kernel1d) else torch.as_tensor(np.asarray(kernel1d))
        k = k.detach().to(device="cpu", dtype=torch.float64)
        if k.dim() != 1 or k.numel() % 2 == 0:
            raise ValueError(f"temporal kernel must be 1-D with an odd length, got shape {tuple(k.shape)}")
        if not torch.isfinite(k).all():
            raise ValueError("temporal kernel contains NaN or infinite values")
        self.kernel = k
        self.boundary = check_boundary(boundary)
        self.temporal_radius = k.numel() // 2
        self._taps = torch.flip(k, dims=(0,))  # correlation taps of the convolution
        self._matrices: dict[int, _BufferCache] = {}
        self.name = name or f"temporal_blur({spec or f'{k.numel()} taps'}, {self.boundary})"

    def output_shape(self, input_shape):
        return _shape4(input_shape, "input shape")

    def input_shape(self, output_shape):
        return _shape4(output_shape, "output shape")

    def matrix(self, frames: int) -> torch.Tensor:
        """The ``frames × frames`` float64 matrix of the operator (boundary folded in)."""
        return self._matrix(frames).tensor

    def _matrix(self, frames: int) -> _BufferCache:
        m = self._matrices.get(frames)
        if m is None:
            m = _BufferCache(filter_matrix(self._taps, -self.temporal_radius, 1, frames, self.boundary))
            self._matrices[frames] = m
        return m

    def _apply(self, m: _BufferCache, v: torch.Tensor, transpose: bool) -> torch.Tensor:
        mat = m.like(v)
        if transpose:
            mat = mat.T
        with exact_fp32(v):
            return (mat @ v.reshape(v.shape[0], -1)).reshape(v.shape)

    def A(self, x):
        _shape4(x.shape, "input shape")
        return self._apply(self._matrix(x.shape[0]), x, transpose=False)

    def A_adjoint(self, y):
        _shape4(y.shape, "output shape")
        return self._apply(self._matrix(y.shape[0]), y, transpose=True)

    def initial_estimate(self, y):
        return y.clone()


class TemporalSubsample(LinearOperator):
    """Keep frames ``0, k, 2k, …``: ``(N − 1)·k + 1`` input frames give ``N`` measurements.

    Frame interpolation is the inverse problem. ``Aᵀ`` puts each measurement
    back at its frame and zeros elsewhere. ``restrict_frames`` needs chunk
    boundaries on kept frames (``start`` and ``stop − 1`` multiples of ``k``).
    """

    def __init__(self, factor: int):
        if isinstance(factor, bool) or int(factor) != factor or int(factor) < 1:
            raise ValueError(f"subsampling factor must be a positive integer, got {factor!r}")
        self.factor = int(factor)
        self.temporal_stride = self.factor
        self.name = f"temporal_subsample(x{self.factor})"

    def output_shape(self, input_shape):
        f, c, h, w = _shape4(input_shape, "input shape")
        if (f - 1) % self.factor:
            raise ValueError(
                f"{self.name}: the clip must have (N-1)*{self.factor}+1 frames, got {f}"
            )
        return ((f - 1) // self.factor + 1, c, h, w)

    def input_shape(self, output_shape):
        n, c, h, w = _shape4(output_shape, "output shape")
        return ((n - 1) * self.factor + 1, c, h, w)

    def A(self, x):
        self.output_shape(tuple(x.shape))
        return x[:: self.factor].clone()

    def A_adjoint(self, y):
        shape = self.input_shape(tuple(y.shape))
        x = y.new_zeros(shape)
        x[:: self.factor] = y
        return x

    def normal(self, x):
        self.output_shape(tuple(x.shape))
        out = torch.zeros_like(x)
        out[:: self.factor] = x[:: self.factor]
        return out

    def initial_estimate(self, y):
        """Linear interpolation (frame blending) between consecutive kept frames."""
        shape = self.input_shape(tuple(y.shape))
        k = self.factor
        if k == 1:
            return y.clone()
        n = y.shape[0]
        x = y.new_empty(shape)
        x[::k] = y
        if n > 1:
            a, b = y[:-1], y[1:]
            for m in range(1, k):
                t = m / k
                x[m::k] = (1 - t) * a + t * b
        return x

    def restrict_frames(self, start, stop):
        _check_frames(start, stop)
        if start % self.factor or (stop - 1) % self.factor:
            raise ValueError(
                f"{self.name}: chunk [{start}, {stop}) must start and end on kept frames "
                f"(start and stop-1 multiples of {self.factor})"
            )
        return self

    def output_frames(self, start, stop):
        self.restrict_frames(start, stop)
        return start // self.factor, (stop - 1) // self.factor + 1
