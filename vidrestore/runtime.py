"""Where a run computes: the device, the dtype, how much memory there is, and how much was used."""
from __future__ import annotations

import resource
from pathlib import Path

import torch

from vidrestore.errors import DeviceError

#: bytes of UNet2DModel activations per output pixel and base channel (measured order of magnitude)
ACTIVATION_BYTES_PER_PIXEL_CHANNEL = 4 * 48
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


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if device.type == "cpu":
        return torch.float32  # half precision is slow or unsupported for convolutions on CPU
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def auto_tile(height: int, width: int, micro_batch: int, device: torch.device, base_channels: int) -> int | None:
    """A tile size whose activations fit in half the free memory, or None when whole frames fit."""
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
