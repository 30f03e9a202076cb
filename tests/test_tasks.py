"""Task-specific initial estimates (interpolate, inpaint, deblur), flow propagation, and every task's output contract."""
import json
from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidrestore import baselines
from vidrestore import metrics as M
from vidrestore import operators as ops
from vidrestore.cli import app
from vidrestore.config import resolve_config
from vidrestore.io import probe, quantize
from vidrestore.tasks import get_task
from vidrestore.tasks.deblur import deblur_initial_estimate
from vidrestore.tasks.inpaint import inpaint_initial_estimate
from vidrestore.tasks.interpolate import interpolate_initial_estimate
from vidrestore.temporal.propagation import fill_smooth, propagate_known

from helpers import read_clip, save_tiny_model, smooth_clip, write_clip

runner = CliRunner()


def make(name: str, flags: dict, y: torch.Tensor):
    """The task `name` with config flags, for the clip y (F, 3, H, W)."""
    cfg = resolve_config(name, flags=flags)
    return get_task(name)(cfg.degradation, y.shape[3], y.shape[2], y.shape[0])


def texture(h, w, seed=0, tint=(1.0, 1.0, 1.0)):
    """Smooth random colour texture (H, W, 3) float32 in [0, 1], scaled per channel by `tint`."""
    rng = np.random.default_rng(seed)
    n = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 1.5)
    n = (n - n.min()) / (n.max() - n.min())
    return n * np.asarray(tint, np.float32)


def pan(frames, step=(2, 1), size=32, seed=0, tint=(1.0, 1.0, 1.0)):
    """Integer camera pan: frame k is the window of a larger texture at offset k·step (x, y)."""
    margin = 2 + max(abs(step[0]), abs(step[1])) * frames
    big = texture(size + 2 * margin, size + 2 * margin, seed, tint)
    out = [big[margin + k * step[1]: margin + k * step[1] + size, margin + k * step[0]: margin + k * step[0] + size]
           for k in range(frames)]
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


# ----------------------------------------------------------------------------- interpolate


def test_interpolate_estimate_keeps_inputs_and_beats_blending():
    truth = quantize(pan(9, step=(2, 1)))
    y = truth[::2]
    x = interpolate_initial_estimate(y, 2)
    assert x.shape == truth.shape
    assert torch.equal(x[::2], y)
    invented = slice(1, None, 2)
    blend = baselines.interpolate_blend(y, 2)
    assert M.psnr(x[invented], truth[invented]) > M.psnr(blend[invented], truth[invented]) + 5


def test_task_initial_estimate_dispatches_to_interpolation():
    y = quantize(pan(3, step=(1, 0), size=24))
    task = make("interpolate", {"degradation.factor": 4}, y)
    operator = task.operator()
    x = task.initial_estimate(y, operator)
    assert x.shape[0] == 9 and torch.equal(x[::4], y)
    assert torch.equal(task.keep_known(x, y, operator), x)


def test_interpolate_repeats_the_nearer_frame_at_a_scene_cut():
    a = pan(3, size=24, seed=1, tint=(1.0, 0.3, 0.2))
    b = pan(3, size=24, seed=2, tint=(0.2, 0.4, 1.0))
    y = quantize(torch.cat([a, b]))  # a shot starts at input frame 3
    x2 = interpolate_initial_estimate(y, 2)
    assert torch.equal(x2[5], y[2])  # half-way: the earlier frame
    assert not torch.equal(x2[3], y[1]) and not torch.equal(x2[3], y[2])  # within a shot: a real in-between
    x4 = interpolate_initial_estimate(y, 4)
    assert torch.equal(x4[9], y[2]) and torch.equal(x4[10], y[2]) and torch.equal(x4[11], y[3])
    assert torch.equal(x4[::4], y)


def test_interpolate_window_problem_trusts_what_the_flow_determines():
    a = pan(5, step=(2, 1), size=32, seed=1, tint=(1.0, 0.3, 0.2))
    b = pan(3, size=32, seed=2, tint=(0.2, 0.4, 1.0))
    y = quantize(torch.cat([a[::2], b]))  # a shot starts at input frame 3
    task = make("interpolate", {"degradation.factor": 2}, y)
    y_solve, op, x_init = task.window_problem(y, task.operator())
    known = op.known
    assert known.shape == (11, 1, 32, 32) and torch.equal(x_init[::2], y)
    assert known[::2].eq(1).all()  # the input frames
    assert known[5].eq(1).all()  # the repeat at the cut stays a clean repeat
    within_shot = known[1:5:2]
    assert 0.5 < within_shot.mean() < 1  # most, not all, invented pixels are determined by the flow
    assert torch.equal(y_solve, known * x_init)
    off = make("interpolate", {"degradation.factor": 2, "degradation.trust_propagated": False}, y)
    y_off, op_off, _ = off.window_problem(y, off.operator())
    assert torch.equal(y_off, y) and isinstance(op_off, ops.TemporalSubsample)


