"""The command line, end to end on tiny clips (classical prior or a tiny random diffusion model)."""
import json
import math
import struct
import subprocess
import sys
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidrestore.cli import app
from vidrestore.io import probe
from vidrestore.operators import BoxDownsample

from helpers import read_clip, save_tiny_model, smooth_clip, write_clip

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _wav(path: Path, seconds: float = 1.0) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        samples = (int(8000 * math.sin(2 * math.pi * 440 * i / 16000)) for i in range(int(16000 * seconds)))
        handle.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return path


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    truth = smooth_clip(6, 32, 48)
    write_clip(d / "truth.mkv", truth)
    low = BoxDownsample(4).A(truth)
    write_clip(d / "low.mkv", low)
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(d / "low.mkv"), "-i",
                    str(_wav(d / "tone.wav")), "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-crf", "10",
                    "-pix_fmt", "yuv444p", "-c:a", "aac", "-shortest", str(d / "low_audio.mp4")], check=True)
    save_tiny_model(d / "tiny")
    frames = d / "frames"
    frames.mkdir()
    import cv2

    for i, f in enumerate((low.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)):
        cv2.imwrite(str(frames / f"f{i:03d}.png"), f[..., ::-1])
    return d


def test_superres_keeps_size_frames_rate_and_audio(clip_dir, tmp_path):
    out = tmp_path / "out.mp4"
    result = run("superres", clip_dir / "low_audio.mp4", "-x", 4, "-o", out, "--model", "none")
    assert result.exit_code == 0, result.output
    src, info = probe(clip_dir / "low_audio.mp4"), probe(out)
    assert (info.width, info.height) == (4 * src.width, 4 * src.height)
    assert info.frame_count == src.frame_count and info.fps == src.fps
    assert info.has_audio
    metrics = json.loads((tmp_path / "out.mp4.metrics.json").read_text())
    for key in ("task", "frames", "width", "height", "fps", "seconds", "frames_per_second", "nfe", "device", "model",
                "seed", "peak_memory_mb", "data_consistency_residual"):
        assert key in metrics
    assert metrics["data_consistency_residual"] < 1e-2
    config = json.loads((tmp_path / "out.mp4.config.json").read_text())
    assert config["task"] == "superres" and config["degradation"]["scale"] == 4


def test_no_audio_drops_the_audio(clip_dir, tmp_path):
    out = tmp_path / "out.mkv"
    assert run("superres", clip_dir / "low_audio.mp4", "-x", 2, "-o", out, "--model", "none", "--no-audio",
               "--quiet").exit_code == 0
    assert not probe(out).has_audio


def test_frame_folder_in_and_out(clip_dir, tmp_path):
    out = tmp_path / "frames_out"
    result = run("superres", clip_dir / "frames", "-x", 4, "-o", out, "--model", "none", "--fps", 30, "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == ""  # --quiet
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:06d}.png" for i in range(6)]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fps"] == "30" and metrics["width"] == 48


def test_reference_and_metrics_path(clip_dir, tmp_path):
    out, metrics = tmp_path / "out.mkv", tmp_path / "m.json"
    result = run("superres", clip_dir / "low.mkv", "-x", 4, "-o", out, "--model", "none",
                 "--reference", clip_dir / "truth.mkv", "--metrics", metrics, "--quiet")
    assert result.exit_code == 0, result.output
    m = json.loads(metrics.read_text())
    assert m["psnr"] > 20 and 0 < m["ssim"] <= 1 and m["warping_error"] >= 0
    # the reported PSNR is the PSNR of the file that was written
    restored, truth = read_clip(out), read_clip(clip_dir / "truth.mkv")
    mse = float((restored - truth).pow(2).mean())
    assert abs(m["psnr"] - 10 * math.log10(1 / mse)) < 1e-3


