"""The one place where frames change representation.

I/O works with ``uint8`` numpy batches ``(B, H, W, 3)`` (RGB); the rest of the
package works with ``float32`` tensors ``(B, 3, H, W)`` in ``[0, 1]``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["quantize", "to_tensor", "to_uint8"]


def to_tensor(batch: np.ndarray) -> torch.Tensor:
    """``uint8 (B, H, W, 3)`` -> contiguous ``float32 (B, 3, H, W)`` in ``[0, 1]`` (CPU)."""
    array = np.asarray(batch)
    if array.dtype != np.uint8 or array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(
            f"to_tensor expects uint8 (B, H, W, 3), got {array.dtype} {tuple(array.shape)}"
        )
    if not array.flags.writeable:  # torch.from_numpy warns on read-only memory
        array = array.copy()
    tensor = torch.from_numpy(array).permute(0, 3, 1, 2)
    return tensor.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` tensor in ``[0, 1]`` -> ``uint8 (B, H, W, 3)``: clip, scale, round.

    NaNs become 0. Works for tensors on any device and of any float dtype.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"to_uint8 expects a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise ValueError(f"to_uint8 expects (B, 3, H, W), got {tuple(tensor.shape)}")
    t = tensor.detach().to(device="cpu", dtype=torch.float32)
    t = torch.nan_to_num(t, nan=0.0).clamp_(0.0, 1.0).mul_(255.0).round_()
    return t.to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def quantize(clip: torch.Tensor) -> torch.Tensor:
    """Round a ``[0, 1]`` clip to the 8-bit levels a video file holds (``to_tensor(to_uint8(x))`` in place)."""
    return (clip.clamp(0, 1) * 255).round() / 255
