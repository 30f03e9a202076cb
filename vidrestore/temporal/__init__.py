"""Temporal tools: optical flow (OpenCV DIS), backward warping, occlusion masks, scene cuts,
trajectories to in-between times (`trajectory`).

Flow convention: ``(N, 2, H, W)`` tensors in pixels, channel 0 = x, channel 1 = y;
``estimate_flow(src, dst)`` gives ``src(p) ≈ dst(p + flow(p))`` so that
``backward_warp(dst, flow)[0] ≈ src``.
"""

from vidrestore.temporal.cuts import detect_scene_cuts, scene_cut_distances
from vidrestore.temporal.flow import consecutive_flows, estimate_flow
from vidrestore.temporal.motion import WindowMotion, window_motion
from vidrestore.temporal.occlusion import occlusion_mask
from vidrestore.temporal.warp import backward_warp

__all__ = [
    "backward_warp",
    "consecutive_flows",
    "detect_scene_cuts",
    "estimate_flow",
    "occlusion_mask",
    "scene_cut_distances",
    "window_motion",
    "WindowMotion",
]