def test_diffusion_prior_with_every_sampling_option(clip_dir, tmp_path):
    out = tmp_path / "out.mkv"
    result = run("superres", clip_dir / "low.mkv", "-x", 2, "--degradation", "bicubic", "-o", out,
                 "--model", clip_dir / "tiny", "--preset", "superres-fast", "--steps", 2, "--seed", 3,
                 "--noise", "independent", "--chunk", 3, "--overlap", 1, "--tile", 16, "--device", "cpu",
                 "--dtype", "fp32", "--set", "sampler.eta=0.5", "--crf", 20, "--debug", "--quiet")
    assert result.exit_code == 0, result.output
    m = json.loads((tmp_path / "out.mkv.metrics.json").read_text())
    assert m["nfe"] == 2 and m["noise"] == "independent" and m["seed"] == 3
    config = json.loads((tmp_path / "out.mkv.config.json").read_text())
    assert config["runtime"]["tile"] == 16 and config["sampler"]["eta"] == 0.5 and config["io"]["crf"] == 20
    assert config["degradation"]["downsample"] == "bicubic" and config["preset"] == "superres-fast"


def test_dtype_auto_is_bf16_where_the_cpu_has_it_and_is_recorded(clip_dir, tmp_path):
    from vidrestore.runtime import cpu_has_bf16

    common = ["superres", clip_dir / "low.mkv", "-x", 2, "--model", clip_dir / "tiny", "--steps", 2, "--quiet"]
    for dtype in ("auto", "bf16", "fp32"):
        result = run(*common, "-o", tmp_path / f"{dtype}.mkv", "--dtype", dtype)
        assert result.exit_code == 0, result.output
        metrics = json.loads((tmp_path / f"{dtype}.mkv.metrics.json").read_text())
        assert metrics["dtype"] == ("bfloat16" if dtype != "fp32" and cpu_has_bf16() else "float32")
    assert run(*common, "-o", tmp_path / "bad.mkv", "--dtype", "fp8").exit_code != 0


def test_same_seed_same_result_and_chunking_is_invisible_for_per_frame_operators(clip_dir, tmp_path):
    # guidance couples neighbouring frames, so it is off here: only the operator's coupling matters
    common = ["superres", clip_dir / "low.mkv", "-x", 2, "--model", clip_dir / "tiny", "--steps", 2, "--quiet",
              "--set", "guidance.equivariance=0"]
    assert run(*common, "-o", tmp_path / "a", "--chunk", 16).exit_code == 0
    assert run(*common, "-o", tmp_path / "b", "--chunk", 16).exit_code == 0
    assert run(*common, "-o", tmp_path / "c", "--chunk", 2, "--overlap", 0).exit_code == 0
    assert run(*common, "-o", tmp_path / "d", "--chunk", 16, "--seed", 9).exit_code == 0
    a, b, c, d = (read_clip(tmp_path / n) for n in "abcd")
    assert torch.equal(a, b)
    assert (a - c).abs().max() <= 1 / 255 + 1e-6  # equal up to 8-bit rounding of float noise
    assert not torch.equal(a, d)


def test_inpaint_keeps_known_pixels_exactly(clip_dir, tmp_path):
    out = tmp_path / "filled"
    result = run("inpaint", clip_dir / "low.mkv", "--box", "2,2,4,3", "--box", "7,4,3,3", "--dilate", 1, "-o", out,
                 "--model", "none", "--quiet")
    assert result.exit_code == 0, result.output
    before, after = read_clip(clip_dir / "low.mkv"), read_clip(out)
    missing = torch.zeros(8, 12, dtype=torch.bool)
    missing[1:6, 1:7] = True  # the first box grown by one pixel covers at most this
    missing[3:8, 6:11] = True
    assert torch.equal(before[..., ~missing], after[..., ~missing])


def test_inpaint_with_a_mask_image_and_wrong_sizes(clip_dir, tmp_path):
    import cv2

    mask = np.zeros((8, 12), np.uint8)
    mask[2:5, 3:7] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    assert run("inpaint", clip_dir / "low.mkv", "--mask", tmp_path / "mask.png", "-o", tmp_path / "o.mkv",
               "--model", "none", "--quiet").exit_code == 0
    cv2.imwrite(str(tmp_path / "bad.png"), np.zeros((9, 12), np.uint8))
    result = run("inpaint", clip_dir / "low.mkv", "--mask", tmp_path / "bad.png", "-o", tmp_path / "p.mkv",
                 "--model", "none")
    assert result.exit_code == 3 and "mask is 12x9, video is 12x8" in result.stderr
    assert not (tmp_path / "p.mkv").exists()


