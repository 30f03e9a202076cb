"""Tests for vidrestore.temporal: DIS flow, backward warping, occlusion masks, scene cuts."""

import cv2
import numpy as np
import pytest
import torch

from vidrestore.temporal import (
    backward_warp,
    consecutive_flows,
    detect_scene_cuts,
    estimate_flow,
    occlusion_mask,
    scene_cut_distances,
)
from vidrestore.temporal.flow import to_gray_uint8
from vidrestore.temporal.fusion import fuse_aligned
from vidrestore.temporal.trajectory import accelerations, flows_to_neighbours


def texture(h, w, seed=0, sigma=2.0):
    """Smooth random colour texture (H, W, 3) float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    n = rng.random((h, w, 3)).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigma)
    return (n - n.min()) / (n.max() - n.min())


def to_t(a):
    """(H, W, C) numpy -> (1, C, H, W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float()


def pan_clip(n, step=(1, 0), size=64, seed=0, sigma=2.0):
    """Camera pan over a large texture: frame k is the window at offset k*step (x, y)."""
    big = texture(size + 40, size + 40, seed=seed, sigma=sigma)
    frames = []
    for k in range(n):
        x0 = 20 + int(round(k * step[0]))
        y0 = 20 + int(round(k * step[1]))
        frames.append(to_t(big[y0 : y0 + size, x0 : x0 + size]))
    return torch.cat(frames)


def shifted_pair(dx, dy, size=64, margin=8, seed=0):
    """src, dst with src(p) = dst(p + (dx, dy))."""
    big = texture(size + 2 * margin + 4, size + 2 * margin + 4, seed=seed)
    src = big[margin : margin + size, margin : margin + size]
    dst = big[margin - dy : margin - dy + size, margin - dx : margin - dx + size]
    return to_t(src), to_t(dst)


# ------------------------------------------------------------------ flow


def test_flow_recovers_translation():
    src, dst = shifted_pair(3, -2)
    flow = estimate_flow(src, dst)
    assert flow.shape == (1, 2, 64, 64) and flow.dtype == torch.float32
    inner = flow[0, :, 8:-8, 8:-8]
    assert (inner[0] - 3).abs().max() < 0.3
    assert (inner[1] + 2).abs().max() < 0.3
    # the convention: backward_warp(dst, flow) ≈ src
    warped, _ = backward_warp(dst, flow)
    assert (warped - src)[..., 8:-8, 8:-8].abs().mean() < 0.01


def test_flow_reverse_direction_and_batch():
    src, dst = shifted_pair(3, -2)
    flow = estimate_flow(torch.cat([src, dst]), torch.cat([dst, src]))
    assert flow.shape == (2, 2, 64, 64)
    assert (flow[1, 0, 8:-8, 8:-8] + 3).abs().mean() < 0.3
    assert (flow[1, 1, 8:-8, 8:-8] - 2).abs().mean() < 0.3


def test_flow_with_mask_ignores_hole():
    src, dst = shifted_pair(3, -2)
    holed = src.clone()
    holed[..., 24:40, 24:40] = 0.0  # a black hole DIS would otherwise try to track
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 24:40, 24:40] = 1
    flow_masked = estimate_flow(holed, dst, mask=mask, dst_mask=torch.zeros_like(mask))
    err_masked = ((flow_masked[0, 0] - 3).abs() + (flow_masked[0, 1] + 2).abs())[8:-8, 8:-8].mean()
    assert err_masked < 0.5


def test_flow_small_frames_and_gray():
    f = estimate_flow(torch.rand(2, 1, 6, 9), torch.rand(2, 1, 6, 9))
    assert f.shape == (2, 2, 6, 9)
    g = to_gray_uint8(torch.ones(1, 3, 4, 4))
    assert g.dtype == np.uint8 and g.shape == (1, 4, 4) and (g == 255).all()


def test_consecutive_flows_shapes_and_directions():
    clip = pan_clip(4, step=(2, 0))
    fwd, bwd = consecutive_flows(clip)
    assert fwd.shape == bwd.shape == (3, 2, 64, 64)
    # content moves left by 2 px per frame: frame i (p) = frame i+1 (p - 2)
    assert (fwd[:, 0, 8:-8, 8:-8] + 2).abs().mean() < 0.3
    assert (bwd[:, 0, 8:-8, 8:-8] - 2).abs().mean() < 0.3
    e1, e2 = consecutive_flows(clip[:1])
    assert e1.shape == (0, 2, 64, 64) and e2.shape == (0, 2, 64, 64)


