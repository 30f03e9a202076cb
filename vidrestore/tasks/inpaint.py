"""inpaint: fill missing pixels given by a mask (image, video or folder) or rectangles.

Solvers start from the known pixels propagated into the holes along optical
flow from the other frames of the window (:mod:`vidrestore.temporal.propagation`),
the rest filled by Telea; known pixels are kept exactly. With
`trust_propagated`, pixels another frame shows join the measurements, so the
prior only invents what no frame shows. `evaluate` compares with OpenCV's
Telea and Navier-Stokes inpainting, per frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from vidrestore import baselines
from vidrestore import operators as ops
from vidrestore.errors import InputError, UsageError
from vidrestore.tasks.base import Degradation, Task, TaskOption, register
from vidrestore.temporal.propagation import propagate_known

VIDEO_MASK_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm")


@dataclass(frozen=True)
class InpaintOptions(Degradation):
    mask: str | None = None        # image, video or folder; non-zero = missing
    boxes: tuple[str, ...] = ()    # X,Y,W,H rectangles
    dilate: int = 0                # grow the mask by N pixels
    trust_propagated: bool = True  # pixels another frame shows along the flow are kept, not re-sampled

    def validate(self) -> None:
        super().validate()
        if self.dilate < 0:
            raise UsageError(f"degradation.dilate must be >= 0, got {self.dilate}")
        for spec in self.boxes:
            parse_box(spec)

    def input_files(self) -> list[str]:
        return [self.mask] if self.mask else []

    def check_complete(self) -> None:
        if self.mask and self.boxes:
            raise UsageError("give either --mask or --box, not both")
        if not self.mask and not self.boxes:
            raise UsageError("inpaint needs --mask PATH or at least one --box X,Y,W,H")


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


def load_mask_source(options: InpaintOptions, width: int, height: int, frame_count: int) -> MaskSource:
    from vidrestore.io import probe

    if options.boxes:
        missing = np.zeros((height, width), dtype=bool)
        for spec in options.boxes:
            x, y, w, h = parse_box(spec)
            if x >= width or y >= height:
                raise UsageError(f"--box {spec!r} lies outside the {width}x{height} frame")
            missing[y:y + h, x:x + w] = True
        return MaskSource(static=missing, dilate=options.dilate)
    path = Path(options.mask)
    if not path.exists():
        raise InputError(f"{path}: mask not found")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    if image is not None and path.suffix.lower() not in VIDEO_MASK_SUFFIXES:
        if image.ndim == 3:
            image = image[..., :3].max(axis=2)
        if image.shape[:2] != (height, width):
            raise InputError(f"{path}: mask is {image.shape[1]}x{image.shape[0]}, video is {width}x{height}")
        return MaskSource(static=image > 0, dilate=options.dilate)
    info = probe(path)
    if (info.width, info.height) != (width, height):
        raise InputError(f"{path}: mask is {info.width}x{info.height}, video is {width}x{height}")
    if info.frame_count != frame_count:
        raise InputError(f"{path}: mask has {info.frame_count} frames, video has {frame_count}")
    return MaskSource(path=path, dilate=options.dilate)


def inpaint_initial_estimate(y: torch.Tensor, known: torch.Tensor, *, with_seen: bool = False,
                             **propagation) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Known pixels exact; holes from other frames along the flow, then Telea for what none shows.

    With `with_seen`, also returns the mask (F, 1, H, W) of pixels that are known
    or were seen in another frame (everything but the Telea fill).
    """
    known = known.to(y.device, y.dtype)
    filled, have = propagate_known(y, known, **propagation)
    if bool((have < 1).any()):
        filled = baselines.inpaint_classical(filled, have < 0.5, "telea").to(y)
    known = known.expand(y.shape[0], *known.shape[1:])
    estimate = (known * y + (1 - known) * filled).clamp(0, 1)
    return (estimate, torch.maximum(have.to(y), known.amax(1, keepdim=True))) if with_seen else estimate


@register
class Inpaint(Task):
    name = "inpaint"
    help = "Fill missing regions of a video."
    example = "vidrestore inpaint clip.mp4 --box 40,30,64,48 -o clip_filled.mp4"
    Options = InpaintOptions
    cli_options = (
        TaskOption("mask", ("--mask",), "Mask image (every frame), video or folder (per frame); non-zero = missing.",
                   Path),
        TaskOption("boxes", ("--box",), "Missing rectangle X,Y,W,H in pixels (repeatable).", multiple=True),
        TaskOption("dilate", ("--dilate",), "Grow the mask by N pixels.", int),
    )
    unknown_header = "PSNR dB (hole)"
    baselines = ("telea", "navier-stokes")

    def __init__(self, options: InpaintOptions, width: int, height: int, frame_count: int, source: str = "input"):
        super().__init__(options, width, height, frame_count, source)
        self.masks = load_mask_source(options, width, height, frame_count)

    def frame_streams(self) -> dict[str, Path]:
        return {"mask": self.masks.path} if self.masks.path is not None else {}

    def operator(self, streams=None) -> ops.LinearOperator:
        return ops.Mask(self.masks.known((streams or {}).get("mask")))

    def initial_estimate(self, y, operator):
        return inpaint_initial_estimate(y, operator.known)

    def window_problem(self, y, operator):
        if not self.options.trust_propagated:
            return super().window_problem(y, operator)
        estimate, seen = inpaint_initial_estimate(y, operator.known, with_seen=True)
        seen = (seen > 0.5).to(y)
        return seen * estimate, ops.Mask(seen), estimate

    def keep_known(self, x, y, operator):
        known = operator.known.to(x)
        return known * y + (1 - known) * x

    def measured(self, y, operator):
        return operator.A(y)  # pixels inside the holes are not measurements

    def unknown(self, operator, frames, height, width):
        return (1 - operator.known).amax(1, keepdim=True).expand(frames, 1, height, width)

    def run_baseline(self, name, y, operator, truth):
        if name in self.baselines:
            return baselines.inpaint_classical(y, 1 - operator.known, "telea" if name == "telea" else "ns")
        return super().run_baseline(name, y, operator, truth)