# ----------------------------------------------------------------------------- inpaint


def test_propagation_fills_a_hole_from_a_neighbour_along_an_integer_translation():
    truth = quantize(pan(3, step=(2, 1)))
    known = torch.ones(3, 1, 32, 32)
    known[1, :, 10:20, 12:22] = 0  # a hole in the middle frame only: both neighbours show it
    y = truth * known
    filled, have = propagate_known(y, known)
    hole = known[1, 0] == 0
    assert bool(have[1, 0][hole].all())
    err = (filled[1] - truth[1])[:, hole].abs()
    assert float(err.max()) < 2 / 255 and float(err.mean()) < 0.5 / 255
    assert torch.equal(filled[0], truth[0]) and torch.equal(filled[2], truth[2])


def test_propagation_never_reads_other_frames_holes():
    truth = quantize(pan(2, step=(0, 0), size=24))
    known = torch.ones(1, 1, 24, 24)
    known[..., 6:14, 6:14] = 0  # a static hole over a static scene: nothing to propagate
    y = truth * known + (1 - known) * 0.77
    _, have = propagate_known(y, known)
    assert torch.equal(have, known.expand(2, -1, -1, -1))
    x = inpaint_initial_estimate(y, known)  # the rest is Telea: finite, in range, known pixels exact
    assert torch.equal(x * known, y * known)
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    assert not torch.isclose(x[..., 6:14, 6:14], torch.full_like(x[..., 6:14, 6:14], 0.77)).all()


def moving_hole(frames=6):
    """A pan with an 8x8 hole moving 4 px per frame: (truth, known, y)."""
    truth = quantize(pan(frames, step=(1, 1)))
    known = torch.ones(frames, 1, 32, 32)
    for f in range(frames):
        known[f, :, 10:18, 3 + 4 * f: 11 + 4 * f] = 0
    return truth, known, truth * known


def test_inpaint_estimate_beats_per_frame_telea_on_a_moving_hole():
    truth, known, y = moving_hole()
    x = inpaint_initial_estimate(y, known)
    assert torch.equal(x * known, y)
    telea = baselines.inpaint_classical(y, 1 - known, "telea")
    assert M.psnr(x, truth) > M.psnr(telea, truth) + 5


def test_inpaint_window_problem_keeps_what_other_frames_see():
    truth, known, y = moving_hole()
    task = make("inpaint", {"degradation.boxes": ["0,0,1,1"]}, y)
    y_solve, op_solve, x_init = task.window_problem(y, ops.Mask(known))
    seen = op_solve.known
    assert torch.equal(seen * known, known)  # every measured pixel stays measured
    assert float((seen - known).sum()) > 0.8 * float((1 - known).sum())  # most of the moving hole was seen
    assert torch.allclose(op_solve.A(x_init), y_solve)
    # turned off, the solver sees exactly the measurements
    plain = make("inpaint", {"degradation.boxes": ["0,0,1,1"], "degradation.trust_propagated": False}, y)
    y2, op2, _ = plain.window_problem(y, ops.Mask(known))
    assert y2 is y and torch.equal(op2.known, known)


def test_fill_smooth_keeps_valid_values_and_interpolates_constants():
    values = torch.full((1, 2, 20, 24), 3.0)
    values[..., 5:12, 6:15] = -50
    valid = torch.ones(1, 1, 20, 24)
    valid[..., 5:12, 6:15] = 0
    out = fill_smooth(values, valid)
    assert torch.allclose(out, torch.full_like(out, 3.0))
    assert torch.equal(fill_smooth(values, torch.zeros_like(valid)), torch.zeros_like(values))


# ----------------------------------------------------------------------------- deblur


def test_deblur_estimate_is_sharper_than_the_input():
    truth = quantize(pan(8, step=(1, 0)))
    for op in (ops.Blur(ops.gaussian_kernel(1.5)),
               ops.Compose(ops.TemporalBlur(ops.temporal_kernel("uniform:3")), ops.Blur(ops.gaussian_kernel(1.0))),
               ops.TemporalBlur(ops.temporal_kernel("uniform:5"))):
        y = quantize(op.A(truth))
        x = deblur_initial_estimate(y, op)
        assert x.shape == y.shape
        assert M.psnr(x, truth) > M.psnr(y, truth) + 2, op.name