def upsampled_subpixel_pan(seed: int, step: float = 1.25, n: int = 4, size: int = 64, scale: int = 4) -> torch.Tensor:
    """A fine-textured pan of `step` px per frame, box-downsampled by `scale` and upsampled back (aliased)."""
    from vidrestore.operators import BoxDownsample
    big = to_t(texture(2 * size, 2 * size, seed=seed, sigma=1.0))
    frames = []
    for k in range(n):  # frame k (p) = big(p + k·step): a sub-pixel shift, read bicubically
        theta = torch.tensor([[[1.0, 0.0, 2 * k * step / big.shape[-1]], [0.0, 1.0, 0.0]]])
        grid = torch.nn.functional.affine_grid(theta, list(big.shape), align_corners=False)
        frames.append(torch.nn.functional.grid_sample(big, grid, mode="bicubic", align_corners=False)
                      [..., 16:16 + size, 16:16 + size])
    op = BoxDownsample(scale)
    return op.initial_estimate(op.A(torch.cat(frames).clamp(0, 1))).clamp(0, 1)


def test_blurring_before_the_flow_measures_an_aliased_upsampled_pan_better():
    errors = {0.0: 0.0, 2.0: 0.0}
    for seed in (0, 1):
        clip = upsampled_subpixel_pan(seed)
        for blur in errors:
            fwd, _ = consecutive_flows(clip, blur=blur)  # content moves by -1.25 px in x per frame
            errors[blur] += float(((fwd[:, 0, 8:-8, 8:-8] + 1.25).abs() + fwd[:, 1, 8:-8, 8:-8].abs()).mean())
    assert errors[2.0] < 0.85 * errors[0.0], errors  # measured: about 0.7
    with pytest.raises(ValueError, match="blur"):
        estimate_flow(clip[:1], clip[1:2], blur=-1.0)


# ------------------------------------------------------------------ warp


def test_backward_warp_integer_flow_is_exact_shift():
    img = torch.rand(2, 3, 16, 20)
    flow = torch.zeros(2, 2, 16, 20)
    flow[:, 0] = 1.0  # read the right-hand neighbour
    flow[:, 1] = -2.0  # read two rows up
    out, inside = backward_warp(img, flow)
    assert out.shape == img.shape and inside.shape == (2, 1, 16, 20)
    # out[y, x] = img[y - 2, x + 1]
    assert torch.equal(out[..., 2:, :-1], img[..., :-2, 1:])
    assert inside[..., 2:, :-1].all() and not inside[..., :2, :].any() and not inside[..., :, -1].any()


def test_backward_warp_zero_flow_identity_and_fractional():
    img = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    out, inside = backward_warp(img, torch.zeros(1, 2, 8, 8))
    assert torch.allclose(out, img) and inside.all()
    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 0.5
    out, _ = backward_warp(img, flow)
    assert torch.allclose(out[..., :-1], 0.5 * (img[..., :-1] + img[..., 1:]))


@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
def test_backward_warp_matches_grid_sample(padding_mode):
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 9, 13, generator=g, dtype=torch.float64)
    flow = (torch.rand(2, 2, 9, 13, generator=g, dtype=torch.float64) - 0.5) * 8
    out, _ = backward_warp(img, flow, padding_mode=padding_mode)
    ys, xs = torch.meshgrid(torch.arange(9.0), torch.arange(13.0), indexing="ij")
    gx = (xs + flow[:, 0]) * 2 / 12 - 1
    gy = (ys + flow[:, 1]) * 2 / 8 - 1
    ref = torch.nn.functional.grid_sample(
        img, torch.stack((gx, gy), -1), padding_mode=padding_mode, align_corners=True
    )
    assert torch.allclose(out, ref, atol=1e-10)
    near, _ = backward_warp(img, torch.round(flow), mode="nearest", padding_mode=padding_mode)
    assert torch.allclose(near, backward_warp(img, torch.round(flow), padding_mode=padding_mode)[0])


