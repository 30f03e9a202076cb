"""The prepared GPU check runs on the CPU as far as it can: its options and its JSON report."""
from __future__ import annotations

import json

import pytest

from helpers import load_script


@pytest.fixture(scope="module")
def gpu_check():
    return load_script("gpu_check")


def test_options(gpu_check):
    args = gpu_check.parse_args(["--size", "640x360", "--frames", "2"])
    assert (args.width, args.height, args.frames) == (640, 360, 2)
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--size", "big"])
    with pytest.raises(SystemExit):
        gpu_check.parse_args(["--frames", "0"])


def test_quick_run_writes_a_report_of_every_case(gpu_check, tmp_path):
    out = tmp_path / "report.json"
    code = gpu_check.main(["--quick", "--out", str(out)])
    report = json.loads(out.read_text())
    cases = {(c["case"], c.get("dtype")): c for c in report["cases"]}
    assert cases[("prior", "fp32")]["status"] == "ok" and cases[("prior", "fp32")]["seconds_per_frame_step"] > 0
    assert cases[("prior", "fp16")]["status"] == "skipped"  # CPU: half precision is CUDA only
    assert cases[("tiny-sd-superres", None)]["status"] == "skipped"  # --quick
    assert cases[("tiny-sd-edit", None)]["status"] == "skipped"
    assert code == 0
