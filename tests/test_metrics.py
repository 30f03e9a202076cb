"""Tests for vidrestore.metrics."""

import math

import cv2
import numpy as np
import pytest
import torch

from vidrestore.metrics import (
    data_consistency_residual,
    flicker,
    psnr,
    psnr_masked,
    psnr_per_frame,
    ssim,
    ssim_per_frame,
    warping_error,
    warping_error_per_pair,
)
from vidrestore.temporal import consecutive_flows


def texture(h, w, seed=0, sigma=2.0):
    rng = np.random.default_rng(seed)
    n = rng.random((h, w, 3)).astype(np.float32)
    n = cv2.GaussianBlur(n, (0, 0), sigma)
    return (n - n.min()) / (n.max() - n.min())


def pan_clip(n, step=2, size=64, seed=0):
    big = texture(size + 8 + n * step, size + 8 + n * step, seed=seed)
    frames = [big[4 : 4 + size, 4 + k * step : 4 + k * step + size] for k in range(n)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


# ------------------------------------------------------------------ PSNR


def test_psnr_constant_offset_is_20db():
    ref = torch.zeros(3, 3, 16, 16, dtype=torch.float64) + 0.25
    x = ref + 0.1
    assert psnr(x, ref) == pytest.approx(20.0, abs=1e-9)
    assert psnr_per_frame(x, ref) == pytest.approx([20.0] * 3, abs=1e-9)
    assert psnr(x, ref, data_range=2.0) == pytest.approx(20.0 + 20 * math.log10(2), abs=1e-9)


def test_psnr_identical_is_inf_and_pooling():
    ref = torch.rand(2, 3, 8, 8)
    assert psnr(ref, ref.clone()) == math.inf
    x = ref.clone()
    x[1] += 0.1  # only frame 1 differs: clip MSE = 0.01 / 2
    assert psnr_per_frame(x, ref)[0] == math.inf
    assert psnr(x, ref) == pytest.approx(10 * math.log10(2 / 0.01), abs=1e-4)
    with pytest.raises(ValueError):
        psnr(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))


def test_psnr_single_frame_chw():
    assert psnr(torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), 0.4)) == pytest.approx(20.0, abs=1e-4)


# ------------------------------------------------------------------ SSIM


