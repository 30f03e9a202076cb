"""Sampling spaces: where the state x_t of the DDS loop lives, and how it meets the clip.

`dds_sample` is one loop for every prior. What differs between a pixel prior
(SVI) and a latent prior (VISION-XL) is a space, chosen by the attribute
`space` that every `Denoiser` declares (a key of `SPACES`):

    timesteps(steps)                  the schedule
    noise_shape(frame_shape)          the shape of one frame's x_t (and of its noise)
    noise_flows(flows, masks)         a window's pixel flows on that grid, for warped noise
    initial(timesteps, noise, ...)    x_T: noise, the initial estimate noised to the first timestep,
                                      or (latent) its batch-consistent DDIM inversion
    clean(x0, frame_shape)            the denoiser's x̂0 → a [0, 1] clip (for guidance and CG)
    back(x, t)                        a [0, 1] clip → the model's space, before re-noising from t

`PixelSpace`: x_t is the clip in the model's range [-1, 1]. `LatentSpace`:
x_t is the VAE latent of every frame (Kwon & Ye, "VISION-XL: High Definition
Video Inverse Problem Solver using Latent Diffusion Models", ICCV 2025): x̂0 is
decoded for the data-consistency step in pixel space, and the result is
low-pass filtered with a σ that shrinks with the noise level and re-encoded.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from vidrestore.operators import Blur, gaussian_kernel
from vidrestore.priors.base import Denoiser, LatentPrior, from_model, to_model
from vidrestore.samplers.noise import INIT_STEP, NoiseSampler
from vidrestore.samplers.schedules import ddim_timesteps, latent_timesteps
from vidrestore.temporal.cuts import detect_scene_cuts

INITS = ("inversion", "noised", "noise")  # how a latent run starts
MODEL_RANGE = (-1.0, 1.0)  # a pixel prior's range (`to_model` / `from_model`)
UNIT_RANGE = (0.0, 1.0)  # the clip's range
MIN_LOWPASS_SIGMA = 1e-3  # pixels; a narrower Gaussian is the identity


def noised(x0: torch.Tensor, alpha_bar: float, noise: torch.Tensor) -> torch.Tensor:
    """The forward process at ᾱ: √ᾱ x0 + √(1 − ᾱ) ε."""
    return alpha_bar ** 0.5 * x0 + (1 - alpha_bar) ** 0.5 * noise


# ----------------------------------------------------------------------------- pixel priors (SVI)

@dataclass(frozen=True)
class PixelSpace:
    """SVI: x_t is the clip itself in the model's range [-1, 1] (`to_model`).

    The schedule covers the whole range, or starts part-way at `start_t` (below
    the top timestep), from the initial estimate noised to the first timestep.
    `clip_denoised` clamps x̂0 to [-1, 1] in model space before converting.
    """

    denoiser: Denoiser
    start_t: int | None = None
    clip_denoised: bool = True
    start_noise: float = 0.0       # noise std ([0, 1] units) x_init already carries: the start tops it up

    @property
    def partial(self) -> bool:
        return self.start_t is not None and self.start_t < self.denoiser.num_train_timesteps

    def timesteps(self, steps: int) -> list[int]:
        return ddim_timesteps(steps, self.denoiser.num_train_timesteps, self.start_t if self.partial else None)

    def noise_shape(self, frame_shape: Sequence[int]) -> tuple[int, ...]:
        return tuple(frame_shape)

    def noise_flows(self, flows: torch.Tensor, masks: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return flows, masks

    def initial(self, timesteps: Sequence[int], noise: NoiseSampler, frames: Sequence[int],
                x_init: torch.Tensor | None, frame_shape: Sequence[int], device: torch.device,
                dtype: torch.dtype) -> torch.Tensor:
        """Pure noise, or (partial schedule and `x_init` given) x_init noised to `timesteps[0]`; an x_init that
        already carries noise of std `start_noise` gets only the noise it lacks (SDEdit from a noisy input)."""
        x = noise(INIT_STEP, frames, self.noise_shape(frame_shape), device, dtype)
        if x_init is None or not self.partial:
            return x
        alpha_bar = float(self.denoiser.alphas_cumprod[timesteps[0]])
        if self.start_noise <= 0:
            return noised(to_model(x_init), alpha_bar, x)
        # x_init's noise, 2·start_noise in the model's range, is already √ᾱ · 2σ of x_t's √(1 − ᾱ)
        missing = max(1 - alpha_bar - 4 * self.start_noise ** 2 * alpha_bar, 0.0)
        return alpha_bar ** 0.5 * to_model(x_init) + missing ** 0.5 * x

    def clean(self, x0: torch.Tensor, frame_shape: Sequence[int]) -> torch.Tensor:
        if self.clip_denoised:
            x0 = x0.clamp(*MODEL_RANGE)
        return from_model(x0)

    def back(self, x: torch.Tensor, t: int) -> torch.Tensor:
        return to_model(x)


# ----------------------------------------------------------------------------- latent priors (VISION-XL)

def gaussian_lowpass(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of every frame (σ in pixels, reflect boundary); σ ≈ 0 returns x."""
    if sigma < MIN_LOWPASS_SIGMA:
        return x
    return Blur(gaussian_kernel(sigma)).A(x)


