"""denoise: y = x + n, n white Gaussian noise of std σ (A = identity, the frames the batch).

`--sigma auto|VALUE` is the input's noise std in [0, 1] units (the same
number as `--sigma-y`, which every task has; `--sigma` wins, and both given
as different numbers is a usage error). `auto` (the default) estimates it
once per run from the input (`vidrestore.operators.noise.estimate_sigma`).

The prior denoises the way SDEdit edits: the noisy input, scaled by √ᾱ_t, is
already a sample of x_t at the timestep whose noise matches σ, so the
schedule's first step samples there (`degradation.start_scale` > 0: the
timestep whose noise σ_t = √(1 − ᾱ_t) / (2√ᾱ_t) reaches start_scale · σ; the
start adds only the noise the input lacks, `Task.start_noise`) and runs down
to t = 0; every step's data consistency is the proximal step
(x̂0 γ_t + y) / (1 + γ_t), with γ_t = max(1, sampler.noise_weight · σ² / σ_t²)
(`solve.noise_gamma`): early steps keep what the input says, late ones the
prior. Equivariance guidance and shared / warped noise work across frames as
in the other tasks (presets).

Temporal fusion (`degradation.fuse_radius` > 0; the presets: 4 and 3): before
sampling, each frame is averaged with its flow-aligned neighbours up to that
many frames away, where the flow is trusted and the warped neighbour agrees
(`vidrestore.temporal.fusion`). A pixel fused from n measurements has 1/n of
the noise's variance, so the window's problem becomes n(p) unit-noise
measurements of each pixel with mean ȳ (A = diag(√n), `operators.Diagonal`),
the schedule starts at the fused noise level σ·√mean(1/n) instead of σ, and
every step's data consistency weighs ȳ by its own n(p). This is the clip's
own evidence, which a prior of any size adds to (VBM3D's lesson).

`evaluate --task denoise --sigma S` adds noise of std S (seeded) to the
reference; the baselines are per-frame BM3D (`bm3d`, a dev dependency) at the
true σ, and OpenCV's multi-frame non-local means
(`cv2.fastNlMeansDenoisingColoredMulti`, 5-frame temporal window) with h
chosen per clip from a grid around σ with the ground truth (an oracle-tuned
baseline, like deblur's Wiener).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from vidrestore import metrics as M
from vidrestore import operators as ops
from vidrestore.errors import UsageError
from vidrestore.io import quantize
from vidrestore.operators.noise import estimate_sigma, timestep_for_sigma
from vidrestore.tasks.base import AUTO, Degradation, Task, TaskOption, check_noise_level, register
from vidrestore.temporal import detect_scene_cuts
from vidrestore.temporal.fusion import fuse_aligned

#: multi-frame NLM: frames in the temporal window (odd; fewer at the clip's ends), patch and search sizes
NLM_WINDOW = 5
NLM_TEMPLATE = 7
NLM_SEARCH = 21
#: h / σ (σ in 8-bit levels) tried per clip by the NLM baseline; the best PSNR against the reference wins
NLM_H_FACTORS = (0.3, 0.45, 0.6, 0.8, 1.0, 1.2)


@dataclass(frozen=True)
class DenoiseOptions(Degradation):
    sigma: float | str | None = None   # the input's noise std in [0, 1] units, or "auto"; None: sigma_y's
    start_scale: float = 0.0           # > 0: start the schedule where σ_t = start_scale · σ; 0: sampler.start_t
    fuse_radius: int = 0               # > 0: average each frame with its flow-aligned neighbours this far away
    fuse_tolerance: float = 0.5        # how far (× σ) a warped neighbour may differ locally and still count

    def validate(self) -> None:
        super().validate()
        check_noise_level("degradation.sigma", self.sigma)
        if self.sigma is not None and self.sigma != AUTO and not self.sigma < 1:
            raise UsageError(f"degradation.sigma must be below 1 (the pixel range), got {self.sigma}")
        if self.sigma is not None and self.sigma_y != AUTO and self.sigma != self.sigma_y:
            raise UsageError(f"--sigma {self.sigma} and --sigma-y {self.sigma_y} disagree (give one of them)")
        if isinstance(self.start_scale, bool) or not 0 <= self.start_scale < 100:
            raise UsageError(f"degradation.start_scale must be in [0, 100), got {self.start_scale}")
        if isinstance(self.fuse_radius, bool) or not isinstance(self.fuse_radius, int) or self.fuse_radius < 0:
            raise UsageError(f"degradation.fuse_radius must be a whole number of frames >= 0, got {self.fuse_radius!r}")
        if isinstance(self.fuse_tolerance, bool) or not 0 < self.fuse_tolerance < 100:
            raise UsageError(f"degradation.fuse_tolerance must be in (0, 100), got {self.fuse_tolerance!r}")

    @property
    def noise_level(self) -> float | str:
        return self.sigma if self.sigma is not None else self.sigma_y

    def with_noise_level(self, sigma: float) -> "DenoiseOptions":
        return replace(self, sigma=None, sigma_y=float(sigma))


def nlm_multi(y: torch.Tensor, h: float, window: int = NLM_WINDOW) -> torch.Tensor:
    """OpenCV's multi-frame non-local means over `window` frames centred on each frame (fewer at the ends)."""
    import cv2

    frames = [np.ascontiguousarray(f) for f in (quantize(y).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)]
    n = len(frames)
    out = []
    for i in range(n):
        size = min(window, 2 * min(i, n - 1 - i) + 1)  # OpenCV needs the window centred on the frame
        out.append(cv2.fastNlMeansDenoisingColoredMulti(frames, i, size, None, h, h, NLM_TEMPLATE, NLM_SEARCH))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


