"""Tests for vidrestore.baselines."""

import cv2
import numpy as np
import pytest
import torch

from vidrestore.baselines import (
    inpaint_classical,
    interpolate_blend,
    interpolate_flow_midpoint,
    interpolated_length,
    richardson_lucy,
    upscale,
    wiener_deconvolve,
)
from vidrestore.metrics import psnr


def texture(h, w, seed=0, sigma=1.5):
    rng = np.random.default_rng(seed)
    n = rng.random((h, w, 3)).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigma)
    return (n - n.min()) / (n.max() - n.min())


def to_clip(*frames):
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous().float()


def gaussian_kernel(sigma, radius):
    x = np.arange(-radius, radius + 1)
    g = np.exp(-(x**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


def blur(img, kernel):
    """True convolution with symmetric boundaries, per channel (cv2.filter2D correlates)."""
    k = np.ascontiguousarray(kernel[::-1, ::-1]).astype(np.float32)
    return np.stack(
        [cv2.filter2D(img[..., c], -1, k, borderType=cv2.BORDER_REFLECT) for c in range(img.shape[-1])], -1
    )


# ------------------------------------------------------------------ upscale


@pytest.mark.parametrize("method", ["bicubic", "lanczos"])
def test_upscale_shapes_and_constant(method):
    clip = torch.full((2, 3, 8, 12), 0.37)
    out = upscale(clip, 4, method)
    assert out.shape == (2, 3, 32, 48) and out.dtype == torch.float32
    assert torch.allclose(out, torch.full_like(out, 0.37), atol=1e-6)
    assert upscale(torch.rand(1, 5, 8, 8), 2, method).shape == (1, 5, 16, 16)
    assert upscale(torch.rand(1, 1, 8, 8), 3, method).shape == (1, 1, 24, 24)


def test_upscale_is_clipped_and_better_than_nearest():
    hr = to_clip(texture(64, 64, sigma=3.0))
    lr = torch.nn.functional.interpolate(hr, scale_factor=0.25, mode="area")
    up = upscale(lr, 4, "bicubic")
    assert up.min() >= 0 and up.max() <= 1
    nearest = torch.nn.functional.interpolate(lr, scale_factor=4, mode="nearest")
    assert psnr(up, hr) > psnr(nearest, hr)
    with pytest.raises(ValueError):
        upscale(lr, 2, "sinc")


# ------------------------------------------------------------------ inpainting


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_inpaint_smooth_gradient(method):
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    img = np.stack([xx / 63, yy / 63, 0.5 * (xx + yy) / 63], -1)
    clip = to_clip(img, img)
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 24:36, 28:40] = 1
    holed = clip.clone()
    holed[:, :, 24:36, 28:40] = 0.0
    out = inpaint_classical(holed, mask, method=method)
    assert out.shape == clip.shape
    hole = mask.bool().expand_as(clip)
    err = (out - clip)[hole].abs()
    assert err.max() < 0.1 and err.mean() < 0.03
    assert torch.equal(out[~hole], holed[~hole])  # known pixels untouched


def test_inpaint_per_frame_mask():
    clip = torch.rand(2, 3, 16, 16)
    mask = torch.zeros(2, 1, 16, 16)
    mask[1, :, 4:8, 4:8] = 1
    out = inpaint_classical(clip, mask)
    assert torch.equal(out[0], clip[0])
    assert not torch.equal(out[1], clip[1])
    with pytest.raises(ValueError):
        inpaint_classical(clip, torch.zeros(3, 1, 16, 16))


# ------------------------------------------------------------------ deconvolution


@pytest.fixture(scope="module")
def blurred_pair():
    sharp = texture(64, 64, seed=3, sigma=1.0)
    k = gaussian_kernel(1.5, 4)
    return to_clip(sharp), to_clip(blur(sharp, k)), k


def test_wiener_improves_psnr(blurred_pair):
    gt, y, k = blurred_pair
    out = wiener_deconvolve(y, k, balance=1e-3)
    assert out.shape == y.shape and out.min() >= 0 and out.max() <= 1
    assert psnr(out, gt) > psnr(y, gt) + 2.0
    # identity kernel with no regularisation returns the input
    assert torch.allclose(wiener_deconvolve(y, np.ones((1, 1)), balance=0.0), y, atol=1e-6)


def test_richardson_lucy_improves_psnr(blurred_pair):
    gt, y, k = blurred_pair
    out = richardson_lucy(y, k, iterations=30)
    assert out.shape == y.shape and out.min() >= 0 and out.max() <= 1
    assert psnr(out, gt) > psnr(y, gt) + 1.0
    assert torch.allclose(richardson_lucy(y, k, iterations=0), y, atol=1e-6)


def test_deconvolution_kernel_mode_for_asymmetric_kernel():
    sharp = texture(48, 48, seed=4, sigma=1.0)
    k = np.zeros((5, 5))
    k[2, 2:] = 1.0 / 3  # one-sided horizontal motion blur
    y_conv = to_clip(blur(sharp, k))
    y_corr = to_clip(blur(sharp, k[::-1, ::-1]))  # correlation with k
    gt = to_clip(sharp)
    assert psnr(wiener_deconvolve(y_conv, k), gt) > psnr(y_conv, gt) + 3
    assert psnr(wiener_deconvolve(y_corr, k, kernel_mode="correlation"), gt) > psnr(y_corr, gt) + 3
    assert psnr(richardson_lucy(y_corr, k, kernel_mode="correlation"), gt) > psnr(y_corr, gt) + 3
    with pytest.raises(ValueError):
        richardson_lucy(y_conv, -k)


# ------------------------------------------------------------------ interpolation


def pan(n, step, size=48, seed=5, flags=cv2.INTER_LINEAR, accel=0.0):
    """A window moving right by `step` px per frame, plus `accel`·j² (an accelerating camera)."""
    big = texture(size + 8, size + 8 + int(np.ceil(n * step + accel * n * n)), seed=seed, sigma=2.0)
    frames = []
    for j in range(n):
        x0 = 4 + j * step + accel * j * j
        # sub-pixel windows by linear interpolation of the big texture (for ground truth)
        m = np.float32([[1, 0, x0], [0, 1, 4]])
        frames.append(cv2.warpAffine(big, m, (size, size), flags=flags | cv2.WARP_INVERSE_MAP))
    return to_clip(*frames)


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_interpolation_frame_counts(factor):
    clip = torch.rand(4, 3, 16, 16)
    for fn in (interpolate_blend, interpolate_flow_midpoint):
        out = fn(clip, factor)
        assert out.shape == (interpolated_length(4, factor), 3, 16, 16) == ((4 - 1) * factor + 1, 3, 16, 16)
        assert torch.equal(out[::factor], clip)  # original frames kept
    assert interpolate_blend(clip[:1], 4).shape == (1, 3, 16, 16)
    with pytest.raises(ValueError):
        interpolate_blend(clip, 0)


def test_blend_is_linear():
    clip = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    out = interpolate_blend(clip, 4)
    assert torch.allclose(out[:, 0, 0, 0], torch.tensor([0, 0.25, 0.5, 0.75, 1.0]))


def test_flow_midpoint_beats_blending_on_pan():
    truth = pan(5, step=2.0)  # content moves 2 px per frame
    keyframes = truth[::2]  # 4 px per frame: interpolate x2 back to 5 frames
    flow_mid = interpolate_flow_midpoint(keyframes, 2)
    blend = interpolate_blend(keyframes, 2)
    assert flow_mid.shape == blend.shape == truth.shape
    p_flow = psnr(flow_mid[1::2], truth[1::2])
    p_blend = psnr(blend[1::2], truth[1::2])
    assert p_flow > p_blend + 5.0
    assert p_flow > 30.0


def test_flow_midpoint_bicubic_sampling_keeps_detail_at_half_pixel():
    # keyframes 3 px apart: the midpoint reads at half pixels; the truth is resampled with
    # Lanczos so that neither sampling is favoured by how the clip was made
    truth = pan(5, step=1.5, flags=cv2.INTER_LANCZOS4).clamp(0, 1)
    keyframes = truth[::2]
    bilinear = interpolate_flow_midpoint(keyframes, 2)
    bicubic = interpolate_flow_midpoint(keyframes, 2, sampling="bicubic")
    assert torch.equal(bicubic[::2], keyframes.float())
    assert psnr(bicubic[1::2], truth[1::2]) > psnr(bilinear[1::2], truth[1::2]) + 1.0


def test_quadratic_motion_follows_an_accelerating_pan():
    truth = pan(9, step=1.0, accel=0.15, size=64, flags=cv2.INTER_LANCZOS4).clamp(0, 1)
    keyframes = truth[::2]  # 2.6, 4.4, 6.2, 8 px apart: linear motion puts every midpoint 0.15 px off
    linear = interpolate_flow_midpoint(keyframes, 2, sampling="bicubic")
    quadratic = interpolate_flow_midpoint(keyframes, 2, sampling="bicubic", motion="quadratic")
    assert torch.equal(quadratic[::2], keyframes.float())
    # the first and last pairs have an end frame without acceleration: score the middle ones
    inner = [3, 5]
    assert psnr(quadratic[inner], truth[inner]) > psnr(linear[inner], truth[inner]) + 3.0
    with pytest.raises(ValueError, match="motion"):
        interpolate_flow_midpoint(keyframes, 2, motion="cubic")


def test_flow_midpoint_moving_object_over_static_background():
    bg = texture(96, 96, seed=1, sigma=2.0)
    obj = texture(24, 24, seed=2, sigma=1.5)

    def frame(x):
        f = bg.copy()
        f[36:60, x : x + 24] = obj
        return f

    truth = to_clip(frame(20), frame(23), frame(26))
    mid = interpolate_flow_midpoint(truth[::2], 2)[1:2]
    blend = interpolate_blend(truth[::2], 2)[1:2]
    assert psnr(mid, truth[1:2]) > psnr(blend, truth[1:2]) + 5.0


# ------------------------------------------------------------------ tiny inputs with known answers


def test_richardson_lucy_identity_kernel_is_a_fixed_point():
    y = torch.rand(2, 3, 6, 5, generator=torch.Generator().manual_seed(0)) * 0.9 + 0.05
    assert torch.allclose(richardson_lucy(y, np.ones((1, 1)), iterations=5), y, atol=1e-6)


@pytest.mark.parametrize("method", ["telea", "ns"])
def test_inpaint_constant_frame_is_filled_with_the_constant(method):
    clip = torch.full((1, 3, 8, 8), 0.4)
    hole = torch.zeros(1, 1, 8, 8)
    hole[..., 3:5, 3:5] = 1
    out = inpaint_classical(clip * (1 - hole), hole, method)
    # Navier-Stokes is exact; Telea's gradient term sees the zeroed hole next to its border (about 1 level of 255)
    assert torch.allclose(out, clip, atol=1e-5 if method == "ns" else 0.01)


def test_interpolation_of_a_static_clip_repeats_the_frame():
    frame = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    clip = frame.expand(2, -1, -1, -1).contiguous()
    for fn in (interpolate_blend, interpolate_flow_midpoint):
        assert torch.allclose(fn(clip, 2), frame.expand(3, -1, -1, -1), atol=1e-5)
