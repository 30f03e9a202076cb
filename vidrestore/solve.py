"""Solving one window: a pure function of the window's frames, the resolved config and the seed.

Noise depends only on (seed, step, frame index), so windows solved in
different processes or on different machines agree on the frames they share.
Nothing here mutates the prior, the device or any shared object, so an
executor can run `solve_window` anywhere that has the prior loaded.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from vidrestore.artifacts import shared_remover
from vidrestore.config import RunConfig
from vidrestore.costs import network_evaluations_per_frame
from vidrestore.operators import LinearOperator
from vidrestore.operators.noise import proximal_weight
from vidrestore.priors import load_prior
from vidrestore.samplers import (
    AVERAGE_SEED_STRIDE,
    EquivarianceGuidance,
    dds_sample,
    least_squares,
    make_noise_sampler,
    make_space,
    start_for_first,
    update_steps,
)
from vidrestore.tasks import Task
from vidrestore.tasks.base import AUTO, Sampling
from vidrestore.temporal import WindowMotion, window_motion
from vidrestore.temporal.confidence import flow_confidence


def noise_gamma(cfg: RunConfig, normal_scale: float = 1.0) -> float | Callable[[float], float]:
    """DDS's proximal weight γ: `sampler.gamma` when σ_y = 0; with noise, at each step's ᾱ_t, the larger of
    max(sampler.gamma, sampler.noisy_gamma) and noise_weight · normal_scale · σ_y² / σ_t² (which grows as the
    steps approach t = 0, so the last steps follow the prior instead of copying the noise).

    `normal_scale` is the operator's (`LinearOperator.normal_scale`, 1/s² for s× downsampling): the weight
    compares ‖A x − y‖² with ‖x − x̂0‖², and one measurement of an s× average carries 1/s² of a pixel.
    σ_y is the resolved noise level (`vidrestore.noise.resolve_noise`); one still "auto" here (a caller
    that did not resolve it) counts as 0, exact data consistency as before. Measured (deblur-fast,
    Gaussian σ 1, σ_y = 0.02, 64x64 coffee pan): constant γ = 1 29.85 dB; σ_y² / σ_t² alone with
    noise_weight 1 / 16 / 64 27.46 / 29.69 / 28.31 dB, hence the floor (noisy_gamma 1); with the floor,
    noise_weight 1 / 16 29.68 / 29.39 dB (warping error 7.3e-4 / 7.0e-4 against 8.0e-4), hence noise_weight
    0 by default (DDS's γ = 1 as before). Denoising needs it (the denoise presets: 64), and so does
    super-resolution, where γ = 1 all but ignores y (presets/superres.yaml).
    """
    s, sigma = cfg.sampler, cfg.degradation.noise_level
    sigma = 0.0 if sigma == AUTO else float(sigma)
    if sigma == 0:
        return s.gamma
    floor, scale = max(s.gamma, s.noisy_gamma), s.noise_weight * normal_scale

    def gamma(alpha_bar: float) -> float:
        return max(floor, proximal_weight(sigma, alpha_bar, scale))

    return gamma


def window_coupling(cfg: RunConfig, operator: LinearOperator, x_init: torch.Tensor, y: torch.Tensor
                     ) -> tuple[float, WindowMotion | None]:
    """DDS's γ (a number, or a function of ᾱ_t when σ_y > 0), and the window's motion where warped noise or
    guidance need it."""
    s, weight = cfg.sampler, cfg.guidance.equivariance
    gamma = noise_gamma(cfg, operator.normal_scale)
    # warped noise and equivariance guidance start from the flow of the initial estimate
    needs_motion = s.noise == "warped" or weight > 0
    # guidance.flow_blur is in input pixels: aliasing of an upsampled input is as coarse as the input's pixels
    blur = cfg.guidance.flow_blur * x_init.shape[-1] / y.shape[-1]
    motion = window_motion(x_init, getattr(operator, "known", None), blur=blur) if needs_motion else None
    return gamma, motion


def guidance_hook(cfg: RunConfig, operator: LinearOperator, motion: WindowMotion | None, steps: int,
                  pixels: float = 1.0) -> EquivarianceGuidance | None:
    """A fresh equivariance-guidance hook for one sampling run; None when the weight is 0. `pixels`: output
    pixels per input pixel (guidance.reliability is in input pixels, like flow_blur)."""
    g = cfg.guidance
    if g.equivariance <= 0 or motion is None:
        return None
    known = getattr(operator, "known", None)

    def trusted(m: WindowMotion) -> torch.Tensor:
        """The guidance's weights: the occlusion mask, times the flow's confidence when asked for."""
        if g.reliability <= 0:
            return m.valid_fwd
        return m.valid_fwd * flow_confidence(m.flows_fwd, m.flows_bwd, g.reliability * pixels)

    def reestimate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = window_motion(x, known, cuts=motion.cuts, blur=motion.blur)  # shots stay as found at first
        return m.flows_fwd, trusted(m)

    return EquivarianceGuidance(g.equivariance, motion.flows_fwd, trusted(motion), sampling=g.sampling,
                                reestimate=reestimate, update_at=update_steps(steps, g.flow_updates))


def restore_window(prior, operator: LinearOperator, y: torch.Tensor, frames: list[int], cfg: RunConfig,
                   x_init: torch.Tensor | None = None, on_step: Callable[[], None] | None = None,
                   start_noise: float = 0.0) -> torch.Tensor:
    """Restore one window of frames; returns x in [0, 1] (unclipped).

    `x_init` is the task's initial estimate (default: the operator's); the
    classical solver starts from it, and so does a diffusion schedule that
    starts part-way (`sampler.start_t` below the top timestep) or a latent
    prior's inversion / noised start (`latent.init`; `latent.inversion_t`
    replaces `sampler.start_t` there). The prior's space (pixel or latent) says
    which options apply. `sampler.average` > 1 averages that many samples. `start_noise`: the noise std
    x_init already carries, which a partial pixel start tops up instead of adding a full dose.
    """
    if x_init is None:
        x_init = operator.initial_estimate(y).clamp(0, 1)
    if prior is None:
        return least_squares(operator, y, smoothness=cfg.classical.smoothness, iterations=cfg.classical.iterations,
                             x_init=x_init)
    s, lat = cfg.sampler, cfg.latent
    gamma, motion = window_coupling(cfg, operator, x_init, y)
    # scene cuts split a latent inversion into shots (None: the space finds them on x_init if it needs them)
    space = make_space(prior, start_t=s.start_t, start_noise=start_noise, init=lat.init,
                       inversion_t=lat.inversion_t, lpf_scale=lat.lpf_scale,
                       cuts=motion.cuts if motion is not None else None)
    timesteps = space.timesteps(s.steps)
    warp = {}
    if s.noise == "warped":  # the noise moves with the clip, on the space's grid
        flows, masks = space.noise_flows(motion.flows_bwd, motion.valid_bwd)
        warp = {"flows": flows, "masks": masks, "cuts": motion.cuts, "correlation": s.warp_correlation}
    total = None
    for k in range(s.average):
        noise = make_noise_sampler(s.noise, cfg.runtime.seed + AVERAGE_SEED_STRIDE * k, **warp)
        guidance = guidance_hook(cfg, operator, motion, len(timesteps),  # a fresh hook per sample: it keeps state
                                 x_init.shape[-1] / y.shape[-1])
        x = dds_sample(prior, space, operator, y, timesteps, noise, frames=frames, eta=s.eta,
                       cg_iterations=s.cg_iterations, gamma=gamma, x_init=x_init,
                       callback=(lambda i, t: on_step()) if on_step else None, guidance=guidance)
        total = x if total is None else total + x
    return total / s.average



@dataclass
class SolvedWindow:
    """A restored window: frames in [0, 1], and what the run's metrics need from it."""

    x: torch.Tensor                  # (F_out, 3, H, W), clamped to [0, 1]
    residual_sq: float               # ‖A x − y‖² over the window's measurements, before clamping
    measurement_sq: float            # ‖y‖²
    network_evaluations: int         # frames through the network, over all steps
    prior: dict                      # what the metrics JSON says of the prior: model, nfe, and its own summary
    seconds: float = 0.0             # wall time of the solve itself (executors compare it with a round trip)


