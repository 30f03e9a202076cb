"""superres: the input is the box (area) or bicubic downsampling of the unknown high-res video.

Solvers start from the operator's bicubic upsampling; `evaluate` compares with
bicubic and Lanczos upscaling, and with Real-ESRGAN where it is installed
(:mod:`vidrestore.peers`, imported only then).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vidrestore import baselines
from vidrestore import operators as ops
from vidrestore.errors import InputError, UsageError
from vidrestore.operators.blind import UPSCALE_RATIO, nyquist_ratio
from vidrestore.tasks.base import Degradation, Task, TaskOption, choose, register

SCALES = (2, 3, 4, 8)
#: peer methods (evaluate's names) and the Real-ESRGAN model each runs
REALESRGAN = {"realesrgan": "general", "realesrgan-anime": "anime"}
DOWNSAMPLERS = {"box": ops.BoxDownsample, "bicubic": ops.BicubicDownsample}


@dataclass(frozen=True)
class SuperresOptions(Degradation):
    scale: int = 4                 # output size / input size
    downsample: str = "box"        # how the input was made: box (area average) | bicubic

    def validate(self) -> None:
        super().validate()
        if self.scale not in SCALES:
            raise UsageError(f"unsupported scale x{self.scale}: choose one of {', '.join(map(str, SCALES))}")
        choose("degradation.downsample", self.downsample, tuple(DOWNSAMPLERS))


@register
class Superres(Task):
    name = "superres"
    help = "Super-resolve a video by 2x-8x."
    example = "vidrestore superres clip.mp4 -x 4 -o clip_x4.mp4"
    Options = SuperresOptions
    cli_options = (
        TaskOption("scale", ("-x", "--scale"), "Upscaling factor: 2, 3, 4 or 8 (default 4).", int),
        TaskOption("downsample", ("--degradation",),
                   "How the input was made from the unknown high-res video: box (area average, default) or bicubic."),
    )
    baselines = ("bicubic", "lanczos", *REALESRGAN)
    peer_baselines = tuple(REALESRGAN)
    deblock_lossy = True  # docs/benchmarks.md, "Real inputs": +0.3 to +0.7 dB on x264 inputs at CRF 23 and 28

    def __init__(self, options: SuperresOptions, width: int, height: int, frame_count: int, source: str = "input"):
        super().__init__(options, width, height, frame_count, source)
        self.spatial_scale = options.scale

    def operator(self, streams=None) -> ops.LinearOperator:
        return DOWNSAMPLERS[self.options.downsample](self.options.scale)

    def inspect_input(self, frames, sigma_y):
        """The input should alias (a box or bicubic downsample of detail has energy up to Nyquist); one with
        almost none near Nyquist is probably an upscale already, and restoring it invents little: a warning."""
        ratio = nyquist_ratio(frames)
        upscaled = ratio is not None and ratio < UPSCALE_RATIO
        found = {"input_check": {"nyquist_ratio": None if ratio is None else round(float(ratio), 5),
                                 "looks_upscaled": bool(upscaled)}}
        if not upscaled:
            return self.options, found, []
        return self.options, found, [f"the input has almost no detail near its Nyquist frequency (ratio {ratio:.4f} "
                                     f"< {UPSCALE_RATIO}): it does not look like a box/bicubic downsample; is it "
                                     "already an upscale?"]

    @classmethod
    def fit_reference(cls, options: SuperresOptions, truth: torch.Tensor, source: str) -> torch.Tensor:
        s = options.scale
        h, w = truth.shape[2] - truth.shape[2] % s, truth.shape[3] - truth.shape[3] % s
        if h == 0 or w == 0:
            raise InputError(f"{source}: {truth.shape[3]}x{truth.shape[2]} is smaller than the scale x{s}")
        return truth[:, :, :h, :w]

    @classmethod
    def input_geometry(cls, options: SuperresOptions, frames: int, height: int, width: int) -> tuple[int, int, int]:
        return frames, height // options.scale, width // options.scale

    def run_baseline(self, name, y, operator, truth):
        if name in REALESRGAN:
            from vidrestore import peers

            return peers.realesrgan_upscale(y, self.options.scale, REALESRGAN[name])
        if name in self.baselines:
            return baselines.upscale(y, self.options.scale, name)
        return super().run_baseline(name, y, operator, truth)

    def baseline_note(self, name):
        if name not in REALESRGAN:
            return None
        from vidrestore import peers

        return (f"{peers.PEERS[name]}; x{self.options.scale} is "
                f"{peers.realesrgan_composition(REALESRGAN[name], self.options.scale)}")
