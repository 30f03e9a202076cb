"""restore(config): stream a video through a restoration task, window by window.

Measurement frames are read in windows of `runtime.chunk` frames that share
`runtime.overlap` frames with the next window; each window is restored as one
spatio-temporal problem, and shared frames are cross-faded, so memory is
bounded by the window whatever the video length. Noise depends only on
(seed, step, frame index), so windows agree on the frames they share.
"""
from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from vidrestore import metrics as M
from vidrestore.config import RunConfig, available_presets
from vidrestore.errors import DeviceError, InputError, ModelError, OutputError, VidrestoreError
from vidrestore.io import VideoInfo, VideoWriter, output_kind, probe, read_frames, to_tensor, to_uint8
from vidrestore.operators import LinearOperator
from vidrestore.priors import LatentDenoiser, PixelDenoiser, load_prior, model_kind, resolve_model_location
from vidrestore.priors.estimate import Estimate, estimate, latent_network_cost, pixel_network_cost, read_config
from vidrestore.priors.loading import hub_offline
from vidrestore.resume import PartialRun, ResumeState, run_key
from vidrestore.samplers import (AVERAGE_SEED_STRIDE, EquivarianceGuidance, dds_sample, latent_timesteps, least_squares,
                                 make_noise_sampler, make_space, update_steps)
from vidrestore.tasks import Task, iter_mask_frames, make_task
from vidrestore.temporal import WindowMotion, window_motion