def lowpass_sigma(lpf_scale: float, alpha_bar: float) -> float:
    """VISION-XL's scheduled low-pass: σ = √(lpf_scale · (1 − ᾱ_t)), σ → 0 as t → 0."""
    return math.sqrt(max(lpf_scale, 0.0) * (1.0 - alpha_bar))


def ddim_invert(denoiser: Denoiser, z0: torch.Tensor, timesteps: Sequence[int]) -> torch.Tensor:
    """Deterministic DDIM inversion of clean latents up the ascending `timesteps` (first one = z0's level).

    Not diffusers' `DDIMInverseScheduler`: its `step` walks the integer grid T // steps (not an arbitrary
    list such as 0 → 143 → 286) and mixes with its float32 ᾱ table; ours takes ᾱ in float64 as Python
    floats, as the sampler does. One step from t = 100 to 200 on the same ε̂ differs by up to 5e-7.
    """
    alphas = denoiser.alphas_cumprod
    z = z0
    for t, t_next in zip(timesteps[:-1], timesteps[1:]):
        eps, z0_hat = denoiser.tweedie(z, t)
        z = noised(z0_hat, float(alphas[t_next]), eps)
    return z


def shot_starts(n_frames: int, cuts: Sequence[int]) -> list[int]:
    """First frame of every shot of a window: 0 and the scene cuts."""
    return sorted({0} | {int(c) for c in cuts if 0 < int(c) < n_frames})


