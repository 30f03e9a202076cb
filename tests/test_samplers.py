import pytest
import torch

from helpers import random_clip, smooth_clip, tiny_unet
from vidrestore.operators import Blur, BoxDownsample, Mask, TemporalBlur, conjugate_gradient, gaussian_kernel, \
    temporal_kernel
from vidrestore.priors import PixelDenoiser
from vidrestore.samplers import (IndependentNoise, SharedNoise, dds_sample, ddim_timesteps, gradient_normal,
                                 least_squares, make_noise_sampler)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def denoiser():
    unet, scheduler = tiny_unet()
    return PixelDenoiser(unet, scheduler)


def test_svi_schedule():
    assert ddim_timesteps(20) == list(range(950, -1, -50))
    assert ddim_timesteps(4, start_t=400) == [300, 200, 100, 0]
    assert ddim_timesteps(1) == [0]
    with pytest.raises(ValueError):
        ddim_timesteps(0)


def test_shared_noise_is_shared_and_independent_is_not():
    shape = (3, 8, 8)
    shared = SharedNoise(1)(0, [0, 1, 2], shape, CPU, torch.float32)
    assert torch.equal(shared[0], shared[1]) and torch.equal(shared[1], shared[2])
    indep = IndependentNoise(1)(0, [0, 1, 2], shape, CPU, torch.float32)
    assert not torch.allclose(indep[0], indep[1])
    assert abs(indep.std().item() - 1) < 0.15


def test_noise_is_a_function_of_seed_step_and_frame():
    shape = (3, 8, 8)
    full = IndependentNoise(5)(3, list(range(6)), shape, CPU, torch.float32)
    part = IndependentNoise(5)(3, [2, 3], shape, CPU, torch.float32)
    assert torch.equal(full[2:4], part)
    assert not torch.equal(IndependentNoise(5)(4, [2], shape, CPU, torch.float32)[0], part[0])
    assert not torch.equal(SharedNoise(5)(3, [0], shape, CPU, torch.float32), SharedNoise(6)(3, [0], shape, CPU,
                                                                                             torch.float32))
    with pytest.raises(ValueError, match="unknown noise"):
        make_noise_sampler("pink", 0)


def _sr_problem(frames=4):
    x = smooth_clip(frames, 16, 16)
    op = BoxDownsample(2)
    return op, op.A(x)


@pytest.mark.parametrize("noise", ["independent", "shared"])
def test_dds_is_deterministic_per_seed(denoiser, noise):
    op, y = _sr_problem()
    run = lambda seed: dds_sample(denoiser, op, y, ddim_timesteps(3), make_noise_sampler(noise, seed),
                                  frames=range(4))
    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))


def test_dds_output_is_data_consistent(denoiser):
    op, y = _sr_problem()
    x = dds_sample(denoiser, op, y, ddim_timesteps(3), SharedNoise(0), frames=range(4), cg_iterations=5)
    assert x.shape == (4, 3, 16, 16)
    assert ((op.A(x) - y).norm() / y.norm()).item() < 1e-2


def test_dds_partial_schedule_starts_from_the_initial_estimate(denoiser):
    op, y = _sr_problem()
    x_init = op.initial_estimate(y)
    a = dds_sample(denoiser, op, y, ddim_timesteps(2, start_t=200), SharedNoise(0), frames=range(4),
                   x_init=x_init)
    b = dds_sample(denoiser, op, y, ddim_timesteps(2, start_t=200), SharedNoise(0), frames=range(4))
    assert not torch.allclose(a, b)
    # starting near the answer keeps the result near it
    assert (a - x_init).abs().mean() < (b - x_init).abs().mean()