def test_deblur_spatial_temporal_and_noise(clip_dir, tmp_path):
    out = tmp_path / "sharp.mkv"
    result = run("deblur", clip_dir / "truth.mkv", "--kernel", "gaussian:1.5", "--temporal", "uniform:3",
                 "--sigma-y", 0.01, "-o", out, "--model", "none", "--quiet")
    assert result.exit_code == 0, result.output
    assert probe(out).frame_count == 6
    result = run("deblur", clip_dir / "truth.mkv", "--kernel", "blurry:3", "-o", tmp_path / "x.mkv", "--model", "none")
    assert result.exit_code == 2 and "blurry:3" in result.stderr


def test_interpolate_multiplies_frames_and_rate(clip_dir, tmp_path):
    out = tmp_path / "smooth.mkv"
    result = run("interpolate", clip_dir / "low.mkv", "-x", 2, "-o", out, "--model", "none", "--quiet")
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert info.frame_count == (6 - 1) * 2 + 1 and info.fps == Fraction(50)
    before, after = read_clip(clip_dir / "low.mkv"), read_clip(out)
    assert torch.equal(after[::2], before)


@pytest.mark.parametrize("args, code, message", [
    (["superres", "missing.mp4", "--model", "none"], 3, "no such file"),
    (["superres", "{clips}/low.mkv", "-x", 5, "--model", "none"], 2, "unsupported scale x5"),
    (["interpolate", "{clips}/low.mkv", "-x", 3, "--model", "none"], 2, "unsupported factor x3"),
    (["superres", "{clips}/low.mkv", "--device", "cuda:7", "--model", "none"], 6, "cuda"),
    (["superres", "{clips}/low.mkv", "--model", "./no/such/model"], 5, "not found"),
    (["superres", "{clips}/low.mkv", "--set", "sampler.steps=x", "--model", "none"], 2, "expected an integer"),
    (["inpaint", "{clips}/low.mkv", "--model", "none"], 2, "--mask"),
])
def test_bad_input_gets_one_line_and_an_exit_code(clip_dir, tmp_path, args, code, message):
    args = [str(a).replace("{clips}", str(clip_dir)) for a in args]
    result = run(*args, "-o", tmp_path / "out.mkv")
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out.mkv").exists()


def test_unreadable_input(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video")
    result = run("superres", fake, "-o", tmp_path / "o.mkv", "--model", "none")
    assert result.exit_code == 3 and str(fake) in result.stderr


def test_existing_output_needs_overwrite(clip_dir, tmp_path):
    out = tmp_path / "out.mkv"
    out.write_bytes(b"precious")
    result = run("superres", clip_dir / "low.mkv", "-x", 2, "-o", out, "--model", "none")
    assert result.exit_code == 4 and "--overwrite" in result.stderr
    assert out.read_bytes() == b"precious"
    assert run("superres", clip_dir / "low.mkv", "-x", 2, "-o", out, "--model", "none", "--overwrite",
               "--quiet").exit_code == 0
    assert probe(out).frame_count == 6


def test_console_script_prints_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vidrestore", "superres", str(tmp_path / "nope.mp4")],
                          capture_output=True, text=True)
    assert proc.returncode == 3
    assert proc.stderr.strip().startswith("vidrestore: error:") and len(proc.stderr.strip().splitlines()) == 1


def test_help_shows_examples():
    result = run("superres", "--help")
    assert result.exit_code == 0 and "Example: vidrestore superres" in result.stdout


