"""Flow-guided propagation of known pixels into inpainting holes.

Video inpainting's strongest cue is that what a hole hides in one frame is
often visible in another. :func:`propagate_known` fills the missing pixels of
every frame from the nearest frames first (distance 1, 2, … in both
directions), along direct DIS flows computed with the holes masked:

1. flows ``i → j`` and ``j → i`` with :func:`estimate_flow` (holes of both
   frames masked, i.e. Telea-filled in the grayscale frames DIS sees);
2. inside each hole, grown by ``flow_margin`` pixels (DIS patches that overlap
   a hole are unreliable; near a static mask they are biased towards zero
   motion), the flow is replaced by a smooth completion of the flow around it
   (push-pull interpolation, :func:`fill_smooth`): the motion of hidden content
   is assumed to continue the motion of its surroundings;
3. a hole pixel ``p`` of frame ``i`` takes ``frame_j(p + flow_ij(p))`` when that
   source lies inside frame ``j``, its four bilinear taps are all *known* in
   ``j`` (never another frame's hole), and the forward-backward check
   (:func:`~vidrestore.temporal.occlusion.occlusion_mask`) passes; when both
   ``i − d`` and ``i + d`` qualify at the same distance ``d``, their mean.

Only originally known pixels are used as sources (no chaining through
propagated values), so errors do not accumulate. What no frame can fill is
reported in the returned mask; callers fill it with a classical method (the
inpaint task uses Telea, :func:`vidrestore.baselines.inpaint_classical`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vidrestore.temporal.flow import estimate_flow
from vidrestore.temporal.occlusion import occlusion_mask
from vidrestore.temporal.warp import backward_warp

__all__ = ["propagate_known", "fill_smooth"]

_KNOWN_TAPS = 0.999  # a bilinear sample counts as known when (almost) all its weight is on known pixels


def fill_smooth(values: Tensor, valid: Tensor) -> Tensor:
    """Fill the invalid pixels of ``values`` (N, C, H, W) smoothly from the valid ones (push-pull).

    ``valid`` is ``(N, 1, H, W)`` in {0, 1}. Valid pixels are returned unchanged;
    invalid ones get a bilinear coarse-to-fine interpolation of the valid
    pixels around them. A frame without any valid pixel is filled with zeros.
    """
    valid = valid.to(values.dtype)
    levels_v, levels_w = [values * valid], [valid]
    while min(levels_w[-1].shape[-2:]) > 1:
        levels_v.append(F.avg_pool2d(levels_v[-1], 2, ceil_mode=True))
        levels_w.append(F.avg_pool2d(levels_w[-1], 2, ceil_mode=True))
    v, w = levels_v[-1], levels_w[-1]
    est = torch.where(w > 0, v / w.clamp_min(1e-12), torch.zeros_like(v))
    for v, w in zip(reversed(levels_v[:-1]), reversed(levels_w[:-1])):
        up = F.interpolate(est, size=v.shape[-2:], mode="bilinear", align_corners=False)
        # v is the mean of value*valid and w the valid fraction: full cells keep their mean,
        # empty ones take the coarser estimate, partial ones mix the two
        est = v + up * (1 - w)
    return torch.where(valid > 0, values, est)


def _grow(missing: Tensor, pixels: int) -> Tensor:
    if pixels <= 0:
        return missing
    k = 2 * pixels + 1  # a square structuring element, applied separably (much faster than k x k)
    grown = F.max_pool2d(missing, (k, 1), stride=1, padding=(pixels, 0))
    return F.max_pool2d(grown, (1, k), stride=1, padding=(0, pixels))


def _pair_flows(clip: Tensor, missing: Tensor, src: list[int], dst: list[int], preset: str,
                margin: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Completed flows src→dst and dst→src, and the occlusion masks on each grid."""
    a, b = clip[src], clip[dst]
    ma, mb = missing[src], missing[dst]
    f_ab = estimate_flow(a, b, ma, mb, preset=preset)
    f_ba = estimate_flow(b, a, mb, ma, preset=preset)
    if margin >= 0:
        f_ab = _complete(f_ab, ma, mb, margin)
        f_ba = _complete(f_ba, mb, ma, margin)
    return f_ab, f_ba, occlusion_mask(f_ab, f_ba), occlusion_mask(f_ba, f_ab)


