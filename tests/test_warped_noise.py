"""Temporal consistency: warped noise (integral noise warping) and equivariance self-guidance."""
import json

import pytest
import torch
from typer.testing import CliRunner

from vidrestore.cli import app
from vidrestore.config import resolve_config
from vidrestore.metrics import warping_error
from vidrestore.operators import BoxDownsample
from vidrestore.priors import PixelDenoiser
from vidrestore.samplers import (
    EquivarianceGuidance,
    PixelSpace,
    WarpedNoise,
    ddim_timesteps,
    dds_sample,
    equivariance_energy,
    make_noise_sampler,
    update_steps,
)
from vidrestore.temporal import backward_warp, occlusion_mask, window_motion

from helpers import save_tiny_model, smooth_clip, tiny_unet, write_clip

CPU = torch.device("cpu")
SHAPE = (3, 32, 32)


def constant_flows(n: int, dx: float, dy: float, h: int = 32, w: int = 32) -> torch.Tensor:
    """Backward flows of content moving by (dx, dy) per frame: frame[j+1](p) = frame[j](p - d)."""
    flows = torch.zeros(n, 2, h, w)
    flows[:, 0], flows[:, 1] = -dx, -dy
    return flows


def smooth_flows(n: int, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """Non-uniform, sub-pixel flows: a pan plus a smooth swirl."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    out = []
    for _ in range(n):
        a, b = torch.rand(2, generator=g) * 2 - 1
        out.append(torch.stack([0.6 * a + 0.8 * torch.sin(yy / 5), 0.6 * b + 0.8 * torch.cos(xx / 6)]))
    return torch.stack(out)


def lag1(x: torch.Tensor) -> tuple[float, float]:
    x = (x - x.mean()) / x.std()
    return float((x[..., :, 1:] * x[..., :, :-1]).mean()), float((x[..., 1:, :] * x[..., :-1, :]).mean())


def corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])


# ---------------------------------------------------------------- warped noise

def test_warped_noise_stays_standard_normal_and_white_after_many_warps():
    flows = smooth_flows(7)
    noise = torch.stack([WarpedNoise(seed, flows)(0, range(8), SHAPE, CPU, torch.float32) for seed in range(4)])
    assert noise.shape == (4, 8, *SHAPE)
    for j in range(8):  # every frame, the last one after seven warps too: 4 × 3072 values
        frame = noise[:, j]
        assert abs(float(frame.mean())) < 0.06 and abs(float(frame.std()) - 1) < 0.04, j
        assert max(abs(v) for v in lag1(frame)) < 0.05, j
    tail = float((noise[:, -1].abs() > 1.96).float().mean())  # a Gaussian tail, not a blurred one
    assert abs(tail - 0.05) < 0.015
    # ... and it moves with the flow: the last frame is far from fresh noise
    fresh = WarpedNoise(0, flows, cuts=[7])(0, range(8), SHAPE, CPU, torch.float32)
    moved, _ = backward_warp(noise[0, -2:-1], flows[-1:])
    assert corr(noise[0, -1], fresh[-1]) < 0.1 and corr(noise[0, -1], moved) > 0.5


def test_integer_translation_moves_the_noise_exactly_and_fills_the_revealed_border_with_fresh_noise():
    flows = constant_flows(3, 2, 1)
    noise = WarpedNoise(3, flows)(5, range(10, 14), SHAPE, CPU, torch.float32)
    for j in range(3):
        torch.testing.assert_close(noise[j + 1, :, 1:, 2:], noise[j, :, :-1, :-2], rtol=0, atol=1e-5)
    fresh = WarpedNoise(3, flows, cuts=[1])(5, range(10, 14), SHAPE, CPU, torch.float32)[1]
    assert torch.equal(noise[1, :, :1], fresh[:, :1]) and torch.equal(noise[1, :, :, :2], fresh[:, :, :2])


@pytest.mark.parametrize("dx, dy", [(0.5, 0.0), (-0.3, 0.6)])
def test_sub_pixel_translation_keeps_the_noise_correlated_and_white(dx, dy):
    flows = constant_flows(5, dx, dy)
    noise = WarpedNoise(1, flows)(0, range(6), SHAPE, CPU, torch.float32)
    moved, _ = backward_warp(noise[:-1], flows)
    inner = (slice(None), slice(None), slice(3, -3), slice(3, -3))
    # exact integral warping gives sqrt(sum of squared area weights): 0.71 and 0.58 here; fresh noise gives 0
    assert corr(noise[1:][inner], moved[inner]) > (0.6 if dx == 0.5 else 0.45)
    assert abs(float(noise.std()) - 1) < 0.04 and abs(float(noise.mean())) < 0.06
    assert max(abs(v) for v in lag1(noise[1:])) < 0.05  # a bilinear warp would give ~0.4 at lag 1


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.8])
def test_partial_correlation_keeps_the_noise_white_and_correlated_by_rho_along_the_motion(rho):
    flows = constant_flows(5, 2, 1)  # whole pixels: the moved part of the noise is exact
    noise = torch.stack([WarpedNoise(seed, flows, correlation=rho)(0, range(6), SHAPE, CPU, torch.float32)
                         for seed in range(4)])
    assert abs(float(noise.std()) - 1) < 0.03 and abs(float(noise.mean())) < 0.04
    assert max(abs(v) for v in lag1(noise[:, 1:])) < 0.04
    along = corr(noise[:, 1:, :, 1:, 2:], noise[:, :-1, :, :-1, :-2])
    assert abs(along - rho) < 0.04, along
    with pytest.raises(ValueError, match="correlation"):
        WarpedNoise(0, flows, correlation=1.5)


def test_occluded_pixels_get_fresh_noise():
    flows = torch.zeros(2, 2, 32, 32)
    masks = torch.ones(2, 1, 32, 32)
    masks[0, :, 8:20, 4:12] = 0  # frame 1: a region newly revealed
    noise = WarpedNoise(0, flows, masks)(2, range(3), SHAPE, CPU, torch.float32)
    fresh = WarpedNoise(0, flows, cuts=[1])(2, range(3), SHAPE, CPU, torch.float32)[1]
    hole = masks[0, 0] == 0
    assert torch.equal(noise[1][:, hole], fresh[:, hole])
    torch.testing.assert_close(noise[1][:, ~hole], noise[0][:, ~hole], rtol=0, atol=1e-5)  # static: copied
    assert corr(noise[1][:, hole], noise[0][:, hole]) < 0.3


def test_scene_cut_resets_the_noise():
    flows = smooth_flows(5)
    plain = WarpedNoise(4, flows)(1, range(20, 26), SHAPE, CPU, torch.float32)
    cut = WarpedNoise(4, flows, cuts=[3])(1, range(20, 26), SHAPE, CPU, torch.float32)
    assert torch.equal(cut[:3], plain[:3]) and not torch.allclose(cut[3], plain[3])
    # after the cut the noise is that of a window starting at the cut
    assert torch.equal(cut[3:], WarpedNoise(4, flows[3:])(1, range(23, 26), SHAPE, CPU, torch.float32))


def test_warped_noise_is_deterministic_per_seed_step_and_frames():
    flows = smooth_flows(3)
    run = lambda seed, step=0, frames=range(4): make_noise_sampler("warped", seed, flows=flows)(
        step, frames, SHAPE, CPU, torch.float32)
    assert torch.equal(run(0), run(0))
    assert torch.equal(run(0), WarpedNoise(0, flows)(0, range(4), SHAPE, CPU, torch.float32))
    assert not torch.allclose(run(0), run(1))
    assert not torch.allclose(run(0), run(0, step=1))
    assert not torch.allclose(run(0), run(0, frames=range(1, 5)))
    assert run(0, step=-1).dtype == torch.float32
    with pytest.raises(ValueError, match="flows"):
        make_noise_sampler("warped", 0)
    with pytest.raises(ValueError, match="needs 4 flows"):
        run(0, frames=range(5))
    # the other samplers ignore the flows
    assert torch.equal(make_noise_sampler("shared", 0, flows=flows)(0, range(4), SHAPE, CPU, torch.float32),
                       make_noise_sampler("shared", 0)(0, range(4), SHAPE, CPU, torch.float32))


# ---------------------------------------------------------------- equivariance guidance

def self_warping_clip(frames: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A clip with x[j] = warp(x[j+1], flows[j]) exactly, and those (forward, sub-pixel) flows."""
    flows = smooth_flows(frames - 1, 12, 14, seed).double()
    x = [torch.rand(1, 3, 12, 14, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)]
    for j in reversed(range(frames - 1)):
        x.insert(0, backward_warp(x[0], flows[j:j + 1])[0])
    return torch.cat(x), flows


def test_energy_is_zero_for_a_clip_that_is_its_own_warp():
    x, flows = self_warping_clip()
    e, grad = equivariance_energy(x, flows)
    assert float(e) == 0 and float(grad.abs().max()) == 0
    # an integer pan, with the occlusion masks of the pipeline: zero too, and positive once perturbed
    big = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(1))
    pan = torch.stack([big[:, 2:18, 6 - 2 * j:26 - 2 * j] for j in range(3)])  # content moves right 2 px/frame
    fwd, bwd = constant_flows(2, -2, 0, 16, 20), constant_flows(2, 2, 0, 16, 20)  # x[j](p) = x[j+1](p + (2, 0))
    masks = occlusion_mask(fwd, bwd)
    assert float(equivariance_energy(pan, fwd, masks)[0]) == 0
    assert float(equivariance_energy(pan, fwd, masks, sampling="bicubic")[0]) < 1e-9  # float32 coordinates
    assert float(equivariance_energy(pan + 0.1 * torch.rand(pan.shape), fwd, masks)[0]) > 0


