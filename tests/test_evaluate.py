"""`vidrestore evaluate` through the CLI on tiny clips: the report, its numbers, every option and bad input."""
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidrestore import metrics as M
from vidrestore import operators as ops
from vidrestore import realism
from vidrestore.cli import app

from helpers import read_clip, save_tiny_model, smooth_clip, write_clip

runner = CliRunner()
REPORT_FILES = ("index.md", "metrics.json", "input.mkv", "reference.mkv", "psnr_per_frame.png",
                "warping_error_per_frame.png", "quality_vs_time.png", "swd_per_level.png", "realism_vs_psnr.png",
                "strip.png")


def run(*args):
    return runner.invoke(app, ["evaluate", *[str(a) for a in args]])


def one_error_line(result, code: int, text: str) -> None:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and "Traceback" not in result.stderr, result.stderr


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("evaluate")
    write_clip(d / "truth.mkv", smooth_clip(5, 24, 32))  # lossy-free enough: the reference is whatever decodes
    save_tiny_model(d / "tiny")
    return d


@pytest.fixture(scope="module")
def superres_report(data):
    """One report with baselines, --model none and two diffusion runs of a tiny random model (json progress)."""
    out = data / "report"
    result = run(data / "truth.mkv", "--task", "superres", "-x", 4, "--methods", "bicubic,lanczos,none,diffusion",
                 "--presets", "superres-fast", "--noise", "shared,warped", "--model", data / "tiny",
                 "--set", "sampler.steps=2", "--seed", 3, "--device", "cpu", "-o", out, "--progress", "json")
    assert result.exit_code == 0, result.output
    return out, result


def test_report_has_every_file(superres_report):
    out, _ = superres_report
    for name in REPORT_FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = json.loads((out / "metrics.json").read_text())
    assert list(report["methods"]) == ["bicubic", "lanczos", "none", "superres-fast+shared", "superres-fast+warped"]
    for name, row in report["methods"].items():
        assert (out / row["output"]).is_file() and (out / row["metrics_file"]).is_file()
        assert len(row["psnr_per_frame"]) == 5 and len(row["warping_error_per_frame"]) == 4
    index = (out / "index.md").read_text()
    assert "| superres-fast+warped |" in index and "![strip](strip.png)" in index
    assert not list(out.parent.glob(".report*"))  # no temporary folder left behind


def test_report_numbers_equal_the_per_run_metrics_files(superres_report):
    out, _ = superres_report
    report = json.loads((out / "metrics.json").read_text())
    truth = read_clip(out / "reference.mkv")
    for name, row in report["methods"].items():
        run_json = json.loads((out / row["metrics_file"]).read_text())
        for key in ("psnr", "ssim", "warping_error", "data_consistency_residual", "seconds", "peak_memory_mb", "nfe"):
            assert row[key] == run_json[key], (name, key)
        assert row["seconds_per_frame"] == run_json["seconds"] / run_json["frames"]
        assert run_json["output"] == str((out / row["output"]).resolve()) or Path(run_json["output"]) == out / row["output"]
        restored = read_clip(out / row["output"])
        assert row["psnr"] == pytest.approx(M.psnr(restored, truth), rel=1e-6)  # the pipeline sums in float32
        assert row["flicker"] == pytest.approx(M.flicker(restored, truth), abs=1e-12)
        assert row["swd"] == realism.sliced_wasserstein(restored, truth).mean and row["swd"] > 0
        assert row["sharpness"] == realism.sharpness_ratio(restored, truth)
        assert f"| {name} | {row['psnr']:.2f} |" in (out / "index.md").read_text()
    assert report["methods"]["superres-fast+warped"]["nfe"] == 2


def test_input_is_the_tasks_operator_applied_to_the_reference(superres_report):
    out, _ = superres_report
    truth, y = read_clip(out / "reference.mkv"), read_clip(out / "input.mkv")
    assert torch.equal(y, (ops.BoxDownsample(4).A(truth).clamp(0, 1) * 255).round() / 255)


def test_solver_runs_get_set_seed_device_model_and_noise(superres_report):
    out, _ = superres_report
    for noise in ("shared", "warped"):
        config = json.loads((out / "runs" / f"superres-fast+{noise}" / "output.mkv.config.json").read_text())
        assert config["sampler"]["steps"] == 2 and config["sampler"]["noise"] == noise
        assert config["runtime"]["seed"] == 3 and config["runtime"]["device"] == "cpu"
        assert config["model"].endswith("tiny") and config["preset"] == "superres-fast"
    assert json.loads((out / "runs/none/output.mkv.config.json").read_text())["model"] == "none"


def test_progress_json_lines(superres_report):
    _, result = superres_report
    events = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    frames = [e for e in events if e["event"] == "frame"]
    assert {e["method"] for e in frames} == {"bicubic", "lanczos", "none", "superres-fast+shared",
                                             "superres-fast+warped"}
    assert all({"frame", "total", "elapsed"} <= set(e) for e in frames)
    assert [e["frame"] for e in frames if e["method"] == "none"][-1] == 5


