"""interpolate: temporal super-resolution; the input keeps every k-th frame of the unknown video.

N input frames become (N−1)·k+1 at k times the frame rate. Solvers start
from DIS-flow warps of both neighbours along quadratic trajectories, read
bicubically, with occlusion-aware blending
(:func:`vidrestore.baselines.interpolate_flow_midpoint`); input frames are kept
exactly; across a scene cut the nearer input frame is repeated instead of
morphing. With `trust_propagated`, invented pixels both neighbours' warps
agree on join the measurements. `--large-motion PX` (default 8) fills the flow
of the bands a fast pan moves into or out of the frame from their neighbours.
`evaluate` compares with frame blending and DIS-flow midpoints (bilinear and
bicubic reads), and with RIFE v4 / v3 where installed (:mod:`vidrestore.peers`,
imported only then).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vidrestore import baselines
from vidrestore import operators as ops
from vidrestore.errors import InputError, UsageError
from vidrestore.tasks.base import Degradation, Task, TaskOption, register
from vidrestore.temporal import detect_scene_cuts

FACTORS = (2, 4, 8)
#: peer methods (evaluate's names) and the RIFE version each runs
RIFE = {"rife": "v4", "rife-v3": "v3"}
#: colour difference (in [0, 1]) below which the two flow warps of an invented pixel agree
FLOW_AGREEMENT = 0.1
#: motion model of the invented frames (see `interpolate_flow_midpoint`)
INTERPOLATION_MOTION = "quadratic"


@dataclass(frozen=True)
class InterpolateOptions(Degradation):
    factor: int = 2                # frame-rate factor
    trust_propagated: bool = True  # invented pixels both neighbours' flow warps agree on are kept, not re-sampled
    large_motion: float = 8.0      # px: frame pairs moving this much get their unreliable flow filled (0: off)

    def validate(self) -> None:
        super().validate()
        if self.factor not in FACTORS:
            raise UsageError(f"unsupported factor x{self.factor}: choose one of {', '.join(map(str, FACTORS))}")
        if not math.isfinite(self.large_motion) or self.large_motion < 0:
            raise UsageError(f"degradation.large_motion must be a non-negative number of pixels, "
                             f"got {self.large_motion!r}")


def interpolate_initial_estimate(y: torch.Tensor, factor: int, cuts: list[int] | None = None, *,
                                 with_agreed: bool = False, large_motion: float = 0.0):
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

    `large_motion` > 0 (pixels between input frames; the task default is 8): in pairs moving
    that much, flow that fails the forward-backward check or leaves the frame
    is filled from its reliable neighbours, after the pair's dominant shift is
    taken out (see :mod:`vidrestore.temporal.large_motion`).

    With `with_agreed`, also returns the mask (F_out, 1, H, W) of pixels both
    neighbours agree on (see `interpolate_flow_midpoint`; input frames and the
    repeats at a cut are 1).
    """
    y = y.clamp(0, 1)
    if factor == 1 or y.shape[0] < 2:
        return (y.clone(), torch.ones_like(y[:, :1])) if with_agreed else y.clone()
    cuts = detect_scene_cuts(y) if cuts is None else cuts
    x, agreed = baselines.interpolate_flow_midpoint(y, factor, sampling="bicubic", agreement=FLOW_AGREEMENT,
                                                    motion=INTERPOLATION_MOTION, cuts=cuts, fill_above=large_motion)
    x, agreed = x.to(y), agreed.to(y)
    x[::factor] = y
    for cut in cuts:
        for j in range(1, factor):
            x[(cut - 1) * factor + j] = y[cut - 1] if j <= factor / 2 else y[cut]
            agreed[(cut - 1) * factor + j] = 1  # a repeat is what we want there: keep it clean
    return (x, agreed) if with_agreed else x


@register
class Interpolate(Task):
    name = "interpolate"
    help = "Raise the frame rate k times by inventing the frames in between."
    example = "vidrestore interpolate clip.mp4 -x 2 -o clip_2x_fps.mp4"
    Options = InterpolateOptions
    cli_options = (
        TaskOption("factor", ("-x", "--factor"), "Frame-rate factor: 2, 4 or 8 (default 2). N frames become (N-1)*k+1.",
                   int),
        TaskOption("large_motion", ("--large-motion",),
                   "Fast motion: in frame pairs moving at least this many pixels, take out the global shift before "
                   "the flow and fill the flow of regions that enter or leave the frame (default 8; 0: off).", float),
    )
    unknown_header = "PSNR dB (invented)"
    baselines = ("blend", "flow-midpoint", "flow-midpoint-bicubic", *RIFE)
    peer_baselines = tuple(RIFE)
    # the task's own preset is the classical flow estimate: evaluate runs its diffusion variant
    evaluate_preset = "interpolate-diffusion"
    min_frames = 2

    def __init__(self, options: InterpolateOptions, width: int, height: int, frame_count: int,
                 source: str = "input"):
        super().__init__(options, width, height, frame_count, source)
        if frame_count < 2:
            raise InputError(f"{source}: interpolation needs at least 2 frames, got {frame_count}")
        self.temporal_factor = options.factor

    def operator(self, streams=None) -> ops.LinearOperator:
        return ops.TemporalSubsample(self.options.factor)

    def initial_estimate(self, y, operator):
        return interpolate_initial_estimate(y, self.temporal_factor, large_motion=self.options.large_motion)

    def window_problem(self, y, operator):
        if not self.options.trust_propagated:
            return super().window_problem(y, operator)
        estimate, agreed = interpolate_initial_estimate(y, self.temporal_factor, with_agreed=True,
                                                        large_motion=self.options.large_motion)
        return agreed * estimate, ops.Mask(agreed), estimate

    def keep_known(self, x, y, operator):
        x = x.clone()
        x[:: self.temporal_factor] = y
        return x

    @classmethod
    def fit_reference(cls, options: InterpolateOptions, truth: torch.Tensor, source: str) -> torch.Tensor:
        k = options.factor
        truth = truth[: (truth.shape[0] - 1) // k * k + 1]
        if truth.shape[0] < 2:
            raise InputError(f"{source}: interpolation x{k} needs at least {k + 1} frames")
        return truth

    @classmethod
    def input_geometry(cls, options: InterpolateOptions, frames: int, height: int, width: int):
        return (frames - 1) // options.factor + 1, height, width

    def unknown(self, operator, frames, height, width):
        unknown = torch.ones(frames, 1, 1, 1)
        unknown[:: self.temporal_factor] = 0
        return unknown

    def run_baseline(self, name, y, operator, truth):
        if name == "blend":
            return baselines.interpolate_blend(y, self.options.factor)
        if name in ("flow-midpoint", "flow-midpoint-bicubic"):  # textbook bilinear reads, or bicubic
            sampling = "bicubic" if name.endswith("bicubic") else "bilinear"
            return baselines.interpolate_flow_midpoint(y, self.options.factor, sampling=sampling)
        if name in RIFE:
            from vidrestore import peers

            return peers.rife_interpolate(y, self.options.factor, RIFE[name])
        return super().run_baseline(name, y, operator, truth)

    def baseline_note(self, name):
        if name not in RIFE:
            return None
        from vidrestore import peers

        how = ("every in-between time j/k in one pass" if RIFE[name] == "v4"
               else "midpoints only, recursively (x4: the midpoint, then the midpoints of each half)")
        return f"{peers.PEERS[name]}: {how}; no scene-cut handling"