def latent_motion(flows: torch.Tensor, masks: torch.Tensor | None, size: tuple[int, int]
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pixel flows (F−1, 2, H, W) and trusted-pixel masks on the latent grid `size` (h, w), for warped
    noise: flows area-averaged and rescaled to latent pixels; a latent pixel is trusted only if all its
    pixels are."""
    h, w = size
    scale = torch.tensor([w / flows.shape[-1], h / flows.shape[-2]], dtype=flows.dtype, device=flows.device)
    small = F.adaptive_avg_pool2d(flows, (h, w)) * scale.view(1, 2, 1, 1)
    if masks is None:
        return small, None
    return small, 1 - F.adaptive_max_pool2d(1 - masks.float(), (h, w))


@dataclass(frozen=True)
class LatentSpace:
    """VISION-XL: x_t is every frame's VAE latent (a pseudo-batch through the UNet).

    `init`: "inversion" (VISION-XL's batch-consistent inversion: the first frame
    of `x_init` in every shot, encoded and DDIM-inverted to `timesteps[0]`,
    copied to every frame of its shot), "noised" (every frame of `x_init`
    encoded and noised to `timesteps[0]`) or "noise" (pure noise). `cuts` are
    window positions that start a new shot; None detects them on `x_init` when
    the inversion needs them. The schedule (`latent_timesteps`) keeps the
    timesteps ≤ `inversion_t` unless the run starts from noise. x̂0 is decoded
    and clamped to [0, 1]; before re-encoding, the clip is low-passed with
    σ = √(lpf_scale · (1 − ᾱ_t)) (`lpf_scale` = 0: off) by `lowpass`.
    """

    denoiser: LatentPrior
    init: str = "inversion"
    inversion_t: int = 300
    lpf_scale: float = 2.0
    cuts: Sequence[int] | None = None
    clip_denoised: bool = True
    lowpass: Callable[[torch.Tensor, float], torch.Tensor] = gaussian_lowpass

    def __post_init__(self):
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; choose from {', '.join(INITS)}")

    def timesteps(self, steps: int) -> list[int]:
        return latent_timesteps(steps, self.denoiser.num_train_timesteps, self.init, self.inversion_t)

    def noise_shape(self, frame_shape: Sequence[int]) -> tuple[int, ...]:
        return tuple(self.denoiser.latent_shape(*frame_shape[-2:]))

    def noise_flows(self, flows: torch.Tensor, masks: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The noise lives on the latent grid: so must its flows."""
        return latent_motion(flows, masks, self.noise_shape(flows.shape[-2:])[1:])

    def initial(self, timesteps: Sequence[int], noise: NoiseSampler, frames: Sequence[int],
                x_init: torch.Tensor | None, frame_shape: Sequence[int], device: torch.device,
                dtype: torch.dtype) -> torch.Tensor:
        if self.init != "noise" and x_init is None:
            raise ValueError(f"init {self.init!r} needs an initial estimate x_init")
        shape = self.noise_shape(frame_shape)
        if self.init == "inversion":  # one inverted latent per shot, copied to its frames
            cuts = self.cuts if self.cuts is not None else detect_scene_cuts(x_init)
            starts = shot_starts(len(frames), cuts)
            inverted = ddim_invert(self.denoiser, self.denoiser.encode(x_init[starts]), list(reversed(timesteps)))
            bounds = starts + [len(frames)]
            return torch.cat([inverted[k: k + 1].expand(bounds[k + 1] - bounds[k], *shape)
                              for k in range(len(starts))]).contiguous()
        z = noise(INIT_STEP, frames, shape, device, dtype)
        if self.init == "noise":
            return z
        return noised(self.denoiser.encode(x_init), float(self.denoiser.alphas_cumprod[timesteps[0]]), z)

    def clean(self, z0: torch.Tensor, frame_shape: Sequence[int]) -> torch.Tensor:
        x0 = self.denoiser.decode(z0, tuple(frame_shape[-2:]))
        return x0.clamp(*UNIT_RANGE) if self.clip_denoised else x0

    def back(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Scheduled low-pass (removes CG's high-frequency artefacts), then the VAE encoder."""
        return self.denoiser.encode(self.lowpass(x, lowpass_sigma(self.lpf_scale,
                                                                  float(self.denoiser.alphas_cumprod[t]))))


# ----------------------------------------------------------------------------- choosing a space

SPACES: dict[str, type] = {"pixel": PixelSpace, "latent": LatentSpace}


def make_space(denoiser: Denoiser, *, start_t: int | None = None, start_noise: float | None = None,
               init: str | None = None, inversion_t: int | None = None, lpf_scale: float | None = None,
               cuts: Sequence[int] | None = None) -> PixelSpace | LatentSpace:
    """The space that `denoiser.space` names, with the options it takes (None: the space's default).

    `start_t` and `start_noise` are pixel options; `init`, `inversion_t`, `lpf_scale` and `cuts` are latent
    options."""
    name = getattr(denoiser, "space", None)
    if name not in SPACES:
        raise ValueError(f"{type(denoiser).__name__} declares space {name!r}; choose from {', '.join(SPACES)}")
    cls = SPACES[name]
    options = {"start_t": start_t, "start_noise": start_noise, "init": init, "inversion_t": inversion_t,
               "lpf_scale": lpf_scale, "cuts": cuts}
    accepted = {f.name for f in fields(cls)}
    return cls(denoiser, **{k: v for k, v in options.items() if v is not None and k in accepted})