def test_an_interrupted_run_resumes_where_it_stopped(clip_dir, tmp_path, monkeypatch):
    import vidrestore.executors.local as local  # the in-process executor solves the windows

    common = ["superres", clip_dir / "low.mkv", "-x", 2, "--model", clip_dir / "tiny", "--steps", 2, "--chunk", 3,
              "--overlap", 1, "--reference", clip_dir / "low.mkv", "--quiet"]
    common[common.index("--reference") + 1] = clip_dir / "truth_x2.mkv"
    write_clip(clip_dir / "truth_x2.mkv", smooth_clip(6, 16, 24))
    assert run(*common, "-o", tmp_path / "whole").exit_code == 0

    real, calls, crash_at = local.solve_window, [], [2]

    def counting(*args, **kwargs):
        calls.append(1)
        if len(calls) == crash_at[0]:
            raise RuntimeError("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(local, "solve_window", counting)
    out = tmp_path / "resumed"
    assert run(*common, "-o", out).exit_code != 0
    assert not out.exists() and (tmp_path / "resumed.partial").is_dir()
    calls.clear()
    crash_at[0] = 0
    assert run(*common, "-o", out).exit_code == 0
    # windows (0,3) (2,5) (3,6): the first was kept; it is solved once more only for the frame it shares with
    # the second (that float tail is not saved on disk), then the two others
    assert len(calls) == 3
    assert not (tmp_path / "resumed.partial").exists()
    assert torch.equal(read_clip(out), read_clip(tmp_path / "whole"))
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    resumed = json.loads((out / "metrics.json").read_text())
    for key in ("psnr", "ssim", "warping_error", "data_consistency_residual", "network_evaluations"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-9)
    # time and speed count both attempts (the first up to its finished window); this attempt's is said apart
    assert whole["frames_resumed"] == 0 and resumed["frames_resumed"] == 2
    assert whole["seconds"] == whole["seconds_this_attempt"]
    assert resumed["seconds"] > resumed["seconds_this_attempt"] > 0
    assert resumed["frames_per_second"] == pytest.approx(resumed["frames"] / resumed["seconds"], rel=0.01)

    # --no-resume starts over
    calls.clear()
    crash_at[0] = 2
    assert run(*common, "-o", tmp_path / "again").exit_code != 0
    calls.clear()
    crash_at[0] = 0
    assert run(*common, "-o", tmp_path / "again", "--no-resume").exit_code == 0
    assert len(calls) == 3


def test_batch_over_a_folder_of_videos_goes_on_past_a_bad_file(clip_dir, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_clip(videos / "a.mkv", smooth_clip(3, 8, 12))
    write_clip(videos / "b.mp4", smooth_clip(2, 8, 12, seed=1))
    (videos / "c.mp4").write_text("not a video")
    out = tmp_path / "out"
    result = run("superres", videos, "-x", 2, "-o", out, "--model", "none", "--quiet")
    assert result.exit_code == 7, result.output
    assert "c.mp4" in result.stderr and "1 of 3 files failed" in result.stderr
    assert probe(out / "a.mp4").frame_count == 3 and probe(out / "b.mp4").frame_count == 2
    assert not (out / "c.mp4").exists()
    before = (out / "a.mp4").stat().st_mtime_ns
    (videos / "c.mp4").unlink()
    result = run("superres", videos, "-x", 2, "-o", out, "--model", "none")
    assert result.exit_code == 0 and "skipped" in result.stderr  # existing outputs are left alone
    assert (out / "a.mp4").stat().st_mtime_ns == before


def test_batch_from_several_paths_and_a_glob(clip_dir, tmp_path):
    for name in ("x1.mkv", "x2.mkv"):
        write_clip(tmp_path / name, smooth_clip(2, 8, 12))
    out = tmp_path / "out"
    assert run("superres", tmp_path / "x1.mkv", tmp_path / "x2.mkv", "-x", 2, "-o", out, "--model", "none",
               "--quiet").exit_code == 0
    assert sorted(p.name for p in out.glob("*.mp4")) == ["x1.mp4", "x2.mp4"]
    result = run("superres", str(tmp_path / "x*.mkv"), "-x", 2, "-o", out, "--model", "none", "--overwrite",
                 "--quiet")
    assert result.exit_code == 0, result.output
    assert run("superres", str(tmp_path / "nothing*.mkv"), "-o", out, "--model", "none").exit_code == 3
