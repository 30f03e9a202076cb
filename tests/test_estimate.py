"""The run estimate (`--dry-run`): the embedded prior's time comes from timing its own forward pass."""
from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from vidrestore.cli import app
from vidrestore.config import resolve_config
from vidrestore.costs import estimate_run

from helpers import write_clip


def test_pixel_prior_estimate_times_the_network_and_leaves_global_randomness_alone(tmp_path):
    clip = tmp_path / "in.mkv"
    write_clip(clip, torch.rand(4, 3, 24, 32))
    cfg = resolve_config("superres", "superres", [], {"input": str(clip), "degradation.scale": 2, "runtime.device": "cpu"})
    before = torch.random.get_rng_state()
    est = estimate_run(cfg)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert est.rate_from == "forward pass" and est.device_tflops > 0
    # the time is the counted work at the measured rate
    assert abs(est.seconds_per_frame - est.tflop_per_frame / est.device_tflops) <= 0.02 * est.seconds_per_frame


def test_dry_run_prints_the_measured_rate(tmp_path):
    clip = tmp_path / "in.mkv"
    write_clip(clip, torch.rand(4, 3, 24, 32))
    result = CliRunner().invoke(app, ["superres", str(clip), "-x", "2", "--device", "cpu", "--dry-run"])
    assert result.exit_code == 0
    assert "forward pass" in result.stderr
    assert json.loads(result.stdout)["estimate"]["rate_from"] == "forward pass"
