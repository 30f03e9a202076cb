"""`vidrestore edit` through the CLI with tiny random SD / SDXL pipelines and ControlNets (nothing downloaded).

The temporal mechanisms are tested where they hold for any weights: --consistency 0 is every frame edited
alone; a static clip gives identical frames at --consistency 1; a whole-pixel pan has a much lower warping
error (along the input's flow) at 1 than at 0; a scene cut starts a new anchor.
"""
import json
import math
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vidrestore.cli import app
from vidrestore.io import probe
from vidrestore.metrics import edge_fscore, edge_map, warping_error
from vidrestore.tasks.edit import line_maps, reduce_detail

from helpers import read_clip, smooth_clip, write_clip
from latent_models import save_tiny_controlnet, save_tiny_latent_pipeline

runner = CliRunner()
#: one thread: equal frames everywhere, and fast on a loaded machine
FAST = ["--steps", 2, "--device", "cpu", "--quiet", "--set", "runtime.threads=1", "--guidance", 1]


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def texture(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A random smooth colour texture (3, H, W) in [0, 1] with edges for Canny."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(1, 3, height // 4, width // 4, generator=g)
    return torch.nn.functional.interpolate(small, size=(height, width), mode="bicubic",
                                           align_corners=False)[0].clamp(0, 1)


def _wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(b"".join(int(8000 * math.sin(i / 5)).to_bytes(2, "little", signed=True)
                                    for i in range(16000)))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("edit")
    for kind in ("sd", "sdxl"):
        save_tiny_latent_pipeline(d / kind, kind)
        save_tiny_controlnet(d / f"cn_{kind}", kind)
    write_clip(d / "clip.mkv", smooth_clip(6, 24, 24), fps=Fraction(24))
    big = texture(32, 64)
    write_clip(d / "pan.mkv", torch.stack([big[:, :, 4 * f: 4 * f + 32] for f in range(6)]))  # 4 px per frame
    write_clip(d / "static.mkv", texture(24, 24, seed=3)[None].expand(5, -1, -1, -1))
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(d / "clip.mkv"), "-i",
                    str(_wav(d / "tone.wav")), "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-crf", "10",
                    "-pix_fmt", "yuv444p", "-c:a", "aac", "-shortest", str(d / "audio.mp4")], check=True)
    return d


def _edit(data, clip, out, *extra, kind="sd"):
    result = run("edit", data / clip, "--model", data / kind, "--controlnet", data / f"cn_{kind}", "--prompt",
                 "a red cat", *FAST, "-o", out, *extra)
    assert result.exit_code == 0, result.output
    return read_clip(out)


def _metrics(out: Path) -> dict:
    path = out / "metrics.json" if out.is_dir() else out.with_name(out.name + ".metrics.json")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------- through the CLI, SD and SDXL

@pytest.mark.parametrize("kind", ["sd", "sdxl"])
def test_edit_keeps_size_frames_rate_and_audio(data, tmp_path, kind):
    out = tmp_path / "out.mp4"
    frames = _edit(data, "audio.mp4", out, "--negative-prompt", "blurry", "--guidance", 2, "--reference",
                   data / "clip.mkv", kind=kind)
    src, info = probe(data / "audio.mp4"), probe(out)
    assert frames.shape == (6, 3, 24, 24) and info.frame_count == 6 and info.fps == src.fps == 24
    assert info.has_audio
    m = _metrics(out)
    assert m["task"] == "edit" and m["prior"] == kind and m["classifier_free_guidance"]
    # 2 steps over 1000 at strength 0.75: t = 500 and 0 run (both <= 750), two passes each with guidance
    assert m["init"] == "noised" and m["inversion_t"] == 750 and m["nfe"] == 2 * 2
    assert m["network_evaluations"] == 6 * 2 * 2
    # with the input as --reference: the warping error along the input's flow and the structure agreement
    assert m["warping_error"] > 0 and 0 <= m["edge_fscore"] <= 1
    config = json.loads(out.with_name(out.name + ".config.json").read_text())
    assert config["latent"]["negative_prompt"] == "blurry" and config["preset"] == ("edit-sdxl" if kind == "sdxl"
                                                                                   else "edit")
    # the edit changed the clip, but kept a part of its structure
    assert not torch.allclose(frames, read_clip(data / "clip.mkv"), atol=0.05)


