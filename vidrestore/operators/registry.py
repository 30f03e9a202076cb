"""Example instances of every operator, boundary mode and a few compositions.

``OPERATORS[name]()`` returns ``(operator, input_shape)``; the tests run the
adjointness, shape and linearity checks over all of them. Shapes are small so
that the whole registry is checked in seconds on a CPU.
"""

from __future__ import annotations

from typing import Callable

import torch

from .base import Compose, Identity, LinearOperator
from .kernels import gaussian_kernel, motion_kernel, temporal_kernel, uniform_kernel
from .spatial import BicubicDownsample, Blur, BoxDownsample, Diagonal, Mask
from .temporal import TemporalBlur, TemporalSubsample

Factory = Callable[[], tuple[LinearOperator, tuple]]


def _random_mask(shape, seed: int, fraction: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) > fraction).to(torch.float64)


def _asymmetric_kernel() -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    k = torch.rand(4, 5, generator=g, dtype=torch.float64)
    return k / k.sum()


OPERATORS: dict[str, Factory] = {
    "identity": lambda: (Identity(), (2, 3, 8, 8)),
    # spatial downsampling
    "box_x2": lambda: (BoxDownsample(2), (2, 3, 8, 12)),
    "box_x3": lambda: (BoxDownsample(3), (2, 3, 9, 12)),
    "box_x4": lambda: (BoxDownsample(4), (2, 1, 16, 8)),
    "box_x8": lambda: (BoxDownsample(8), (1, 3, 16, 24)),
    "bicubic_x2_symmetric": lambda: (BicubicDownsample(2), (2, 3, 12, 10)),
    "bicubic_x3_reflect": lambda: (BicubicDownsample(3, "reflect"), (2, 2, 12, 9)),
    "bicubic_x4_replicate": lambda: (BicubicDownsample(4, "replicate"), (1, 3, 16, 20)),
    "bicubic_x8_symmetric": lambda: (BicubicDownsample(8), (1, 2, 16, 24)),
    "bicubic_x8_reflect_tiny": lambda: (BicubicDownsample(8, "reflect"), (1, 1, 8, 16)),
    # spatial blur
    "blur_gaussian_reflect": lambda: (Blur(gaussian_kernel(1.5), "reflect"), (2, 3, 12, 10)),
    "blur_gaussian_replicate": lambda: (Blur(gaussian_kernel(1.0), "replicate"), (2, 3, 10, 9)),
    "blur_uniform_symmetric": lambda: (Blur(uniform_kernel(4), "symmetric"), (2, 2, 9, 11)),
    "blur_motion_reflect": lambda: (Blur(motion_kernel(7, 30), "reflect"), (2, 3, 12, 12)),
    "blur_motion_replicate": lambda: (Blur(motion_kernel(5.5, 110), "replicate"), (1, 3, 10, 13)),
    "blur_asymmetric_reflect": lambda: (Blur(_asymmetric_kernel(), "reflect"), (2, 2, 9, 10)),
    "blur_large_kernel_small_image": lambda: (Blur(gaussian_kernel(3.0), "reflect"), (1, 1, 6, 7)),
    # masks
    "mask_static": lambda: (Mask(_random_mask((1, 1, 8, 10), 1)), (3, 3, 8, 10)),
    "mask_per_frame": lambda: (Mask(_random_mask((4, 1, 8, 8), 2)), (4, 3, 8, 8)),
    "mask_per_channel": lambda: (Mask(_random_mask((1, 3, 6, 8), 3)), (2, 3, 6, 8)),
    # per-pixel weights (any non-negative values, e.g. √ of a measurement count)
    "diagonal_per_frame": lambda: (Diagonal(1 + 3 * torch.rand((3, 1, 8, 8), generator=torch.Generator().manual_seed(8),
                                                                  dtype=torch.float64)), (3, 3, 8, 8)),
    "diagonal_static_per_channel": lambda: (Diagonal(2.5 * _random_mask((1, 3, 6, 8), 9)), (2, 3, 6, 8)),
    # temporal
    "temporal_uniform3_reflect": lambda: (TemporalBlur(temporal_kernel("uniform:3"), "reflect"), (6, 2, 4, 5)),
    "temporal_uniform4_replicate": lambda: (TemporalBlur(temporal_kernel("uniform:4"), "replicate"), (7, 1, 4, 4)),
    "temporal_gaussian_symmetric": lambda: (TemporalBlur(temporal_kernel("gaussian:1.0"), "symmetric"), (5, 3, 3, 4)),
    "temporal_uniform7_reflect_short": lambda: (TemporalBlur(temporal_kernel("uniform:7"), "reflect"), (3, 1, 3, 3)),
    "temporal_subsample_x2": lambda: (TemporalSubsample(2), (7, 3, 4, 4)),
    "temporal_subsample_x4": lambda: (TemporalSubsample(4), (9, 2, 3, 5)),
    # compositions
    "temporal_blur_o_box": lambda: (
        Compose(TemporalBlur(temporal_kernel("uniform:3")), BoxDownsample(2)), (5, 3, 8, 8)),
    "temporal_blur_o_bicubic": lambda: (
        Compose(TemporalBlur(temporal_kernel("gaussian:0.8"), "replicate"), BicubicDownsample(4)), (4, 3, 16, 16)),
    "temporal_blur_o_blur": lambda: (
        Compose(TemporalBlur(temporal_kernel("uniform:5")), Blur(gaussian_kernel(1.0))), (6, 3, 8, 9)),
    "temporal_blur_o_mask": lambda: (
        Compose(TemporalBlur(temporal_kernel("uniform:3")), Mask(_random_mask((1, 1, 8, 8), 4))), (5, 3, 8, 8)),
    "temporal_blur_o_mask_per_frame": lambda: (
        Compose(TemporalBlur(temporal_kernel("uniform:3"), "replicate"), Mask(_random_mask((5, 3, 6, 6), 5))),
        (5, 3, 6, 6)),
    "mask_o_blur": lambda: (Compose(Mask(_random_mask((3, 1, 8, 8), 6)), Blur(motion_kernel(4, 45))), (3, 3, 8, 8)),
    "box_o_blur": lambda: (BoxDownsample(2) @ Blur(gaussian_kernel(0.8)), (2, 3, 8, 8)),
    "subsample_o_box": lambda: (Compose(TemporalSubsample(2), BoxDownsample(2)), (5, 3, 8, 8)),
    "temporal_blur_o_subsample": lambda: (
        Compose(TemporalBlur(temporal_kernel("uniform:3")), TemporalSubsample(2)), (9, 2, 4, 4)),
    "subsample_o_temporal_blur": lambda: (
        Compose(TemporalSubsample(3), TemporalBlur(temporal_kernel("uniform:3"))), (7, 2, 4, 4)),
    "temporal_blur_o_blur_o_box": lambda: (
        Compose(TemporalBlur(temporal_kernel("uniform:3")), Blur(uniform_kernel(3)), BoxDownsample(2)),
        (4, 3, 8, 8)),
}
