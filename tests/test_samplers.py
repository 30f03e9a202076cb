import pytest
import torch

from vidrestore.operators import (
    Blur,
    BoxDownsample,
    Mask,
    TemporalBlur,
    conjugate_gradient,
    gaussian_kernel,
    temporal_kernel,
)
from vidrestore.priors import PixelDenoiser, from_model, to_model
from vidrestore.samplers import (
    AVERAGE_SEED_STRIDE,
    INIT_STEP,
    SPACES,
    IndependentNoise,
    LatentSpace,
    PixelSpace,
    SharedNoise,
    ddim_invert,
    ddim_timesteps,
    dds_sample,
    gaussian_lowpass,
    gradient_normal,
    latent_motion,
    latent_timesteps,
    least_squares,
    lowpass_sigma,
    make_noise_sampler,
    make_space,
    start_for_first,
)

from helpers import random_clip, smooth_clip, tiny_unet

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def denoiser():
    unet, scheduler = tiny_unet()
    return PixelDenoiser(unet, scheduler)


def _dds(denoiser, *args, space=None, **kwargs):
    """dds_sample in the pixel space (full schedule unless another space is given)."""
    return dds_sample(denoiser, space or PixelSpace(denoiser), *args, **kwargs)


def test_svi_schedule():
    assert ddim_timesteps(20) == list(range(950, -1, -50))
    assert ddim_timesteps(4, start_t=400) == [300, 200, 100, 0]
    assert ddim_timesteps(1) == [0]
    with pytest.raises(ValueError):
        ddim_timesteps(0)


@pytest.mark.parametrize("steps", [2, 3, 6, 7])
@pytest.mark.parametrize("first", [1, 37, 150, 400, 998])
def test_a_start_whose_first_step_samples_at_a_given_timestep(steps, first):
    start = start_for_first(first, steps, 1000)
    schedule = ddim_timesteps(steps, 1000, start)
    if first <= 1000 * (steps - 1) / steps:  # exact, up to rounding, where the schedule reaches it
        assert 0 <= schedule[0] - first <= 1 and schedule[-1] == 0
    else:  # beyond: the whole schedule, from pure noise
        assert start == 1000


def test_one_step_samples_only_t_0_whatever_the_start():
    assert start_for_first(5, 1, 1000) == 5 and ddim_timesteps(1, 1000, 5) == [0]


def test_a_noisy_initial_estimate_gets_only_the_noise_it_lacks(denoiser):
    x_init = smooth_clip(2, 8, 8)
    z = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    noise = lambda *args: z
    t = 100
    a = float(denoiser.alphas_cumprod[t])
    sigma_t = ((1 - a) / (4 * a)) ** 0.5  # x_t's noise in [0, 1] units
    clean = PixelSpace(denoiser, start_t=200).initial([t], noise, range(2), x_init, (3, 8, 8), CPU, torch.float32)
    assert torch.allclose(clean, a ** 0.5 * to_model(x_init) + (1 - a) ** 0.5 * z, atol=1e-6)
    half = PixelSpace(denoiser, start_t=200, start_noise=sigma_t / 2)
    topped = half.initial([t], noise, range(2), x_init, (3, 8, 8), CPU, torch.float32)
    assert torch.allclose(topped, a ** 0.5 * to_model(x_init) + (0.75 * (1 - a)) ** 0.5 * z, atol=1e-6)
    # an estimate noisier than x_t should be gets none
    loud = PixelSpace(denoiser, start_t=200, start_noise=2 * sigma_t)
    assert torch.allclose(loud.initial([t], noise, range(2), x_init, (3, 8, 8), CPU, torch.float32),
                          a ** 0.5 * to_model(x_init))


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
    run = lambda seed: _dds(denoiser, op, y, ddim_timesteps(3), make_noise_sampler(noise, seed), frames=range(4))
    assert torch.equal(run(0), run(0))
    assert not torch.allclose(run(0), run(1))


def test_dds_output_is_data_consistent(denoiser):
    op, y = _sr_problem()
    x = _dds(denoiser, op, y, ddim_timesteps(3), SharedNoise(0), frames=range(4), cg_iterations=5)
    assert x.shape == (4, 3, 16, 16)
    assert ((op.A(x) - y).norm() / y.norm()).item() < 1e-2


