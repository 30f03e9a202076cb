"""Latent priors (SD / SDXL) and the VISION-XL sampler, with tiny random pipelines built here (nothing downloaded)."""
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytest.importorskip("transformers")

from vidrestore.cli import app  # noqa: E402
from vidrestore.errors import ModelError  # noqa: E402
from vidrestore.operators import Blur, BoxDownsample, Mask, gaussian_kernel  # noqa: E402
from vidrestore.priors import LatentDenoiser, load_prior, model_kind  # noqa: E402
from vidrestore.samplers import (  # noqa: E402
    LatentSpace,
    dds_sample,
    gaussian_lowpass,
    latent_motion,
    latent_timesteps,
    lowpass_sigma,
    make_noise_sampler,
    make_space,
)

from helpers import save_tiny_model, smooth_clip, write_clip  # noqa: E402
from latent_models import save_tiny_latent_pipeline  # noqa: E402

runner = CliRunner()
CPU = torch.device("cpu")


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("latent")
    return {"sd": save_tiny_latent_pipeline(d / "sd", "sd"), "sdxl": save_tiny_latent_pipeline(d / "sdxl", "sdxl"),
            "sd_tiled": save_tiny_latent_pipeline(d / "sd_tiled", "sd", vae_sample_size=16),
            "pixel": save_tiny_model(d / "pixel")}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("latent_clips")
    truth = smooth_clip(4, 24, 20)
    write_clip(d / "low.mkv", BoxDownsample(2).A(truth))
    write_clip(d / "full.mkv", truth)
    write_clip(d / "odd.mkv", Blur(gaussian_kernel(1.0)).A(smooth_clip(3, 18, 14)))  # 18x14: not a multiple of 4
    return d


def _frames(folder: Path) -> np.ndarray:
    import cv2

    return np.stack([cv2.imread(str(p)) for p in sorted(folder.glob("*.png"))])


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


# ----------------------------------------------------------------------------- loading


def test_kind_is_detected_from_the_model_files(models):
    assert model_kind(str(models["sd"])) == "sd"
    assert model_kind(str(models["sdxl"])) == "sdxl"
    assert model_kind(str(models["pixel"])) == "pixel"
    assert model_kind("none") == "none"


def test_prompt_embeddings_are_cached_and_encoders_dropped(models):
    prior = load_prior(str(models["sdxl"]), CPU, prompt="a cat", guidance_scale=3.0)
    assert isinstance(prior, LatentDenoiser) and prior.sdxl and prior.cfg_active
    assert prior.cond.hidden.shape == (1, 16, 32) and prior.cond.pooled.shape == (1, 16)
    assert torch.count_nonzero(prior.uncond.hidden) == 0  # SDXL: zeros for the empty negative prompt
    assert not any("text_encoder" in name for name, _ in vars(prior).items())
    # two identical prompts would only double the cost: no CFG
    assert not load_prior(str(models["sd"]), CPU, guidance_scale=3.0).cfg_active


def test_pixel_model_refuses_latent_only_options(models):
    with pytest.raises(ModelError, match="Stable Diffusion"):
        load_prior(str(models["pixel"]), CPU, prompt="a cat")