def test_the_options_change_the_output_and_reach_the_config(data, tmp_path):
    base = _edit(data, "clip.mkv", tmp_path / "base")
    for name, extra in {"detail": ("--structure-detail", 0.25, "--structure", "edges"),
                        "weight": ("--structure-weight", 3, "--strength", 0.4), "none": ("--controlnet", "none")}.items():
        assert not torch.equal(_edit(data, "clip.mkv", tmp_path / name, *extra), base), name
    config = json.loads((tmp_path / "detail" / "config.json").read_text())
    assert config["degradation"]["structure_detail"] == 0.25 and config["degradation"]["structure"] == "edges"
    assert config["degradation"]["consistency"] == 0.8
    assert _metrics(tmp_path / "weight")["inversion_t"] == 400


def test_depth_maps_from_a_video(data, tmp_path):
    depth = write_clip(tmp_path / "depth.mkv", smooth_clip(6, 24, 24, seed=5))
    frames = _edit(data, "clip.mkv", tmp_path / "out", "--structure", f"depth:{depth}")
    assert frames.shape == (6, 3, 24, 24)
    wrong = write_clip(tmp_path / "short.mkv", smooth_clip(4, 24, 24))
    result = run("edit", data / "clip.mkv", "--model", data / "sd", "--structure", f"depth:{wrong}", *FAST,
                 "-o", tmp_path / "bad")
    assert result.exit_code == 3 and "4 depth maps, video has 6 frames" in result.stderr


