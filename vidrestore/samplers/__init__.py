"""Samplers: plain functions taking a denoiser, a space, an operator, measurements, a schedule and a noise sampler."""
from vidrestore.samplers.dds import dds_sample
from vidrestore.samplers.guidance import EquivarianceGuidance, GuidanceHook, equivariance_energy, update_steps
from vidrestore.samplers.least_squares import gradient_normal, least_squares
from vidrestore.samplers.noise import (
                                      AVERAGE_SEED_STRIDE,
                                      INIT_STEP,
                                      NOISE_SAMPLERS,
                                      IndependentNoise,
                                      NoiseSampler,
                                      SharedNoise,
                                      WarpedNoise,
                                      make_noise_sampler,
)
from vidrestore.samplers.schedules import ddim_timesteps, latent_timesteps, start_for_first
from vidrestore.samplers.spaces import (
                                      SPACES,
                                      LatentSpace,
                                      PixelSpace,
                                      ddim_invert,
                                      gaussian_lowpass,
                                      latent_motion,
                                      lowpass_sigma,
                                      make_space,
                                      shot_starts,
)

__all__ = ["dds_sample", "ddim_timesteps", "latent_timesteps", "start_for_first", "make_space", "PixelSpace",
           "LatentSpace", "SPACES",
           "ddim_invert", "gaussian_lowpass", "latent_motion", "lowpass_sigma", "shot_starts", "equivariance_energy",
           "gradient_normal", "least_squares", "make_noise_sampler", "EquivarianceGuidance", "GuidanceHook",
           "IndependentNoise", "NoiseSampler", "SharedNoise", "WarpedNoise", "NOISE_SAMPLERS", "AVERAGE_SEED_STRIDE",
           "INIT_STEP", "update_steps"]