def test_default_output_rich_summary_and_degradation_bicubic(data, tmp_path):
    ref = write_clip(tmp_path / "clip.mkv", read_clip(data / "truth.mkv"))
    result = run(ref, "--task", "superres", "-x", 2, "--degradation", "bicubic", "--methods", "bicubic")
    assert result.exit_code == 0, result.output
    out = tmp_path / "clip.evaluate"
    assert "bicubic" in result.stdout and (out / "index.md").is_file()  # the summary table
    truth, y = read_clip(out / "reference.mkv"), read_clip(out / "input.mkv")
    assert torch.equal(y, (ops.BicubicDownsample(2).A(truth).clamp(0, 1) * 255).round() / 255)


def test_quiet_prints_nothing(data, tmp_path):
    result = run(data / "truth.mkv", "--task", "superres", "--methods", "bicubic", "-o", tmp_path / "r", "--quiet")
    assert result.exit_code == 0 and result.stdout == "" and (tmp_path / "r" / "strip.png").is_file()


def test_variant_and_progress_none(data, tmp_path):
    result = run(data / "truth.mkv", "--task", "superres", "--methods", "fast1", "--model", data / "tiny",
                 "--variant", "fast1:preset=superres-fast,sampler.steps=1,guidance.equivariance=0",
                 "-o", tmp_path / "r", "--progress", "none")
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "r/runs/fast1/output.mkv.config.json").read_text())
    assert config["preset"] == "superres-fast" and config["sampler"]["steps"] == 1
    assert config["guidance"]["equivariance"] == 0


def test_inpaint_box_and_mask(data, tmp_path):
    result = run(data / "truth.mkv", "--task", "inpaint", "--box", "8,6,10,8", "--methods",
                 "telea,navier-stokes,initial,none", "-o", tmp_path / "box", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "box/metrics.json").read_text())
    y = read_clip(tmp_path / "box/input.mkv")
    assert float(y[:, :, 6:14, 8:18].abs().max()) == 0  # the hole is painted black
    for row in report["methods"].values():
        assert row["psnr_unknown"] < row["psnr"]  # the hole is harder than the frame
    mask = np.zeros((24, 32), np.uint8)
    mask[6:14, 8:18] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    result = run(data / "truth.mkv", "--task", "inpaint", "--mask", tmp_path / "mask.png", "--methods", "telea",
                 "-o", tmp_path / "mask", "--quiet")
    assert result.exit_code == 0, result.output
    assert torch.equal(read_clip(tmp_path / "mask/input.mkv"), y)


def test_deblur_kernel_temporal_and_seeded_noise(data, tmp_path):
    args = [data / "truth.mkv", "--task", "deblur", "--kernel", "gaussian:1", "--temporal", "uniform:3",
            "--sigma-y", 0.02, "--methods", "input,wiener,richardson-lucy", "--quiet"]
    assert run(*args, "-o", tmp_path / "a").exit_code == 0
    assert run(*args, "-o", tmp_path / "b").exit_code == 0
    assert torch.equal(read_clip(tmp_path / "a/input.mkv"), read_clip(tmp_path / "b/input.mkv"))
    report = json.loads((tmp_path / "a/metrics.json").read_text())
    assert report["degradation"] == {"kernel": "gaussian:1", "temporal": "uniform:3", "sigma_y": 0.02}
    truth = read_clip(tmp_path / "a/reference.mkv")
    clean = ops.Compose(ops.TemporalBlur(ops.temporal_kernel("uniform:3")),
                        ops.Blur(ops.parse_kernel_spec("gaussian:1"))).A(truth)
    assert 0.015 < float((read_clip(tmp_path / "a/input.mkv") - clean).std()) < 0.025  # σ_y = 0.02, clipped at 0 and 1
    assert set(report["methods"]) == {"input", "wiener", "richardson-lucy"}
    # without a spatial kernel Wiener and Richardson-Lucy are skipped by default, an error when asked for
    assert run(data / "truth.mkv", "--task", "deblur", "--temporal", "uniform:3", "--methods", "input,initial",
               "-o", tmp_path / "c", "--quiet").exit_code == 0
    one_error_line(run(data / "truth.mkv", "--task", "deblur", "--temporal", "uniform:3", "--methods", "wiener",
                       "-o", tmp_path / "d"), 2, "wiener needs a spatial --kernel")


