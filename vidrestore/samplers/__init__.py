"""Samplers: plain functions taking a denoiser, an operator, measurements, a schedule and a noise sampler."""
from vidrestore.samplers.dds import dds_sample
from vidrestore.samplers.latent_dds import latent_dds_sample, latent_timesteps
from vidrestore.samplers.guidance import EquivarianceGuidance, GuidanceHook, equivariance_energy, update_steps
from vidrestore.samplers.least_squares import gradient_normal, least_squares
from vidrestore.samplers.noise import (NOISE_SAMPLERS, IndependentNoise, NoiseSampler, SharedNoise, WarpedNoise,
                                      make_noise_sampler)
from vidrestore.samplers.schedules import ddim_timesteps

__all__ = ["dds_sample", "latent_dds_sample", "latent_timesteps", "ddim_timesteps", "equivariance_energy",
           "gradient_normal", "least_squares", "make_noise_sampler", "EquivarianceGuidance", "GuidanceHook",
           "IndependentNoise", "NoiseSampler", "SharedNoise", "WarpedNoise", "NOISE_SAMPLERS", "update_steps"]
