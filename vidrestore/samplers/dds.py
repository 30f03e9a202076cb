"""Batch-consistent decomposed diffusion sampling over a whole clip: SVI and VISION-XL in one loop.

Kwon & Ye, "Solving Video Inverse Problems Using Image Diffusion Models"
(SVI, ICLR 2025): frames are the batch of an image diffusion model; the Tweedie
estimates of all frames are made data-consistent jointly by conjugate
gradients on one spatio-temporal system (DDS), then re-noised DDIM-style with
noise from an injectable sampler (shared noise = batch-consistent sampling).
VISION-XL (Kwon & Ye, ICCV 2025) runs the same loop on VAE latents; the
`space` (`vidrestore.samplers.spaces`) says where x_t lives and how it meets
the clip in [0, 1].
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from vidrestore.operators import LinearOperator, conjugate_gradient
from vidrestore.priors.base import Denoiser
from vidrestore.samplers.guidance import GuidanceHook
from vidrestore.samplers.noise import NoiseSampler
from vidrestore.samplers.spaces import LatentSpace, PixelSpace

StepCallback = Callable[[int, int], None]  # (step index, timestep)


def dds_sample(
    denoiser: Denoiser,
    space: PixelSpace | LatentSpace,
    operator: LinearOperator,
    y: torch.Tensor,
    timesteps: Sequence[int],
    noise: NoiseSampler,
    *,
    frames: Sequence[int],
    eta: float = 0.15,
    cg_iterations: int = 5,
    gamma: float | Callable[[float], float] = 0.0,
    x_init: torch.Tensor | None = None,
    callback: StepCallback | None = None,
    guidance: GuidanceHook | None = None,
) -> torch.Tensor:
    """Restore the clip x with A x ≈ y. Returns x in [0, 1] after the last CG (unclipped).

    `frames` are the clip's global frame indices (noise is a function of them).
    `x_init` ([0, 1]) is the initial estimate that the space may start from
    (`space.initial`: a partial pixel schedule, a latent inversion / noised start).
    `guidance` (e.g. `EquivarianceGuidance`) maps x̂0 ([0, 1]) to a guided x̂0 at
    every step, before the data-consistency step; None (default) = off.
    `gamma` is DDS's proximal weight, a number or a function of the step's ᾱ_t (a weight that follows
    the measurement noise, `vidrestore.operators.noise.proximal_weight`).
    """
    if len(timesteps) == 0:
        raise ValueError("dds_sample needs at least one timestep")
    frame_shape = tuple(operator.input_shape(tuple(y.shape)))[1:]
    noise_shape = space.noise_shape(frame_shape)
    device, dtype = y.device, y.dtype
    alphas = denoiser.alphas_cumprod
    aty = operator.A_adjoint(y)
    eps_share = (1 - eta ** 2) ** 0.5  # DDIM: the rest of the noise's variance comes from ε̂

    x_t = space.initial(timesteps, noise, frames, x_init, frame_shape, device, dtype)
    for i, t in enumerate(timesteps):
        # Tweedie: ε̂ and x̂0 = E[x0 | x_t] for every frame (frames are the batch), x̂0 as a [0, 1] clip
        eps, x0 = denoiser.tweedie(x_t, t)
        x0 = space.clean(x0, frame_shape)
        if guidance is not None:  # e.g. equivariance self-guidance, on x̂0 before CG
            x0 = guidance(x0, i, t)
        # data consistency (DDS, SVI eq. 10): CG on (AᵀA + γI) x = Aᵀy + γ x̂0 over the whole clip, from x̂0
        g = gamma(float(alphas[t])) if callable(gamma) else gamma  # a weight that follows the noise level
        x = conjugate_gradient(operator.normal, aty + g * x0, x0, cg_iterations, gamma=g)
        if callback is not None:
            callback(i, t)
        if i + 1 == len(timesteps):
            break
        # DDIM re-noising with η (SVI eq. 12): x_t' = √ᾱ_t' x + √(1 − ᾱ_t') (η z + √(1 − η²) ε̂), z fresh noise
        a_next = float(alphas[timesteps[i + 1]])
        z = noise(i, frames, noise_shape, device, dtype)
        x_t = a_next ** 0.5 * space.back(x, t) + (1 - a_next) ** 0.5 * (eta * z + eps_share * eps)
    return x
