"""Linear degradation operators: the abstract interface, composition and identity.

A clip is a tensor ``(F, C, H, W)`` (frames on the batch axis, values in [0, 1]).
Every operator is a linear map ``A`` with an exact adjoint ``A_adjoint``; both
work for float32 and float64 on any device (constant buffers such as kernels and
masks are cast to the input's device and dtype on use, and cached).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

Shape = tuple[int, ...]


def _shape4(shape, what: str = "shape") -> Shape:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 4:
        raise ValueError(f"expected a clip {what} (F, C, H, W), got {shape}")
    if any(s <= 0 for s in shape):
        raise ValueError(f"{what} must be positive in every dimension, got {shape}")
    return shape


def _check_frames(start: int, stop: int, total: int | None = None) -> None:
    if not (0 <= start < stop) or (total is not None and stop > total):
        limit = f" (clip has {total} frames)" if total is not None else ""
        raise ValueError(f"invalid frame range [{start}, {stop}){limit}")


class _BufferCache:
    """One constant tensor, cast (and cached) per (device, dtype) on demand."""

    def __init__(self, tensor: torch.Tensor):
        self.tensor = tensor
        self._cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def like(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.dtype)
        t = self._cache.get(key)
        if t is None:
            t = self.tensor.to(device=x.device, dtype=x.dtype)
            self._cache[key] = t
        return t


class LinearOperator(ABC):
    """A linear map ``A`` from clips of shape ``input_shape`` to measurements.

    Subclasses implement ``A``, ``A_adjoint``, ``output_shape`` and
    ``input_shape``; the rest has sensible defaults.
    """

    #: human-readable description, e.g. ``"box_downsample(x4)"``
    name: str = "operator"
    #: how many neighbouring input frames on each side one output frame depends on
    temporal_radius: int = 0
    #: input frames per output frame (k for TemporalSubsample(k), else 1)
    temporal_stride: int = 1
    #: the gain of AᵀA per measurement on a constant clip away from the boundary (s× averaging: 1/s²;
    #: identity, masks, per-pixel weights, normalised blurs: 1): data-consistency weights that follow σ_y
    #: scale with it
    normal_scale: float = 1.0

    @abstractmethod
    def A(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the degradation."""

    @abstractmethod
    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Apply the exact adjoint (transpose) of ``A``."""

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``Aᵀ A x``."""
        return self.A_adjoint(self.A(x))

    @abstractmethod
    def output_shape(self, input_shape: Shape) -> Shape:
        """Shape of ``A(x)`` for ``x`` of shape ``input_shape``; raises ValueError if invalid."""

    @abstractmethod
    def input_shape(self, output_shape: Shape) -> Shape:
        """Shape of ``x`` such that ``A(x)`` has ``output_shape``."""

    def initial_estimate(self, y: torch.Tensor) -> torch.Tensor:
        """A cheap, sensible approximate inverse (used to initialise solvers)."""
        return self.A_adjoint(y)

    def restrict_frames(self, start: int, stop: int) -> "LinearOperator":
        """The operator acting on the chunk ``x[start:stop]`` of the input clip.

        Operators without per-frame data return themselves; temporal operators
        then apply their boundary handling at the chunk edges (the caller adds
        ``temporal_radius`` frames of overlap and discards them).
        """
        _check_frames(start, stop)
        return self

    def output_frames(self, start: int, stop: int) -> tuple[int, int]:
        """Measurement frames ``[a, b)`` that belong to input frames ``[start, stop)``."""
        _check_frames(start, stop)
        return start, stop

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def __matmul__(self, other: "LinearOperator") -> "Compose":
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return Compose(self, other)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class Identity(LinearOperator):
    """``A x = x`` (returns its input unchanged, not a copy)."""

    name = "identity"

    def A(self, x):
        return x

    def A_adjoint(self, y):
        return y

    def normal(self, x):
        return x

    def output_shape(self, input_shape):
        return _shape4(input_shape, "input shape")

    def input_shape(self, output_shape):
        return _shape4(output_shape, "output shape")

    def initial_estimate(self, y):
        return y


class Compose(LinearOperator):
    """``Compose(outer, inner)`` is ``A = outer ∘ inner``; ``Compose(a, b, c) = a ∘ b ∘ c``.

    Nested compositions are flattened; the adjoint applies the adjoints in
    reverse order (``Aᵀ = innerᵀ ∘ outerᵀ``).
    """

    def __init__(self, *ops: LinearOperator):
        flat: list[LinearOperator] = []
        for op in ops:
            if isinstance(op, Compose):
                flat.extend(op.ops)
            elif isinstance(op, LinearOperator):
                flat.append(op)
            else:
                raise TypeError(f"Compose expects LinearOperators, got {type(op).__name__}")
        if not flat:
            raise ValueError("Compose needs at least one operator")
        self.ops: tuple[LinearOperator, ...] = tuple(flat)  # outermost first
        self.name = " ∘ ".join(op.name for op in self.ops)
        # radius/stride in input frames: walk from the outermost operator inwards
        radius = 0
        stride = 1
        for op in self.ops:
            radius = radius * op.temporal_stride + op.temporal_radius
            stride *= op.temporal_stride
        self.temporal_radius = radius
        self.temporal_stride = stride
        self.normal_scale = math.prod(op.normal_scale for op in self.ops)

    def A(self, x):
        for op in reversed(self.ops):
            x = op.A(x)
        return x

    def A_adjoint(self, y):
        for op in self.ops:
            y = op.A_adjoint(y)
        return y

    def output_shape(self, input_shape):
        shape = input_shape
        for op in reversed(self.ops):
            shape = op.output_shape(shape)
        return shape

    def input_shape(self, output_shape):
        shape = output_shape
        for op in self.ops:
            shape = op.input_shape(shape)
        return shape

    def initial_estimate(self, y):
        for op in self.ops:
            y = op.initial_estimate(y)
        return y

    def restrict_frames(self, start, stop):
        _check_frames(start, stop)
        restricted = []
        for op in reversed(self.ops):  # innermost first: it sees the input frames
            restricted.append(op.restrict_frames(start, stop))
            start, stop = op.output_frames(start, stop)
        return Compose(*reversed(restricted))

    def output_frames(self, start, stop):
        _check_frames(start, stop)
        for op in reversed(self.ops):
            start, stop = op.output_frames(start, stop)
        return start, stop
