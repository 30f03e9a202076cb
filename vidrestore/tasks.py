"""From a resolved config to the degradation operator of each task, and where solvers start.

superres: box/bicubic downsampling; deblur: spatial kernel and/or temporal
frame averaging; inpaint: a static or per-frame mask; interpolate: temporal
subsampling. The pipeline asks for the operator of each window of frames.

Initial estimates (`Task.initial_estimate`), where the classical solver and
the part-way diffusion schedules (`sampler.start_t` < 1000) start:

* superres: the operator's bicubic upsampling;
* inpaint: known pixels propagated into the holes along optical flow from the
  other frames of the window (:mod:`vidrestore.temporal.propagation`), the rest
  filled by Telea; known pixels exact;
* deblur: Tikhonov-regularised temporal deconvolution (frame averaging) and
  Wiener deconvolution per frame (spatial kernel);
* interpolate: DIS-flow warps of both neighbours along quadratic trajectories,
  read bicubically, with occlusion-aware blending
  (:func:`vidrestore.baselines.interpolate_flow_midpoint`); input frames exact;
  across a scene cut the nearer input frame is repeated instead of morphing.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from vidrestore import baselines
from vidrestore import operators as ops
from vidrestore.config import RunConfig
from vidrestore.errors import InputError, UsageError
from vidrestore.temporal import detect_scene_cuts
from vidrestore.temporal.propagation import propagate_known

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
    from vidrestore.io import probe

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
        """Where solvers start, in [0, 1] (see the module docstring for each task)."""
        if self.cfg.task == "interpolate":
            return interpolate_initial_estimate(y, self.temporal_factor)
        if self.cfg.task == "inpaint" and hasattr(operator, "known"):
            return inpaint_initial_estimate(y, operator.known)
        if self.cfg.task == "deblur":
            return deblur_initial_estimate(y, operator)
        return operator.initial_estimate(y).clamp(0, 1)

    def window_problem(self, y: torch.Tensor, operator: ops.LinearOperator
                       ) -> tuple[torch.Tensor, ops.LinearOperator, torch.Tensor]:
        """(measurements, operator, initial estimate) the solver works on for one window.

        With `degradation.trust_propagated`, what the flow already determines
        joins the measurements, so the prior only invents what it cannot: for
        inpainting, pixels that another frame shows along the flow; for
        interpolation, invented pixels on which the warps of both neighbours
        agree. The output is still checked against the true measurements.
        """
        trust = self.cfg.degradation.trust_propagated
        if self.cfg.task == "inpaint" and trust and hasattr(operator, "known"):
            estimate, seen = inpaint_initial_estimate(y, operator.known, with_seen=True)
            seen = (seen > 0.5).to(y)
            return seen * estimate, ops.Mask(seen), estimate
        if self.cfg.task == "interpolate" and trust:
            estimate, agreed = interpolate_initial_estimate(y, self.temporal_factor, with_agreed=True)
            return agreed * estimate, ops.Mask(agreed), estimate
        return y, operator, self.initial_estimate(y, operator)

    def keep_known(self, x: torch.Tensor, y: torch.Tensor, operator: ops.LinearOperator) -> torch.Tensor:
        """Put measured pixels back exactly: inpaint keeps every known pixel, interpolate every input frame."""
        if self.cfg.task == "inpaint":
            known = operator.known.to(x) if hasattr(operator, "known") else None
            return x if known is None else known * y + (1 - known) * x
        if self.cfg.task == "interpolate":
            x = x.clone()
            x[:: self.temporal_factor] = y
        return x

    def measured(self, y: torch.Tensor, operator: ops.LinearOperator) -> torch.Tensor:
        """What of the input is a measurement: the pixels inside inpainting holes are not (A y keeps the rest)."""
        return operator.A(y) if self.cfg.task == "inpaint" else y

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


# ----------------------------------------------------------------------------- initial estimates

#: Wiener balance (noise-to-signal ratio) of the deblur initial estimate: 8-bit input has
#: quantisation noise; after a temporal deconvolution (which amplifies it) a larger one
WIENER_BALANCE = 1e-3
WIENER_BALANCE_AFTER_TEMPORAL = 1e-2
#: colour difference (in [0, 1]) below which the two flow warps of an invented pixel agree
FLOW_AGREEMENT = 0.1
#: motion model of the invented frames (see `interpolate_flow_midpoint`)
INTERPOLATION_MOTION = "quadratic"
#: weight of ‖x − y‖² in the temporal (frame-averaging) deconvolution of the deblur initial estimate
TEMPORAL_TIKHONOV = 3e-3


def interpolate_initial_estimate(y: torch.Tensor, factor: int, cuts: list[int] | None = None, *,
                                 with_agreed: bool = False):
    """N input frames -> (N−1)·factor+1: DIS-flow warps of the neighbours, input frames kept exactly.

    The neighbours are read with bicubic sampling: at the half-pixel offsets a
    midpoint usually lands on, bilinear reads blur the frame (2.9 dB lower PSNR
    on the invented frames of scripts/bench_interpolate.py). Each pixel follows
    the quadratic trajectory through three frames where the flows allow
    (`INTERPOLATION_MOTION`; see :mod:`vidrestore.temporal.trajectory`).

    Between input frames i−1 and i where a shot starts (`cuts`, default
    :func:`~vidrestore.temporal.detect_scene_cuts` on `y`), the invented frames
    repeat the nearer input frame (the earlier one at exactly half-way) instead
    of morphing between two unrelated images.

    With `with_agreed`, also returns the mask (F_out, 1, H, W) of pixels both
    neighbours agree on (see `interpolate_flow_midpoint`; input frames and the
    repeats at a cut are 1).
    """
    y = y.clamp(0, 1)
    if factor == 1 or y.shape[0] < 2:
        return (y.clone(), torch.ones_like(y[:, :1])) if with_agreed else y.clone()
    cuts = detect_scene_cuts(y) if cuts is None else cuts
    x, agreed = baselines.interpolate_flow_midpoint(y, factor, sampling="bicubic", agreement=FLOW_AGREEMENT,
                                                    motion=INTERPOLATION_MOTION, cuts=cuts)
    x, agreed = x.to(y), agreed.to(y)
    x[::factor] = y
    for cut in cuts:
        for j in range(1, factor):
            x[(cut - 1) * factor + j] = y[cut - 1] if j <= factor / 2 else y[cut]
            agreed[(cut - 1) * factor + j] = 1  # a repeat is what we want there: keep it clean
    return (x, agreed) if with_agreed else x


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


def _temporal_deconvolve(y: torch.Tensor, op: ops.TemporalBlur, weight: float) -> torch.Tensor:
    """argmin ‖M x − y‖² + weight·‖x − y‖² per pixel, M the frames × frames blur matrix.

    Anchored at y rather than at 0: the columns of M do not sum to 1 at the clip's
    ends, and a pull towards 0 would darken the frames. The solution is one
    frames × frames matrix (solved in float64) applied to the clip.
    """
    m = op.matrix(y.shape[0]).to(torch.float64)
    eye = torch.eye(m.shape[0], dtype=torch.float64)
    g = torch.linalg.solve(m.T @ m + weight * eye, m.T + weight * eye).to(y)
    return torch.einsum("fg,g...->f...", g, y)


def deblur_initial_estimate(y: torch.Tensor, operator: ops.LinearOperator, *, balance: float | None = None,
                            temporal_weight: float = TEMPORAL_TIKHONOV) -> torch.Tensor:
    """Regularised inverses of each blur: temporal deconvolution, then per-frame Wiener (they commute).

    `balance` defaults to WIENER_BALANCE, or WIENER_BALANCE_AFTER_TEMPORAL when a
    frame-averaging blur was undone first.
    """
    parts = operator.ops if isinstance(operator, ops.Compose) else (operator,)
    temporal = [op for op in parts if isinstance(op, ops.TemporalBlur)]
    if balance is None:
        balance = WIENER_BALANCE_AFTER_TEMPORAL if temporal else WIENER_BALANCE
    x = y
    for op in temporal:
        x = _temporal_deconvolve(x, op, temporal_weight)
    for op in parts:
        if isinstance(op, ops.Blur):
            kh, kw = op.kernel.shape
            if kh <= 2 * y.shape[2] and kw <= 2 * y.shape[3]:  # Wiener's FFT needs the kernel to fit
                x = baselines.wiener_deconvolve(x.clamp(0, 1), op.kernel.numpy(), balance).to(y)
        elif not isinstance(op, ops.TemporalBlur):
            x = op.initial_estimate(x)
    return x.clamp(0, 1)


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
