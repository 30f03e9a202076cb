"""Real inputs: compression blocking folded into --sigma-y auto, deblur's --kernel auto, superres' upscale check."""
import json

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidrestore import baselines
from vidrestore import operators as ops
from vidrestore.cli import app
from vidrestore.io import quantize
from vidrestore.operators.blind import UPSCALE_RATIO, blocking, estimate_gaussian_blur, nyquist_ratio

from helpers import read_clip, write_clip

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def metrics_of(out):
    return json.loads(out.with_name(out.name + ".metrics.json").read_text())


def texture_clip(frames: int = 6, height: int = 48, width: int = 48, seed: int = 0) -> torch.Tensor:
    """A pan over a random texture with a natural (1/f amplitude) spectrum, (F, 3, H, W) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    h, w = height + 2 * frames, width + 2 * frames
    spectrum = torch.complex(torch.randn(3, h, w, generator=g, dtype=torch.float64),
                             torch.randn(3, h, w, generator=g, dtype=torch.float64))
    f = (torch.fft.fftfreq(h, dtype=torch.float64)[:, None] ** 2
         + torch.fft.fftfreq(w, dtype=torch.float64)[None] ** 2).sqrt().clamp_min(1.0 / max(h, w))
    image = torch.fft.ifft2(spectrum / f).real
    image = 0.5 + 0.15 * (image - image.mean()) / image.std()
    return torch.stack([image[:, k:k + height, 2 * k:2 * k + width] for k in range(frames)]).float().clamp(0, 1)


def jpeg(clip: torch.Tensor, quality: int) -> torch.Tensor:
    """Each frame through JPEG (8×8 blocks, no deblocking filter)."""
    out = []
    for frame in (clip.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8):
        ok, data = cv2.imencode(".jpg", np.ascontiguousarray(frame), [cv2.IMWRITE_JPEG_QUALITY, quality])
        out.append(cv2.imdecode(data, cv2.IMREAD_COLOR))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("real")
    truth = quantize(texture_clip(4, 32, 40))
    write_clip(d / "clean.mkv", truth)
    write_clip(d / "blocky.mkv", jpeg(truth, 10))
    write_clip(d / "blurred.mkv", quantize(ops.Blur(ops.gaussian_kernel(1.5)).A(truth)))
    low = quantize(ops.BoxDownsample(2).A(texture_clip(4, 64, 64, seed=1)))
    write_clip(d / "low.mkv", low)
    write_clip(d / "upscaled.mkv", quantize(baselines.upscale(low, 2, "bicubic")))
    return d


# ----------------------------------------------------------------------------- the estimates

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_blur_estimate_is_within_20_percent(seed):
    clip = texture_clip(seed=seed)
    for sigma in (1.0, 1.5, 2.0):
        estimate = estimate_gaussian_blur(quantize(ops.Blur(ops.gaussian_kernel(sigma)).A(clip)))
        assert abs(estimate - sigma) < 0.2 * sigma, (sigma, estimate)
    assert estimate_gaussian_blur(torch.full((2, 3, 16, 16), 0.5)) is None  # nothing to fit


def test_blocking_is_found_in_jpeg_and_not_in_clean_frames():
    clip = quantize(texture_clip(seed=3))
    assert blocking(clip)[1] == 0.0
    ratio, sigma = blocking(jpeg(clip, 10))
    error = float((jpeg(clip, 10) - clip).pow(2).mean().sqrt())
    assert ratio > 2 and 0.3 * error < sigma < 1.5 * error, (ratio, sigma, error)
    assert blocking(clip[:, :, :16, :16]) == (1.0, 0.0)  # too small to judge


def test_an_upscale_lacks_energy_near_nyquist():
    low = quantize(ops.BoxDownsample(2).A(texture_clip(4, 64, 64)))
    assert nyquist_ratio(low) > 10 * UPSCALE_RATIO
    for method in ("bicubic", "lanczos"):
        assert nyquist_ratio(quantize(baselines.upscale(low, 2, method))) < UPSCALE_RATIO
    assert nyquist_ratio(torch.full((2, 3, 16, 16), 0.5)) is None  # no detail: nothing to tell


# ----------------------------------------------------------------------------- through the CLI

def test_blocking_is_folded_into_sigma_y_auto(files, tmp_path):
    for name, blocky in (("clean", False), ("blocky", True)):
        out = tmp_path / f"{name}.mkv"
        result = run("superres", files / f"{name}.mkv", "-x", 2, "-o", out, "--model", "none", "--quiet")
        assert result.exit_code == 0, result.output
        m = metrics_of(out)
        assert (m["blocking"]["sigma"] > 0) == blocky and (m["blocking"]["ratio"] > 2) == blocky
        assert m["sigma_y"] >= m["blocking"]["sigma"]  # with the white-noise estimate (texture raises it a little)
    result = run("superres", files / "blocky.mkv", "-x", 2, "-o", tmp_path / "told.mkv", "--model", "none",
                 "--quiet", "--sigma-y", "0")
    assert result.exit_code == 0 and "blocking" not in metrics_of(tmp_path / "told.mkv")  # told: nothing estimated


def test_kernel_auto_through_the_cli(files, tmp_path):
    out = tmp_path / "auto.mkv"
    result = run("deblur", files / "blurred.mkv", "--kernel", "auto", "-o", out, "--model", "none", "--quiet")
    assert result.exit_code == 0, result.output
    m = metrics_of(out)
    assert abs(m["blur_sigma_estimated"] - 1.5) < 0.2 * 1.5 and m["kernel_estimated"].startswith("gaussian:")
    # the run solved with the kernel it reports
    known = tmp_path / "known.mkv"
    result = run("deblur", files / "blurred.mkv", "--kernel", m["kernel_estimated"], "-o", known, "--model", "none",
                 "--quiet")
    assert result.exit_code == 0 and torch.equal(read_clip(out), read_clip(known))
    assert "kernel_estimated" not in metrics_of(known)
    result = run("deblur", files / "blurred.mkv", "--kernel", "auto", "--temporal", "uniform:3", "-o",
                 tmp_path / "both.mkv", "--model", "none", "--quiet")
    assert result.exit_code == 0 and metrics_of(tmp_path / "both.mkv")["blur_sigma_estimated"] > 0
    result = run("evaluate", files / "clean.mkv", "--task", "deblur", "--kernel", "auto", "--methods", "none",
                 "-o", tmp_path / "report", "--quiet")
    assert result.exit_code == 2 and "--kernel auto is estimated from the input" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "report").exists()


def test_superres_warns_when_the_input_is_already_an_upscale(files, tmp_path):
    for name, upscaled in (("upscaled", True), ("low", False)):
        out = tmp_path / f"{name}.mkv"
        result = run("superres", files / f"{name}.mkv", "-x", 2, "-o", out, "--model", "none", "--quiet")
        assert result.exit_code == 0, result.output
        warned = [line for line in result.stderr.splitlines() if "already an upscale" in line]
        assert len(warned) == int(upscaled), result.stderr
        check = metrics_of(out)["input_check"]
        assert check["looks_upscaled"] == upscaled and (check["nyquist_ratio"] < UPSCALE_RATIO) == upscaled
        if upscaled:
            assert warned[0].startswith(f"vidrestore: warning: {files / name}.mkv: the input has almost no detail")


# ----------------------------------------------------------------------------- robust guidance

def test_flow_confidence_follows_the_forward_backward_error():
    from vidrestore.temporal.confidence import flow_confidence

    fwd = torch.zeros(2, 2, 8, 8)
    fwd[:, 0] = 1.5
    assert torch.allclose(flow_confidence(fwd, -fwd, 1.0), torch.ones(2, 1, 8, 8))  # consistent: full weight
    off = flow_confidence(fwd, -fwd + torch.tensor([1.0, 0.0]).view(1, 2, 1, 1), 1.0)
    assert torch.allclose(off, torch.full_like(off, float(np.exp(-0.5))))  # off by one scale: e^(-1/2)
    assert flow_confidence(fwd, fwd, 1.0).max() < 0.012  # both the same way: off by 3 pixels, e^(-4.5)
    with pytest.raises(ValueError):
        flow_confidence(fwd, fwd, 0.0)


def test_guidance_reliability_through_the_cli(files, tmp_path):
    from helpers import save_tiny_model

    model = save_tiny_model(tmp_path / "tiny")
    common = ["-x", 2, "--model", model, "--steps", 2, "--quiet", "--seed", 1]
    outs = {}
    for rel in ("0", "0.5"):
        outs[rel] = tmp_path / f"r{rel}.mkv"
        result = run("superres", files / "low.mkv", "-o", outs[rel], *common, "--set", f"guidance.reliability={rel}")
        assert result.exit_code == 0, result.output
        config = json.loads(outs[rel].with_name(outs[rel].name + ".config.json").read_text())
        assert config["guidance"]["reliability"] == float(rel) and config["guidance"]["equivariance"] > 0
    assert not torch.equal(read_clip(outs["0"]), read_clip(outs["0.5"]))  # the pulls are weighted
    result = run("superres", files / "low.mkv", "-o", tmp_path / "bad.mkv", *common, "--set",
                 "guidance.reliability=-1")
    assert result.exit_code == 2 and "guidance.reliability must be at least 0" in result.stderr
    assert "Traceback" not in result.output


def test_kernel_auto_keeps_the_resolved_noise_level(files, tmp_path):
    """--kernel auto changes the task's options; the noise level estimated before must survive that (it was once
    reset to 'auto' there, which the solvers read as σ_y = 0)."""
    from vidrestore.config import resolve_config
    from vidrestore.input_checks import resolve_input
    from vidrestore.tasks import get_task

    truth = read_clip(files / "blurred.mkv")
    noisy = quantize(truth + 0.03 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0)))
    write_clip(tmp_path / "noisy.mkv", noisy)
    cfg = resolve_config("deblur", flags={"degradation.kernel": "auto"})
    task = get_task("deblur")(cfg.degradation, 40, 32, 4)
    cfg, task, found, _ = resolve_input(cfg, task, tmp_path / "noisy.mkv")
    assert found["kernel_estimated"].startswith("gaussian:") and found["sigma_y_estimated"]
    assert cfg.degradation.sigma_y == task.options.sigma_y == pytest.approx(found["sigma_y"], abs=1e-6)
    assert found["sigma_y"] > 0.02
    assert cfg.degradation.kernel == task.options.kernel == found["kernel_estimated"]
