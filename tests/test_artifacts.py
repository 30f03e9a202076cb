"""Compression artifacts: the codec a probe reports, `--deblock auto|on|off`, and the shipped remover."""
import json
from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from vidrestore.artifacts import (
    DEBLOCKED_SIGMA,
    LOSSY_CODECS,
    ArtifactRemover,
    DeblockNet,
    resolve_deblock,
    shared_remover,
)
from vidrestore.cli import app
from vidrestore.config import resolve_config
from vidrestore.errors import UsageError
from vidrestore.evaluate import write_clip as write_video
from vidrestore.io import probe, quantize
from vidrestore.metrics import psnr

from helpers import read_clip, write_clip

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def metrics_of(out):
    return json.loads(out.with_name(out.name + ".metrics.json").read_text())


def photo_pan(frames: int = 6, size: int = 64) -> torch.Tensor:
    """A pan over a held-out photograph (scikit-image's coffee), (F, 3, size, size) 8-bit values in [0, 1]."""
    import skimage.data

    still = cv2.resize(skimage.data.coffee(), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    still = torch.from_numpy(still).permute(2, 0, 1).float() / 255
    return torch.stack([still[:, 20 + k:20 + k + size, 40 + 2 * k:40 + 2 * k + size] for k in range(frames)])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("artifacts")
    clip = quantize(photo_pan())
    write_clip(d / "truth.mkv", clip)
    write_video(d / "crf32.mp4", clip, Fraction(25), crf=32)
    return d


def test_probe_reports_the_codec(files, tmp_path):
    assert probe(files / "crf32.mp4").codec == "h264"
    assert probe(files / "truth.mkv").codec == "ffv1"
    frame = np.zeros((8, 8, 3), np.uint8)
    for suffix, codec in ((".png", "png"), (".jpg", "mjpeg")):
        folder = tmp_path / suffix[1:]
        folder.mkdir()
        cv2.imwrite(str(folder / f"0001{suffix}"), frame)
        assert probe(folder).codec == codec


def test_auto_follows_the_codec():
    assert resolve_deblock("auto", "h264") and resolve_deblock("auto", "mjpeg") and resolve_deblock("auto", "vp9")
    assert not resolve_deblock("auto", "ffv1") and not resolve_deblock("auto", "png")
    assert not resolve_deblock("auto", None) and not resolve_deblock("auto", "h264", lossy_default=False)
    assert resolve_deblock("on", "ffv1") and not resolve_deblock("off", "h264")
    assert {"h264", "hevc", "av1"} <= LOSSY_CODECS and "ffv1" not in LOSSY_CODECS


def test_config_checks_the_value():
    assert resolve_config("superres").degradation.deblock == "auto"
    assert resolve_config("deblur", sets=["degradation.deblock=off"]).degradation.deblock == "off"
    with pytest.raises(UsageError, match="degradation.deblock must be one of auto, on, off"):
        resolve_config("superres", flags={"degradation.deblock": "maybe"})


def test_the_remover_keeps_shape_range_and_dtype_on_any_size():
    for radius in (0, 1):
        remover = ArtifactRemover(DeblockNet(8, radius), torch.device("cpu"), batch=2)
        for h, w in ((5, 7), (16, 24), (33, 18)):
            frames = torch.rand(3, 3, h, w, dtype=torch.float64)
            out = remover(frames)
            assert out.shape == frames.shape and out.dtype == frames.dtype
            assert out.min() >= 0 and out.max() <= 1


def test_a_single_frame_network_grown_to_neighbours_is_the_same_function():
    from helpers import load_script

    train = load_script("train_deblock")
    torch.manual_seed(0)
    single, multi = DeblockNet(8), DeblockNet(8, radius=2)
    multi.load_state_dict(train.grown(single.state_dict(), multi.state_dict()))
    frames = torch.rand(5, 3, 12, 16)
    assert torch.allclose(ArtifactRemover(single, torch.device("cpu"), batch=3)(frames),
                          ArtifactRemover(multi, torch.device("cpu"), batch=3)(frames), atol=1e-6)
    # the neighbours the grown network sees are the frames next to each one: a batch split changes nothing
    x = ArtifactRemover(multi, torch.device("cpu"), batch=5)(frames)
    multi.enc1[0][0].weight.data[:, :6] += 0.1  # now the two frames before each one matter
    a, b = (ArtifactRemover(multi, torch.device("cpu"), batch=n)(frames) for n in (2, 5))
    assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(a, x)


def test_the_shipped_remover_brings_h264_frames_closer_to_what_was_encoded(files):
    truth, decoded = read_clip(files / "truth.mkv"), read_clip(files / "crf32.mp4")
    restored = shared_remover(torch.device("cpu"))(decoded)
    # a held-out photograph, CRF 32: the network must undo part of what the encoder did
    assert psnr(quantize(restored), truth) > psnr(decoded, truth) + 0.3
    # and it is no blur: the restored frames keep more detail than a 3x3 box filter of the decoded ones
    box = F.avg_pool2d(F.pad(decoded, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    assert psnr(restored, truth) > psnr(box, truth)


def test_deblock_through_the_cli(files, tmp_path):
    for name, source, extra, expected in (("auto-mp4", "crf32.mp4", [], True), ("off-mp4", "crf32.mp4",
                                          ["--deblock", "off"], False), ("auto-mkv", "truth.mkv", [], False),
                                          ("on-mkv", "truth.mkv", ["--deblock", "on"], True),
                                          ("set-mp4", "crf32.mp4", ["--set", "degradation.deblock=off"], False)):
        out = tmp_path / f"{name}.mkv"
        result = run("superres", files / source, "-x", 2, "-o", out, "--model", "none", "--quiet", *extra)
        assert result.exit_code == 0, result.output
        m = metrics_of(out)
        assert m["deblock"] is expected and m["codec"] == ("h264" if source.endswith("mp4") else "ffv1")
    m = metrics_of(tmp_path / "auto-mp4.mkv")
    assert m["sigma_y_estimated"] and m["sigma_y"] >= DEBLOCKED_SIGMA  # what the remover leaves is noise to solve for
    assert metrics_of(tmp_path / "off-mp4.mkv")["sigma_y"] < DEBLOCKED_SIGMA
    # other tasks turn it on only when asked (measured to help super-resolution's low-res inputs)
    for name, extra, expected in (("deblur-auto", [], False), ("deblur-on", ["--deblock", "on"], True)):
        out = tmp_path / f"{name}.mkv"
        result = run("deblur", files / "crf32.mp4", "--kernel", "gaussian:1", "-o", out, "--model", "none",
                     "--quiet", *extra)
        assert result.exit_code == 0, result.output
        assert metrics_of(out)["deblock"] is expected
    # removing the artifacts changes what is solved: the outputs differ
    assert not torch.equal(read_clip(tmp_path / "auto-mp4.mkv"), read_clip(tmp_path / "off-mp4.mkv"))
    assert torch.equal(read_clip(tmp_path / "off-mp4.mkv"), read_clip(tmp_path / "set-mp4.mkv"))
    result = run("superres", files / "crf32.mp4", "-x", 2, "-o", tmp_path / "bad.mkv", "--model", "none",
                 "--deblock", "maybe")
    assert result.exit_code == 2 and "degradation.deblock must be one of" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.mkv").exists()