def bm3d_frames(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """BM3D (colour, per frame) at noise std `sigma` ([0, 1] units)."""
    try:
        import bm3d
    except ImportError:
        raise UsageError("the bm3d baseline needs the bm3d package (pip install bm3d, or the dev extras)") from None
    frames = y.permute(0, 2, 3, 1).numpy().astype(np.float64)
    out = [np.clip(bm3d.bm3d_rgb(f, max(sigma, 1e-4)), 0, 1) for f in frames]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float()


@register
class Denoise(Task):
    name = "denoise"
    help = "Remove white Gaussian noise (sensor noise) with the diffusion prior across frames."
    example = "vidrestore denoise noisy.mp4 --sigma auto -o clean.mp4"
    Options = DenoiseOptions
    cli_options = (
        TaskOption("sigma", ("--sigma",), "Noise std of the input in the 0-1 pixel range (10/255 = 0.039), or "
                   "'auto' (default: estimated from the input). Same as --sigma-y."),
    )
    baselines = ("input", "bm3d", "nlm")

    def operator(self, streams=None) -> ops.LinearOperator:
        return ops.Identity()

    @property
    def min_overlap(self) -> int:
        """Windows share at least the fusion radius, so a kept frame near a window's edge is cross-faded with
        one that had neighbours on both sides."""
        return max(super().min_overlap, self.options.fuse_radius)

    def window_problem(self, y, operator):
        """With temporal fusion: (√n ȳ, diag(√n), ȳ) for the fused frames ȳ and measurement counts n."""
        sigma, radius = self.options.noise_level, self.options.fuse_radius
        if radius <= 0 or sigma == AUTO or sigma <= 0:
            return super().window_problem(y, operator)
        fused, count = fuse_aligned(y, float(sigma), radius, tolerance=self.options.fuse_tolerance,
                                    cuts=detect_scene_cuts(y))
        root = count.sqrt()
        return root * fused, ops.Diagonal(root, name=f"fused(radius {radius})"), fused.clamp(0, 1)

    def start_noise(self, sigma_y: float, operator: ops.LinearOperator | None = None) -> float:
        """The noise the initial estimate carries: σ, or for fused frames σ · √mean(1/n)."""
        if type(operator) is ops.Diagonal:  # window_problem's weights √n (a Mask is no count)
            return sigma_y * float(operator.weights.pow(-2).mean()) ** 0.5
        return sigma_y

    def start_timestep(self, sigma_y: float, alphas_cumprod: torch.Tensor,
                       operator: ops.LinearOperator | None = None) -> int | None:
        scale = self.options.start_scale
        if scale <= 0 or sigma_y <= 0:
            return None
        return max(timestep_for_sigma(alphas_cumprod, self.start_noise(sigma_y, operator), scale), 1)

    def _sigma(self, y: torch.Tensor) -> float:
        """The noise std a baseline is told: the options' number, or the estimate from `y`."""
        level = self.options.noise_level
        return float(level) if level != AUTO else estimate_sigma(y)[0]

    def run_baseline(self, name, y, operator, truth):
        if name == "input":
            return y.clone()
        if name == "bm3d":
            return bm3d_frames(y, self._sigma(y))
        if name == "nlm":
            level = self._sigma(y) * 255
            if level <= 0:
                return y.clone()
            outs = [nlm_multi(y, f * level) for f in NLM_H_FACTORS]
            return max(outs, key=lambda o: M.psnr(quantize(o), truth))
        return super().run_baseline(name, y, operator, truth)

    def summary(self) -> dict:
        level = self.options.noise_level
        return {} if level in (AUTO, 0) else {"sigma": level}