def test_energy_gradient_matches_finite_differences():
    x, flows = self_warping_clip(seed=2)
    x = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    masks = (torch.rand(3, 1, 12, 14, generator=torch.Generator().manual_seed(4)) > 0.3).double()
    e, grad = equivariance_energy(x, flows, masks)
    assert float(e) > 0
    g = torch.Generator().manual_seed(5)
    for _ in range(3):
        v = torch.randn(x.shape, generator=g, dtype=torch.float64)
        h = 1e-4
        fd = (equivariance_energy(x + h * v, flows, masks)[0] - equivariance_energy(x - h * v, flows, masks)[0]) / (2 * h)
        assert float(fd) == pytest.approx(float((grad * v).sum()), rel=1e-6)


@pytest.mark.parametrize("sampling", ["bilinear", "bicubic"])
def test_guidance_step_lowers_the_energy(sampling):
    x, flows = self_warping_clip(seed=6)
    x = x + 0.2 * torch.randn(x.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    energies = [float(equivariance_energy(EquivarianceGuidance(lam, flows, sampling=sampling)(x, 0, 0), flows,
                                          sampling=sampling)[0])
                for lam in (0.0, 0.5, 1.0)]
    assert energies[0] > energies[1] > energies[2]
    assert EquivarianceGuidance(0.0, flows)(x, 0, 0) is x
    with pytest.raises(ValueError):
        EquivarianceGuidance(-1.0, flows)


def test_update_steps_spread_over_the_schedule():
    assert update_steps(20, 0) == frozenset() and update_steps(2, 3) == frozenset()
    assert update_steps(20, 1) == {10} and update_steps(20, 3) == {5, 10, 15}
    assert update_steps(4, 5) == {1, 2}  # never after the first step, nor after the last (no step would use it)


def test_guidance_reestimates_its_flow_after_the_update_steps():
    x, flows = self_warping_clip(seed=8)
    x = x + 0.1 * torch.rand(x.shape, generator=torch.Generator().manual_seed(9), dtype=x.dtype)
    other = torch.zeros_like(flows)
    seen = []

    def reestimate(clip):
        seen.append(clip)
        return other, torch.ones_like(other[:, :1])

    guidance = EquivarianceGuidance(1.0, flows, reestimate=reestimate, update_at={1})
    first = guidance(x, 0, 900)
    assert seen == [] and guidance.flows is not other  # step 0: the initial flow, no re-estimate
    second = guidance(x, 1, 800)
    assert len(seen) == 1 and torch.equal(seen[0], second.clamp(0, 1))  # measured on the guided estimate
    assert torch.equal(guidance.flows, other) and torch.equal(guidance.masks, torch.ones_like(other[:, :1]))
    assert torch.equal(first, second)  # the step itself used the old flow; later steps use the new one
    expected = x - (1.0 / 8) * equivariance_energy(x, other, torch.ones_like(other[:, :1]))[1]
    assert torch.allclose(guidance(x, 2, 700), expected)
    with pytest.raises(ValueError, match="reestimate"):
        EquivarianceGuidance(1.0, flows, update_at={1})


@pytest.fixture(scope="module")
def pan_problem():
    unet, scheduler = tiny_unet()
    truth = smooth_clip(6, 32, 32)  # a pan of (0.7, 0.3) px per frame
    op = BoxDownsample(2)
    y = op.A(truth)
    motion = window_motion(op.initial_estimate(y).clamp(0, 1), getattr(op, "known", None))  # as the pipeline does
    return PixelDenoiser(unet, scheduler), op, y, truth, motion


def test_guidance_lowers_the_warping_error_of_dds_on_a_pan(pan_problem):
    denoiser, op, y, truth, motion = pan_problem
    assert motion.cuts == [] and motion.valid_fwd.mean() > 0.8

    def run(weight):
        guidance = None if weight is None else EquivarianceGuidance(weight, motion.flows_fwd, motion.valid_fwd)
        x = dds_sample(denoiser, PixelSpace(denoiser), op, y, ddim_timesteps(4), make_noise_sampler("shared", 0),
                       frames=range(6), guidance=guidance)
        return x, warping_error(x.clamp(0, 1), truth)

    (x_off, we_off), (x_zero, _), (x_on, we_on) = run(None), run(0.0), run(0.5)
    assert torch.equal(x_off, x_zero)
    assert we_on < 0.75 * we_off
    assert ((op.A(x_on) - y).norm() / y.norm()).item() < 1e-2  # still data-consistent


def test_flow_updates_change_the_guided_restoration_and_keep_it_data_consistent(pan_problem):
    from vidrestore.solve import restore_window
    denoiser, op, y, truth, _ = pan_problem
    outs = []
    for updates in (0, 2):
        cfg = resolve_config("superres", None, ["sampler.steps=4", "sampler.start_t=1000",
                                                f"guidance.flow_updates={updates}"])
        outs.append(restore_window(denoiser, op, y, list(range(6)), cfg))
    assert not torch.equal(outs[0], outs[1])
    assert ((op.A(outs[1]) - y).norm() / y.norm()).item() < 1e-2


def test_dds_with_warped_noise(pan_problem):
    denoiser, op, y, truth, motion = pan_problem
    noise = make_noise_sampler("warped", 0, flows=motion.flows_bwd, masks=motion.valid_bwd, cuts=motion.cuts)
    x = dds_sample(denoiser, PixelSpace(denoiser), op, y, ddim_timesteps(3), noise, frames=range(6))
    assert x.shape == truth.shape and torch.isfinite(x).all()
    assert torch.equal(x, dds_sample(denoiser, PixelSpace(denoiser), op, y, ddim_timesteps(3), noise, frames=range(6)))


def test_restore_window_passes_the_warp_correlation_to_the_noise(pan_problem):
    from vidrestore.solve import restore_window
    denoiser, op, y, truth, _ = pan_problem
    outs = {}
    for rho in (1.0, 0.5):
        cfg = resolve_config("superres", None, ["sampler.steps=3", "sampler.start_t=1000", "sampler.noise=warped",
                                                "guidance.equivariance=0", f"sampler.warp_correlation={rho}"])
        outs[rho] = restore_window(denoiser, op, y, list(range(6)), cfg)
    # the first frame's noise is fresh either way; the later frames' noise is not
    assert torch.equal(outs[1.0][0], outs[0.5][0]) and not torch.allclose(outs[1.0][1:], outs[0.5][1:])


def test_flow_blur_is_in_input_pixels_and_changes_the_measured_flow(pan_problem):
    from vidrestore.solve import window_coupling
    denoiser, op, y, truth, motion = pan_problem
    x_init = op.initial_estimate(y).clamp(0, 1)
    cfg = resolve_config("superres", None, ["guidance.flow_blur=0.5"])
    _, blurred = window_coupling(cfg, op, x_init, y)
    assert blurred.blur == 1.0  # 0.5 input pixels at x2
    assert motion.blur == 0.0 and not torch.allclose(blurred.flows_fwd, motion.flows_fwd)
    _, plain = window_coupling(resolve_config("superres", None, ["guidance.flow_blur=0"]), op, x_init, y)
    torch.testing.assert_close(plain.flows_fwd, motion.flows_fwd)


def test_window_motion_finds_scene_cuts_and_drops_their_pairs():
    clip = torch.cat([smooth_clip(3, 16, 16, seed=0) * 0.3, 1 - 0.3 * smooth_clip(3, 16, 16, seed=1)])
    motion = window_motion(clip)
    assert motion.cuts == [3] and motion.flows_fwd.shape == (5, 2, 16, 16)
    assert float(motion.valid_fwd[2].sum()) == 0 and float(motion.valid_bwd[2].sum()) == 0
    assert float(motion.valid_fwd[0].mean()) > 0.5


# ---------------------------------------------------------------- config and CLI

def test_config_accepts_warped_noise_and_the_guidance_weight(tmp_path):
    cfg = resolve_config("superres", None, ["guidance.equivariance=0.5", "sampler.noise=warped"])
    assert cfg.guidance.equivariance == 0.5 and cfg.sampler.noise == "warped"
    assert resolve_config("superres").guidance.equivariance == 1.5  # the default preset guides
    assert resolve_config("inpaint").guidance.equivariance == 0.0
    preset = tmp_path / "p.yaml"
    preset.write_text("sampler:\n  noise: warped\nguidance:\n  equivariance: 1\n")
    cfg = resolve_config("superres", str(preset))
    assert cfg.sampler.noise == "warped" and cfg.guidance.equivariance == 1.0
    assert type(cfg).from_dict(cfg.to_dict()) == cfg


def test_cli_with_warped_noise_and_equivariance_guidance(tmp_path):
    runner = CliRunner()
    low = write_clip(tmp_path / "low.mkv", BoxDownsample(2).A(smooth_clip(4, 32, 32)))
    tiny = save_tiny_model(tmp_path / "tiny")
    out = tmp_path / "out.mkv"
    result = runner.invoke(app, [str(a) for a in (
        "superres", low, "-x", 2, "-o", out, "--model", tiny, "--steps", 2, "--device", "cpu", "--quiet",
        "--noise", "warped", "--set", "guidance.equivariance=0.5")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out.mkv.metrics.json").read_text())["noise"] == "warped"
    config = json.loads((tmp_path / "out.mkv.config.json").read_text())
    assert config["sampler"]["noise"] == "warped" and config["guidance"]["equivariance"] == 0.5
    bad = runner.invoke(app, [str(a) for a in (
        "superres", low, "-x", 2, "-o", tmp_path / "bad.mkv", "--model", tiny, "--steps", 2, "--device", "cpu",
        "--quiet", "--set", "guidance.equivariance=-1")])
    assert bad.exit_code == 2 and "guidance.equivariance" in bad.output


def test_shots_on_either_side_of_a_cut_are_restored_independently():
    from vidrestore.config import resolve_config
    from vidrestore.operators import BoxDownsample
    from vidrestore.solve import restore_window

    unet, scheduler = tiny_unet()
    prior = PixelDenoiser(unet, scheduler)
    shot_b = smooth_clip(3, 32, 32, seed=5)
    op = BoxDownsample(2)
    cfg = resolve_config("superres", None, ["sampler.noise=warped", "guidance.equivariance=0.5", "sampler.steps=3"])
    outputs = []
    for seed in (1, 2):  # two different first shots, the same second shot
        clip = torch.cat([smooth_clip(3, 32, 32, seed=seed).flip(-1) * 0.3, shot_b])
        y = op.A(clip)
        outputs.append(restore_window(prior, op, y, list(range(6)), cfg))
    assert not torch.allclose(outputs[0][:3], outputs[1][:3])
    assert torch.allclose(outputs[0][3:], outputs[1][3:], atol=1e-6)
