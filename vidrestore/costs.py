"""What a run will cost before it runs: network evaluations per frame, peak memory and time per frame.

`network_evaluations_per_frame` is the one count both the estimate and the
run's metrics (`nfe`) use; the estimate reads only config files (no weights).
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import torch

from vidrestore.config import RunConfig
from vidrestore.errors import InputError, ModelError
from vidrestore.io import probe
from vidrestore.priors import model_kind, resolve_model_location
from vidrestore.priors.estimate import (
    Estimate,
    estimate,
    latent_network_cost,
    pixel_forward_rate,
    pixel_network_cost,
    read_config,
)
from vidrestore.priors.loading import hub_offline
from vidrestore.runtime import frames_per_call, prior_dtype, resolve_device, resolve_dtype
from vidrestore.samplers import ddim_timesteps, latent_timesteps
from vidrestore.tasks import get_task

#: a scheduler config without num_train_timesteps means diffusers' default
DEFAULT_TRAIN_TIMESTEPS = 1000


def network_evaluations_per_frame(cfg: RunConfig, space: str, num_train_timesteps: int, two_passes: bool) -> int:
    """Frames through the network per output frame of a window: the sampled steps (a latent prior's
    inversion comes on top), times the averaged samples, times two with classifier-free guidance."""
    s, lat = cfg.sampler, cfg.latent
    if space == "latent":
        steps = len(latent_timesteps(s.steps, num_train_timesteps, lat.init, lat.inversion_t))
    else:
        start = s.start_t if s.start_t < num_train_timesteps else None
        steps = len(ddim_timesteps(s.steps, num_train_timesteps, start))
    return steps * s.average * (2 if two_passes else 1)


def train_timesteps(location: str | Path, offline: bool) -> int:
    """The model's number of training timesteps, from its scheduler config."""
    config = read_config(location, "scheduler/scheduler_config.json", offline) or {}
    return int(config.get("num_train_timesteps", DEFAULT_TRAIN_TIMESTEPS))


def estimate_run(cfg: RunConfig) -> Estimate:
    """Estimated peak memory and time per frame of `cfg` on its device, from config files only (no weights)."""
    input_path = Path(cfg.input)
    if not input_path.exists():
        raise InputError(f"{input_path}: no such file or folder")
    info = probe(input_path, folder_fps=Fraction(cfg.io.fps).limit_denominator(1001))
    task = get_task(cfg.task)(cfg.degradation, info.width, info.height, info.frame_count, str(input_path))
    height, width = info.height * task.spatial_scale, info.width * task.spatial_scale
    frames = min(task.output_frame_count(min(cfg.runtime.chunk, info.frame_count)),
                 task.output_frame_count(info.frame_count))
    device = resolve_device(cfg.runtime.device)
    dtype = resolve_dtype(cfg.runtime.dtype, device)
    location = resolve_model_location(None if cfg.model == "default" else cfg.model)
    if location is None:
        return estimate(None, height=height, width=width, window_frames=frames, unet_passes=0, vae_passes=0,
                        device=device, dtype=dtype)
    offline = hub_offline(location)
    kind = model_kind(None if cfg.model == "default" else cfg.model)
    dtype = prior_dtype(dtype, device, kind)
    mb = min(cfg.runtime.micro_batch, frames)
    if kind == "pixel":
        unet_config = read_config(location, "unet/config.json", offline) or read_config(location, "config.json",
                                                                                         offline)
        if unet_config is None:
            raise ModelError(f"cannot read the config of model {cfg.model!r} (not a local folder or cached)")
        timesteps = train_timesteps(location, offline)
        side = cfg.runtime.tile
        mb = frames_per_call(mb, min(height, side or height), min(width, side or width), device)
        cost = pixel_network_cost(unet_config, min(height, side or height), min(width, side or width), dtype, mb)
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.runtime.threads or threads)  # timed as the run will compute (one worker)
        try:
            rate = pixel_forward_rate(unet_config, min(height, side or height), min(width, side or width), device,
                                      dtype)
        finally:
            torch.set_num_threads(threads)
        return estimate(cost, height=height, width=width, window_frames=frames,
                        unet_passes=network_evaluations_per_frame(cfg, "pixel", timesteps, False) * (height * width) /
                        (min(height, side or height) * min(width, side or width)), vae_passes=0,
                        device=device, dtype=dtype, rate=rate)
    lat = cfg.latent
    unet_config = read_config(location, "unet/config.json", offline)
    vae_location = location if lat.vae is None else (Path(lat.vae).expanduser() if Path(lat.vae).expanduser().exists()
                                                     else lat.vae)
    vae_config = read_config(vae_location, "vae/config.json", offline) or read_config(vae_location, "config.json",
                                                                                      offline)
    if unet_config is None or vae_config is None:
        raise ModelError(f"cannot read the unet / vae configs of model {cfg.model!r}")
    vae_dtype = torch.float32 if dtype == torch.float16 and vae_config.get("force_upcast") else dtype
    cost = latent_network_cost(unet_config, vae_config, height, width, dtype, mb, kind == "sdxl", vae_dtype)
    timesteps = train_timesteps(location, offline)
    start = task.latent_start(timesteps)  # a task's own noised start (edit's strength), as `solve.task_schedule`
    if start is not None:
        cfg = dataclasses.replace(cfg, latent=dataclasses.replace(lat, init="noised", inversion_t=start))
        lat = cfg.latent
    passes = 2 if lat.guidance_scale != 1.0 and lat.prompt != lat.negative_prompt else 1
    steps = network_evaluations_per_frame(cfg, "latent", timesteps, passes == 2) / (passes * cfg.sampler.average)
    own = task.network_passes(round(steps))
    if own is not None:  # the task samples its windows itself (edit: ControlNet, no per-step VAE)
        return estimate(cost, height=height, width=width, window_frames=frames, unet_passes=own[0] * passes,
                        vae_passes=own[1], device=device, dtype=dtype)
    # per output frame: every step's UNet pass(es), decode + encode (no encode after the last step), and
    # the inversion of one frame per chunk spread over the chunk
    inversion = (steps - 1) / frames if lat.init == "inversion" else 0
    return estimate(cost, height=height, width=width, window_frames=frames,
                    unet_passes=(steps + inversion) * passes * cfg.sampler.average,
                    vae_passes=(steps - 0.5) * cfg.sampler.average, device=device, dtype=dtype)


