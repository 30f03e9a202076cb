"""The noise model (`--sigma-y auto|VALUE`), its estimate, and the `denoise` task through the CLI and `evaluate`."""
import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from vidrestore import operators as ops
from vidrestore.cli import app
from vidrestore.config import RunConfig, resolve_config
from vidrestore.errors import UsageError
from vidrestore.io import quantize
from vidrestore.operators.noise import estimable, estimate_sigma, proximal_weight, timestep_for_sigma
from vidrestore.solve import noise_gamma
from vidrestore.tasks import get_task

from helpers import read_clip, save_tiny_model, smooth_clip, write_clip

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def noisy(clip: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    return quantize(clip + sigma * torch.randn(clip.shape, generator=torch.Generator().manual_seed(seed)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("denoise")
    truth = quantize(smooth_clip(5, 32, 40, seed=2))
    write_clip(d / "truth.mkv", truth)
    write_clip(d / "noisy.mkv", noisy(truth, 0.06))
    save_tiny_model(d / "tiny")
    return d


# ----------------------------------------------------------------------------- the estimate

@pytest.mark.parametrize("sigma", [5 / 255, 10 / 255, 25 / 255])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_estimate_is_within_15_percent_of_known_noise(sigma, seed):
    clip = smooth_clip(8, 48, 48, seed=seed)
    estimate, channels = estimate_sigma(noisy(clip, sigma, seed))
    assert abs(estimate - sigma) < 0.15 * sigma, (estimate * 255, sigma * 255)
    assert len(channels) == 3 and all(abs(c - sigma) < 0.2 * sigma for c in channels)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_clean_8_bit_clip_estimates_to_zero(seed):
    for shape in ((5, 16, 24), (8, 48, 64)):
        assert estimate_sigma(quantize(smooth_clip(*shape, seed=seed))) == (0.0, [0.0, 0.0, 0.0])


def test_frames_too_small_to_tell_noise_from_texture_estimate_nothing():
    assert not estimable((12, 16)) and not estimable((2, 2)) and estimable((24, 32)) and estimable((48, 64))
    assert estimate_sigma(torch.zeros(2, 3, 2, 2)) == (0.0, [0.0, 0.0, 0.0])
    assert estimate_sigma(noisy(torch.full((6, 3, 12, 16), 0.5), 0.1)) == (0.0, [0.0, 0.0, 0.0])
    sigma, _ = estimate_sigma(noisy(torch.full((6, 3, 24, 32), 0.5), 0.1))  # six blocks a frame: enough
    assert 0.085 < sigma < 0.115


def test_the_weight_follows_the_noise_and_the_timestep():
    assert proximal_weight(0.0, 0.5) == 0.0
    low, high = proximal_weight(0.04, 0.99), proximal_weight(0.04, 0.5)
    assert low > high > 0  # late (low-noise) steps trust the prior more
    assert proximal_weight(0.08, 0.5) == pytest.approx(4 * high)
    alphas = torch.linspace(0.9999, 0.01, 1000)
    t = timestep_for_sigma(alphas, 0.05, 2.0)
    sigma_t = ((1 - alphas) / (4 * alphas)).sqrt()
    assert sigma_t[t] >= 0.1 > sigma_t[t - 1]


# ----------------------------------------------------------------------------- the config

def test_sigma_y_is_auto_by_default_and_round_trips():
    cfg = resolve_config("superres")
    assert cfg.degradation.sigma_y == "auto"
    assert RunConfig.from_dict(json.loads(cfg.to_json())) == cfg
    for value, expected in (("0.02", 0.02), (0.02, 0.02), (0, 0.0), ("auto", "auto")):
        cfg = resolve_config("deblur", flags={"degradation.sigma_y": value})
        assert cfg.degradation.sigma_y == expected
        assert RunConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert resolve_config("deblur", sets=["degradation.sigma_y=auto"]).degradation.sigma_y == "auto"
    for bad in ("loud", "-0.1", "nan", "inf"):
        with pytest.raises(UsageError, match="degradation.sigma_y must be 'auto' or a finite non-negative"):
            resolve_config("deblur", flags={"degradation.sigma_y": bad})
    with pytest.raises(UsageError, match="degradation.sigma_y: expected a number or a word"):
        resolve_config("deblur", flags={"degradation.sigma_y": True})


def test_sigma_zero_keeps_exact_data_consistency():
    assert noise_gamma(resolve_config("deblur", flags={"degradation.sigma_y": 0})) == 0.0
    assert noise_gamma(resolve_config("deblur")) == 0.0  # "auto" not resolved: exact, as before
    gamma = noise_gamma(resolve_config("deblur", flags={"degradation.sigma_y": 0.02}))
    assert callable(gamma) and gamma(0.5) == gamma(0.9999) == 1.0  # DDS's γ = 1 (noise_weight 0)
    gamma = noise_gamma(resolve_config("deblur", sets=["sampler.noise_weight=1"], flags={"degradation.sigma_y": 0.02}))
    assert gamma(0.5) == 1.0 and gamma(0.9999) > 10  # more weight on the prior near t = 0


def test_superres_weighs_a_noisy_input_by_its_noise_and_the_operators_scale():
    cfg = resolve_config("superres", flags={"degradation.sigma_y": 0.02})
    assert cfg.sampler.noisy_gamma == 0 and cfg.sampler.noise_weight == 16
    x2, x4 = noise_gamma(cfg, 1 / 4), noise_gamma(cfg, 1 / 16)
    assert x2(0.95) == pytest.approx(4 * x4(0.95)) == pytest.approx(proximal_weight(0.02, 0.95, 4.0))
    assert 0 < x4(0.95) < 0.1 < x4(0.9999)  # no floor: early steps keep to y, the last follow the prior
    assert noise_gamma(resolve_config("superres", flags={"degradation.sigma_y": 0})) == 0.0
    floored = noise_gamma(resolve_config("superres", sets=["sampler.noisy_gamma=1"],
                                         flags={"degradation.sigma_y": 0.02}), 1 / 16)
    assert floored(0.95) == 1.0


def test_denoise_options():
    cfg = resolve_config("denoise", flags={"degradation.sigma": "0.04"})
    assert cfg.degradation.noise_level == 0.04 and cfg.degradation.sigma_y == "auto"
    assert resolve_config("denoise", flags={"degradation.sigma_y": 0.04}).degradation.noise_level == 0.04
    assert resolve_config("denoise").degradation.noise_level == "auto"
    resolved = cfg.degradation.with_noise_level(0.05)
    assert resolved.noise_level == 0.05 and resolved.sigma is None
    with pytest.raises(UsageError, match="disagree"):
        resolve_config("denoise", flags={"degradation.sigma": 0.04, "degradation.sigma_y": 0.02})
    with pytest.raises(UsageError, match="degradation.sigma must be below 1"):
        resolve_config("denoise", flags={"degradation.sigma": 2})
    with pytest.raises(UsageError, match="degradation.start_scale"):
        resolve_config("denoise", sets=["degradation.start_scale=-1"])
    task = get_task("denoise")(resolve_config("denoise", "denoise").degradation, 16, 16, 4)
    alphas = torch.linspace(0.9999, 0.01, 1000)
    assert task.start_timestep(0.0, alphas) is None  # nothing to remove: the preset's start
    assert 1 <= task.start_timestep(0.04, alphas) < task.start_timestep(0.1, alphas) < 1000
    for bad in ("degradation.fuse_radius=-1", "degradation.fuse_radius=1.5", "degradation.fuse_tolerance=0"):
        with pytest.raises(UsageError, match=bad.split("=")[0]):
            resolve_config("denoise", sets=[bad])


def test_fused_window_problem_weighs_each_pixel_by_its_measurements():
    truth = smooth_clip(6, 32, 40, seed=5)
    y = noisy(truth, 0.05, seed=1)
    cfg = resolve_config("denoise", "denoise", flags={"degradation.sigma": 0.05})
    assert cfg.degradation.fuse_radius == 4
    task = get_task("denoise")(cfg.degradation, 40, 32, 6)
    y_solve, op, x_init = task.window_problem(y, ops.Identity())
    assert isinstance(op, ops.Diagonal) and torch.allclose(op.initial_estimate(y_solve).clamp(0, 1), x_init, atol=1e-6)
    assert op.weights.pow(2).mean() > 2  # most pixels are fused from more than two frames
    error = lambda x: (x - truth).pow(2).mean().item()
    assert error(x_init) < error(y) / 2
    # the start's noise is the fused frames' (σ √mean(1/n)), so the schedule starts lower than for σ itself
    alphas = torch.linspace(0.9999, 0.01, 1000)
    assert task.start_noise(0.05, op) < 0.05 * 0.8 and task.start_noise(0.05, ops.Identity()) == 0.05
    assert task.start_timestep(0.05, alphas, op) < task.start_timestep(0.05, alphas)
    # radius 0: the plain problem
    plain = get_task("denoise")(resolve_config("denoise", "denoise", flags={"degradation.sigma": 0.05},
                                               sets=["degradation.fuse_radius=0"]).degradation, 40, 32, 6)
    y2, op2, _ = plain.window_problem(y, ops.Identity())
    assert isinstance(op2, ops.Identity) and torch.equal(y2, y)


# ----------------------------------------------------------------------------- through the CLI

def metrics_of(out):
    return json.loads(out.with_name(out.name + ".metrics.json").read_text())


def test_sigma_y_auto_and_value_through_the_cli(files, tmp_path):
    common = ["-x", 2, "--model", files / "tiny", "--steps", 2, "--quiet", "--seed", 1]
    runs = {}
    for name, extra in (("default", []), ("auto", ["--sigma-y", "auto"]), ("zero", ["--sigma-y", "0"])):
        out = tmp_path / f"{name}.mkv"
        result = run("superres", files / "truth.mkv", "-o", out, *common, *extra)
        assert result.exit_code == 0, result.output
        runs[name] = read_clip(out)
        m = metrics_of(out)
        assert m["sigma_y"] == 0 and m["sigma_y_estimated"] == (name != "zero")
    # a clean input estimates to 0: the results are those of --sigma-y 0, bit for bit
    assert torch.equal(runs["default"], runs["zero"]) and torch.equal(runs["auto"], runs["zero"])
    out = tmp_path / "noisy.mkv"
    result = run("deblur", files / "noisy.mkv", "--kernel", "gaussian:1", "-o", out, "--model", files / "tiny",
                 "--steps", 2, "--quiet")
    assert result.exit_code == 0, result.output
    m = metrics_of(out)
    assert m["sigma_y_estimated"] and abs(m["sigma_y"] - 0.06) < 0.15 * 0.06 and len(m["sigma_y_channels"]) == 3
    result = run("deblur", files / "noisy.mkv", "--kernel", "gaussian:1", "-o", tmp_path / "v.mkv", "--model",
                 files / "tiny", "--steps", 2, "--quiet", "--sigma-y", "0.03")
    assert result.exit_code == 0 and metrics_of(tmp_path / "v.mkv")["sigma_y"] == 0.03
    for bad in ("loud", "-1"):
        result = run("superres", files / "truth.mkv", "-o", tmp_path / "bad.mkv", "--model", "none",
                     "--sigma-y", bad)
        assert result.exit_code == 2 and "degradation.sigma_y must be 'auto'" in result.stderr
        assert "Traceback" not in result.output


def test_frames_too_small_for_the_estimate_are_solved_noise_free_with_a_warning(tmp_path):
    write_clip(tmp_path / "tiny.mkv", noisy(smooth_clip(4, 12, 16, seed=3), 0.05))
    out = tmp_path / "out.mkv"
    result = run("superres", tmp_path / "tiny.mkv", "-x", 2, "-o", out, "--model", "none", "--quiet")
    assert result.exit_code == 0, result.output
    assert "frames of 16x12 are too small to tell noise from texture" in result.stderr
    assert metrics_of(out)["sigma_y"] == 0 and not metrics_of(out)["sigma_y_estimated"]
    result = run("superres", tmp_path / "tiny.mkv", "-x", 2, "-o", tmp_path / "told.mkv", "--model", "none",
                 "--quiet", "--sigma-y", "0.05")
    assert result.exit_code == 0 and "too small" not in result.stderr
    assert metrics_of(tmp_path / "told.mkv")["sigma_y"] == 0.05


def test_denoise_through_the_cli(files, tmp_path):
    base = ["--model", files / "tiny", "--steps", 2, "--quiet"]
    out = tmp_path / "auto.mkv"
    result = run("denoise", files / "noisy.mkv", "-o", out, *base)
    assert result.exit_code == 0, result.output
    m = metrics_of(out)
    assert m["task"] == "denoise" and m["sigma_y_estimated"] and abs(m["sigma_y"] - 0.06) < 0.009
    assert read_clip(out).shape == read_clip(files / "noisy.mkv").shape
    for name, extra in (("sigma", ["--sigma", "0.05"]), ("sigma_y", ["--sigma-y", "0.05"]),
                        ("fast", ["--sigma", "0.05", "--preset", "denoise-fast"])):
        path = tmp_path / f"{name}.mkv"
        result = run("denoise", files / "noisy.mkv", "-o", path, *base, *extra)
        assert result.exit_code == 0, result.output
        assert metrics_of(path)["sigma_y"] == 0.05 and not metrics_of(path)["sigma_y_estimated"]
    assert torch.equal(read_clip(tmp_path / "sigma.mkv"), read_clip(tmp_path / "sigma_y.mkv"))
    config = json.loads((tmp_path / "fast.mkv.config.json").read_text())
    assert config["preset"] == "denoise-fast" and config["degradation"]["sigma"] == 0.05
    # temporal fusion is on in the preset; off, the result differs and is further from the truth
    path = tmp_path / "unfused.mkv"
    result = run("denoise", files / "noisy.mkv", "-o", path, *base, "--sigma", "0.05", "--set",
                 "degradation.fuse_radius=0")
    assert result.exit_code == 0, result.output
    truth = read_clip(files / "truth.mkv")
    error = lambda p: (read_clip(p) - truth).pow(2).mean().item()
    assert error(tmp_path / "sigma.mkv") < error(path)
    result = run("denoise", files / "noisy.mkv", "-o", tmp_path / "w.mkv", *base, "--set", "degradation.fuse_radius=-1")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "degradation.fuse_radius" in result.stderr
    result = run("denoise", files / "noisy.mkv", "-o", tmp_path / "x.mkv", "--sigma", "0.05", "--sigma-y", "0.02",
                 "--model", "none")
    assert result.exit_code == 2 and "disagree" in result.stderr
    result = run("denoise", files / "noisy.mkv", "-o", tmp_path / "y.mkv", "--sigma", "much", "--model", "none")
    assert result.exit_code == 2 and "degradation.sigma must be 'auto'" in result.stderr
    # --sigma 0: nothing to remove, the input comes back
    result = run("denoise", files / "truth.mkv", "-o", tmp_path / "z.mkv", "--sigma", "0", *base)
    assert result.exit_code == 0, result.output
    assert torch.equal(read_clip(tmp_path / "z.mkv"), read_clip(files / "truth.mkv"))


def test_evaluate_denoise_with_the_baselines(files, tmp_path):
    pytest.importorskip("bm3d")
    out = tmp_path / "report"
    result = run("evaluate", files / "truth.mkv", "--task", "denoise", "--sigma", "0.06", "--model", files / "tiny",
                 "--set", "sampler.steps=2", "--presets", "denoise,denoise-fast", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "metrics.json").read_text())
    assert set(report["methods"]) == {"input", "bm3d", "nlm", "initial", "none", "denoise", "denoise-fast"}
    assert report["degradation"] == {"sigma": 0.06}
    truth, y = read_clip(out / "reference.mkv"), read_clip(out / "input.mkv")
    assert 0.045 < float((y - truth).std()) < 0.07  # seeded noise of σ 0.06, clipped at 0 and 1
    rows = report["methods"]
    assert rows["bm3d"]["psnr"] > rows["input"]["psnr"] + 3 and rows["nlm"]["psnr"] > rows["input"]["psnr"] + 3
    told = json.loads((out / "runs" / "denoise" / "output.mkv.metrics.json").read_text())
    assert told["sigma_y"] == 0.06 and not told["sigma_y_estimated"]  # the solvers are told the σ added
    # the same input restored with σ estimated (the command line's default)
    result = run("denoise", out / "input.mkv", "-o", tmp_path / "auto.mkv", "--reference", out / "reference.mkv",
                 "--model", files / "tiny", "--preset", "denoise-fast", "--quiet")
    assert result.exit_code == 0, result.output
    auto = metrics_of(tmp_path / "auto.mkv")
    assert auto["sigma_y_estimated"] and abs(auto["sigma_y"] - 0.06) < 0.15 * 0.06 and auto["psnr"] > 0
    result = run("evaluate", files / "truth.mkv", "--task", "denoise", "--sigma", "0.06", "--methods", "wiener",
                 "-o", tmp_path / "r2", "--quiet")
    assert result.exit_code == 2 and "unknown method 'wiener'" in result.stderr


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task=st.sampled_from(["denoise", "superres", "deblur"]),
       options=st.lists(st.tuples(st.sampled_from(["--sigma", "--sigma-y", "--deblock", "--set"]),
                                  st.one_of(st.sampled_from(["auto", "0", "0.05", "1", "-0.1", "nan", "inf", "1e9",
                                                             "AUTO", "", "degradation.sigma_y=auto",
                                                             "degradation.start_scale=x", "degradation.sigma=[1]",
                                                             "degradation.fuse_radius=-2", "degradation.fuse_radius=0",
                                                             "degradation.fuse_tolerance=nan", "on", "off",
                                                             "degradation.deblock=off"]),
                                            st.text(max_size=8))), max_size=3))
def test_random_noise_options_never_show_a_traceback(files, tmp_path_factory, task, options):
    d = tmp_path_factory.mktemp("fuzz")
    args = [task, files / "noisy.mkv", "-o", d / "out.mkv", "--model", "none", "--quiet"]
    args += ["--kernel", "gaussian:1"] if task == "deblur" else []
    for option, value in options:
        if option == "--sigma" and task != "denoise":
            continue
        args += [option, value]
    result = run(*args)
    assert result.exit_code in (0, 2), (args, result.output, result.exception)
    assert "Traceback" not in result.output
    assert (d / "out.mkv").exists() == (result.exit_code == 0)
