"""Quality metrics for clips ``(F, C, H, W)`` in [0, 1].

* :func:`psnr`, :func:`psnr_per_frame` — peak signal-to-noise ratio in dB;
  :func:`psnr_masked` over weighted pixels only (an inpainting hole, invented frames).
* :func:`ssim`, :func:`ssim_per_frame` — mean SSIM (Wang et al. 2004) with an 11×11
  Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, per channel and averaged; equal to
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)`` (only windows fully inside the frame
  are averaged, as skimage does).
* :func:`warping_error`, :func:`warping_error_per_pair` — temporal consistency: mean
  squared difference between frame ``i`` and frame ``i+1`` backward-warped onto it,
  over the pixels that pass the forward-backward occlusion check. Values are plain
  MSE in [0, 1] intensity units (not scaled).
* :func:`flicker` — warping error of the error clip ``clip - ref`` with flows from ``ref``.
* :func:`data_consistency_residual` — ``‖A(x) − y‖ / ‖y‖``.
* :func:`edge_fscore`, :func:`edge_fscore_per_frame` — structure agreement: F-score of the Canny
  edges (:func:`edge_map`) of a clip against those of a reference, an edge matching within one pixel.

All reductions run in float64; results are Python floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from vidrestore.temporal.flow import consecutive_flows
from vidrestore.temporal.occlusion import occlusion_mask
from vidrestore.temporal.warp import backward_warp

__all__ = [
    "psnr",
    "psnr_per_frame",
    "psnr_masked",
    "ssim",
    "ssim_per_frame",
    "warping_error",
    "warping_error_per_pair",
    "flicker",
    "data_consistency_residual",
    "edge_map",
    "edge_fscore",
    "edge_fscore_per_frame",
    "RunningMetrics",
]

#: Canny hysteresis thresholds on 8-bit grey (the usual preprocessing of ControlNet's Canny models)
CANNY_LOW, CANNY_HIGH = 100, 200
#: an edge pixel of one map matches the other within this many pixels (Chebyshev distance)
EDGE_TOLERANCE = 1


def _as_clip(x: Tensor) -> Tensor:
    x = torch.as_tensor(x)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise ValueError(f"expected a clip (F,C,H,W) or a frame (C,H,W), got shape {tuple(x.shape)}")
    return x


def _check_pair(x: Tensor, ref: Tensor) -> tuple[Tensor, Tensor]:
    x, ref = _as_clip(x), _as_clip(ref)
    if x.shape != ref.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs reference {tuple(ref.shape)}")
    return x.detach().to(torch.float64), ref.detach().to(x.device, torch.float64)


def _psnr_from_mse(mse: float, data_range: float) -> float:
    if mse <= 0.0:
        return math.inf
    return 10.0 * math.log10(data_range * data_range / mse)


def psnr(x: Tensor, ref: Tensor, data_range: float = 1.0) -> float:
    """PSNR in dB over the whole clip (one MSE over all pixels); ``inf`` for identical inputs."""
    x, ref = _check_pair(x, ref)
    return _psnr_from_mse(float((x - ref).pow(2).mean()), data_range)


def psnr_per_frame(x: Tensor, ref: Tensor, data_range: float = 1.0) -> list[float]:
    """PSNR in dB of each frame."""
    x, ref = _check_pair(x, ref)
    mse = (x - ref).pow(2).flatten(1).mean(dim=1)
    return [_psnr_from_mse(float(m), data_range) for m in mse]


def psnr_masked(x: Tensor, ref: Tensor, weight: Tensor, data_range: float = 1.0) -> float:
    """PSNR in dB of the pixels where ``weight`` (broadcast to the clip, e.g. ``(F, 1, H, W)``) is non-zero.

    The MSE is ``Σ w·(x − ref)² / Σ w``; ``nan`` when the weight is zero everywhere.
    """
    x, ref = _check_pair(x, ref)
    w = torch.as_tensor(weight).detach().to(x.device, torch.float64).expand_as(x)
    total = float(w.sum())
    if total <= 0:
        return math.nan
    return _psnr_from_mse(float((w * (x - ref).pow(2)).sum()) / total, data_range)


_SSIM_RADIUS = 5  # skimage: int(truncate * sigma + 0.5) with truncate = 3.5, sigma = 1.5
_SSIM_SIGMA = 1.5


def _gauss_1d(device, dtype) -> Tensor:
    r = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, device=device, dtype=dtype)
    g = torch.exp(-0.5 * (r / _SSIM_SIGMA) ** 2)
    return g / g.sum()


def _filter_valid(x: Tensor, g: Tensor) -> Tensor:
    """Separable Gaussian filter over (H, W) of ``(N, 1, H, W)``, 'valid' region only."""
    k = g.numel()
    x = F.conv2d(x, g.view(1, 1, 1, k))
    return F.conv2d(x, g.view(1, 1, k, 1))


def ssim_per_frame(
    x: Tensor,
    ref: Tensor,
    data_range: float = 1.0,
    k1: float = 0.01,
    k2: float = 0.03,
) -> list[float]:
    """Mean SSIM of each frame (channels averaged). Frames must be at least 11×11."""
    x, ref = _check_pair(x, ref)
    f, c, h, w = x.shape
    win = 2 * _SSIM_RADIUS + 1
    if h < win or w < win:
        raise ValueError(f"SSIM needs frames of at least {win}x{win}, got {h}x{w}")
    g = _gauss_1d(x.device, x.dtype)
    a = x.reshape(f * c, 1, h, w)
    b = ref.reshape(f * c, 1, h, w)
    mu_a = _filter_valid(a, g)
    mu_b = _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a * mu_a
    var_b = _filter_valid(b * b, g) - mu_b * mu_b
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    per_channel = s.flatten(1).mean(dim=1).view(f, c)
    return [float(v) for v in per_channel.mean(dim=1)]


def ssim(x: Tensor, ref: Tensor, data_range: float = 1.0) -> float:
    """Mean SSIM over frames and channels (see module docstring for the exact definition)."""
    vals = ssim_per_frame(x, ref, data_range)
    return float(sum(vals) / len(vals))


def warping_error_per_pair(
    clip: Tensor,
    flow_source: Tensor | None = None,
    *,
    flows: tuple[Tensor, Tensor] | None = None,
) -> list[float]:
    """Warping error of each consecutive pair ``(i, i+1)``; ``nan`` where no pixel is valid.

    Args:
        clip: ``(F, C, H, W)`` clip to evaluate.
        flow_source: clip of the same ``F, H, W`` on which flows and occlusion masks are
            computed (normally the ground truth); defaults to ``clip`` itself.
        flows: precomputed ``(flows_fwd, flows_bwd)`` as returned by
            :func:`vidrestore.temporal.consecutive_flows`; overrides ``flow_source``.
    """
    clip = _as_clip(clip).detach()
    f, c, h, w = clip.shape
    if f < 2:
        return []
    if flows is None:
        src = clip if flow_source is None else _as_clip(flow_source)
        if src.shape[0] != f or src.shape[-2:] != (h, w):
            raise ValueError(
                f"flow source of shape {tuple(src.shape)} does not match clip of shape {tuple(clip.shape)}"
            )
        flows = consecutive_flows(src)
    fwd, bwd = (t.to(clip.device) for t in flows)
    if fwd.shape != (f - 1, 2, h, w) or bwd.shape != fwd.shape:
        raise ValueError(f"flows of shape {tuple(fwd.shape)} do not fit clip of shape {tuple(clip.shape)}")
    out: list[float] = []
    for i in range(f - 1):
        cur = clip[i : i + 1].to(torch.float64)
        nxt, _ = backward_warp(clip[i + 1 : i + 2].to(torch.float64), fwd[i : i + 1])
        mask = occlusion_mask(fwd[i : i + 1], bwd[i : i + 1]).to(torch.float64)
        n_valid = float(mask.sum()) * c
        if n_valid == 0:
            out.append(math.nan)
            continue
        out.append(float(((cur - nxt).pow(2) * mask).sum()) / n_valid)
    return out


def warping_error(
    clip: Tensor,
    flow_source: Tensor | None = None,
    *,
    flows: tuple[Tensor, Tensor] | None = None,
) -> float:
    """Mean over consecutive pairs of :func:`warping_error_per_pair` (pairs with no valid
    pixel are skipped); ``nan`` for clips with fewer than 2 frames."""
    vals = [v for v in warping_error_per_pair(clip, flow_source, flows=flows) if not math.isnan(v)]
    if not vals:
        return math.nan
    return float(sum(vals) / len(vals))


def flicker(clip: Tensor, ref: Tensor, *, flows: tuple[Tensor, Tensor] | None = None) -> float:
    """Warping error of the error clip ``clip - ref`` with flows computed on ``ref``.

    Zero when the error is constant along motion trajectories, however large it is.
    """
    clip, ref = _as_clip(clip), _as_clip(ref)
    if clip.shape != ref.shape:
        raise ValueError(f"shapes differ: {tuple(clip.shape)} vs reference {tuple(ref.shape)}")
    err = clip.detach().to(torch.float64) - ref.detach().to(clip.device, torch.float64)
    return warping_error(err, ref, flows=flows)


def data_consistency_residual(A: Callable[[Tensor], Tensor], x: Tensor, y: Tensor) -> float:
    """Relative residual ``‖A(x) − y‖ / ‖y‖`` (Frobenius norms, float64).

    If ``y`` is all zeros the absolute residual ``‖A(x)‖`` is returned.
    """
    with torch.no_grad():
        ax = A(x)
    ax = torch.as_tensor(ax).detach().to(torch.float64)
    y = torch.as_tensor(y).detach().to(ax.device, torch.float64)
    if ax.shape != y.shape:
        raise ValueError(f"A(x) has shape {tuple(ax.shape)}, measurements have shape {tuple(y.shape)}")
    num = float(torch.linalg.vector_norm(ax - y))
    den = float(torch.linalg.vector_norm(y))
    return num / den if den > 0 else num


def edge_map(clip: Tensor) -> Tensor:
    """OpenCV Canny edges of every frame of a clip in [0, 1] (luma, 8-bit), (F, 1, H, W) in {0, 1}."""
    import cv2
    import numpy as np

    rgb = (_as_clip(clip).detach().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    if rgb.shape[-1] == 1:
        rgb = np.repeat(rgb, 3, axis=-1)
    edges = [cv2.Canny(cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY), CANNY_LOW, CANNY_HIGH)
             for f in rgb]
    return torch.from_numpy(np.stack(edges)).float()[:, None] / 255


def edge_fscore_per_frame(clip: Tensor, ref: Tensor, tolerance: int = EDGE_TOLERANCE) -> list[float]:
    """Per frame, the F-score of `clip`'s Canny edges against `ref`'s (precision: edges of `clip` with an
    edge of `ref` within `tolerance` pixels; recall the other way round); 1 where neither has an edge."""
    clip, ref = _check_pair(clip, ref)
    size = 2 * tolerance + 1
    a, b = edge_map(clip) > 0, edge_map(ref) > 0
    near_a = F.max_pool2d(a.float(), size, stride=1, padding=tolerance) > 0
    near_b = F.max_pool2d(b.float(), size, stride=1, padding=tolerance) > 0
    out = []
    for i in range(a.shape[0]):
        if not a[i].any() and not b[i].any():
            out.append(1.0)
            continue
        precision = float((a[i] & near_b[i]).sum()) / max(float(a[i].sum()), 1.0)
        recall = float((b[i] & near_a[i]).sum()) / max(float(b[i].sum()), 1.0)
        out.append(2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0)
    return out


def edge_fscore(clip: Tensor, ref: Tensor, tolerance: int = EDGE_TOLERANCE) -> float:
    """Mean over frames of :func:`edge_fscore_per_frame`."""
    vals = edge_fscore_per_frame(clip, ref, tolerance)
    return float(sum(vals) / len(vals))


@dataclass
class RunningMetrics:
    """Metrics accumulated over finalised frames, in order."""

    residual_sq: float = 0.0
    measurement_sq: float = 0.0
    squared_error: float = 0.0
    values: int = 0
    ssim_sum: float = 0.0
    frames: int = 0
    warp_sum: float = 0.0
    warp_pairs: int = 0
    edge_f_sum: float = 0.0
    _last: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    @classmethod
    def from_state(cls, sums: dict, last_pair: tuple[torch.Tensor, torch.Tensor] | None) -> "RunningMetrics":
        metrics = cls(**sums)
        metrics._last = last_pair
        return metrics

    def state(self) -> dict:
        """The sums, for resuming (the last frame pair is saved separately)."""
        return {f: getattr(self, f) for f in ("residual_sq", "measurement_sq", "squared_error", "values",
                                              "ssim_sum", "frames", "warp_sum", "warp_pairs", "edge_f_sum")}

    @property
    def last_pair(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self._last

    def add_residual(self, residual_sq: float, measurement_sq: float) -> None:
        self.residual_sq += residual_sq
        self.measurement_sq += measurement_sq

    def add_reference(self, out: torch.Tensor, ref: torch.Tensor) -> None:
        self.squared_error += float((out - ref).pow(2).sum())
        self.values += out.numel()
        if min(out.shape[-2:]) >= 11:  # SSIM's 11x11 window must fit
            self.ssim_sum += sum(ssim_per_frame(out, ref))
        self.frames += out.shape[0]
        self.edge_f_sum += sum(edge_fscore_per_frame(out, ref))
        if self._last is not None:  # include the pair that straddles two batches
            out, ref = torch.cat([self._last[0], out]), torch.cat([self._last[1], ref])
        if out.shape[0] > 1:
            pairs = [p for p in warping_error_per_pair(out, flow_source=ref) if math.isfinite(p)]
            self.warp_sum += float(sum(pairs))
            self.warp_pairs += len(pairs)
        self._last = (out[-1:], ref[-1:])

    def summary(self) -> dict:
        result = {"data_consistency_residual": (self.residual_sq / self.measurement_sq) ** 0.5
                  if self.measurement_sq > 0 else 0.0}
        if self.frames:
            mse = self.squared_error / max(self.values, 1)
            result["psnr"] = float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)
            result["ssim"] = self.ssim_sum / self.frames if self.ssim_sum else None
            result["warping_error"] = self.warp_sum / self.warp_pairs if self.warp_pairs else 0.0
            result["edge_fscore"] = self.edge_f_sum / self.frames  # structure agreement with the reference
        return result
