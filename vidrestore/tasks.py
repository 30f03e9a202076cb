"""From a resolved config to the degradation operator of each task.

superres: box/bicubic downsampling; deblur: spatial kernel and/or temporal
frame averaging; inpaint: a static or per-frame mask; interpolate: temporal
subsampling. The pipeline asks for the operator of each window of frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from vidrestore import operators as ops
from vidrestore.config import RunConfig
from vidrestore.errors import InputError, UsageError

SUPERRES_SCALES = (2, 3, 4, 8)
INTERPOLATE_FACTORS = (2, 4, 8)


def parse_box(spec: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in spec.split(","))
    except ValueError:
        raise UsageError(f"--box {spec!r}: expected X,Y,W,H in pixels, e.g. 10,20,64,48") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise UsageError(f"--box {spec!r}: width and height must be positive and X,Y non-negative")
    return x, y, w, h


def dilate_missing(missing: np.ndarray, pixels: int) -> np.ndarray:
    """Grow a boolean (H, W) missing-mask by `pixels` (elliptic structuring element)."""
    if pixels <= 0:
        return missing
    element = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(missing.astype(np.uint8), element) > 0


@dataclass
class MaskSource:
    """Missing-pixel masks for inpainting: static (image, boxes) or per frame (video, folder)."""

    static: np.ndarray | None = None       # (H, W) bool, True = missing
    path: Path | None = None               # video or folder, one mask per frame
    dilate: int = 0

    def known(self, frames: np.ndarray | None) -> torch.Tensor:
        """The Mask operator's `known` tensor ((F or 1), 1, H, W), 1 = observed."""
        if frames is None:
            missing = dilate_missing(self.static, self.dilate)[None]
        else:
            missing = np.stack([dilate_missing(f.max(axis=2) > 0, self.dilate) for f in frames])
        return torch.from_numpy((~missing).astype(np.float32))[:, None]


def load_mask_source(cfg: RunConfig, width: int, height: int, frame_count: int) -> MaskSource:
    from vidrestore.io import probe, read_frames

    deg = cfg.degradation
    if deg.mask and deg.boxes:
        raise UsageError("give either --mask or --box, not both")
    if deg.boxes:
        missing = np.zeros((height, width), dtype=bool)
        for spec in deg.boxes:
            x, y, w, h = parse_box(spec)
            if x >= width or y >= height:
                raise UsageError(f"--box {spec!r} lies outside the {width}x{height} frame")
            missing[y:y + h, x:x + w] = True
        return MaskSource(static=missing, dilate=deg.dilate)
    if not deg.mask:
        raise UsageError("inpaint needs --mask PATH or at least one --box X,Y,W,H")
    path = Path(deg.mask)
    if not path.exists():
        raise InputError(f"{path}: mask not found")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    if image is not None and path.suffix.lower() not in (".mp4", ".mkv", ".avi", ".mov", ".webm"):
        if image.ndim == 3:
            image = image[..., :3].max(axis=2)
        if image.shape[:2] != (height, width):
            raise InputError(f"{path}: mask is {image.shape[1]}x{image.shape[0]}, video is {width}x{height}")
        return MaskSource(static=image > 0, dilate=deg.dilate)
    info = probe(path)
    if (info.width, info.height) != (width, height):
        raise InputError(f"{path}: mask is {info.width}x{info.height}, video is {width}x{height}")
    if info.frame_count != frame_count:
        raise InputError(f"{path}: mask has {info.frame_count} frames, video has {frame_count}")
    return MaskSource(path=path, dilate=deg.dilate)


