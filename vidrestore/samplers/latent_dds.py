"""VISION-XL: the SVI sampler for latent diffusion models (SD / SDXL).

Kwon & Ye, "VISION-XL: High Definition Video Inverse Problem Solver using
Latent Diffusion Models" (ICCV 2025): every frame's latent is denoised on its
own (a pseudo-batch that goes through the UNet in micro-batches), the Tweedie
estimates are decoded and made data-consistent jointly by conjugate gradients
in pixel space, low-pass filtered with a σ that shrinks with the noise level,
re-encoded and re-noised DDIM-style with batch-consistent noise. Sampling
starts from a batch-consistent inversion of the measurements.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from vidrestore.operators import Blur, LinearOperator, conjugate_gradient, gaussian_kernel
from vidrestore.priors.latent import LatentDenoiser
from vidrestore.samplers.guidance import GuidanceHook
from vidrestore.samplers.noise import INIT_STEP, NoiseSampler
from vidrestore.samplers.schedules import ddim_timesteps

StepCallback = Callable[[int, int], None]  # (step index, timestep)
INITS = ("inversion", "noised", "noise")


def gaussian_lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of every frame (σ in pixels, reflect boundary); σ ≈ 0 returns x."""
    if sigma < 1e-3:
        return x
    return Blur(gaussian_kernel(sigma)).A(x)


def lowpass_sigma(lpf_scale: float, alpha_bar: float) -> float:
    """VISION-XL's scheduled low-pass: σ = √(lpf_scale · (1 − ᾱ_t)), σ → 0 as t → 0."""
    return math.sqrt(max(lpf_scale, 0.0) * (1.0 - alpha_bar))


def ddim_invert(denoiser: LatentDenoiser, z0: torch.Tensor, timesteps: Sequence[int]) -> torch.Tensor:
    """Deterministic DDIM inversion of clean latents up the ascending `timesteps` (first one = z0's level)."""
    alphas = denoiser.alphas_cumprod
    z = z0
    for t, t_next in zip(timesteps[:-1], timesteps[1:]):
        eps, z0_hat = denoiser.tweedie(z, t)
        a_next = float(alphas[t_next])
        z = a_next ** 0.5 * z0_hat + (1 - a_next) ** 0.5 * eps
    return z


def shot_starts(n_frames: int, cuts: Sequence[int]) -> list[int]:
    """First frame of every shot of a window: 0 and the scene cuts."""
    return sorted({0} | {int(c) for c in cuts if 0 < int(c) < n_frames})


