"""Bad input never shows a traceback, never leaves output behind; interrupted runs resume exactly."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from helpers import read_clip, save_tiny_model, smooth_clip, write_clip
from vidrestore.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    write_clip(d / "good.mkv", smooth_clip(3, 8, 12))
    (d / "empty.mp4").write_bytes(b"")
    good = (d / "good.mkv").read_bytes()
    (d / "truncated.mkv").write_bytes(good[: len(good) // 3])
    mixed = d / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "a.png"), np.zeros((8, 12, 3), np.uint8))
    cv2.imwrite(str(mixed / "b.png"), np.zeros((9, 12, 3), np.uint8))
    (d / "nothing").mkdir()
    cv2.imwrite(str(d / "mask_small.png"), np.zeros((4, 4), np.uint8))
    write_clip(d / "mask_short.mkv", smooth_clip(2, 8, 12))
    (d / "bad.yaml").write_text("sampler: [\n")
    (d / "readonly").mkdir()
    return d


BAD = [
    (["superres", "{d}/missing.mp4"], 3, "no such file"),
    (["superres", "{d}/empty.mp4"], 3, "empty.mp4"),
    (["superres", "{d}/truncated.mkv"], 3, "truncated.mkv"),
    (["superres", "{d}/mixed"], 3, "b.png"),
    (["superres", "{d}/nothing"], 3, "nothing"),
    (["inpaint", "{d}/good.mkv", "--mask", "{d}/mask_small.png"], 3, "mask is 4x4"),
    (["inpaint", "{d}/good.mkv", "--mask", "{d}/mask_short.mkv"], 3, "mask has 2 frames"),
    (["superres", "{d}/good.mkv", "-x", 6], 2, "unsupported scale"),
    (["deblur", "{d}/good.mkv", "--kernel", "gaussian:-1"], 2, "gaussian:-1"),
    (["deblur", "{d}/good.mkv", "--temporal", "box:3"], 2, "box:3"),
    (["superres", "{d}/good.mkv", "--preset", "{d}/bad.yaml"], 2, "malformed preset"),
    (["superres", "{d}/good.mkv", "--set", "nope=1"], 2, "unknown config key"),
    (["superres", "{d}/good.mkv", "--model", "/no/such/model"], 5, "not found"),
    (["superres", "{d}/good.mkv", "--model", "someone/missing-model"], 5, "someone/missing-model"),
    (["superres", "{d}/good.mkv", "--device", "cuda"], 6, "CUDA is not available"),
    (["superres", "{d}/good.mkv", "-o", "{d}/out.avi"], 4, "unsupported output type"),
]


@pytest.mark.parametrize("args, code, message", BAD, ids=[f"{a[0]}-{m}" for a, _, m in BAD])
def test_every_bad_input_gets_one_line_and_its_exit_code(files, tmp_path, monkeypatch, args, code, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = [str(a).replace("{d}", str(files)) for a in args]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "out.mkv")]
    if "--model" not in args:
        args += ["--model", "none"]
    before = set(tmp_path.iterdir())
    result = run(*args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert set(tmp_path.iterdir()) == before  # no output, no temporary or partial files


def test_an_unwritable_output_folder_is_a_clear_error(files, tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    os.chmod(target, 0o500)
    try:
        if os.access(target, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        result = run("superres", files / "good.mkv", "-o", target / "out.mkv", "--model", "none")
        assert result.exit_code == 4 and "Traceback" not in result.stderr
    finally:
        os.chmod(target, 0o700)


OPTIONS = st.sampled_from(["-x", "--steps", "--seed", "--chunk", "--overlap", "--tile", "--noise", "--device",
                           "--dtype", "--fps", "--crf", "--preset", "--set", "--kernel", "--temporal", "--box",
                           "--dilate", "--sigma-y", "--degradation", "--mask"])
VALUES = st.one_of(st.integers(-5, 40).map(str), st.text(min_size=0, max_size=12),
                   st.sampled_from(["gaussian:2", "uniform:0", "motion:3,x", "cuda:3", "shared", "fp16", "1,2,3",
                                    "sampler.steps=0", "a=b", "inf", "nan", "-1e9"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(task=st.sampled_from(["superres", "inpaint", "deblur", "interpolate"]),
       options=st.lists(st.tuples(OPTIONS, VALUES), max_size=3), junk=st.binary(max_size=256),
       use_junk=st.booleans())
def test_random_options_and_bytes_never_show_a_traceback(files, tmp_path_factory, task, options, junk, use_junk):
    d = tmp_path_factory.mktemp("fuzz")
    source = files / "good.mkv"
    if use_junk:
        source = d / "junk.mp4"
        source.write_bytes(junk)
    args = [task, source, "-o", d / "out.mkv", "--model", "none", "--quiet"]
    for option, value in options:
        args += [option, value]
    result = run(*args)
    assert result.exit_code in (0, 2, 3, 4, 5, 6), (args, result.output, result.exception)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    if result.exit_code != 0:
        assert not (d / "out.mkv").exists()
        assert not any(p.name.startswith(".out") or p.name.endswith(".partial") for p in d.iterdir()) or \
            all(p.suffix == ".partial" for p in d.iterdir() if p.name.endswith(".partial"))


def _ffmpeg_children_of(path: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "ffmpeg" in cmdline and str(path) in cmdline:
                pids.append(int(proc.name))
    return pids


def test_sigint_after_the_first_chunk_then_rerun_gives_the_uninterrupted_output(tmp_path):
    source = write_clip(tmp_path / "in.mkv", smooth_clip(16, 24, 24))
    model = save_tiny_model(tmp_path / "tiny")
    cmd = [sys.executable, "-m", "vidrestore", "superres", str(source), "-x", "2", "--model", str(model),
           "--steps", "25", "--chunk", "2", "--overlap", "0", "--quiet"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    subprocess.run(cmd + ["-o", str(tmp_path / "whole")], check=True, env=env, capture_output=True)

    out = tmp_path / "out"
    state = tmp_path / "out.partial" / "state.json"
    # a shell that started pytest in the background leaves SIGINT ignored: give the child the default
    proc = subprocess.Popen(cmd + ["-o", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and b"interrupted" in err
    assert not out.exists() and state.exists()
    time.sleep(0.2)
    assert _ffmpeg_children_of(source) == []

    subprocess.run(cmd + ["-o", str(out)], check=True, env=env, capture_output=True)
    assert torch.equal(read_clip(out), read_clip(tmp_path / "whole"))
    assert not state.parent.exists()


def test_variable_rate_and_deep_inputs_are_handled_with_a_warning(tmp_path):
    import imageio_ffmpeg

    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    vfr, vfr_mkv, deep = tmp_path / "vfr.mp4", tmp_path / "vfr_mkv.mkv", tmp_path / "deep.mkv"
    for path in (vfr, vfr_mkv):  # .mkv lists no average rate: found from the timestamps
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25", "-frames:v", "20",
                        "-vf", "setpts='if(lt(N,10),N/25,(N+10)/25)/TB'", "-fps_mode", "passthrough", "-c:v",
                        "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)
    subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=32x24:rate=25", "-frames:v", "5",
                    "-pix_fmt", "yuv420p10le", "-c:v", "libx264", str(deep)], check=True)
    for source, note in ((vfr, "variable frame rate"), (vfr_mkv, "variable frame rate"), (deep, "more than 8 bits")):
        out = tmp_path / f"{source.stem}_out.mkv"
        result = run("superres", source, "-x", 2, "-o", out, "--model", "none", "--quiet")
        assert result.exit_code == 0, result.output
        assert f"vidrestore: warning: {source}: {note}" in result.stderr
    from vidrestore.io import probe

    assert probe(tmp_path / "vfr_out.mkv").frame_count == 20  # every frame kept, at the average rate
    assert probe(tmp_path / "vfr_mkv_out.mkv").notes == ()  # what vidrestore writes is constant-rate