@dataclass
class Task:
    """Everything the pipeline needs to know about one task's degradation."""

    cfg: RunConfig
    spatial_scale: int = 1          # output size / input size
    temporal_factor: int = 1        # output frames per input frame interval
    masks: MaskSource | None = None

    @property
    def temporal_radius(self) -> int:
        """Neighbouring frames one measurement depends on (frame-averaging blur only)."""
        temporal = self.cfg.degradation.temporal if self.cfg.task == "deblur" else None
        return len(ops.temporal_kernel(temporal)) // 2 if temporal else 0

    def output_frame_count(self, n_in: int) -> int:
        return (n_in - 1) * self.temporal_factor + 1

    def output_fps(self, fps: Fraction) -> Fraction:
        return fps * self.temporal_factor

    def x_range(self, y_start: int, y_stop: int) -> tuple[int, int]:
        """Restored frames that belong to measurement frames [y_start, y_stop)."""
        k = self.temporal_factor
        return y_start * k, (y_stop - 1) * k + 1

    def initial_estimate(self, y: torch.Tensor, operator: ops.LinearOperator) -> torch.Tensor:
        """Where solvers start: the operator's cheap approximate inverse, in [0, 1]."""
        return operator.initial_estimate(y).clamp(0, 1)

    def keep_known(self, x: torch.Tensor, y: torch.Tensor, operator: ops.LinearOperator) -> torch.Tensor:
        """Put measured pixels back exactly: inpaint keeps every known pixel, interpolate every input frame."""
        if self.cfg.task == "inpaint":
            known = operator.known.to(x) if hasattr(operator, "known") else None
            return x if known is None else known * y + (1 - known) * x
        if self.cfg.task == "interpolate":
            x = x.clone()
            x[:: self.temporal_factor] = y
        return x

    def operator(self, mask_frames: np.ndarray | None = None) -> ops.LinearOperator:
        cfg, deg = self.cfg, self.cfg.degradation
        if cfg.task == "superres":
            cls = ops.BoxDownsample if deg.downsample == "box" else ops.BicubicDownsample
            return cls(deg.scale)
        if cfg.task == "interpolate":
            return ops.TemporalSubsample(deg.factor)
        if cfg.task == "inpaint":
            return ops.Mask(self.masks.known(mask_frames))
        parts = []
        if deg.temporal:
            parts.append(ops.TemporalBlur(ops.temporal_kernel(deg.temporal)))
        if deg.kernel:
            parts.append(ops.Blur(ops.parse_kernel_spec(deg.kernel)))
        return parts[0] if len(parts) == 1 else ops.Compose(*parts)


def make_task(cfg: RunConfig, width: int, height: int, frame_count: int) -> Task:
    deg = cfg.degradation
    if cfg.task == "superres":
        if deg.scale not in SUPERRES_SCALES:
            raise UsageError(f"unsupported scale x{deg.scale}: choose one of {', '.join(map(str, SUPERRES_SCALES))}")
        if deg.downsample not in ("box", "bicubic"):
            raise UsageError(f"unsupported degradation {deg.downsample!r}: choose box or bicubic")
        return Task(cfg, spatial_scale=deg.scale)
    if cfg.task == "interpolate":
        if deg.factor not in INTERPOLATE_FACTORS:
            raise UsageError(f"unsupported factor x{deg.factor}: choose one of "
                             f"{', '.join(map(str, INTERPOLATE_FACTORS))}")
        if frame_count < 2:
            raise InputError(f"{cfg.input}: interpolation needs at least 2 frames, got {frame_count}")
        return Task(cfg, temporal_factor=deg.factor)
    if cfg.task == "inpaint":
        return Task(cfg, masks=load_mask_source(cfg, width, height, frame_count))
    if cfg.task == "deblur":
        if not deg.kernel and not deg.temporal:
            raise UsageError("deblur needs --kernel and/or --temporal")
        task = Task(cfg)
        task.operator()  # validate the kernel specs before any work starts
        return task
    raise UsageError(f"unknown task {cfg.task!r}")


def iter_mask_frames(task: Task, batch: int) -> Iterator[np.ndarray] | None:
    if task.masks is None or task.masks.path is None:
        return None
    from vidrestore.io import read_frames

    return read_frames(task.masks.path, batch)