def test_dds_partial_schedule_starts_from_the_initial_estimate(denoiser):
    op, y = _sr_problem()
    x_init = op.initial_estimate(y)
    space = PixelSpace(denoiser, start_t=200)
    assert space.partial and space.timesteps(2) == ddim_timesteps(2, start_t=200) == [100, 0]
    a = _dds(denoiser, op, y, space.timesteps(2), SharedNoise(0), frames=range(4), x_init=x_init, space=space)
    b = _dds(denoiser, op, y, space.timesteps(2), SharedNoise(0), frames=range(4), space=space)
    assert not torch.allclose(a, b)
    # starting near the answer keeps the result near it
    assert (a - x_init).abs().mean() < (b - x_init).abs().mean()
    # a full schedule starts from noise whatever the initial estimate
    full = PixelSpace(denoiser, start_t=denoiser.num_train_timesteps)
    assert not full.partial and full.timesteps(3) == ddim_timesteps(3)
    assert torch.equal(_dds(denoiser, op, y, [100, 0], SharedNoise(0), frames=range(4), x_init=x_init, space=full), b)


def test_dds_branches_eta_gamma_and_clipping(denoiser):
    op, y = _sr_problem()
    base = {"frames": range(4), "cg_iterations": 3}
    ts = ddim_timesteps(3)
    plain = _dds(denoiser, op, y, ts, SharedNoise(0), **base)
    eta0 = _dds(denoiser, op, y, ts, SharedNoise(0), eta=0.0, **base)
    gamma = _dds(denoiser, op, y, ts, SharedNoise(0), gamma=1.0, **base)
    unclipped = _dds(denoiser, op, y, ts, SharedNoise(0), space=PixelSpace(denoiser, clip_denoised=False), **base)
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
    shared = _dds(denoiser, op, y, ts, SharedNoise(0), frames=range(4))
    indep = _dds(denoiser, op, y, ts, IndependentNoise(0), frames=range(4))
    flicker = lambda x: (x[1:] - x[:-1]).abs().mean().item()
    assert flicker(shared) < 1e-4 < flicker(indep)


def test_dds_calls_back_every_step(denoiser):
    op, y = _sr_problem()
    seen = []
    _dds(denoiser, op, y, ddim_timesteps(3), SharedNoise(0), frames=range(4), callback=lambda i, t: seen.append((i, t)))
    assert seen == list(enumerate(ddim_timesteps(3)))


def test_dds_needs_a_timestep(denoiser):
    op, y = _sr_problem()
    with pytest.raises(ValueError, match="timestep"):
        _dds(denoiser, op, y, [], SharedNoise(0), frames=range(4))


# ----------------------------------------------------------------------------- spaces: one loop for pixel and latent


class IdentityVAE:
    """A pixel prior declared as a latent one whose VAE maps the clip onto the model range and back:
    the latent space then runs exactly the pixel space's arithmetic (no low-pass, same noise shape)."""

    space = "latent"

    def __init__(self, pixel: PixelDenoiser):
        self.pixel, self.alphas_cumprod, self.name = pixel, pixel.alphas_cumprod, "identity-vae"
        self.calls: list[tuple[int, int]] = []  # (frames, timestep) of every tweedie

    @property
    def num_train_timesteps(self) -> int:
        return self.pixel.num_train_timesteps

    def tweedie(self, z, t):
        self.calls.append((z.shape[0], int(t)))
        return self.pixel.tweedie(z, t)

    def latent_shape(self, height, width):
        return 3, height, width

    def encode(self, x):
        return to_model(x)

    def decode(self, z, size):
        return from_model(z)[..., :size[0], :size[1]]


def test_latent_space_with_an_identity_vae_is_the_pixel_path(denoiser):
    op, y = _sr_problem()
    x_init = op.initial_estimate(y)
    fake = IdentityVAE(denoiser)
    ts = ddim_timesteps(3)
    steps = {"pixel": [], "latent": []}
    pixel = _dds(denoiser, op, y, ts, SharedNoise(0), frames=range(4), space=PixelSpace(denoiser),
                 guidance=_halve_flicker, callback=lambda i, t: steps["pixel"].append((i, t)))
    latent = _dds(fake, op, y, ts, SharedNoise(0), frames=range(4), space=LatentSpace(fake, init="noise", lpf_scale=0),
                  guidance=_halve_flicker, callback=lambda i, t: steps["latent"].append((i, t)))
    assert torch.equal(pixel, latent) and steps["pixel"] == steps["latent"] == list(enumerate(ts))
    # a noised start is the pixel path's partial schedule
    partial = PixelSpace(denoiser, start_t=300)
    ts = partial.timesteps(3)
    a = _dds(denoiser, op, y, ts, IndependentNoise(1), frames=range(4), x_init=x_init, space=partial)
    b = _dds(fake, op, y, ts, IndependentNoise(1), frames=range(4), x_init=x_init,
             space=LatentSpace(fake, init="noised", lpf_scale=0.0))
    assert torch.equal(a, b)
    # the scheduled low-pass is what sets them apart
    c = _dds(fake, op, y, ts, IndependentNoise(1), frames=range(4), x_init=x_init,
             space=LatentSpace(fake, init="noised", lpf_scale=2.0))
    assert not torch.allclose(a, c)


