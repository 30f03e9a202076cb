"""Peer tools in `evaluate` (Real-ESRGAN, RIFE): one clear line when absent, real runs where installed."""
import json

import pytest
import torch
from typer.testing import CliRunner

from vidrestore import peers
from vidrestore.cli import app
from vidrestore.evaluate import resolve_evaluate_config
from vidrestore.tasks.interpolate import interpolate_initial_estimate

from helpers import smooth_clip, write_clip

runner = CliRunner()


def skip_unless(name):
    return pytest.mark.skipif(peers.missing(name) is not None, reason=peers.missing(name) or "")


def run(*args):
    return runner.invoke(app, ["evaluate", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def truth(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("peers") / "truth.mkv", smooth_clip(5, 24, 32))


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    """A texture panning 3 px per frame (wrapping round): cross-fading blurs it, motion-following methods do not."""
    texture = smooth_clip(1, 32, 48)[0] * 0.5 + 0.5 * smooth_clip(1, 32, 48, seed=1)[0].roll(7, dims=2)
    clip = torch.stack([texture.roll(3 * f, dims=2) for f in range(5)])
    return write_clip(tmp_path_factory.mktemp("peers") / "fast.mkv", clip)


def test_absent_peer_is_one_line_saying_what_to_install(truth, tmp_path, monkeypatch):
    monkeypatch.setattr(peers, "missing", lambda name: f"{name} needs the package x: pip install x")
    for task, name in (("superres", "realesrgan"), ("interpolate", "rife")):
        result = run(truth, "--task", task, "--methods", f"{name}", "-o", tmp_path / name)
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].endswith(f"{name} needs the package x: pip install x"), result.stderr
        assert not (tmp_path / name).exists()
        # not asked for by name: the default list simply leaves it out
        cfg = resolve_evaluate_config(truth, task, tmp_path / "d", {})
        assert name not in cfg.baselines and cfg.baselines


def test_missing_names_packages_and_system_libraries():
    for name in peers.PEERS:
        problem = peers.missing(name)
        assert problem is None or ("pip install" in problem or "apt-get install" in problem), problem
    with pytest.raises(ValueError):
        peers.missing("bogus")


def test_realesrgan_composition_is_said():
    assert peers.realesrgan_composition("general", 4) == "the x4 model"
    assert "then Lanczos x2" in peers.realesrgan_composition("general", 8)
    assert "downscaling to x2" in peers.realesrgan_composition("general", 2)
    assert peers.realesrgan_composition("anime", 3) == "the x3 model"
    assert "then Lanczos x2" in peers.realesrgan_composition("anime", 8)


@skip_unless("rife")
def test_rife_in_evaluate(fast, tmp_path):
    result = run(fast, "--task", "interpolate", "-x", 2, "--methods", "blend,rife", "-o", tmp_path / "r", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r/metrics.json").read_text())
    row = report["methods"]["rife"]
    assert row["kind"] == "baseline" and row["seconds"] > 0 and "RIFE v4" in row["note"]
    assert row["psnr_per_frame"][0] is None  # input frames are kept exactly
    # 6 px between input frames: RIFE's in-between frames beat cross-fading
    assert row["psnr_unknown"] > report["methods"]["blend"]["psnr_unknown"]
    assert "RIFE v4" in (tmp_path / "r/index.md").read_text()
    # installed: in the default method list
    assert "rife" in resolve_evaluate_config(fast, "interpolate", tmp_path / "d", {}).baselines


@skip_unless("rife")
def test_rife_keeps_input_frames_and_moves_content():
    # a bright square moving 4 px per frame: the invented frame puts it half-way
    clip = torch.zeros(2, 3, 32, 48)
    clip[0, :, 12:20, 8:16] = 1
    clip[1, :, 12:20, 16:24] = 1
    out = peers.rife_interpolate(clip, 2)
    assert out.shape == (3, 3, 32, 48) and torch.equal(out[::2], clip)
    columns = out[1, 0, 16]
    assert columns[12:20].mean() > 0.8 and columns[4:8].mean() < 0.2 and columns[24:28].mean() < 0.2


@skip_unless("realesrgan")
def test_realesrgan_in_evaluate_x8_composed(truth, tmp_path):
    result = run(truth, "--task", "superres", "-x", 8, "--frames", 2, "--methods", "bicubic,realesrgan",
                 "-o", tmp_path / "r", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r/metrics.json").read_text())
    assert report["methods"]["realesrgan"]["note"].endswith("the x4 model, then Lanczos x2")
    assert "then Lanczos x2" in (tmp_path / "r/index.md").read_text()


# ----------------------------------------------------------------------------- --large-motion (default 8 px)


def fast_pan(shift: int, frames: int = 5, h: int = 32, w: int = 48) -> torch.Tensor:
    """A camera panning `shift` px per frame over a wider texture: a band enters and leaves the frame."""
    wide = w + shift * frames
    texture = smooth_clip(1, h, wide, seed=2)[0] * 0.5 + 0.5 * smooth_clip(1, h, wide, seed=3)[0].flip(-1)
    return torch.stack([texture[:, :, shift * f: shift * f + w] for f in range(frames)])


def test_large_motion_fills_the_bands_a_fast_pan_uncovers(tmp_path):
    from helpers import read_clip

    truth = fast_pan(4)  # 8 px between the input frames
    write_clip(tmp_path / "in.mkv", truth[::2])
    psnr = {}
    for name, extra in (("off", ["--large-motion", "0"]), ("large", ["--large-motion", "6"]), ("default", [])):
        result = runner.invoke(app, ["interpolate", str(tmp_path / "in.mkv"), "-x", "2", *extra,
                                     "-o", str(tmp_path / f"{name}.mkv"), "--quiet"])
        assert result.exit_code == 0, result.output
        out = read_clip(tmp_path / f"{name}.mkv")
        psnr[name] = (10 * torch.log10(1 / ((out[1::2] - truth[1::2]) ** 2).mean())).item()
    assert psnr["large"] > psnr["off"] + 1.0, psnr
    assert psnr["default"] == psnr["large"]  # 8 px pairs: the default threshold (8) takes them too
    # pairs moving less than the threshold are interpolated as without it
    y = read_clip(tmp_path / "in.mkv")
    assert torch.equal(interpolate_initial_estimate(y, 2, large_motion=50), interpolate_initial_estimate(y, 2))


def test_unreliable_flow_is_filled_smoothly_from_its_neighbours():
    from vidrestore.temporal.large_motion import fill_unreliable_flow

    # a pan of (-16, -4) px with a little measurement noise, and a band of garbage where the flow left the frame
    noise = 0.05 * torch.randn(1, 2, 32, 48, generator=torch.Generator().manual_seed(0))
    flow = torch.tensor([-16.0, -4.0]).view(1, 2, 1, 1) + noise
    reliable = torch.ones(1, 1, 32, 48)
    reliable[..., :12] = 0
    flow[..., :12] = 40 * torch.randn(1, 2, 32, 12, generator=torch.Generator().manual_seed(1))
    filled = fill_unreliable_flow(flow, reliable)
    assert torch.equal(filled[..., 12:], flow[..., 12:])  # reliable pixels are kept
    band = filled[..., :12]
    assert (band - torch.tensor([-16.0, -4.0]).view(1, 2, 1, 1)).abs().max() < 0.1
    # no column-to-column ripple (Telea's inpainting left ±0.6 px, a visible error in the band it fed)
    assert band.diff(dim=-1).abs().max() < 0.02
    assert torch.equal(fill_unreliable_flow(flow, reliable, which=torch.tensor([False])), flow)


def test_large_motion_rejects_a_negative_threshold(tmp_path):
    write_clip(tmp_path / "in.mkv", fast_pan(2, frames=3))
    result = runner.invoke(app, ["interpolate", str(tmp_path / "in.mkv"), "--large-motion", "-1",
                                 "-o", str(tmp_path / "o.mkv")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "large_motion" in lines[0], result.stderr
    assert not (tmp_path / "o.mkv").exists()