def test_an_interrupted_edit_resumes_to_the_same_frames(data, tmp_path, monkeypatch):
    import vidrestore.executors.local as local

    args = ("--chunk", 3, "--overlap", 1)
    whole = _edit(data, "clip.mkv", tmp_path / "whole", *args)
    real, calls = local.solve_window, []

    def crashing(*a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("power cut")
        return real(*a, **k)

    monkeypatch.setattr(local, "solve_window", crashing)
    out = tmp_path / "resumed"
    assert run("edit", data / "clip.mkv", "--model", data / "sd", "--controlnet", data / "cn_sd", "--prompt",
               "a red cat", *FAST, "-o", out, *args).exit_code != 0
    assert (tmp_path / "resumed.partial").is_dir()
    monkeypatch.setattr(local, "solve_window", real)
    assert torch.equal(_edit(data, "clip.mkv", out, *args), whole)


def test_bad_input_is_one_line(data, tmp_path):
    cases = [(("--consistency", 2), "--consistency must be in [0, 1]"),
             (("--strength", 0), "--strength must be in (0, 1]"),
             (("--structure", "normals"), "choose canny, edges or depth:PATH"),
             (("--structure-detail", -1), "--structure-detail must be in (0, 1]")]
    for extra, message in cases:
        result = run("edit", data / "clip.mkv", "--model", data / "sd", *extra, *FAST, "-o", tmp_path / "o")
        assert result.exit_code == 2 and message in result.stderr, (extra, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    result = run("edit", data / "clip.mkv", "--model", "none", *FAST, "-o", tmp_path / "o")
    assert result.exit_code == 2 and "edit needs a Stable Diffusion / SDXL model" in result.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()
    result = run("edit", data / "clip.mkv", "--model", data / "sd", "--controlnet", tmp_path / "nothing", *FAST,
                 "-o", tmp_path / "o")
    assert result.exit_code == 5 and "--controlnet" in result.stderr and "Traceback" not in result.stderr


def test_dry_run_estimates_with_the_controlnet(data):
    def estimate(*extra):
        result = run("edit", data / "clip.mkv", "--model", data / "sd", "--steps", 8, "--device", "cpu", "--dry-run",
                     "--quiet", *extra)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    with_net = estimate("--controlnet", data / "cn_sd")
    without = estimate("--controlnet", "")
    assert with_net["config"]["degradation"]["controlnet"] == str(data / "cn_sd")
    assert with_net["estimate"]["tflop_per_frame"] > without["estimate"]["tflop_per_frame"]


# ----------------------------------------------------------------------------- the temporal mechanisms

def test_consistency_zero_edits_every_frame_alone(data, tmp_path):
    together = _edit(data, "clip.mkv", tmp_path / "together", "--consistency", 0, "--chunk", 6)
    alone = _edit(data, "clip.mkv", tmp_path / "alone", "--consistency", 0, "--chunk", 1, "--overlap", 0)
    assert (together - alone).abs().max() <= 1.5 / 255  # float noise may flip a rounding
    assert _metrics(tmp_path / "alone")["windows"] == 6


def test_a_static_clip_gives_identical_frames_at_full_consistency(data, tmp_path):
    frames = _edit(data, "static.mkv", tmp_path / "out", "--consistency", 1)
    assert all(torch.equal(frames[0], f) for f in frames[1:])


def test_a_pan_is_followed_much_better_at_full_consistency(data, tmp_path):
    pan = read_clip(data / "pan.mkv")
    errors = {c: warping_error(_edit(data, "pan.mkv", tmp_path / f"c{c}", "--consistency", c), flow_source=pan)
              for c in (0, 1)}
    print(f"pan warping error: consistency 0 {errors[0]:.3e}, 1 {errors[1]:.3e}, factor {errors[0] / errors[1]:.1f}")
    assert errors[1] * 10 < errors[0]  # measured: 3.7e-2 against 6.1e-4 (60x)


def test_a_scene_cut_starts_a_new_anchor(data, tmp_path):
    b = texture(24, 24, seed=7)
    second = b[None].expand(3, -1, -1, -1) * torch.linspace(1, 0.9, 3).view(3, 1, 1, 1)  # a slow fade
    outs = []
    for seed in (1, 2):  # two different first shots, very different from the second
        a = texture(24, 24, seed=seed) * 0.3
        write_clip(tmp_path / f"cut{seed}.mkv", torch.cat([a[None].expand(3, -1, -1, -1), second]))
        result = run("edit", tmp_path / f"cut{seed}.mkv", "--model", data / "sd", "--controlnet", data / "cn_sd",
                     "--prompt", "a red cat", *FAST, "--consistency", 1, "--chunk", 6, "-o", tmp_path / f"out{seed}")
        assert result.exit_code == 0, result.output
        outs.append(read_clip(tmp_path / f"out{seed}"))
    # the second shot's frames do not depend on the first shot: it has its own anchor, noise and fusion
    assert torch.equal(outs[0][3:], outs[1][3:])
    assert not torch.equal(outs[0][:3], outs[1][:3])


# ----------------------------------------------------------------------------- structure maps and the metric

def test_structure_maps():
    clip = texture(32, 32)[None]
    canny = edge_map(clip)
    assert canny.shape == (1, 1, 32, 32) and set(canny.unique().tolist()) <= {0.0, 1.0} and canny.sum() > 0
    lines = line_maps(clip)
    assert lines.shape == canny.shape and 0 <= lines.min() and lines.max() <= 1 and lines.sum() > 0
    blurred = reduce_detail(canny, 0.25)
    assert blurred.shape == canny.shape and blurred.max() < 1 and torch.equal(reduce_detail(canny, 1.0), canny)
    assert edge_fscore(clip, clip) == 1.0
    assert edge_fscore(clip, texture(32, 32, seed=9)[None]) < 0.9 > edge_fscore(clip, clip.flip(-1))


def test_cross_frame_attention_looks_at_the_anchor_and_puts_the_processors_back(data):
    from diffusers import UNet2DConditionModel

    from vidrestore.samplers.crossframe import CrossFrameControl, cross_frame_attention

    unet = UNet2DConditionModel.from_pretrained(data / "sd" / "unet")
    g = torch.Generator().manual_seed(0)
    z, text = torch.randn(3, 4, 6, 6, generator=g), torch.randn(1, 16, 16, generator=g)

    def call(x):
        return unet(x, torch.full((len(x),), 500), encoder_hidden_states=text.expand(len(x), -1, -1)).sample

    before = {name: type(p) for name, p in unet.attn_processors.items()}
    control = CrossFrameControl(1.0)
    with torch.no_grad():
        plain = call(z)
        with cross_frame_attention([unet], control):
            control.set("record")
            anchor = call(z[:1])
            control.set("attend")
            itself, others = call(z[:1].expand(2, -1, -1, -1)), call(z[1:])
            control.weight = 0.0
            unchanged = call(z[1:])
    assert {name: type(p) for name, p in unet.attn_processors.items()} == before
    assert torch.allclose(anchor, plain[:1], atol=1e-5)  # recording is plain self-attention
    assert torch.allclose(itself, plain[:1].expand(2, -1, -1, -1), atol=1e-5)  # the anchor attending to itself
    assert not torch.allclose(others, plain[1:], atol=1e-3)  # the other frames now look at the anchor
    assert torch.allclose(unchanged, plain[1:], atol=1e-5)  # weight 0: frames alone