def test_ssim_identical_and_constant():
    x = torch.rand(2, 3, 32, 32)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    # constant images: SSIM reduces to the luminance term (2ab + C1) / (a² + b² + C1)
    a, b, c1 = 0.5, 0.25, 0.01**2  # exact in float32
    expected = (2 * a * b + c1) / (a * a + b * b + c1)
    assert ssim(torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b)) == pytest.approx(expected, abs=1e-9)
    with pytest.raises(ValueError):
        ssim(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_ssim_matches_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(1)
    ref = torch.from_numpy(np.stack([texture(40, 48, seed=s) for s in range(2)])).permute(0, 3, 1, 2)
    x = (ref + 0.1 * torch.randn(ref.shape, generator=g)).clamp(0, 1)
    per = ssim_per_frame(x, ref)
    for i in range(2):
        sk = metrics.structural_similarity(
            x[i].permute(1, 2, 0).numpy().astype(np.float64),
            ref[i].permute(1, 2, 0).numpy().astype(np.float64),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=-1,
            data_range=1,
        )
        assert per[i] == pytest.approx(sk, abs=1e-3)
        assert per[i] == pytest.approx(sk, abs=1e-9)  # in fact the same computation
    assert ssim(x, ref) == pytest.approx(sum(per) / 2)
    # grayscale
    sk = metrics.structural_similarity(
        x[0, 0].numpy().astype(np.float64), ref[0, 0].numpy().astype(np.float64),
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
    )
    assert ssim(x[:1, :1], ref[:1, :1]) == pytest.approx(sk, abs=1e-9)


# ------------------------------------------------------------------ warping error


def test_warping_error_static_clip_is_zero():
    frame = torch.from_numpy(texture(48, 48)).permute(2, 0, 1)
    clip = frame.expand(4, -1, -1, -1).contiguous()
    assert warping_error(clip) == pytest.approx(0.0, abs=1e-8)
    assert len(warping_error_per_pair(clip)) == 3


def test_warping_error_pan_small_noise_large():
    gt = pan_clip(5, step=2)
    we_gt = warping_error(gt)
    g = torch.Generator().manual_seed(0)
    noisy = (gt + 0.05 * torch.randn(gt.shape, generator=g)).clamp(0, 1)
    we_noisy = warping_error(noisy, flow_source=gt)
    assert we_gt < 1e-3
    assert we_noisy > 10 * we_gt
    assert we_noisy == pytest.approx(2 * 0.05**2, rel=0.3)  # two independent noise samples
    # precomputed flows give the same numbers
    flows = consecutive_flows(gt)
    assert warping_error(noisy, flows=flows) == pytest.approx(we_noisy)
    assert math.isnan(warping_error(gt[:1]))
    with pytest.raises(ValueError):
        warping_error(noisy, flow_source=gt[:3])


def test_flicker_constant_error_vs_noise():
    gt = pan_clip(4, step=1)
    offset = (gt + 0.05).clamp(0, 1)  # the same error in every frame: no flicker
    g = torch.Generator().manual_seed(0)
    noisy = (gt + 0.05 * torch.randn(gt.shape, generator=g)).clamp(0, 1)
    assert flicker(offset, gt) < 1e-3
    assert flicker(noisy, gt) > 10 * flicker(offset, gt)


# ------------------------------------------------------------------ data consistency


def test_data_consistency_residual():
    def A(v):
        return 2 * v

    x = torch.ones(2, 1, 2, 2)
    y = torch.full((2, 1, 2, 2), 2.0)
    assert data_consistency_residual(A, x, y) == 0.0
    y2 = torch.full((2, 1, 2, 2), 4.0)  # A(x) - y = -2 everywhere: ‖.‖ = 2√8, ‖y‖ = 4√8
    assert data_consistency_residual(A, x, y2) == pytest.approx(0.5)
    assert data_consistency_residual(A, x, torch.zeros_like(y)) == pytest.approx(2 * math.sqrt(8))
    with pytest.raises(ValueError):
        data_consistency_residual(A, x, torch.zeros(3))


# ------------------------------------------------------------------ hand-computed values (known flows)


def _translation(n: int, shift: int, h: int = 12, w: int = 16):
    """A clip whose content moves `shift` pixels right per frame, with its exact forward and backward flows."""
    big = torch.from_numpy(texture(h, w + shift * n)).permute(2, 0, 1)
    clip = torch.stack([big[:, :, (n - k) * shift:(n - k) * shift + w] for k in range(n)])
    fwd = torch.zeros(n - 1, 2, h, w)
    fwd[:, 0] = shift  # a(p) = b(p + (shift, 0))
    return clip, (fwd, -fwd)


def test_warping_error_of_an_integer_translation_with_its_flow_is_zero():
    clip, flows = _translation(4, 2)
    assert torch.equal(clip[1][:, :, 2:], clip[0][:, :, :-2])  # the content really moves right
    assert warping_error_per_pair(clip, flows=flows) == [0.0, 0.0, 0.0]
    # a wrong flow (no motion) is not zero
    zero = torch.zeros_like(flows[0])
    assert warping_error(clip, flows=(zero, zero)) > 1e-3


def test_warping_error_and_flicker_hand_computed():
    ref = torch.full((3, 1, 8, 8), 0.5, dtype=torch.float64)
    zero = torch.zeros(2, 2, 8, 8, dtype=torch.float64)  # static: every pixel valid
    x = ref + torch.tensor([0.0, 0.1, 0.3], dtype=torch.float64).view(3, 1, 1, 1)
    # per pair: (e_i − e_{i+1})² = 0.01 and 0.04
    assert warping_error_per_pair(x, flows=(zero, zero)) == pytest.approx([0.01, 0.04], abs=1e-15)
    assert flicker(x, ref, flows=(zero, zero)) == pytest.approx(0.025, abs=1e-15)
    # a constant error does not flicker however large it is
    assert flicker(ref + 0.3, ref, flows=(zero, zero)) == 0.0


def test_psnr_masked_hand_computed():
    ref = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    x = ref.clone()
    x[:, :, :2] = 0.1  # error 0.1 in the top half only: MSE 0.01 there
    top = torch.zeros(2, 1, 4, 4)
    top[:, :, :2] = 1
    assert psnr_masked(x, ref, top) == pytest.approx(20.0, abs=1e-9)
    assert psnr_masked(x, ref, 1 - top) == math.inf
    # frame 0 only: MSE 0.01 · 1/2 (half its pixels are wrong) → 10·log10(200)
    assert psnr_masked(x, ref, torch.tensor([1.0, 0.0]).view(2, 1, 1, 1)) == pytest.approx(10 * math.log10(200), abs=1e-9)
    assert math.isnan(psnr_masked(x, ref, torch.zeros(1, 1, 1, 1)))