# ----------------------------------------------------------------------------- the CLI contract of every task


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("task_clips")
    write_clip(d / "in.mkv", smooth_clip(5, 16, 24), fps=Fraction(30000, 1001))
    save_tiny_model(d / "tiny")
    return d


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("task, args, frames, rate", [
    ("inpaint", ["--box", "4,3,8,6"], 5, 1),
    ("deblur", ["--kernel", "gaussian:1", "--temporal", "uniform:3"], 5, 1),
    ("interpolate", ["-x", 2], 9, 2),
    ("interpolate", ["-x", 4], 17, 4),
    ("interpolate", ["-x", 8], 33, 8),
    ("superres", ["-x", 2], 5, 1),
])
def test_every_task_keeps_the_contract(clip_dir, tmp_path, task, args, frames, rate):
    out = tmp_path / "out.mp4"
    run(task, clip_dir / "in.mkv", *args, "-o", out, "--model", "none", "--quiet")
    info, src = probe(out), probe(clip_dir / "in.mkv")
    scale = 2 if task == "superres" else 1
    assert info.frame_count == frames
    assert (info.width, info.height) == (scale * src.width, scale * src.height)
    assert info.fps == src.fps * rate


def test_interpolate_x4_at_an_integer_rate(clip_dir, tmp_path):
    write_clip(tmp_path / "in25.mkv", smooth_clip(3, 16, 24), fps=Fraction(25))
    run("interpolate", tmp_path / "in25.mkv", "-x", 4, "-o", tmp_path / "out.mkv", "--model", "none", "--quiet")
    info = probe(tmp_path / "out.mkv")
    assert info.frame_count == 9 and info.fps == 100


@pytest.mark.parametrize("preset", ["inpaint", "inpaint-fast"])
def test_inpaint_keeps_known_pixels_with_the_diffusion_presets(clip_dir, tmp_path, preset):
    out = tmp_path / "out.mkv"
    run("inpaint", clip_dir / "in.mkv", "--box", "4,3,8,6", "-o", out, "--model", clip_dir / "tiny", "--preset",
        preset, "--quiet")
    before, after = read_clip(clip_dir / "in.mkv"), read_clip(out)
    known = torch.ones(16, 24, dtype=torch.bool)
    known[3:9, 4:12] = False
    assert torch.equal(before[..., known], after[..., known])


def test_inpaint_model_none_returns_the_propagated_estimate(clip_dir, tmp_path):
    out = tmp_path / "out.mkv"
    run("inpaint", clip_dir / "in.mkv", "--box", "4,3,8,6", "-o", out, "--model", "none", "--quiet")
    y = read_clip(clip_dir / "in.mkv")
    known = torch.ones(1, 1, 16, 24)
    known[..., 3:9, 4:12] = 0
    expected = quantize(inpaint_initial_estimate(y, known))
    assert (read_clip(out) - expected).abs().max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("preset", [None, "interpolate-diffusion"])
def test_interpolate_keeps_input_frames_with_the_diffusion_preset(clip_dir, tmp_path, preset):
    out = tmp_path / "out.mkv"
    run("interpolate", clip_dir / "in.mkv", "-x", 2, "-o", out, "--model", clip_dir / "tiny",
        *(["--preset", preset] if preset else []), "--quiet")
    before, after = read_clip(clip_dir / "in.mkv"), read_clip(out)
    assert after.shape[0] == 9 and torch.equal(after[::2], before)
    metrics = json.loads(out.with_name(out.name + ".metrics.json").read_text())
    assert metrics["nfe"] > 0  # a model given: the diffusion preset, not the classical default


def test_interpolate_default_preset_is_the_flow_estimate(clip_dir, tmp_path):
    out = tmp_path / "out.mkv"
    run("interpolate", clip_dir / "in.mkv", "-x", 2, "-o", out, "--quiet")
    metrics = json.loads(out.with_name(out.name + ".metrics.json").read_text())
    assert metrics["nfe"] == 0 and metrics["model"] == "none"
    expected = quantize(interpolate_initial_estimate(read_clip(clip_dir / "in.mkv"), 2))
    assert (read_clip(out) - expected).abs().max() <= 1 / 255 + 1e-6