def _halve_flicker(x0, step, t):
    """A guidance hook: pulls every frame halfway to the clip's mean frame."""
    return 0.5 * (x0 + x0.mean(dim=0, keepdim=True))


def test_make_space_picks_by_the_declared_attribute(denoiser):
    space = make_space(denoiser, start_t=400, init="noise", inversion_t=300, lpf_scale=1.0, cuts=[2])
    assert isinstance(space, PixelSpace) and space.start_t == 400 and space.timesteps(4) == [300, 200, 100, 0]
    fake = IdentityVAE(denoiser)
    space = make_space(fake, start_t=400, init="noised", inversion_t=200, lpf_scale=1.0, cuts=[2])
    assert isinstance(space, LatentSpace)
    assert (space.init, space.inversion_t, space.lpf_scale, space.cuts) == ("noised", 200, 1.0, [2])
    assert space.timesteps(10) == latent_timesteps(10, 1000, "noised", 200) == [200, 100, 0]
    assert make_space(fake) == LatentSpace(fake)  # None: the space's defaults

    class DeclaredLatent(PixelDenoiser):  # a PixelDenoiser by type, latent by declaration
        space = "latent"

    declared = DeclaredLatent(*tiny_unet())
    assert isinstance(make_space(declared), LatentSpace)
    assert set(SPACES) == {"pixel", "latent"}
    for bad in (object(), type("Flow", (), {"space": "flow"})()):
        with pytest.raises(ValueError, match="space"):
            make_space(bad)


def test_pixel_space_initial_noise_and_noised_estimate(denoiser):
    x_init = smooth_clip(4, 16, 16)
    args = (range(4), None, (3, 16, 16), CPU, torch.float32)
    fresh = SharedNoise(0)(INIT_STEP, range(4), (3, 16, 16), CPU, torch.float32)
    assert torch.equal(PixelSpace(denoiser).initial([950, 0], SharedNoise(0), *args), fresh)
    partial = PixelSpace(denoiser, start_t=200)
    assert torch.equal(partial.initial([100, 0], SharedNoise(0), *args), fresh)  # no estimate: noise
    a = float(denoiser.alphas_cumprod[100])
    with_init = partial.initial([100, 0], SharedNoise(0), range(4), x_init, (3, 16, 16), CPU, torch.float32)
    assert torch.equal(with_init, a ** 0.5 * (2 * x_init - 1) + (1 - a) ** 0.5 * fresh)
    # clean: clamp in model range, then to [0, 1]; back: to the model range
    x0 = torch.tensor([-3.0, -1.0, 0.0, 0.5, 2.0])
    assert torch.equal(PixelSpace(denoiser).clean(x0, (3, 16, 16)), torch.tensor([0.0, 0.0, 0.5, 0.75, 1.0]))
    assert torch.equal(PixelSpace(denoiser, clip_denoised=False).clean(x0, ()), (x0 + 1) * 0.5)
    assert torch.equal(PixelSpace(denoiser).back(torch.tensor([0.0, 1.0]), 500), torch.tensor([-1.0, 1.0]))


def test_latent_space_initialisations(denoiser):
    fake = IdentityVAE(denoiser)
    clip = torch.cat([smooth_clip(3, 16, 16, seed=0) * 0.3, 1 - 0.3 * smooth_clip(3, 16, 16, seed=1)])  # a cut at 3
    args = (SharedNoise(0), range(6), clip, (3, 16, 16), CPU, torch.float32)
    ts = [300, 150, 0]
    # inversion: the first frame of every shot, encoded and DDIM-inverted up 0 → 150, copied to its shot
    z = LatentSpace(fake, cuts=None).initial(ts, *args)  # cuts found on the estimate
    assert fake.calls == [(2, 0), (2, 150)]
    assert all(torch.equal(z[0], z[j]) for j in (1, 2)) and all(torch.equal(z[3], z[j]) for j in (4, 5))
    assert not torch.equal(z[2], z[3])
    assert torch.equal(z[[0, 3]], ddim_invert(fake, to_model(clip[[0, 3]]), [0, 150, 300]))
    one_shot = LatentSpace(fake, cuts=()).initial(ts, *args)  # cuts given: none
    assert all(torch.equal(one_shot[0], one_shot[j]) for j in range(1, 6))
    assert torch.allclose(one_shot[0], z[0], atol=1e-5)  # the same frame, inverted in a batch of 1 or 2
    # noised: every frame encoded and noised to the first timestep; noise: noise alone
    fresh = SharedNoise(0)(INIT_STEP, range(6), (3, 16, 16), CPU, torch.float32)
    a = float(denoiser.alphas_cumprod[300])
    assert torch.equal(LatentSpace(fake, init="noised").initial(ts, *args),
                       a ** 0.5 * to_model(clip) + (1 - a) ** 0.5 * fresh)
    assert torch.equal(LatentSpace(fake, init="noise").initial(ts, *args), fresh)
    assert torch.equal(LatentSpace(fake, init="noise").initial(ts, SharedNoise(0), range(6), None, (3, 16, 16), CPU,
                                                               torch.float32), fresh)
    for init in ("inversion", "noised"):
        with pytest.raises(ValueError, match="needs an initial estimate"):
            LatentSpace(fake, init=init).initial(ts, SharedNoise(0), range(6), None, (3, 16, 16), CPU, torch.float32)
    with pytest.raises(ValueError, match="unknown init"):
        LatentSpace(fake, init="magic")


