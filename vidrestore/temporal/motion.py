"""The motion of one window of frames: flows, trusted correspondences and scene cuts."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from vidrestore.temporal.cuts import detect_scene_cuts
from vidrestore.temporal.flow import consecutive_flows
from vidrestore.temporal.occlusion import occlusion_mask


@dataclass
class WindowMotion:
    """Optical flow of one window, estimated on the initial estimate (see `window_motion`).

    `flows_fwd[j]` / `flows_bwd[j]` go from frame j to j+1 / from j+1 to j
    (`consecutive_flows`); `valid_fwd[j]` (frame j's grid) / `valid_bwd[j]`
    (frame j+1's grid) are 1 where the correspondence is trusted, 0 where it is
    occluded, out of frame or across a scene cut; `cuts` are window positions
    that start a new shot; `blur` is the Gaussian σ the frames got before the flow was measured.
    """

    flows_fwd: torch.Tensor
    flows_bwd: torch.Tensor
    valid_fwd: torch.Tensor
    valid_bwd: torch.Tensor
    cuts: list[int]
    blur: float = 0.0


def window_motion(x_init: torch.Tensor, known: torch.Tensor | None = None, cuts: list[int] | None = None,
                  blur: float = 0.0) -> WindowMotion:
    """Flows, occlusion masks and scene cuts of a window from its initial estimate (F, C, H, W) in [0, 1].

    For inpainting, pixels where `known` is 0 (the holes) are ignored by the flow estimator.
    `cuts` keeps shot boundaries found earlier (when the flow is re-measured on a
    restored estimate); by default they are detected on `x_init`. `blur` is the Gaussian σ
    the frames get before the flow is measured (`estimate_flow`); cuts are found unblurred.
    """
    holes = None if known is None else (known < 0.5).any(dim=1, keepdim=True).cpu()
    fwd, bwd = consecutive_flows(x_init, holes, blur=blur)
    valid_fwd, valid_bwd = occlusion_mask(fwd, bwd), occlusion_mask(bwd, fwd)
    cuts = detect_scene_cuts(x_init) if cuts is None else list(cuts)
    for c in cuts:  # no correspondence across a shot boundary
        valid_fwd[c - 1].zero_()
        valid_bwd[c - 1].zero_()
    return WindowMotion(fwd, bwd, valid_fwd, valid_bwd, cuts, blur)
