"""Memory and time estimates for a run, from the model's config files alone (no weights are read).

The networks are built on PyTorch's "meta" device (shapes only, no memory)
and run once on a frame of the run's size: a FLOP counter gives the work per
frame, and a dispatch hook that follows the lifetime of every intermediate
tensor gives the peak activation memory. Time = work / a rate. For a pixel
prior the rate is that of a timed forward pass of its architecture (random
weights, one frame of at most PROBE_SIDE² pixels) on the chosen device, which
follows the machine's real speed and load; latent models are too large to
build for an estimate, so their rate is a GEMM rate measured on the device ×
EFFICIENCY, an order of magnitude, not a promise.
"""
from __future__ import annotations

import json
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

PROBE_SIDE = 128        # largest side of the frame a pixel prior's timed forward pass runs on
PROBE_SECONDS = 0.2     # the timed passes run at least this long (at most PROBE_PASSES passes)
PROBE_PASSES = 3
EFFICIENCY = 0.4        # fraction of the measured GEMM rate a UNet / VAE reaches (convolutions, attention, norms)
CG_VECTORS = 8          # clip-sized float32 tensors alive during CG (y-side, b, x, r, p, Ap, x̂0, initial estimate)
GIB = 2 ** 30


class _LiveBytes(TorchDispatchMode):
    """Peak bytes of live non-view tensors created while active (freed when Python drops them)."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not func.is_view:
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    n = t.numel() * t.element_size()
                    self.live += n
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, n)
        return out

    def _free(self, n: int) -> None:
        self.live -= n


def _measure(fn) -> tuple[float, int]:
    """(FLOPs, peak activation bytes) of fn() on meta tensors."""
    live = _LiveBytes()
    with torch.no_grad(), FlopCounterMode(display=False) as flops, live:
        fn()
    return float(flops.get_total_flops()), live.peak


def _params_bytes(model: torch.nn.Module, dtype: torch.dtype) -> int:
    return sum(p.numel() for p in model.parameters()) * torch.finfo(dtype).bits // 8


@dataclass
class NetworkCost:
    weights: int            # bytes
    activations: int        # bytes, peak for one micro-batch
    unet_flops: float       # per frame and UNet pass
    vae_flops: float        # per frame: one decode + one encode


def read_config(location: str | Path, name: str, offline: bool) -> dict | None:
    """A component's config.json from a local folder or the hub cache; None if absent."""
    if isinstance(location, Path):
        path = location / name
        return json.loads(path.read_text()) if path.exists() else None
    from huggingface_hub import hf_hub_download

    try:
        return json.loads(Path(hf_hub_download(str(location), name, local_files_only=offline)).read_text())
    except Exception:
        return None