def test_latent_space_lowpass_schedule_and_decoding(denoiser):
    fake = IdentityVAE(denoiser)
    sigmas = []

    def lowpass(x, sigma):
        sigmas.append(sigma)
        return gaussian_lowpass(x, sigma)

    x = smooth_clip(2, 16, 16)
    space = LatentSpace(fake, lpf_scale=2.0, lowpass=lowpass)
    for t in (800, 300, 50):
        out = space.back(x, t)
        assert torch.equal(out, to_model(gaussian_lowpass(x, lowpass_sigma(2.0, float(fake.alphas_cumprod[t])))))
    assert sigmas == sorted(sigmas, reverse=True) and sigmas[0] > 1 and sigmas[-1] < 0.5
    assert sigmas[0] == pytest.approx((2.0 * (1 - float(fake.alphas_cumprod[800]))) ** 0.5)
    assert torch.equal(LatentSpace(fake, lpf_scale=0.0).back(x, 800), to_model(x))  # off
    # clean: decode, then clamp to [0, 1] (unless told not to)
    z0 = torch.tensor([[[[-3.0, 0.0, 3.0]]]])
    assert torch.equal(space.clean(z0, (1, 1, 3)), torch.tensor([[[[0.0, 0.5, 1.0]]]]))
    unclipped = LatentSpace(fake, clip_denoised=False).clean(z0, (1, 1, 3))
    assert torch.equal(unclipped, torch.tensor([[[[-1.0, 0.5, 2.0]]]]))


def test_warped_noise_flows_follow_the_space(denoiser):
    flows = torch.randn(3, 2, 16, 16, generator=torch.Generator().manual_seed(0))
    masks = (torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(1)) > 0.2).float()
    f, m = PixelSpace(denoiser).noise_flows(flows, masks)
    assert f is flows and m is masks  # the pixel grid is the noise grid

    class Factor4(IdentityVAE):
        def latent_shape(self, height, width):
            return 4, -(-height // 4), -(-width // 4)

    space = LatentSpace(Factor4(denoiser))
    f, m = space.noise_flows(flows, masks)
    expected = latent_motion(flows, masks, (4, 4))
    assert torch.equal(f, expected[0]) and torch.equal(m, expected[1]) and f.shape == (3, 2, 4, 4)
    assert space.noise_shape((3, 16, 16)) == (4, 4, 4)
    # with the identity VAE the latent grid is the pixel grid: flows and masks stay as they are
    f, m = LatentSpace(IdentityVAE(denoiser)).noise_flows(flows, masks)
    assert torch.allclose(f, flows) and torch.equal(m, masks)


def test_restore_window_runs_every_space_through_one_loop(denoiser):
    from vidrestore.config import resolve_config
    from vidrestore.solve import restore_window

    op, y = _sr_problem()
    common = ["sampler.steps=3", "sampler.start_t=1000", "guidance.equivariance=0", "sampler.noise=shared",
              "latent.init=noise", "latent.lpf_scale=0"]
    cfg = resolve_config("superres", None, common)
    pixel = restore_window(denoiser, op, y, list(range(4)), cfg)
    fake = IdentityVAE(denoiser)
    assert torch.equal(restore_window(fake, op, y, list(range(4)), cfg), pixel)
    assert [t for _, t in fake.calls] == ddim_timesteps(3)


def test_averaged_samples_use_strided_seeds(denoiser):
    from vidrestore.config import resolve_config
    from vidrestore.solve import restore_window

    op, y = _sr_problem()
    common = ["sampler.steps=2", "sampler.start_t=1000", "guidance.equivariance=0", "sampler.noise=independent"]
    one = lambda seed: restore_window(denoiser, op, y, list(range(4)),
                                      resolve_config("superres", None, common + [f"runtime.seed={seed}"]))
    averaged = restore_window(denoiser, op, y, list(range(4)),
                              resolve_config("superres", None, common + ["runtime.seed=3", "sampler.average=2"]))
    assert torch.equal(averaged, (one(3) + one(3 + AVERAGE_SEED_STRIDE)) / 2)


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