def resolve_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu or cuda[:i]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"--device {spec}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise DeviceError(f"unsupported device {spec!r}: use auto, cpu or cuda[:i]")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if device.type == "cpu":
        return torch.float32  # half precision is slow or unsupported for convolutions on CPU
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def plan_windows(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """Windows [start, stop) of at most `chunk` frames covering [0, n), consecutive ones sharing ≥ `overlap`."""
    if n <= chunk:
        return [(0, n)]
    step = max(1, chunk - overlap)
    windows = []
    start = 0
    while start + chunk < n:
        windows.append((start, start + chunk))
        start += step
    windows.append((n - chunk, n))
    return windows


def default_output(input_path: Path, task: str) -> Path:
    if input_path.is_dir():
        return input_path.with_name(f"{input_path.name}.{task}")
    return input_path.with_name(f"{input_path.stem}.{task}.mp4")


def sidecar_path(output: Path, name: str) -> Path:
    """Where `metrics.json` / `config.json` go: inside an output folder, else `<output>.<name>`."""
    return output / name if output_kind(output) == "folder" else output.with_name(f"{output.name}.{name}")


def auto_tile(height: int, width: int, micro_batch: int, device: torch.device, base_channels: int) -> int | None:
    """A tile size whose activations fit in half the free memory, or None when whole frames fit."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
    else:
        free = _available_ram()
    bytes_per_pixel = 4 * 48 * base_channels  # measured order of magnitude for UNet2DModel activations
    budget = free * 0.5 / (micro_batch * bytes_per_pixel)
    if height * width <= budget:
        return None
    side = int(budget ** 0.5)
    return max(64, side - side % 64)


def _available_ram() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 1024 ** 3


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class FrameWindows:
    """Monotonic windowed access to a stream of frame batches, holding only what is still needed."""

    def __init__(self, batches: Iterator[np.ndarray], name: str):
        self._batches = batches
        self._frames: list[np.ndarray] = []
        self._offset = 0
        self._name = name

    def get(self, start: int, stop: int) -> np.ndarray:
        while True:  # forget frames before `start`, reading (and dropping) any not yet read
            drop = min(max(0, start - self._offset), len(self._frames))
            del self._frames[:drop]
            self._offset += drop
            if self._offset >= start or not self._fill():
                break
        while self._offset + len(self._frames) < stop:
            if not self._fill():
                raise InputError(f"{self._name}: ended after {self._offset + len(self._frames)} frames, "
                                 f"expected at least {stop}")
        return np.stack(self._frames[start - self._offset: stop - self._offset])

    def _fill(self) -> bool:
        try:
            self._frames.extend(next(self._batches))
            return True
        except StopIteration:
            return False

    def close(self) -> None:
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()


@dataclass
class RunningMetrics:
    """Metrics accumulated over finalised frames, in order."""

    residual_sq: float = 0.0
    measurement_sq: float = 0.0
    squared_error: float = 0.0
    values: int = 0
    ssim_sum: float = 0.0
    frames: int = 0
    warp_sum: float = 0.0
    warp_pairs: int = 0
    _last: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    @classmethod
    def from_state(cls, sums: dict, last_pair: tuple[torch.Tensor, torch.Tensor] | None) -> "RunningMetrics":
        metrics = cls(**sums)
        metrics._last = last_pair
        return metrics

    def state(self) -> dict:
        """The sums, for resuming (the last frame pair is saved separately)."""
        return {f: getattr(self, f) for f in ("residual_sq", "measurement_sq", "squared_error", "values",
                                              "ssim_sum", "frames", "warp_sum", "warp_pairs")}

    @property
    def last_pair(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self._last

    def add_residual(self, operator: LinearOperator, x: torch.Tensor, y: torch.Tensor) -> None:
        self.residual_sq += float((operator.A(x) - y).pow(2).sum())
        self.measurement_sq += float(y.pow(2).sum())

    def add_reference(self, out: torch.Tensor, ref: torch.Tensor) -> None:
        self.squared_error += float((out - ref).pow(2).sum())
        self.values += out.numel()
        if min(out.shape[-2:]) >= 11:  # SSIM's 11x11 window must fit
            self.ssim_sum += sum(M.ssim_per_frame(out, ref))
        self.frames += out.shape[0]
        if self._last is not None:  # include the pair that straddles two batches
            out, ref = torch.cat([self._last[0], out]), torch.cat([self._last[1], ref])
        if out.shape[0] > 1:
            pairs = [p for p in M.warping_error_per_pair(out, flow_source=ref) if np.isfinite(p)]
            self.warp_sum += float(sum(pairs))
            self.warp_pairs += len(pairs)
        self._last = (out[-1:], ref[-1:])

    def summary(self) -> dict:
        result = {"data_consistency_residual": (self.residual_sq / self.measurement_sq) ** 0.5
                  if self.measurement_sq > 0 else 0.0}
        if self.frames:
            mse = self.squared_error / max(self.values, 1)
            result["psnr"] = float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))
            result["ssim"] = self.ssim_sum / self.frames if self.ssim_sum else None
            result["warping_error"] = self.warp_sum / self.warp_pairs if self.warp_pairs else 0.0
        return result


def _window_coupling(cfg: RunConfig, operator: LinearOperator, x_init: torch.Tensor, y: torch.Tensor
                     ) -> tuple[float, WindowMotion | None]:
    """DDS's γ, and the window's motion where warped noise or guidance need it."""
    s, weight = cfg.sampler, cfg.guidance.equivariance
    gamma = s.gamma if cfg.degradation.sigma_y == 0 else max(s.gamma, 1.0)
    # warped noise and equivariance guidance start from the flow of the initial estimate
    needs_motion = s.noise == "warped" or weight > 0
    # guidance.flow_blur is in input pixels: aliasing of an upsampled input is as coarse as the input's pixels
    blur = cfg.guidance.flow_blur * x_init.shape[-1] / y.shape[-1]
    motion = window_motion(x_init, getattr(operator, "known", None), blur=blur) if needs_motion else None
    return gamma, motion


def _guidance(cfg: RunConfig, operator: LinearOperator, motion: WindowMotion | None, steps: int
              ) -> EquivarianceGuidance | None:
    """A fresh equivariance-guidance hook for one sampling run; None when the weight is 0."""
    g = cfg.guidance
    if g.equivariance <= 0 or motion is None:
        return None
    known = getattr(operator, "known", None)

    def reestimate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = window_motion(x, known, cuts=motion.cuts, blur=motion.blur)  # shots stay as found at first
        return m.flows_fwd, m.valid_fwd

    return EquivarianceGuidance(g.equivariance, motion.flows_fwd, motion.valid_fwd, sampling=g.sampling,
                                reestimate=reestimate, update_at=update_steps(steps, g.flow_updates))


def restore_window(prior, operator: LinearOperator, y: torch.Tensor, frames: list[int], cfg: RunConfig,
                   x_init: torch.Tensor | None = None, on_step: Callable[[], None] | None = None) -> torch.Tensor:
    """Restore one window of frames; returns x in [0, 1] (unclipped).

    `x_init` is the task's initial estimate (default: the operator's); the
    classical solver starts from it, and so does a diffusion schedule that
    starts part-way (`sampler.start_t` below the top timestep) or a latent
    prior's inversion / noised start (`latent.init`; `latent.inversion_t`
    replaces `sampler.start_t` there). The prior's space (pixel or latent) says
    which options apply. `sampler.average` > 1 averages that many samples.
    """
    if x_init is None:
        x_init = operator.initial_estimate(y).clamp(0, 1)
    if prior is None:
        return least_squares(operator, y, smoothness=cfg.classical.smoothness, iterations=cfg.classical.iterations,
                             x_init=x_init)
    s, lat = cfg.sampler, cfg.latent
    gamma, motion = _window_coupling(cfg, operator, x_init, y)
    # scene cuts split a latent inversion into shots (None: the space finds them on x_init if it needs them)
    space = make_space(prior, start_t=s.start_t, init=lat.init, inversion_t=lat.inversion_t, lpf_scale=lat.lpf_scale,
                       cuts=motion.cuts if motion is not None else None)
    timesteps = space.timesteps(s.steps)
    warp = {}
    if s.noise == "warped":  # the noise moves with the clip, on the space's grid
        flows, masks = space.noise_flows(motion.flows_bwd, motion.valid_bwd)
        warp = {"flows": flows, "masks": masks, "cuts": motion.cuts, "correlation": s.warp_correlation}
    total = None
    for k in range(s.average):
        noise = make_noise_sampler(s.noise, cfg.runtime.seed + AVERAGE_SEED_STRIDE * k, **warp)
        guidance = _guidance(cfg, operator, motion, len(timesteps))  # a fresh hook per sample: it keeps state
        x = dds_sample(prior, space, operator, y, timesteps, noise, frames=frames, eta=s.eta,
                       cg_iterations=s.cg_iterations, gamma=gamma, x_init=x_init,
                       callback=(lambda i, t: on_step()) if on_step else None, guidance=guidance)
        total = x if total is None else total + x
    return total / s.average


def default_preset(task: str, model: str | None) -> str | None:
    """The preset a task uses when none is given: `<task>-sdxl` / `<task>-sd` for a latent model
    (the VISION-XL defaults), `<task>-diffusion` where the task's own preset has no model
    (interpolate), else None (the task's own)."""
    if model in (None, "default", "none"):
        return None
    try:
        kind = model_kind(model)
    except VidrestoreError:
        return None  # restore reports the model problem
    candidates = {"sdxl": [f"{task}-sdxl", f"{task}-sd"], "sd": [f"{task}-sd"]}.get(kind, [])
    # interpolate's own preset is the classical flow estimate: a model asked for means its diffusion variant
    candidates.append(f"{task}-diffusion")
    return next((name for name in candidates if name in available_presets()), None)


def estimate_run(cfg: RunConfig) -> Estimate:
    """Estimated peak memory and time per frame of `cfg` on its device, from config files only (no weights)."""
    input_path = Path(cfg.input)
    if not input_path.exists():
        raise InputError(f"{input_path}: no such file or folder")
    info = probe(input_path, folder_fps=Fraction(cfg.io.fps).limit_denominator(1001))
    task = make_task(cfg, info.width, info.height, info.frame_count)
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
    mb = min(cfg.runtime.micro_batch, frames)
    if kind == "pixel":
        unet_config = read_config(location, "unet/config.json", offline) or read_config(location, "config.json",
                                                                                         offline)
        if unet_config is None:
            raise ModelError(f"cannot read the config of model {cfg.model!r} (not a local folder or cached)")
        side = cfg.runtime.tile
        cost = pixel_network_cost(unet_config, min(height, side or height), min(width, side or width), dtype, mb)
        return estimate(cost, height=height, width=width, window_frames=frames,
                        unet_passes=cfg.sampler.steps * cfg.sampler.average * (height * width) /
                        (min(height, side or height) * min(width, side or width)), vae_passes=0,
                        device=device, dtype=dtype)
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
    steps = len(latent_timesteps(cfg.sampler.steps, 1000, lat.init, lat.inversion_t))
    passes = 2 if lat.guidance_scale != 1.0 and lat.prompt != lat.negative_prompt else 1
    # per output frame: every step's UNet pass(es), decode + encode (no encode after the last step), and
    # the inversion of one frame per chunk spread over the chunk
    inversion = (steps - 1) / frames if lat.init == "inversion" else 0
    return estimate(cost, height=height, width=width, window_frames=frames,
                    unet_passes=(steps + inversion) * passes * cfg.sampler.average,
                    vae_passes=(steps - 0.5) * cfg.sampler.average, device=device, dtype=dtype)


def restore(cfg: RunConfig, progress_factory=None, on_ready: Callable[[], None] | None = None) -> dict:
    """Run one restoration described by `cfg`; returns the metrics written to the metrics JSON.

    `on_ready` is called once the input, output, reference and device have been checked, before
    the model loads (the CLI prints its estimate there, so bad input still gets one line).
    """
    started = time.perf_counter()
    input_path = Path(cfg.input)
    if not input_path.exists():
        raise InputError(f"{input_path}: no such file or folder")
    output = Path(cfg.output) if cfg.output else default_output(input_path, cfg.task)
    output_kind(output)  # rejects unsupported suffixes before any work
    if output.exists() and not cfg.io.overwrite:
        raise OutputError(f"{output}: already exists (use --overwrite to replace it)")
    info: VideoInfo = probe(input_path, folder_fps=Fraction(cfg.io.fps).limit_denominator(1001))
    task: Task = make_task(cfg, info.width, info.height, info.frame_count)
    reference = probe(Path(cfg.reference)) if cfg.reference else None
    n_out = task.output_frame_count(info.frame_count)
    out_w, out_h = info.width * task.spatial_scale, info.height * task.spatial_scale
    if reference is not None and (reference.width, reference.height, reference.frame_count) != (out_w, out_h, n_out):
        raise InputError(f"{cfg.reference}: reference is {reference.width}x{reference.height} with "
                         f"{reference.frame_count} frames; the output will be {out_w}x{out_h} with {n_out}")

    device = resolve_device(cfg.runtime.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    dtype = resolve_dtype(cfg.runtime.dtype, device)
    if on_ready is not None:
        on_ready()
    prior = load_prior(None if cfg.model == "default" else cfg.model, device, dtype,
                       micro_batch=cfg.runtime.micro_batch, vae=cfg.latent.vae, prompt=cfg.latent.prompt,
                       negative_prompt=cfg.latent.negative_prompt, guidance_scale=cfg.latent.guidance_scale,
                       vae_tiling=cfg.latent.vae_tiling != "off")
    if isinstance(prior, LatentDenoiser) and cfg.runtime.tile and cfg.latent.vae_tiling != "off":
        prior.set_vae_tile(cfg.runtime.tile)
    if isinstance(prior, PixelDenoiser):
        prior.tile = cfg.runtime.tile or auto_tile(out_h, out_w, cfg.runtime.micro_batch, device,
                                                    prior.unet.config.block_out_channels[0])

    # windows must share a frame for interpolation, and cover the blur's reach for frame averaging
    overlap = max(min(cfg.runtime.overlap, cfg.runtime.chunk - 1), 1 if task.temporal_factor > 1 else 0,
                  2 * task.temporal_radius)
    windows = plan_windows(info.frame_count, max(cfg.runtime.chunk, overlap + 1), overlap)
    inputs = FrameWindows(read_frames(input_path, cfg.runtime.chunk, folder_fps=info.fps), str(input_path))
    mask_batches = iter_mask_frames(task, cfg.runtime.chunk)
    masks = FrameWindows(mask_batches, cfg.degradation.mask or "mask") if mask_batches is not None else None
    refs = FrameWindows(read_frames(Path(cfg.reference), cfg.runtime.chunk), cfg.reference) \
        if reference is not None else None
    audio_from = input_path if (cfg.io.audio and info.has_audio and not output_kind(output) == "folder") else None
    steps_per_window = (cfg.sampler.steps * cfg.sampler.average) if prior is not None else 0
    if isinstance(prior, LatentDenoiser):  # only the timesteps after the inversion run; CFG doubles them
        steps_per_window = (len(latent_timesteps(cfg.sampler.steps, prior.num_train_timesteps, cfg.latent.init,
                                                 cfg.latent.inversion_t))
                            * cfg.sampler.average * (2 if prior.cfg_active else 1))

    partial = PartialRun(output, run_key(cfg), resume=cfg.runtime.resume)
    state = partial.load()
    running = RunningMetrics.from_state(state.metrics, state.last_pair)
    pending = None if state.pending is None else state.pending.to(device)
    written, network_evaluations = state.frames_done, state.network_evaluations

    progress = progress_factory(n_out) if progress_factory else None
    if progress and written:
        progress.frames(written)
    try:
        for w, (ys, ye) in enumerate(windows):
            if w < state.windows_done:  # finished before an interruption
                continue
            xs, xe = task.x_range(ys, ye)
            y = to_tensor(inputs.get(ys, ye)).to(device)
            operator = task.operator(masks.get(ys, ye) if masks is not None else None)
            y_solve, op_solve, x_init = task.window_problem(y, operator)
            evaluated = prior.unet_evaluations if isinstance(prior, LatentDenoiser) else None
            x = restore_window(prior, op_solve, y_solve, list(range(xs, xe)), cfg, x_init=x_init,
                               on_step=(lambda: progress.step()) if progress else None)
            # a latent prior counts its own UNet frames: the inversion's come on top of the sampling steps
            network_evaluations += (prior.unet_evaluations - evaluated if evaluated is not None
                                    else steps_per_window * (xe - xs))
            x = task.keep_known(x, y, operator)
            running.add_residual(operator, x, task.measured(y, operator))
            x = x.clamp(0, 1)
            if pending is not None:  # cross-fade the frames shared with the previous window
                n_ov = pending.shape[0]
                ramp = torch.arange(1, n_ov + 1, device=x.device, dtype=x.dtype) / (n_ov + 1)
                x[:n_ov] = (1 - ramp.view(-1, 1, 1, 1)) * pending + ramp.view(-1, 1, 1, 1) * x[:n_ov]
            next_xs = task.x_range(*windows[w + 1])[0] if w + 1 < len(windows) else xe
            final, pending = x[: next_xs - xs], (x[next_xs - xs:] if w + 1 < len(windows) else None)
            if final.shape[0]:
                frames_u8 = to_uint8(final.cpu())
                partial.append(frames_u8, written)
                if refs is not None:
                    running.add_reference(to_tensor(frames_u8), to_tensor(refs.get(written, written + len(final))))
                written += final.shape[0]
            partial.commit(ResumeState(w + 1, written, network_evaluations, running.state(), pending,
                                       running.last_pair))
            if progress:
                progress.frames(written)
    finally:
        for source in (inputs, masks, refs):
            if source is not None:
                source.close()
        if progress:
            progress.close()
    if written != n_out:
        raise OutputError(f"{output}: restored {written} frames, expected {n_out}")
    # encode the finished frames under a temporary name, renamed into place when complete
    with VideoWriter(output, task.output_fps(info.fps), out_w, out_h, crf=cfg.io.crf,
                     audio_from=audio_from, overwrite=cfg.io.overwrite) as writer:
        for batch in read_frames(partial.frames_dir, 64):
            writer.write(batch)
    partial.remove()

    seconds = time.perf_counter() - started
    result = {
        "task": cfg.task, "input": str(input_path), "output": str(output), "frames": n_out,
        "width": out_w, "height": out_h, "fps": str(task.output_fps(info.fps)),
        "fps_float": float(task.output_fps(info.fps)), "seconds": round(seconds, 3),
        "frames_per_second": round(n_out / seconds, 4) if seconds > 0 else None,
        "nfe": steps_per_window, "network_evaluations": network_evaluations, "device": str(device),
        "model": "none" if prior is None else prior.name, "seed": cfg.runtime.seed, "preset": cfg.preset,
        "noise": cfg.sampler.noise if prior is not None else None,
        "peak_memory_mb": round(peak_memory_mb(device), 1),
    }
    if isinstance(prior, LatentDenoiser):
        result.update({"prior": "sdxl" if prior.sdxl else "sd", "init": cfg.latent.init,
                       "inversion_t": cfg.latent.inversion_t if cfg.latent.init != "noise" else None,
                       "classifier_free_guidance": prior.cfg_active})
    result.update(running.summary())
    result["warnings"] = [f"{input_path}: {note}" for note in info.notes]
    _write_json(Path(cfg.metrics) if cfg.metrics else sidecar_path(output, "metrics.json"), result)
    _write_json(sidecar_path(output, "config.json"), cfg.to_dict() | {"output": str(output)})
    return result


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str))
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror})") from None
