"""SVI: batch-consistent decomposed diffusion sampling over a whole clip.

Kwon & Ye, "Solving Video Inverse Problems Using Image Diffusion Models"
(ICLR 2025): frames are the batch of an image diffusion model; the Tweedie
estimates of all frames are made data-consistent jointly by conjugate
gradients on one spatio-temporal system (DDS), then re-noised DDIM-style with
noise from an injectable sampler (shared noise = batch-consistent sampling).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from vidrestore.operators import LinearOperator, conjugate_gradient
from vidrestore.priors.base import Denoiser, from_model, to_model
from vidrestore.samplers.guidance import GuidanceHook
from vidrestore.samplers.noise import INIT_STEP, NoiseSampler

StepCallback = Callable[[int, int], None]  # (step index, timestep)


def dds_sample(
    denoiser: Denoiser,
    operator: LinearOperator,
    y: torch.Tensor,
    timesteps: Sequence[int],
    noise: NoiseSampler,
    *,
    frames: Sequence[int],
    eta: float = 0.15,
    cg_iterations: int = 5,
    gamma: float = 0.0,
    x_init: torch.Tensor | None = None,
    clip_denoised: bool = True,
    callback: StepCallback | None = None,
    guidance: GuidanceHook | None = None,
) -> torch.Tensor:
    """Restore the clip x with A x ≈ y. Returns x̂0 of the last step in [0, 1] (unclipped).

    `frames` are the clip's global frame indices (noise is a function of them).
    Without `x_init` sampling starts from pure noise (SVI); with it ([0, 1]),
    from x_init noised to the first timestep (for schedules that start part-way).
    `guidance` (e.g. `EquivarianceGuidance`) maps x̂0 ([0, 1]) to a guided x̂0 at
    every step, before the data-consistency step; None (default) = off.
    """
    shape = tuple(operator.input_shape(tuple(y.shape)))
    device, dtype = y.device, y.dtype
    alphas = denoiser.alphas_cumprod
    frame_shape = shape[1:]
    aty = operator.A_adjoint(y)

    # initial x_T: pure noise, or the noised initial estimate for a partial schedule
    a_start = float(alphas[timesteps[0]])
    x = noise(INIT_STEP, frames, frame_shape, device, dtype)
    if x_init is not None:
        x = a_start ** 0.5 * to_model(x_init) + (1 - a_start) ** 0.5 * x

    x0_unit = x
    for i, t in enumerate(timesteps):
        # Tweedie: ε̂ and x̂0 for every frame (frames are the batch)
        eps, x0 = denoiser.tweedie(x, t)
        if clip_denoised:
            x0 = x0.clamp(-1.0, 1.0)
        # data consistency: CG on (AᵀA + γI) x = Aᵀy + γ x̂0 over the whole clip (SVI eq. 10)
        x0_unit = from_model(x0)
        if guidance is not None:  # e.g. equivariance self-guidance, on x̂0 before CG
            x0_unit = guidance(x0_unit, i, t)
        x0_unit = conjugate_gradient(operator.normal, aty + gamma * x0_unit, x0_unit, cg_iterations, gamma=gamma)
        if callback is not None:
            callback(i, t)
        if i + 1 == len(timesteps):
            break
        # DDIM re-noising with η: fresh noise from the sampler, the rest from ε̂ (SVI eq. 12)
        a_next = float(alphas[timesteps[i + 1]])
        z = noise(i, frames, frame_shape, device, dtype)
        sigma = (1 - a_next) ** 0.5
        x = a_next ** 0.5 * to_model(x0_unit) + sigma * (eta * z + (1 - eta ** 2) ** 0.5 * eps)
    return x0_unit
