"""Noise samplers: where the fresh noise of each diffusion step comes from.

Noise is a pure function of (seed, step, frame index), never of generator
state, so a clip processed in chunks sees exactly the noise it would see in
one piece, and every run with the same seed is reproducible.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import torch

INIT_STEP = -1  # the step index used for the initial x_T


class NoiseSampler(Protocol):
    def __call__(self, step: int, frames: Sequence[int], shape: tuple[int, int, int],
                 device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Standard normal noise of shape (len(frames), *shape)."""
        ...


def _generator(*keys: int) -> torch.Generator:
    seed = 0
    for key in keys:  # a simple, stable mix of the keys into one 63-bit seed
        seed = (seed * 1_000_003 + (key & 0xFFFFFFFF) + 0x9E3779B9) % (2 ** 63 - 1)
    return torch.Generator().manual_seed(seed)


class IndependentNoise:
    """Fresh noise for every frame: image-diffusion sampling applied frame by frame."""

    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, step, frames, shape, device, dtype):
        noise = [torch.randn(shape, generator=_generator(self.seed, step, 1, f)) for f in frames]
        return torch.stack(noise).to(device=device, dtype=dtype)


class SharedNoise:
    """One noise image for every frame: SVI's batch-consistent sampling."""

    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, step, frames, shape, device, dtype):
        noise = torch.randn(shape, generator=_generator(self.seed, step, 2))
        return noise.to(device=device, dtype=dtype).expand(len(frames), *shape).contiguous()


NOISE_SAMPLERS = {"independent": IndependentNoise, "shared": SharedNoise}


def make_noise_sampler(kind: str, seed: int) -> NoiseSampler:
    try:
        return NOISE_SAMPLERS[kind](seed)
    except KeyError:
        raise ValueError(f"unknown noise {kind!r}; choose from {', '.join(NOISE_SAMPLERS)}") from None
