"""Tests for vidrestore.realism: the patch SWD of Laplacian pyramids and the sharpness ratio."""

import math

import cv2
import numpy as np
import pytest
import torch

from vidrestore.metrics import psnr
from vidrestore.realism import laplacian_pyramid, sharpness_ratio, sliced_wasserstein


def texture_clip(frames=2, size=48, seed=0, width=None):
    """A clip of random texture with detail at every pyramid level (`width`: wider than tall)."""
    rng = np.random.default_rng(seed)
    shape = (size, width or size, 3)
    out = []
    for _ in range(frames):
        fine = rng.random(shape).astype(np.float32)
        coarse = cv2.GaussianBlur(rng.random(shape).astype(np.float32), (0, 0), 4)
        mix = 0.3 * cv2.GaussianBlur(fine, (0, 0), 0.8) + 0.7 * (coarse - coarse.min()) / np.ptp(coarse)
        out.append(mix)
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def blur(clip, sigma):
    frames = [cv2.GaussianBlur(f.permute(1, 2, 0).numpy(), (0, 0), sigma) for f in clip]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


def test_pyramid_levels_and_reconstruction():
    clip = texture_clip(1, 64)
    levels = laplacian_pyramid(clip)
    assert [lv.shape[-1] for lv in levels] == [64, 32, 16]  # bands at 64 and 32, the 16x16 remainder
    # collapsing the pyramid gives the clip back
    image = levels[-1][0].permute(1, 2, 0).numpy()
    for band in reversed(levels[:-1]):
        b = band[0].permute(1, 2, 0).numpy()
        image = cv2.pyrUp(image, dstsize=(b.shape[1], b.shape[0])) + b
    assert np.allclose(image, clip[0].permute(1, 2, 0).numpy(), atol=1e-5)


def test_swd_zero_for_identical_symmetric_and_deterministic():
    ref = texture_clip()
    other = blur(ref, 1.0)
    assert sliced_wasserstein(ref, ref.clone()).per_level == [0.0] * 2  # a band at 48x48, the 24x24 remainder
    ab, ba = sliced_wasserstein(other, ref), sliced_wasserstein(ref, other)
    assert ab.per_level == ba.per_level  # the same positions and directions for both clips
    assert sliced_wasserstein(other, ref).per_level == ab.per_level  # a fixed seed: the same number every time
    assert ab.mean == pytest.approx(sum(ab.per_level) / 2)
    assert sliced_wasserstein(other, ref, seed=1, projections=64).mean != ab.mean  # the seed is what fixes it


def test_swd_grows_with_blur_and_light_noise_costs_less_than_blur():
    ref = texture_clip()
    swd = lambda x: sliced_wasserstein(x, ref, projections=64).mean  # fewer directions: a quicker test
    values = [swd(blur(ref, s)) for s in (0.6, 1.2, 2.5)]
    assert 0 < values[0] < values[1] < values[2]
    noisy = (ref + 0.01 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert swd(noisy) < values[1]


def test_swd_ignores_where_detail_is_but_psnr_does_not():
    """A shifted copy has the right patches in the wrong place: poor PSNR, low SWD at the finest level;
    a blurred copy of better PSNR has lost the fine patches altogether."""
    wide = texture_clip(width=50)
    ref, shifted = wide[..., :48], wide[..., 2:]
    blurred = blur(ref, 1.5)
    assert psnr(shifted, ref) < psnr(blurred, ref)
    swd = lambda x: sliced_wasserstein(x, ref, projections=64).per_level[0]
    assert swd(shifted) < 0.5 * swd(blurred)


def test_swd_rejects_mismatched_or_tiny_clips():
    with pytest.raises(ValueError, match="shapes differ"):
        sliced_wasserstein(torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 17))
    with pytest.raises(ValueError, match="at least 7x7"):
        sliced_wasserstein(torch.rand(1, 3, 6, 16), torch.rand(1, 3, 6, 16))


def test_sharpness_ratio():
    ref = texture_clip()
    assert sharpness_ratio(ref, ref.clone()) == 1.0
    assert sharpness_ratio(blur(ref, 1.0), ref) < sharpness_ratio(blur(ref, 0.5), ref) < 1.0
    noisy = ref + 0.05 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(0))
    assert sharpness_ratio(noisy, ref) > 1.0
    flat = torch.full((1, 3, 8, 8), 0.5)
    assert sharpness_ratio(flat, flat) == 1.0 and math.isinf(sharpness_ratio(ref[:1, :, :8, :8], flat))