def latent_dds_sample(
    denoiser: LatentDenoiser,
    operator: LinearOperator,
    y: torch.Tensor,
    timesteps: Sequence[int],
    noise: NoiseSampler,
    *,
    frames: Sequence[int],
    eta: float = 0.2,
    cg_iterations: int = 10,
    gamma: float = 0.0,
    lpf_scale: float = 2.0,
    init: str = "inversion",
    x_init: torch.Tensor | None = None,
    cuts: Sequence[int] = (),
    clip_denoised: bool = True,
    callback: StepCallback | None = None,
    guidance: GuidanceHook | None = None,
    lowpass: Callable[[torch.Tensor, float], torch.Tensor] = gaussian_lowpass,
) -> torch.Tensor:
    """Restore the clip x with A x ≈ y using a latent prior. Returns x in [0, 1] after the last CG (unclipped).

    `init`: "inversion" (VISION-XL's batch-consistent inversion: the first
    frame of `x_init` in every shot, encoded and DDIM-inverted to
    `timesteps[0]`, copied to every frame of its shot), "noised" (every frame
    of `x_init` encoded and noised to `timesteps[0]`) or "noise" (pure noise).
    `cuts` are window positions that start a new shot. `lpf_scale` = 0 turns
    the scheduled low-pass off; `guidance` acts on the decoded x̂0 before CG.
    """
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose from {', '.join(INITS)}")
    if init != "noise" and x_init is None:
        raise ValueError(f"init {init!r} needs an initial estimate x_init")
    shape = tuple(operator.input_shape(tuple(y.shape)))
    size = shape[-2:]
    device, dtype = y.device, y.dtype
    alphas = denoiser.alphas_cumprod
    latent_shape = denoiser.latent_shape(*size)
    aty = operator.A_adjoint(y)

    # initialisation (VISION-XL §batch-consistent inversion): one inverted latent per shot, copied to its frames
    a_start = float(alphas[timesteps[0]])
    if init == "inversion":
        starts = shot_starts(len(frames), cuts)
        first = denoiser.encode(x_init[starts])
        inverted = ddim_invert(denoiser, first, list(reversed(list(timesteps))))
        bounds = starts + [len(frames)]
        z = torch.cat([inverted[k: k + 1].expand(bounds[k + 1] - bounds[k], *latent_shape)
                       for k in range(len(starts))]).contiguous()
    else:
        z = noise(INIT_STEP, frames, latent_shape, device, dtype)
        if init == "noised":
            z = a_start ** 0.5 * denoiser.encode(x_init) + (1 - a_start) ** 0.5 * z

    x = x_init
    for i, t in enumerate(timesteps):
        # pseudo-batch Tweedie: ε̂ and ẑ0 per frame (micro-batches through the UNet), then x̂0 = D(ẑ0)
        eps, z0 = denoiser.tweedie(z, t)
        x0 = denoiser.decode(z0, size)
        if clip_denoised:
            x0 = x0.clamp(0.0, 1.0)
        if guidance is not None:  # e.g. equivariance self-guidance, on x̂0 before CG
            x0 = guidance(x0, i, t)
        # data consistency: CG on (AᵀA + γI) x = Aᵀy + γ x̂0 over the whole clip, in pixel space
        x = conjugate_gradient(operator.normal, aty + gamma * x0, x0, cg_iterations, gamma=gamma)
        if callback is not None:
            callback(i, t)
        if i + 1 == len(timesteps):
            break
        # scheduled low-pass σ = √(lpf_scale (1 − ᾱ_t)): removes CG's high-frequency artefacts before E
        z0 = denoiser.encode(lowpass(x, lowpass_sigma(lpf_scale, float(alphas[t]))))
        # DDIM re-noising with η: batch-consistent (shared / warped) fresh noise, the rest from ε̂
        a_next = float(alphas[timesteps[i + 1]])
        n = noise(i, frames, latent_shape, device, dtype)
        sigma = (1 - a_next) ** 0.5
        z = a_next ** 0.5 * z0 + sigma * (eta * n + (1 - eta ** 2) ** 0.5 * eps)
    return x


def latent_timesteps(steps: int, num_train_timesteps: int, init: str, inversion_t: int) -> list[int]:
    """VISION-XL's schedule: `steps` DDIM timesteps over the whole range (the NFE of a full run), of which
    only those ≤ `inversion_t` are sampled after an inversion / noised start (25 and 300: 8 steps)."""
    timesteps = ddim_timesteps(steps, num_train_timesteps)
    return timesteps if init == "noise" else [t for t in timesteps if t <= inversion_t]


def latent_motion(flows: torch.Tensor, masks: torch.Tensor | None, size: tuple[int, int]
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pixel flows (F−1, 2, H, W) and trusted-pixel masks on the latent grid `size` (h, w), for warped
    noise: flows area-averaged and rescaled to latent pixels; a latent pixel is trusted only if all its
    pixels are."""
    h, w = size
    scale = torch.tensor([w / flows.shape[-1], h / flows.shape[-2]], dtype=flows.dtype, device=flows.device)
    small = torch.nn.functional.adaptive_avg_pool2d(flows, (h, w)) * scale.view(1, 2, 1, 1)
    if masks is None:
        return small, None
    return small, 1 - torch.nn.functional.adaptive_max_pool2d(1 - masks.float(), (h, w))
