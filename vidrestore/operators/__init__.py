"""Linear degradation operators with exact adjoints, kernels, and conjugate gradients.

A clip is a tensor ``(F, C, H, W)`` with values in [0, 1]; every operator has
``A``, ``A_adjoint``, ``normal``, shape maps, ``temporal_radius``,
``initial_estimate`` and ``restrict_frames`` (see :class:`LinearOperator`).
"""

from .base import Compose, Identity, LinearOperator
from .cg import conjugate_gradient, solve_normal_equations
from .kernels import (
    gaussian_kernel,
    load_kernel,
    motion_kernel,
    parse_kernel_spec,
    temporal_kernel,
    uniform_kernel,
)
from .registry import OPERATORS
from .spatial import BicubicDownsample, Blur, BoxDownsample, Diagonal, Mask
from .temporal import TemporalBlur, TemporalSubsample

__all__ = [
    "LinearOperator",
    "Compose",
    "Identity",
    "BoxDownsample",
    "BicubicDownsample",
    "Blur",
    "Diagonal",
    "Mask",
    "TemporalBlur",
    "TemporalSubsample",
    "gaussian_kernel",
    "uniform_kernel",
    "motion_kernel",
    "load_kernel",
    "parse_kernel_spec",
    "temporal_kernel",
    "conjugate_gradient",
    "solve_normal_equations",
    "OPERATORS",
]