def test_interpolate_factor_and_frames(data, tmp_path):
    result = run(data / "truth.mkv", "--task", "interpolate", "-x", 2, "--frames", 4, "--methods",
                 "blend,flow-midpoint,flow-midpoint-bicubic", "-o", tmp_path / "r", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r/metrics.json").read_text())
    assert report["frames"] == 3  # 4 frames trimmed to (N-1)*2+1
    assert len(read_clip(tmp_path / "r/input.mkv")) == 2
    row = report["methods"]["blend"]
    assert row["psnr_per_frame"][0] is None and math.isfinite(row["psnr_unknown"])  # kept frames are exact
    assert set(report["methods"]) == {"blend", "flow-midpoint", "flow-midpoint-bicubic"}


def test_default_diffusion_run_of_each_task(data, tmp_path):
    from vidrestore.evaluate import resolve_evaluate_config

    # interpolate's own preset runs no prior (it would repeat `none`): its diffusion variant is evaluated
    for task, options, expected in (("interpolate", {}, "interpolate-diffusion"),
                                    ("superres", {}, "superres"),
                                    ("deblur", {"degradation.kernel": "gaussian:1"}, "deblur")):
        cfg = resolve_evaluate_config(data / "truth.mkv", task, tmp_path / task, options)
        assert [run.name for run in cfg.solvers] == ["none", expected]


@pytest.mark.parametrize("args, code, text", [
    (["--task", "superres", "--methods", "bogus"], 2, "unknown method 'bogus'"),
    (["--task", "superres", "--kernel", "gaussian:1"], 2, "--kernel applies to deblur, not superres"),
    (["--task", "deblur", "-x", "2", "--kernel", "gaussian:1"], 2, "-x applies to superres"),
    (["--task", "deblur"], 2, "deblur needs --kernel"),
    (["--task", "inpaint"], 2, "inpaint needs --mask"),
    (["--task", "sharpen"], 2, "unknown task 'sharpen'"),
    (["--task", "superres", "-x", "5"], 2, "unsupported scale x5"),
    (["--task", "superres", "--presets", "nope"], 2, "unknown preset 'nope'"),
    (["--task", "superres", "--noise", "pink"], 2, "sampler.noise: 'pink'"),
    (["--task", "superres", "--variant", "novalue"], 2, "--variant 'novalue'"),
    (["--task", "superres", "--set", "sampler.steps=0"], 2, "sampler.steps must be in [1, "),
    (["--task", "superres", "--progress", "xml"], 2, "--progress 'xml'"),
    (["--task", "interpolate", "--frames", "1"], 2, "--frames must be at least 2"),
])
def test_bad_options(data, tmp_path, args, code, text):
    one_error_line(run(data / "truth.mkv", *args, "-o", tmp_path / "r"), code, text)
    assert not (tmp_path / "r").exists()


def test_missing_reference(tmp_path):
    one_error_line(run(tmp_path / "nope.mkv", "--task", "superres", "-o", tmp_path / "r"), 3, "no such file")
    result = run(tmp_path / "nope.mkv", "--task", "superres", "-o", tmp_path / "r", "--debug")
    assert result.exit_code == 3 and "Traceback" in result.stderr


def test_overwrite_and_no_partial_report_on_failure(data, tmp_path):
    out = tmp_path / "r"
    assert run(data / "truth.mkv", "--task", "superres", "--methods", "bicubic", "-o", out, "--quiet").exit_code == 0
    before = (out / "metrics.json").read_text()
    one_error_line(run(data / "truth.mkv", "--task", "superres", "--methods", "bicubic", "-o", out), 4, "--overwrite")
    # a run that fails part-way (the model cannot be loaded after the baselines ran) leaves the old report alone
    result = run(data / "truth.mkv", "--task", "superres", "--methods", "lanczos,diffusion", "--model",
                 tmp_path / "no-model", "-o", out, "--overwrite", "--quiet")
    assert result.exit_code == 5, result.output
    assert (out / "metrics.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temporary folder left
    result = run(data / "truth.mkv", "--task", "superres", "--methods", "lanczos", "-o", out, "--overwrite", "--quiet")
    assert result.exit_code == 0
    assert list(json.loads((out / "metrics.json").read_text())["methods"]) == ["lanczos"]
    assert not (out / "runs" / "bicubic").exists()


def test_input_crf_scores_every_method_on_the_compressed_input(tmp_path):
    from test_artifacts import photo_pan

    write_clip(tmp_path / "truth.mkv", photo_pan(4, 48))
    for name, extra in (("lossless", []), ("crf", ["--input-crf", 32])):
        result = run(tmp_path / "truth.mkv", "--task", "superres", "-x", 2, "--methods", "lanczos,none",
                     "-o", tmp_path / name, "--quiet", *extra)
        assert result.exit_code == 0, result.output
    lossless, crf = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("lossless", "crf"))
    assert crf["input"] == "input.mp4" and crf["input_crf"] == 32 and lossless["input"] == "input.mkv"
    assert "through libx264 at CRF 32: `input.mp4`" in (tmp_path / "crf/index.md").read_text()
    # the baselines see the decoded frames too: compression costs Lanczos
    assert crf["methods"]["lanczos"]["psnr"] < lossless["methods"]["lanczos"]["psnr"] - 0.3
    none = json.loads((tmp_path / "crf" / crf["methods"]["none"]["metrics_file"]).read_text())
    assert none["codec"] == "h264" and none["deblock"] is True  # superres removes the artifacts first
    one_error_line(run(tmp_path / "truth.mkv", "--task", "superres", "--input-crf", 60, "-o", tmp_path / "bad"),
                   2, "--input-crf must be in [0, 51]")