def solve_window(prior, task: Task, cfg: RunConfig, y: torch.Tensor, streams: dict[str, np.ndarray],
                 frames: list[int], on_step: Callable[[], None] | None = None) -> SolvedWindow:
    """Restore the measurement frames `y` of one window (output frames `frames`, global indices)."""
    started = time.perf_counter()
    if cfg.degradation.deblock == "on":  # resolved from "auto" by the run (`vidrestore.input_checks`)
        y = shared_remover(y.device)(y)
    operator = task.operator(streams)
    y_solve, op_solve, x_init = task.window_problem(y, operator)
    cfg, carried = task_start(cfg, task, prior, op_solve)
    counted = prior.network_evaluations if prior is not None else 0
    s = cfg.sampler
    x = task.sample(prior, y_solve, streams, frames, Sampling(s.steps, s.eta, s.noise, cfg.runtime.seed), on_step)
    if x is None:  # the shared loop (a task with no measurement samples its windows itself)
        x = restore_window(prior, op_solve, y_solve, frames, cfg, x_init=x_init, on_step=on_step,
                           start_noise=carried)
    x = task.keep_known(x, y, operator)
    measured = task.measured(y, operator)
    residual_sq = float((operator.A(x) - measured).pow(2).sum())
    evaluations = prior.network_evaluations - counted if prior is not None else 0
    return SolvedWindow(x.clamp(0, 1), residual_sq, float(measured.pow(2).sum()), evaluations, prior_info(prior, cfg),
                        time.perf_counter() - started)