def test_backward_warp_bicubic_exact_on_integer_flow_and_sharper_at_half_pixel():
    g = torch.Generator().manual_seed(1)
    img = torch.rand(1, 3, 12, 16, generator=g, dtype=torch.float64)
    flow = torch.zeros(1, 2, 12, 16, dtype=torch.float64)
    flow[:, 0] = 2.0
    out, _ = backward_warp(img, flow, mode="bicubic")
    assert torch.allclose(out[..., :-2], img[..., 2:], atol=1e-12)
    # a band-limited signal sampled at half-pixel offsets: the cubic kernel is
    # much closer to the true values than the two-tap average
    xs = torch.arange(64, dtype=torch.float64)
    wave = lambda x: 0.5 + 0.4 * torch.sin(2 * torch.pi * x / 5.0)  # noqa: E731
    img = wave(xs).expand(1, 1, 4, 64).contiguous()
    flow = torch.zeros(1, 2, 4, 64, dtype=torch.float64)
    flow[:, 0] = 0.5
    truth = wave(xs + 0.5)[4:-4]
    err = {m: (backward_warp(img, flow, mode=m)[0][0, 0, 1, 4:-4] - truth).abs().max().item()
           for m in ("bilinear", "bicubic")}
    assert err["bicubic"] < 0.3 * err["bilinear"]
    with pytest.raises(ValueError, match="mode"):
        backward_warp(img, flow, mode="lanczos")
    # half-precision images are sampled at full-precision coordinates
    wide = torch.rand(1, 1, 2, 1500, generator=torch.Generator().manual_seed(2))
    shift = torch.zeros(1, 2, 2, 1500)
    shift[:, 0] = 1.0
    half, _ = backward_warp(wide.half(), shift, mode="bicubic")
    assert half.dtype == torch.float16
    assert torch.allclose(half[..., :-1].float(), wide[..., 1:], atol=2e-3)