def test_hub_id_without_network_fails_fast_with_one_line(clips, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    result = run("superres", clips / "low.mkv", "-x", 2, "--model", "someone/no-such-sdxl-xyz", "-o", tmp_path / "o")
    elapsed = time.perf_counter() - started
    assert result.exit_code == 5, result.output
    assert "someone/no-such-sdxl-xyz" in result.stderr and "no network" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert elapsed < 5 and not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- the prior


@pytest.fixture(scope="module")
def sd(models):
    return load_prior(str(models["sd"]), CPU, micro_batch=8)


def test_odd_sizes_are_padded_and_cropped_back(sd):
    x = torch.rand(2, 3, 18, 14, generator=torch.Generator().manual_seed(0))
    z = sd.encode(x)
    assert z.shape == (2, 4, 5, 4) == (2, *sd.latent_shape(18, 14))
    assert sd.decode(z, (18, 14)).shape == x.shape


def test_vae_tiling_path(models):
    prior = load_prior(str(models["sd_tiled"]), CPU, vae_tiling=True)  # VAE sample_size 16 < the 32 px frames
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    z = prior.encode(x)
    assert z.shape == (1, 4, 8, 8) and prior.decode(z, (32, 32)).shape == x.shape
    plain = load_prior(str(models["sd_tiled"]), CPU, vae_tiling=False)
    assert not torch.allclose(plain.encode(x), z)  # the tiled branch really ran


def test_micro_batching_does_not_change_the_prior(models):
    z = torch.randn(5, 4, 6, 5, generator=torch.Generator().manual_seed(1))
    one = load_prior(str(models["sdxl"]), CPU, micro_batch=8, prompt="a cat", guidance_scale=2.0)
    two = load_prior(str(models["sdxl"]), CPU, micro_batch=2, prompt="a cat", guidance_scale=2.0)
    for a, b in zip(one.tweedie(z, 200), two.tweedie(z, 200)):
        assert torch.allclose(a, b, atol=1e-5)
    assert torch.allclose(one.decode(z, (24, 20)), two.decode(z, (24, 20)), atol=1e-5)


# ----------------------------------------------------------------------------- the sampler


def _problem(h=24, w=20, frames=4):
    truth = smooth_clip(frames, h, w)
    op = BoxDownsample(2)
    y = op.A(truth)
    return op, y, op.initial_estimate(y)


def _latent_sample(prior, operator, y, timesteps, noise, *, init="inversion", lpf_scale=2.0, cuts=(),
                  lowpass=gaussian_lowpass, eta=0.2, cg_iterations=10, **kwargs):
    """dds_sample in the latent space, with VISION-XL's η and CG iterations."""
    space = LatentSpace(prior, init=init, lpf_scale=lpf_scale, cuts=cuts, lowpass=lowpass)
    return dds_sample(prior, space, operator, y, timesteps, noise, eta=eta, cg_iterations=cg_iterations, **kwargs)


class Recorder:
    """Wraps a prior's tweedie to record (batch size, timestep) and the latents it sees."""

    def __init__(self, prior):
        self.prior, self.calls, self.inputs = prior, [], []

    def __enter__(self):
        self.original = self.prior.tweedie

        def tweedie(z, t):
            self.calls.append((z.shape[0], int(t)))
            self.inputs.append(z.clone())
            return self.original(z, t)

        self.prior.tweedie = tweedie
        return self

    def __exit__(self, *exc):
        del self.prior.tweedie


def test_schedule_is_visionxl_s(sd):
    assert latent_timesteps(25, 1000, "inversion", 300) == [280, 240, 200, 160, 120, 80, 40, 0]
    assert latent_timesteps(25, 1000, "noise", 300)[0] == 960
    space = make_space(sd, start_t=50, init="inversion", inversion_t=300, lpf_scale=2.0, cuts=None)
    assert isinstance(space, LatentSpace) and space.timesteps(25) == [280, 240, 200, 160, 120, 80, 40, 0]


def test_inversion_one_latent_per_shot_copied_to_its_frames(sd):
    op, y, x_init = _problem()
    timesteps = [300, 200, 100, 0]
    with Recorder(sd) as rec:
        _latent_sample(sd, op, y, timesteps, make_noise_sampler("shared", 0), frames=range(4), x_init=x_init,
                      cuts=[2])
    # inversion: the first frame of each shot (2 shots) up 0 → 100 → 200, then 4 sampling steps over 4 frames
    assert rec.calls == [(2, 0), (2, 100), (2, 200), (4, 300), (4, 200), (4, 100), (4, 0)]
    z = rec.inputs[3]
    assert torch.equal(z[0], z[1]) and torch.equal(z[2], z[3]) and not torch.equal(z[1], z[2])


@pytest.mark.parametrize("init", ["noise", "noised"])
def test_other_initialisations(sd, init):
    op, y, x_init = _problem()
    with Recorder(sd) as rec:
        x = _latent_sample(sd, op, y, [300, 150, 0], make_noise_sampler("independent", 0), frames=range(4),
                          x_init=x_init, init=init)
    assert [c[0] for c in rec.calls] == [4, 4, 4]  # no inversion
    assert not torch.equal(rec.inputs[0][0], rec.inputs[0][1])
    assert x.shape == x_init.shape and (op.A(x) - y).norm() / y.norm() < 1e-2


def test_final_cg_is_data_consistent_and_deterministic(sd):
    op, y, x_init = _problem()
    args = (sd, op, y, [300, 200, 100, 0])
    a = _latent_sample(*args, make_noise_sampler("shared", 5), frames=range(4), x_init=x_init)
    b = _latent_sample(*args, make_noise_sampler("shared", 5), frames=range(4), x_init=x_init)
    c = _latent_sample(*args, make_noise_sampler("shared", 6), frames=range(4), x_init=x_init)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    assert (op.A(a) - y).norm() / y.norm() < 1e-2


def test_scheduled_lowpass_on_and_off(sd):
    op, y, x_init = _problem()
    sigmas = []

    def lowpass(x, sigma):
        sigmas.append(sigma)
        return gaussian_lowpass(x, sigma)

    timesteps = [300, 200, 100, 0]
    on = _latent_sample(sd, op, y, timesteps, make_noise_sampler("shared", 0), frames=range(4), x_init=x_init,
                       lpf_scale=2.0, lowpass=lowpass)
    expected = [lowpass_sigma(2.0, float(sd.alphas_cumprod[t])) for t in timesteps[:-1]]  # none after the last CG
    assert sigmas == pytest.approx(expected) and sigmas == sorted(sigmas, reverse=True) and sigmas[0] > 0.5
    off = _latent_sample(sd, op, y, timesteps, make_noise_sampler("shared", 0), frames=range(4), x_init=x_init,
                        lpf_scale=0.0)
    assert lowpass_sigma(0.0, 0.5) == 0.0 and not torch.allclose(on, off)
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(gaussian_lowpass(x, 0.0), x) and gaussian_lowpass(x, 1.0).std() < x.std()


def test_classifier_free_guidance_on_and_off(models):
    op, y, x_init = _problem()
    results = {}
    for scale in (1.0, 3.0):
        prior = load_prior(str(models["sdxl"]), CPU, prompt="a cat", guidance_scale=scale)
        results[scale] = _latent_sample(prior, op, y, [300, 0], make_noise_sampler("shared", 0),
                                       frames=range(4), x_init=x_init)
        # inversion (1 frame, 1 step) + 2 steps of 4 frames; CFG doubles every pass
        assert prior.network_evaluations == (2 if scale != 1.0 else 1) * (1 + 8)
    assert not torch.allclose(results[1.0], results[3.0])


@pytest.mark.parametrize("kind", ["independent", "shared", "warped"])
def test_noise_samplers_work_on_the_latent_grid(sd, kind):
    op, y, x_init = _problem()
    latent_size = sd.latent_shape(24, 20)
    flows, masks = LatentSpace(sd).noise_flows(torch.zeros(3, 2, 24, 20), torch.ones(3, 1, 24, 20))
    assert flows.shape == (3, 2, *latent_size[1:]) == (3, 2, 6, 5) and masks.shape == (3, 1, 6, 5)
    base = make_noise_sampler(kind, 0, flows=flows, masks=masks)
    shapes, draws = [], []

    def noise(step, frames, shape, device, dtype):
        shapes.append(tuple(shape))
        out = base(step, frames, shape, device, dtype)
        draws.append(out)
        return out

    _latent_sample(sd, op, y, [300, 200, 0], noise, frames=range(4), x_init=x_init)
    assert shapes == [latent_size, latent_size]  # one draw per re-noising, none for the inversion
    same = torch.allclose(draws[0][0], draws[0][3], atol=1e-5)
    assert same == (kind != "independent")  # zero flow: warped noise stays put like shared noise


def test_latent_motion_rescales_flows_and_masks():
    flows = torch.zeros(1, 2, 8, 8)
    flows[:, 0] = 4.0  # 4 px right = 1 latent px at factor 4
    masks = torch.ones(1, 1, 8, 8)
    masks[..., 0, 0] = 0
    small, small_masks = latent_motion(flows, masks, (2, 2))
    assert torch.allclose(small[:, 0], torch.ones(1, 2, 2)) and torch.all(small[:, 1] == 0)
    assert small_masks[0, 0, 0, 0] == 0 and small_masks.sum() == 3


def test_inpainting_keeps_its_measurements(sd):
    truth = smooth_clip(3, 16, 16)
    known = torch.ones(3, 1, 16, 16)
    known[..., 4:12, 4:12] = 0
    op = Mask(known)
    y = op.A(truth)
    x = _latent_sample(sd, op, y, [300, 0], make_noise_sampler("shared", 0), frames=range(3),
                      x_init=op.initial_estimate(y))
    assert (op.A(x) - y).norm() / y.norm() < 1e-4


# ----------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_superres_through_the_cli(models, clips, tmp_path, kind):
    out = tmp_path / "out"
    args = ("superres", clips / "low.mkv", "-x", 2, "--model", models[kind], "--steps", 10, "--seed", 3,
            "--device", "cpu", "--quiet")
    result = run(*args, "-o", out)
    assert result.exit_code == 0, result.output
    frames = _frames(out)
    assert frames.shape == (4, 24, 20, 3)
    m = _metrics(out)
    assert m["preset"] == f"superres-{kind}" if kind == "sdxl" else "superres-sd"  # chosen for the latent model
    assert m["prior"] == kind and m["init"] == "inversion" and m["inversion_t"] == 300
    assert m["data_consistency_residual"] < 1e-2
    # 10 steps over 1000 with t <= 300: 300, 200, 100, 0; the inversion adds 3 passes of one frame
    assert m["nfe"] == 4 and m["network_evaluations"] == 4 * 4 + 3
    again = tmp_path / "again"
    assert run(*args, "-o", again).exit_code == 0
    assert np.array_equal(_frames(again), frames)  # deterministic under --seed
    other = tmp_path / "other"
    assert run(*args[:-3], "--seed", 4, "--device", "cpu", "--quiet", "-o", other).exit_code == 0
    assert not np.array_equal(_frames(other), frames)


def test_micro_batching_gives_the_same_video(models, clips, tmp_path):
    outs = []
    for mb in (1, 4):
        out = tmp_path / f"mb{mb}"
        result = run("superres", clips / "low.mkv", "-x", 2, "--model", models["sd"], "--steps", 10,
                     "--micro-batch", mb, "--device", "cpu", "--quiet", "-o", out)
        assert result.exit_code == 0, result.output
        outs.append(_frames(out).astype(int))
    assert np.abs(outs[0] - outs[1]).max() <= 1  # float noise may flip a rounding


def test_inpaint_through_the_cli(models, clips, tmp_path):
    out = tmp_path / "out"
    result = run("inpaint", clips / "full.mkv", "--box", "4,4,8,8", "--model", models["sd"], "--steps", 10,
                 "--noise", "warped", "--device", "cpu", "--quiet", "-o", out)
    assert result.exit_code == 0, result.output
    assert _frames(out).shape == (4, 24, 20, 3)
    m = _metrics(out)
    assert m["preset"] == "inpaint-sd" and m["noise"] == "warped" and m["data_consistency_residual"] < 1e-2


def test_deblur_odd_size_through_the_cli_with_cfg(models, clips, tmp_path):
    out = tmp_path / "out"
    result = run("deblur", clips / "odd.mkv", "--kernel", "gaussian:1", "--model", models["sdxl"], "--steps", 10,
                 "--prompt", "a cat", "--guidance", 2.5, "--set", "latent.init=noised", "--device", "cpu",
                 "--quiet", "-o", out)
    assert result.exit_code == 0, result.output
    assert _frames(out).shape == (3, 18, 14, 3)  # padded to 20x16 for the VAE, cropped back
    m = _metrics(out)
    assert m["preset"] == "deblur-sd" and m["init"] == "noised" and m["classifier_free_guidance"]
    assert m["network_evaluations"] == 2 * 3 * 4  # no inversion; CFG doubles the passes
    assert m["data_consistency_residual"] < 1e-2


def test_estimate_is_printed_and_dry_run_writes_nothing(models, clips, tmp_path):
    out = tmp_path / "out"
    result = run("superres", clips / "low.mkv", "-x", 2, "--model", models["sdxl"], "--device", "cpu",
                 "--dry-run", "-o", out)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    est = report["estimate"]
    assert est["width"] == 20 and est["height"] == 24 and est["memory_gib"] > 0 and est["seconds_per_frame"] > 0
    assert est["dtype"] == "float32"  # fp32 is forced on CPU
    assert report["config"]["latent"]["inversion_t"] == 300 and report["config"]["preset"] == "superres-sdxl"
    assert "estimate on cpu" in result.stderr and not out.exists()
    result = run("superres", clips / "low.mkv", "-x", 2, "--model", models["sd"], "--steps", 10, "--device", "cpu",
                 "-o", out)
    assert result.exit_code == 0 and "estimate on cpu" in result.stderr and out.exists()


def test_bad_latent_options_are_one_line_errors(models, clips, tmp_path):
    result = run("superres", clips / "low.mkv", "-x", 2, "--model", models["sd"], "--set", "latent.init=magic",
                 "-o", tmp_path / "o")
    assert result.exit_code == 2 and "latent.init" in result.stderr
    result = run("superres", clips / "low.mkv", "-x", 2, "--model", models["sd"], "--vae", tmp_path / "nope",
                 "--quiet", "-o", tmp_path / "o")
    assert result.exit_code == 5 and "--vae" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