def test_dds_branches_eta_gamma_and_clipping(denoiser):
    op, y = _sr_problem()
    base = dict(frames=range(4), cg_iterations=3)
    ts = ddim_timesteps(3)
    plain = dds_sample(denoiser, op, y, ts, SharedNoise(0), **base)
    eta0 = dds_sample(denoiser, op, y, ts, SharedNoise(0), eta=0.0, **base)
    gamma = dds_sample(denoiser, op, y, ts, SharedNoise(0), gamma=1.0, **base)
    unclipped = dds_sample(denoiser, op, y, ts, SharedNoise(0), clip_denoised=False, **base)
    for other in (eta0, gamma, unclipped):
        assert not torch.allclose(plain, other)
    # γ > 0 trades data consistency for staying near the prior's estimate
    res = lambda x: ((op.A(x) - y).norm() / y.norm()).item()
    assert res(gamma) > res(plain)


def test_dds_shared_noise_makes_a_static_scene_consistent(denoiser):
    static = smooth_clip(1, 16, 16).repeat(4, 1, 1, 1)
    op = BoxDownsample(2)
    y = op.A(static)
    ts = ddim_timesteps(4)
    shared = dds_sample(denoiser, op, y, ts, SharedNoise(0), frames=range(4))
    indep = dds_sample(denoiser, op, y, ts, IndependentNoise(0), frames=range(4))
    flicker = lambda x: (x[1:] - x[:-1]).abs().mean().item()
    assert flicker(shared) < 1e-4 < flicker(indep)


def test_dds_calls_back_every_step(denoiser):
    op, y = _sr_problem()
    seen = []
    dds_sample(denoiser, op, y, ddim_timesteps(3), SharedNoise(0), frames=range(4),
               callback=lambda i, t: seen.append((i, t)))
    assert seen == list(enumerate(ddim_timesteps(3)))


def test_cg_over_the_clip_equals_cg_per_frame_for_per_frame_operators():
    x_true = random_clip((3, 3, 12, 12), seed=2, dtype=torch.float64)
    op = Blur(gaussian_kernel(1.0))
    y = op.A(x_true)
    x0 = y.clone()
    joint = conjugate_gradient(op.normal, op.A_adjoint(y), x0, 300, gamma=1e-3)
    per_frame = torch.cat([conjugate_gradient(op.normal, op.A_adjoint(y[i:i + 1]), x0[i:i + 1], 300, gamma=1e-3)
                           for i in range(3)])
    assert torch.allclose(joint, per_frame, atol=1e-6)


def test_cg_over_the_clip_differs_from_per_frame_for_temporal_operators():
    x_true = random_clip((5, 3, 8, 8), seed=3, dtype=torch.float64)
    op = TemporalBlur(temporal_kernel("uniform:3"))
    y = op.A(x_true)
    joint = conjugate_gradient(op.normal, op.A_adjoint(y), y.clone(), 50, gamma=1e-3)
    per_frame = torch.cat([conjugate_gradient(lambda v: v, y[i:i + 1], y[i:i + 1], 50, gamma=1e-3)
                           for i in range(5)])
    assert not torch.allclose(joint, per_frame, atol=1e-3)
    assert (op.A(joint) - y).norm() < (op.A(per_frame) - y).norm()


def test_gradient_normal_is_the_gram_matrix_of_finite_differences():
    x = random_clip((2, 3, 7, 9), seed=4, dtype=torch.float64)
    dx, dy = torch.diff(x, dim=-1), torch.diff(x, dim=-2)
    assert torch.allclose((gradient_normal(x) * x).sum(), dx.pow(2).sum() + dy.pow(2).sum())


@pytest.mark.parametrize("op", [BoxDownsample(2), Blur(gaussian_kernel(1.0)),
                                Mask(torch.ones(1, 1, 16, 16).index_fill_(2, torch.arange(4, 9), 0.0))])
def test_least_squares_fits_the_measurements(op):
    x_true = smooth_clip(3, 16, 16)
    y = op.A(x_true)
    x = least_squares(op, y, smoothness=1e-3, iterations=60)
    assert ((op.A(x) - y).norm() / y.norm()).item() < 0.05
    assert (x - x_true).abs().mean() < (op.initial_estimate(y) - x_true).abs().mean() + 1e-6
