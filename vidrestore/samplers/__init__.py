"""Samplers: plain functions taking a denoiser, an operator, measurements, a schedule and a noise sampler."""
from vidrestore.samplers.dds import dds_sample
from vidrestore.samplers.least_squares import gradient_normal, least_squares
from vidrestore.samplers.noise import NOISE_SAMPLERS, IndependentNoise, NoiseSampler, SharedNoise, make_noise_sampler
from vidrestore.samplers.schedules import ddim_timesteps

__all__ = ["dds_sample", "ddim_timesteps", "gradient_normal", "least_squares", "make_noise_sampler",
           "IndependentNoise", "NoiseSampler", "SharedNoise", "NOISE_SAMPLERS"]