def _complete(flow: Tensor, src_missing: Tensor, dst_missing: Tensor, margin: int) -> Tensor:
    """Replace the flow where it cannot be trusted by the smooth completion of the rest.

    Untrusted: the source frame's holes and the pixels whose match lands in the
    destination frame's holes, both grown by `margin` (DIS patches overlapping them).
    """
    lands_in_hole, _ = backward_warp(dst_missing, flow)
    bad = torch.maximum(src_missing, (lands_in_hole > 0).to(flow.dtype))
    return fill_smooth(flow, 1 - _grow(bad, margin))


def propagate_known(
    clip: Tensor,
    known: Tensor,
    *,
    max_distance: int | None = None,
    preset: str = "medium",
    flow_margin: int = 8,
) -> tuple[Tensor, Tensor]:
    """Fill missing pixels of every frame from other frames of the clip along optical flow.

    Args:
        clip: ``(F, C, H, W)`` in [0, 1]; values at missing pixels are ignored.
        known: ``(F, 1, H, W)`` or static ``(1, 1, H, W)``; > 0.5 = observed pixel.
        max_distance: farthest frame distance used as a source (default: the whole clip).
            Sources are tried nearest first; a frame stops looking once it is full.
        preset: DIS preset for the flows.
        flow_margin: pixels by which holes are grown before the flow inside them is
            replaced by the completion of the flow around them (negative: keep DIS's
            own flow in the holes).

    Returns:
        ``(filled, have)``: ``filled`` equals ``clip`` on known pixels and holds the
        propagated values where ``have`` (``(F, 1, H, W)`` float, 1 = known or filled)
        is 1; elsewhere it is 0.
    """
    if clip.dim() != 4:
        raise ValueError(f"expected a clip (F,C,H,W), got shape {tuple(clip.shape)}")
    f, _, h, w = clip.shape
    known = torch.as_tensor(known, device=clip.device)
    if known.dim() != 4 or known.shape[-2:] != (h, w) or known.shape[0] not in (1, f):
        raise ValueError(f"known mask of shape {tuple(known.shape)} does not fit a clip of shape {tuple(clip.shape)}")
    x = clip.detach().float()
    known = (known.float() > 0.5).any(dim=1, keepdim=True).float().expand(f, 1, h, w).contiguous()
    missing = 1 - known
    have = known.clone()
    filled = x * known
    reach = f - 1 if max_distance is None else min(max_distance, f - 1)
    for d in range(1, reach + 1):
        needs = [bool((have[i] < 1).any()) for i in range(f)]
        pairs = [i for i in range(f - d) if needs[i] or needs[i + d]]
        if not pairs:
            break
        src, dst = pairs, [i + d for i in pairs]
        f_ab, f_ba, occ_ab, occ_ba = _pair_flows(x, missing, src, dst, preset, flow_margin)
        total = torch.zeros_like(filled)
        count = torch.zeros_like(have)
        # frame i takes from i + d (flow f_ab on i's grid); frame i + d takes from i (f_ba)
        for targets, sources, flow, occ in ((src, dst, f_ab, occ_ab), (dst, src, f_ba, occ_ba)):
            sampled, inside = backward_warp(torch.cat([x[sources], known[sources]], dim=1), flow)
            values, src_known = sampled[:, :-1], sampled[:, -1:]
            ok = (1 - have[targets]) * inside * occ * (src_known >= _KNOWN_TAPS).float()
            total.index_add_(0, torch.tensor(targets, device=x.device), values * ok)
            count.index_add_(0, torch.tensor(targets, device=x.device), ok)
        got = count > 0
        filled = torch.where(got, total / count.clamp_min(1), filled)
        have = torch.where(got, torch.ones_like(have), have)
    return filled, have
