"""Where a run computes: the device, the dtype, how much memory there is, and how much was used."""
from __future__ import annotations

import resource
from pathlib import Path

import torch

from vidrestore.errors import DeviceError

#: bytes of UNet2DModel activations per pixel and base channel, inference without gradients: the embedded model
#: peaked at 61 (fp32) and 33 (bf16) for 4 frames of 704x576
ACTIVATION_BYTES_PER_PIXEL_CHANNEL = 64
#: on CPU, pixels per network call: more spills the caches (bf16, embedded model, s / frame at 704x576: one frame
#: per call 1.64, four 2.43, scripts/bench_throughput.py --batch; at 160x128 eight per call is still the fastest)
CPU_PIXELS_PER_CALL = 512 * 1024
#: share of the free memory the denoiser's activations may take
TILE_MEMORY_SHARE = 0.5
FALLBACK_RAM = 8 * 1024 ** 3


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


def cpu_has_bf16() -> bool:
    """Whether oneDNN computes bf16 natively on this CPU (AVX512-BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The prior's compute dtype. `auto`: bf16 on a CPU that computes it natively (the embedded UNet's
    forward pass runs 3x faster than fp32 at 704x576, PSNR within 0.01 dB; docs/benchmarks.md), else fp32."""
    if device.type == "cpu":
        # fp16 convolutions are slow on CPU, and bf16 is emulated (slow) without native support
        return torch.bfloat16 if name in ("auto", "bf16") and cpu_has_bf16() else torch.float32
    return {"auto": torch.float32, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def prior_dtype(dtype: torch.dtype, device: torch.device, kind: str) -> torch.dtype:
    """The dtype a prior of `kind` ("pixel", "sd", "sdxl") computes in: latent pipelines stay fp32 on CPU (bf16 is
    measured for the pixel prior only; on the tiny test pipeline it moved frames by up to 13 levels between
    micro-batch sizes)."""
    return torch.float32 if device.type == "cpu" and kind != "pixel" else dtype


def frames_per_call(micro_batch: int, height: int, width: int, device: torch.device) -> int:
    """Frames per network call: `micro_batch`, fewer on CPU for large frames (cache-sized calls run faster)."""
    if device.type != "cpu":
        return micro_batch
    return max(1, min(micro_batch, CPU_PIXELS_PER_CALL // (height * width)))


def auto_tile(height: int, width: int, micro_batch: int, device: torch.device, base_channels: int) -> int | None:
    """A tile size whose activations fit in half the free memory, or None when whole frames fit."""
    micro_batch = frames_per_call(micro_batch, height, width, device)
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else available_ram()
    budget = free * TILE_MEMORY_SHARE / (micro_batch * ACTIVATION_BYTES_PER_PIXEL_CHANNEL * base_channels)
    if height * width <= budget:
        return None
    side = int(budget ** 0.5)
    return max(64, side - side % 64)


def available_ram() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return FALLBACK_RAM


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