def task_schedule(cfg: RunConfig, task: Task, prior, operator: LinearOperator | None = None) -> RunConfig:
    """`cfg` with `sampler.start_t` where the task picks it from the (resolved) noise level and the window
    problem's `operator`, e.g. denoise, and with a noised latent start where the task picks it
    (`Task.latent_start`, e.g. edit's strength)."""
    return task_start(cfg, task, prior, operator)[0]


def task_start(cfg: RunConfig, task: Task, prior, operator: LinearOperator | None = None
               ) -> tuple[RunConfig, float]:
    """`task_schedule`'s config, and the noise std the window's initial estimate carries where the task
    picks the start (`Task.start_noise`; 0 otherwise: the start adds a full dose of noise)."""
    start = task.latent_start(prior.num_train_timesteps) if prior is not None else None
    if start is not None:
        cfg = dataclasses.replace(cfg, latent=dataclasses.replace(cfg.latent, init="noised", inversion_t=start))
    sigma = cfg.degradation.noise_level
    if prior is None or sigma == AUTO:
        return cfg, 0.0
    t = task.start_timestep(float(sigma), prior.alphas_cumprod, operator)
    if t is None:
        return cfg, 0.0
    start = start_for_first(t, cfg.sampler.steps, prior.num_train_timesteps)  # the first step samples at t
    sampler = dataclasses.replace(cfg.sampler, start_t=start)
    return dataclasses.replace(cfg, sampler=sampler), task.start_noise(float(sigma), operator)


def prior_info(prior, cfg: RunConfig) -> dict:
    """The prior as the metrics JSON describes it (`model`, network evaluations per frame `nfe`, ...)."""
    if prior is None:
        return {"model": "none", "nfe": 0}
    nfe = network_evaluations_per_frame(cfg, prior.space, prior.num_train_timesteps, prior.classifier_free_guidance)
    return {"model": prior.name, "nfe": nfe, "dtype": str(prior.dtype).removeprefix("torch."),
            **prior.summary(cfg.latent)}


def prior_settings(cfg: RunConfig, frame_size: tuple[int, int]) -> dict:
    """Everything the loaded prior depends on besides device and dtype (equal settings: the same prior)."""
    lat = cfg.latent
    return {"model": None if cfg.model == "default" else cfg.model, "micro_batch": cfg.runtime.micro_batch,
            "tile": cfg.runtime.tile, "vae": lat.vae, "prompt": lat.prompt, "negative_prompt": lat.negative_prompt,
            "guidance_scale": lat.guidance_scale, "vae_tiling": lat.vae_tiling != "off", "frame_size": frame_size}


def load_configured_prior(cfg: RunConfig, device: torch.device, dtype: torch.dtype, frame_size: tuple[int, int]):
    """The prior `cfg` names (None for `--model none`), set up for output frames of `frame_size` (H, W)."""
    settings = prior_settings(cfg, frame_size)
    return load_prior(settings.pop("model"), device, dtype, **settings)