def test_backward_warp_is_differentiable():
    img = torch.rand(1, 3, 12, 12, requires_grad=True)
    flow = torch.full((1, 2, 12, 12), 0.3, requires_grad=True)
    out, _ = backward_warp(img, flow)
    out.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    assert flow.grad is not None
    img2 = torch.rand(1, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    flow2 = torch.full((1, 2, 8, 8), 0.37, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: backward_warp(x, flow2)[0], (img2,))


def test_backward_warp_broadcast_flow_and_errors():
    img = torch.rand(3, 2, 8, 8)
    out, _ = backward_warp(img, torch.zeros(1, 2, 8, 8))
    assert torch.allclose(out, img)
    with pytest.raises(ValueError):
        backward_warp(img, torch.zeros(3, 2, 7, 8))


# ------------------------------------------------------------------ occlusion


def test_occlusion_mask_pure_translation():
    clip = pan_clip(2, step=(3, 0))
    fwd, bwd = consecutive_flows(clip)
    occ = occlusion_mask(fwd, bwd)
    assert occ.shape == (1, 1, 64, 64)
    assert occ.dtype == torch.float32
    # frame 0's left 3 columns leave the frame in frame 1
    assert occ[..., :, :3].mean() < 0.05
    assert occ[..., 4:-4, 6:-4].mean() > 0.95


def test_occlusion_mask_synthetic_flows():
    f = torch.zeros(1, 2, 10, 10)
    f[:, 0] = 2.0
    assert occlusion_mask(f, -f)[..., :, :8].eq(1).all()
    assert occlusion_mask(f, -f)[..., :, 8:].eq(0).all()  # target outside the frame
    assert occlusion_mask(f, f)[..., :, :8].eq(0).all()  # inconsistent: |4|² > 0.01·8 + 0.5


# ------------------------------------------------------------------ scene cuts


def test_scene_cut_between_two_images():
    skdata = pytest.importorskip("skimage.data")
    a = cv2.resize(skdata.astronaut(), (96, 96), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    b = cv2.resize(skdata.coffee(), (96, 96), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    frames = [to_t(a[k : k + 64, k : k + 64]) for k in range(4)]
    frames += [to_t(b[k : k + 64, 2 * k : 2 * k + 64]) for k in range(4)]
    clip = torch.cat(frames)
    assert detect_scene_cuts(clip) == [4]
    assert detect_scene_cuts(clip[3:5]) == [1]


def test_no_scene_cut_in_slow_pan():
    skdata = pytest.importorskip("skimage.data")
    img = skdata.astronaut()[::4, ::4].astype(np.float32) / 255  # 128x128
    clip = torch.cat([to_t(img[10 + k : 74 + k, 2 * k : 2 * k + 64]) for k in range(12)])
    assert detect_scene_cuts(clip) == []
    assert detect_scene_cuts(clip[:1]) == []
    d = scene_cut_distances(clip)
    assert d.shape == (11,) and (d >= 0).all() and (d <= 1).all()


def test_scene_cut_grayscale_and_threshold():
    clip = torch.cat([torch.full((3, 1, 16, 16), 0.2), torch.full((3, 1, 16, 16), 0.8)])
    assert detect_scene_cuts(clip) == [3]
    assert detect_scene_cuts(clip, threshold=1.0) == []


# ------------------------------------------------------------------ trajectories for interpolation


def _global_motion_flows(positions, h=8, w=10):
    """Flows of a clip whose frame k is the scene shifted right by positions[k] pixels."""
    n = len(positions)
    fwd = torch.zeros(n - 1, 2, h, w)
    for k in range(n - 1):
        fwd[k, 0] = positions[k + 1] - positions[k]
    return fwd, -fwd


def test_quadratic_flows_are_exact_for_uniform_acceleration():
    c = 0.25
    positions = [c * k * k for k in range(5)]
    fwd, bwd = _global_motion_flows(positions, w=40)
    for t in (0.25, 0.5, 0.75):
        g0, g1 = flows_to_neighbours(fwd, bwd, t, accelerations(fwd, bwd))
        for i in (1, 2):  # pairs whose both frames have a neighbour on each side
            x_t = c * (i + t) ** 2
            # I_t(p) = I_i(p + g0): the scene point at p came from where frame i had it
            centre = (slice(None), slice(14, 26))  # flows that point inside the frame
            assert torch.allclose(g0[i, 0][centre], torch.tensor(positions[i] - x_t), atol=1e-6)
            assert torch.allclose(g1[i, 0][centre], torch.tensor(positions[i + 1] - x_t), atol=1e-6)
            assert float(g0[i, 1].abs().max()) == 0.0


def test_linear_flows_are_super_slomos_and_miss_the_acceleration():
    positions = [0.25 * k * k for k in range(5)]
    fwd, bwd = _global_motion_flows(positions, w=40)
    g0, g1 = flows_to_neighbours(fwd, bwd, 0.5)
    assert torch.allclose(g0, -0.25 * fwd + 0.25 * bwd) and torch.allclose(g1, 0.25 * fwd - 0.25 * bwd)
    # half-way between frames 1 and 2, linear motion is off by t(1−t)·a = 0.0625 px
    assert torch.allclose(g0[1, 0, :, 14:26], torch.tensor(0.25 - 0.5625 - 0.0625))


def test_no_acceleration_at_clip_ends_or_across_a_cut():
    positions = [0.25 * k * k for k in range(6)]
    fwd, bwd = _global_motion_flows(positions, w=40)
    accel = accelerations(fwd, bwd)[:, 0, :, 14:26]
    assert float(accel[0].abs().max()) == 0 and float(accel[-1].abs().max()) == 0
    assert torch.allclose(accel[1:-1], torch.tensor(0.25))
    cut = accelerations(fwd, bwd, cuts=[3])[:, 0, :, 14:26]
    assert [float(a.abs().max()) for a in cut] == [0.0, 0.25, 0.0, 0.0, 0.25, 0.0]


# ------------------------------------------------------------------ temporal fusion (denoise)

def test_fusion_averages_aligned_neighbours_and_reports_the_count():
    clean = pan_clip(7, step=(1, 0), size=48, seed=3)
    sigma = 0.05
    noisy = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    fused, count = fuse_aligned(noisy, sigma, 3)
    assert fused.shape == clean.shape and count.shape == (7, 1, 48, 48)
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    # the middle frame sees 3 neighbours on each side: nearly 7 measurements, nearly 1/7 of the variance
    assert count[3][inner[1:]].median() > 5
    error = lambda x: (x - clean)[inner].pow(2).mean().item()
    assert error(fused) < error(noisy) / 4
    # σ = 0 or radius 0: the frames unchanged, one measurement each
    for args in ((0.0, 3), (sigma, 0)):
        same, ones = fuse_aligned(noisy, *args)
        assert torch.equal(same, noisy) and torch.equal(ones, torch.ones_like(ones))


def test_fusion_keeps_a_frame_alone_where_its_neighbours_disagree():
    clean = pan_clip(6, step=(1, 0), size=48, seed=4)
    other = pan_clip(6, step=(1, 0), size=48, seed=9)  # another scene from frame 3 on
    clip = torch.cat([clean[:3], other[3:]])
    sigma = 0.02
    noisy = clip + sigma * torch.randn(clip.shape, generator=torch.Generator().manual_seed(1))
    _, count = fuse_aligned(noisy, sigma, 2)
    _, cut = fuse_aligned(noisy, sigma, 2, cuts=[3])
    # the photometric check alone already refuses most of the other shot; the cut refuses all of it
    assert count[2].mean() < 2.6 and count[3].mean() < 2.6
    # (frames 2 and 3 each keep two neighbours of their own shot: at most 3 measurements)
    assert cut[2].max() <= 3 + 1e-4 and cut[3].max() <= 3 + 1e-4 and (cut <= count + 1e-4).all()
    assert count[1].median() > 2.5  # inside a shot, neighbours still count
