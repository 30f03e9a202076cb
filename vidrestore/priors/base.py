"""The Denoiser protocol that every sampler uses."""
from __future__ import annotations

from typing import Protocol

import torch


class Denoiser(Protocol):
    """A DDPM-family image denoiser, frames on the batch axis.

    Works in the model's own range [-1, 1]; `to_model` / `from_model` convert
    from and to the [0, 1] range that operators and I/O use.
    """

    name: str
    space: str  # where the sampler's x_t lives: a key of `vidrestore.samplers.spaces.SPACES` ("pixel", "latent")
    alphas_cumprod: torch.Tensor  # (num_train_timesteps,), float64, on CPU
    device: torch.device

    @property
    def num_train_timesteps(self) -> int: ...

    def tweedie(self, x_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, x̂0) with x_t = √ᾱ_t x̂0 + √(1−ᾱ_t) ε̂."""
        ...


class LatentPrior(Denoiser, Protocol):
    """A Denoiser over latents (`space = "latent"`): `tweedie` works on latents, a VAE maps clips to them."""

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C, h, w) of one frame's latent."""
        ...

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] frames (F, 3, H, W) → latents (F, C, h, w)."""
        ...

    def decode(self, z: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Latents → [0, 1] frames cropped to `size` (H, W) (unclipped)."""
        ...


class UNetDenoiserBase:
    """What a denoiser built around a diffusers UNet (`self.unet`) and its ᾱ table gets for free."""

    unet: torch.nn.Module
    alphas_cumprod: torch.Tensor
    #: frames through the network so far (both passes of classifier-free guidance count), for the metrics
    network_evaluations: int = 0
    #: whether each frame costs two network passes (classifier-free guidance)
    classifier_free_guidance: bool = False

    def summary(self, latent) -> dict:
        """What the metrics JSON records about this prior beyond its name (`latent`: the run's latent options)."""
        return {}

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def num_train_timesteps(self) -> int:
        return len(self.alphas_cumprod)


def to_model(x_unit: torch.Tensor) -> torch.Tensor:
    return x_unit * 2.0 - 1.0


def from_model(x_model: torch.Tensor) -> torch.Tensor:
    return (x_model + 1.0) * 0.5


def split_prediction(prediction: torch.Tensor, x_t: torch.Tensor, alpha_bar: float,
                     prediction_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a network output of any parameterisation into (ε̂, x̂0)."""
    a, s = alpha_bar ** 0.5, (1.0 - alpha_bar) ** 0.5
    if prediction_type == "epsilon":
        eps = prediction
        x0 = (x_t - s * eps) / a
    elif prediction_type == "sample":
        x0 = prediction
        eps = (x_t - a * x0) / s
    elif prediction_type == "v_prediction":
        x0 = a * x_t - s * prediction
        eps = s * x_t + a * prediction
    else:
        raise ValueError(f"unknown prediction_type {prediction_type!r}")
    return eps, x0