def latent_network_cost(unet_config: dict, vae_config: dict, height: int, width: int, dtype: torch.dtype,
                        micro_batch: int, sdxl: bool, vae_dtype: torch.dtype | None = None) -> NetworkCost:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # `.to(dtype)` warns of float32 modules (there are none) on every run
    vae_dtype = vae_dtype or dtype
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config).to(dtype)
        vae = AutoencoderKL.from_config(vae_config).to(vae_dtype)
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    h, w = -(-height // factor), -(-width // factor)
    meta = {"device": "meta"}
    z = torch.zeros(micro_batch, vae.config.latent_channels, h, w, dtype=dtype, **meta)
    hidden = torch.zeros(micro_batch, 77, unet.config.cross_attention_dim, dtype=dtype, **meta)
    extra = {}
    if sdxl:
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        extra = {"added_cond_kwargs": {"text_embeds": torch.zeros(micro_batch, pooled, dtype=dtype, **meta),
                                       "time_ids": torch.zeros(micro_batch, 6, dtype=dtype, **meta)}}
    t = torch.zeros(micro_batch, dtype=torch.long, **meta)
    unet_flops, unet_peak = _measure(lambda: unet(z, t, encoder_hidden_states=hidden, **extra))
    x = torch.zeros(micro_batch, 3, h * factor, w * factor, dtype=vae_dtype, **meta)
    dec_flops, dec_peak = _measure(lambda: vae.decode(z.to(vae_dtype)))
    enc_flops, enc_peak = _measure(lambda: vae.encode(x))
    return NetworkCost(_params_bytes(unet, dtype) + _params_bytes(vae, vae_dtype), max(unet_peak, dec_peak, enc_peak),
                       unet_flops / micro_batch, (dec_flops + enc_flops) / micro_batch)


def pixel_network_cost(unet_config: dict, height: int, width: int, dtype: torch.dtype,
                       micro_batch: int) -> NetworkCost:
    from diffusers import UNet2DModel
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # `.to(dtype)` warns of float32 modules (there are none) on every run
    with torch.device("meta"):
        unet = UNet2DModel.from_config(unet_config).to(dtype)
    multiple = 2 ** (len(unet.config.block_out_channels) - 1)
    h, w = height + (-height) % multiple, width + (-width) % multiple
    x = torch.zeros(micro_batch, unet.config.in_channels, h, w, dtype=dtype, device="meta")
    t = torch.zeros(micro_batch, dtype=torch.long, device="meta")
    flops, peak = _measure(lambda: unet(x, t))
    return NetworkCost(_params_bytes(unet, dtype), peak, flops / micro_batch, 0.0)


def pixel_forward_rate(unet_config: dict, height: int, width: int, device: torch.device,
                       dtype: torch.dtype) -> float:
    """FLOP/s of the pixel prior's forward pass on `device`, timed on one frame of at most PROBE_SIDE² pixels
    with random weights (a generator of its own: the global random state is left alone)."""
    from diffusers import UNet2DModel
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    with torch.device("meta"):
        unet = UNet2DModel.from_config(unet_config)
    unet = unet.to_empty(device=device).to(dtype).eval().to(memory_format=torch.channels_last)  # as PixelDenoiser
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in unet.parameters():  # small random weights: uninitialised memory may hold NaNs or denormals
            p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
        for b in unet.buffers():
            b.zero_()
        multiple = 2 ** (len(unet.config.block_out_channels) - 1)
        h, w = (max(multiple, min(side, PROBE_SIDE) // multiple * multiple) for side in (height, width))
        x = torch.randn(1, unet.config.in_channels, h, w, generator=generator).to(device, dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        t = torch.full((1,), 500, dtype=torch.long, device=device)
        with FlopCounterMode(display=False) as counter:  # the warm-up pass counts the work
            unet(x, t)
        passes, started = 0, time.perf_counter()
        while passes < PROBE_PASSES and (passes == 0 or time.perf_counter() - started < PROBE_SECONDS):
            unet(x, t)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            passes += 1
    return counter.get_total_flops() * passes / (time.perf_counter() - started)


_RATES: dict[tuple[str, torch.dtype], float] = {}


def device_flops(device: torch.device, dtype: torch.dtype) -> float:
    """A measured matrix-multiply rate (FLOP/s) of the device in `dtype`, cached per process."""
    key = (str(device), dtype)
    if key not in _RATES:
        n = 2048 if device.type == "cuda" else 512
        a = torch.randn(n, n, device=device, dtype=torch.float32).to(dtype)
        a @ a  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        reps, started = 0, time.perf_counter()
        while time.perf_counter() - started < 0.05 or reps < 2:
            a @ a
            reps += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        _RATES[key] = 2 * n ** 3 * reps / (time.perf_counter() - started)
    return _RATES[key]


@dataclass
class Estimate:
    device: str
    dtype: str
    width: int
    height: int
    window_frames: int
    weights_gib: float
    activations_gib: float
    clip_gib: float
    memory_gib: float
    tflop_per_frame: float
    device_tflops: float    # the rate the time assumes: measured on the network, or a GEMM rate × EFFICIENCY
    seconds_per_frame: float
    rate_from: str = "GEMM"  # "forward pass" (the network itself, timed) or "GEMM" (× EFFICIENCY)

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        return (f"estimate on {self.device} ({self.dtype}), {self.width}x{self.height}, {self.window_frames} frames "
                f"per chunk: ~{self.memory_gib:.2f} GiB peak (weights {self.weights_gib:.2f}, activations "
                f"{self.activations_gib:.2f}, clip {self.clip_gib:.2f}); ~{self.seconds_per_frame:.3g} s per frame "
                f"({self.tflop_per_frame:.3g} TFLOP at ~{self.device_tflops:.3g} TFLOP/s, {self.rate_from})")


def _digits(value: float, significant: int = 4) -> float:
    return float(f"{value:.{significant}g}")


def estimate(cost: NetworkCost | None, *, height: int, width: int, window_frames: int, unet_passes: float,
             vae_passes: float, device: torch.device, dtype: torch.dtype, rate: float | None = None) -> Estimate:
    """Peak memory of one chunk and time per output frame; `unet_passes` / `vae_passes` per frame
    (steps × CFG passes, inversion included; decode + encode pairs). `rate`: the network's own measured
    FLOP/s (`pixel_forward_rate`); without it, the device's GEMM rate × EFFICIENCY."""
    clip = CG_VECTORS * window_frames * 3 * height * width * 4
    flops = 0.0 if cost is None else cost.unet_flops * unet_passes + cost.vae_flops * vae_passes
    measured = rate is not None
    rate = rate if measured else (device_flops(device, dtype) * EFFICIENCY if flops else 1.0)
    weights, acts = (cost.weights, cost.activations) if cost is not None else (0, 0)
    return Estimate(str(device), str(dtype).replace("torch.", ""), width, height, window_frames,
                    round(weights / GIB, 3), round(acts / GIB, 3), round(clip / GIB, 3),
                    round((weights + acts + clip) / GIB, 3), _digits(flops / 1e12), _digits(rate / 1e12),
                    round(flops / rate, 4) if flops else 0.0, "forward pass" if measured else f"GEMM × {EFFICIENCY}")
