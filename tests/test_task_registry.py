"""A task is one module: a toy fifth task, defined only here, works through the CLI and `evaluate`.

The toy task undoes a known exposure gain (the input is g·x): its options,
CLI option, operator, baseline and evaluate hooks are all in this file, and
nothing else in vidrestore knows it exists.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from typer.testing import CliRunner

from vidrestore import operators as ops
from vidrestore.config import RunConfig, resolve_config
from vidrestore.errors import UsageError
from vidrestore.io import quantize
from vidrestore.tasks import Degradation, Task, TaskOption, get_task, register, task_names, unregister

from helpers import read_clip, smooth_clip, write_clip


class Gain(ops.LinearOperator):
    """A x = g·x (self-adjoint)."""

    def __init__(self, gain: float):
        self.gain = gain
        self.name = f"gain({gain})"

    def A(self, x):
        return self.gain * x

    def A_adjoint(self, y):
        return self.gain * y

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def input_shape(self, output_shape):
        return tuple(output_shape)

    def initial_estimate(self, y):
        return y / self.gain


@dataclass(frozen=True)
class ExposeOptions(Degradation):
    gain: float = 0.5

    def validate(self) -> None:
        super().validate()
        if not 0 < self.gain <= 1:
            raise UsageError(f"degradation.gain must be in (0, 1], got {self.gain}")


class Expose(Task):
    name = "expose"
    help = "Undo a known exposure gain."
    example = "vidrestore expose dark.mp4 --gain 0.5"
    Options = ExposeOptions
    cli_options = (TaskOption("gain", ("--gain",), "The gain the input was scaled by (0-1].", float),)
    baselines = ("divide",)

    def operator(self, streams=None):
        return Gain(self.options.gain)

    def run_baseline(self, name, y, operator, truth):
        if name == "divide":
            return (y / self.options.gain).clamp(0, 1)
        return super().run_baseline(name, y, operator, truth)


@pytest.fixture
def expose():
    register(Expose)
    yield Expose
    unregister("expose")


@pytest.fixture
def app(expose):
    from vidrestore.cli import build_app

    return build_app()


def test_the_registry_knows_the_built_in_tasks_and_refuses_unknown_ones():
    assert task_names()[:4] == ["superres", "inpaint", "deblur", "interpolate"]
    with pytest.raises(UsageError, match="unknown task 'expose'"):
        get_task("expose")
    with pytest.raises(UsageError, match="unknown task 'expose'"):
        resolve_config("expose")


def test_a_registered_task_gets_its_own_config_options(expose):
    cfg = resolve_config("expose", flags={"degradation.gain": 0.25})
    assert isinstance(cfg.degradation, ExposeOptions) and cfg.degradation.gain == 0.25
    assert cfg.preset == ""  # it ships no preset: defaults
    assert RunConfig.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(UsageError, match="degradation.gain must be in"):
        resolve_config("expose", flags={"degradation.gain": 2.0})
    with pytest.raises(UsageError, match="unknown config key degradation.scale"):
        resolve_config("expose", sets=["degradation.scale=2"])


def test_the_toy_task_runs_through_the_cli(app, tmp_path):
    truth = quantize(smooth_clip(4, 16, 16))
    write_clip(tmp_path / "dark.mkv", quantize(0.5 * truth))
    out = tmp_path / "out.mkv"
    result = CliRunner().invoke(app, ["expose", str(tmp_path / "dark.mkv"), "--gain", "0.5", "--model", "none",
                                      "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (read_clip(out) - truth).abs().max() <= 2 / 255 + 1e-6
    metrics = json.loads(out.with_name(out.name + ".metrics.json").read_text())
    assert metrics["task"] == "expose" and metrics["data_consistency_residual"] < 1e-2
    assert "--gain" in CliRunner().invoke(app, ["expose", "--help"]).output


def test_the_toy_task_runs_through_evaluate(app, tmp_path):
    write_clip(tmp_path / "truth.mkv", smooth_clip(4, 16, 16))
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "truth.mkv"), "--task", "expose", "--gain", "0.5",
                                      "--methods", "divide,initial,none", "-o", str(tmp_path / "report"),
                                      "--progress", "none"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert list(report["methods"]) == ["divide", "initial", "none"]
    assert report["degradation"] == {"gain": 0.5} and report["operator"] == "gain(0.5)"
    assert all(row["psnr"] > 40 for row in report["methods"].values())
    # another task's option is refused by name
    bad = CliRunner().invoke(app, ["evaluate", str(tmp_path / "truth.mkv"), "--task", "superres", "--gain", "0.5"])
    assert bad.exit_code == 2 and "--gain applies to expose, not superres" in bad.output


def test_the_operator_of_the_toy_task_is_adjoint():
    op = Gain(0.3)
    x, y = torch.rand(2, 3, 5, 4, dtype=torch.float64), torch.rand(2, 3, 5, 4, dtype=torch.float64)
    assert abs(float((op.A(x) * y).sum() - (x * op.A_adjoint(y)).sum())) < 1e-12
