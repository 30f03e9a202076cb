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

from vidrestore.cli import app
from vidrestore.tasks import task_names

from helpers import read_clip, save_tiny_model, smooth_clip, write_clip

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
                           "--dilate", "--sigma-y", "--deblock", "--degradation", "--mask"])
VALUES = st.one_of(st.integers(-5, 40).map(str), st.text(min_size=0, max_size=12),
                   st.sampled_from(["gaussian:2", "uniform:0", "motion:3,x", "cuda:3", "shared", "fp16", "1,2,3",
                                    "sampler.steps=0", "a=b", "inf", "nan", "-1e9", "auto",
                                    "guidance.reliability=1", "guidance.reliability=-1", "on", "off",
                                    "degradation.deblock=on", "degradation.deblock=maybe"]))


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


def slow_superres(folder: Path) -> tuple[list[str], dict]:
    """A console-script superres run slow enough to interrupt (8 windows of 25 steps), without -o, and its env."""
    source = write_clip(folder / "in.mkv", smooth_clip(16, 24, 24))
    model = save_tiny_model(folder / "tiny")
    cmd = [sys.executable, "-m", "vidrestore", "superres", str(source), "-x", "2", "--model", str(model),
           "--steps", "25", "--chunk", "2", "--overlap", "0", "--quiet"]
    return cmd, dict(os.environ, HF_HUB_OFFLINE="1")


def test_sigint_after_the_first_chunk_then_rerun_gives_the_uninterrupted_output(tmp_path):
    cmd, env = slow_superres(tmp_path)
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
    assert _ffmpeg_children_of(tmp_path / "in.mkv") == []

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


# ------------------------------------------------------------- issue 25: the holes a hostile tester found


def _main(capsys, *args) -> tuple[int, str, str]:
    """vidrestore.cli.main as the console script runs it: (exit code, stdout, stderr)."""
    from vidrestore.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


USAGE = [  # (arguments, what click/typer's own message names)
    (["superres", "{clip}", "-x", "two"], "'-x'"),
    (["superres", "{clip}", "-x", "2.5"], "'-x'"),
    (["superres", "{clip}", "--bogus"], "--bogus"),
    (["superres"], "Missing argument"),
    (["superres", "{clip}", "--chunk"], "--chunk"),
    (["nosuchtask", "{clip}"], "nosuchtask"),
    (["evaluate", "{clip}", "--task", "superres", "--frames", "many"], "'--frames'"),
]


@pytest.mark.parametrize("args, names", USAGE, ids=[" ".join(a[2:] or a) for a, _ in USAGE])
def test_usage_errors_exit_2_with_one_line_naming_the_option(files, capsys, args, names):
    code, _, err = _main(capsys, *[a.replace("{clip}", str(files / "good.mkv")) for a in args])
    assert code == 2, err
    assert err.startswith("vidrestore: error: ") and names in err and "internal error" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_bare_vidrestore_shows_the_help_and_exits_2(capsys):
    code, out, err = _main(capsys)
    assert code == 2 and "superres" in out + err and "internal error" not in err


def test_usage_errors_through_the_console_script(files, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    for args, names in ((["-x", "two"], "'-x'"), (["--bogus"], "--bogus")):
        proc = subprocess.run([sys.executable, "-m", "vidrestore.cli", "superres", str(files / "good.mkv"), *args,
                               "-o", str(tmp_path / "out.mkv")], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert proc.returncode == 2 and names in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = subprocess.run([sys.executable, "-m", "vidrestore.cli"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "Usage" in proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []


def _dry_run_config(*args) -> dict:
    import json

    result = run(*args, "--dry-run", "--quiet")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["config"]


def test_set_and_preset_keys_win_over_task_options_the_user_did_not_type(files, tmp_path):
    clip = files / "good.mkv"
    assert _dry_run_config("superres", clip, "--set", "degradation.scale=2")["degradation"]["scale"] == 2
    assert _dry_run_config("interpolate", clip, "--set", "degradation.factor=4")["degradation"]["factor"] == 4
    preset = tmp_path / "mine.yaml"
    preset.write_text("degradation:\n  scale: 3\n")
    assert _dry_run_config("superres", clip, "--preset", preset)["degradation"]["scale"] == 3
    # what the user typed wins over both; what nobody gave is the task's default
    assert _dry_run_config("superres", clip, "--preset", preset, "-x", 8)["degradation"]["scale"] == 8
    assert _dry_run_config("superres", clip, "--set", "degradation.scale=2", "-x", 8)["degradation"]["scale"] == 8
    assert _dry_run_config("superres", clip)["degradation"]["scale"] == 4


@pytest.mark.parametrize("key, bad", [
    ("sampler.cg_iterations", -3), ("sampler.cg_iterations", 0), ("sampler.start_t", 5000), ("sampler.start_t", 0),
    ("sampler.steps", 0), ("latent.inversion_t", 1001), ("runtime.micro_batch", 0), ("runtime.chunk", 0),
    ("runtime.overlap", -1), ("io.crf", 52), ("io.fps", 0), ("io.fps", ".nan"), ("sampler.warp_correlation", 1.5),
    ("guidance.flow_updates", -1), ("guidance.equivariance", 3), ("runtime.seed", -1), ("runtime.tile", 8),
    ("runtime.workers", -1), ("sampler.gamma", ".inf"), ("sampler.noisy_gamma", -1),
])
def test_out_of_range_values_are_usage_errors_naming_the_key(files, tmp_path, key, bad):
    result = run("superres", files / "good.mkv", "-o", tmp_path / "out.mkv", "--model", "none",
                 "--set", f"{key}={bad}")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"vidrestore: error: {key} must be ") and len(result.stderr.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_bad_metrics_path_is_found_before_any_work(files, tmp_path):
    out = tmp_path / "out.mkv"
    for metrics in (tmp_path / "no" / "such" / "m.json", tmp_path):
        result = run("superres", files / "good.mkv", "-x", 2, "-o", out, "--model", "none",
                     "--metrics", metrics)
        assert result.exit_code == 4, result.output
        assert str(metrics) in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert list(tmp_path.iterdir()) == []  # no output committed, no config.json, no work folder


def test_the_current_folder_or_an_empty_path_is_never_an_output(files, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.png").write_bytes(b"mine")
    monkeypatch.chdir(work)
    for target in (".", "", "..", str(work)):
        result = run("superres", files / "good.mkv", "-x", 2, "-o", target, "--overwrite", "--model", "none")
        assert result.exit_code == 2, (target, result.output)
        assert result.stderr.startswith("vidrestore: error: -o ") and len(result.stderr.strip().splitlines()) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["work"] and [p.name for p in work.iterdir()] == ["keep.png"]
    # an existing empty folder is a fine frame-folder output
    empty = tmp_path / "empty"
    empty.mkdir()
    source = write_clip(tmp_path / "in.mkv", smooth_clip(3, 16, 24))
    result = run("superres", source, "-x", 2, "-o", empty, "--model", "none", "--quiet")
    assert result.exit_code == 0, result.output
    assert len(list(empty.glob("*.png"))) == 3


def _damaged_ffv1(path: Path) -> Path:
    """An FFV1 .mkv (slice CRCs) with a few bytes flipped in the middle: it decodes to every frame, with
    ffmpeg reporting a CRC mismatch."""
    write_clip(path, smooth_clip(16, 48, 64))
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 40, 7):
        data[i] ^= 0x55
    path.write_bytes(bytes(data))
    return path


def _truncated_mp4(path: Path) -> Path:
    import imageio_ffmpeg

    whole = path.with_name("whole_" + path.name)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=128x96:rate=25", "-frames:v", "16", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-movflags", "+faststart", str(whole)], check=True)
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    whole.unlink()
    return path


def test_decoding_errors_are_a_warning_or_with_strict_fatal_and_leave_nothing(tmp_path):
    import json

    source = _damaged_ffv1(tmp_path / "in" / "damaged.mkv")
    out = tmp_path / "out" / "out.mkv"
    result = run("superres", source, "-x", 2, "-o", out, "--model", "none", "--quiet")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "decoding error" in line]
    assert len(warnings) == 1 and warnings[0].startswith(f"vidrestore: warning: {source}: ffmpeg reported")
    assert any("decoding error" in w for w in json.loads((out.parent / "out.mkv.metrics.json").read_text())["warnings"])
    for name in ("strict.mkv", "strict_frames"):
        result = run("superres", source, "-x", 2, "-o", out.parent / name, "--model", "none", "--quiet", "--strict",
                     "--chunk", 4)
        assert result.exit_code == 3, result.output
        assert "--strict" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.mkv", "out.mkv.config.json", "out.mkv.metrics.json"]


def test_a_truncated_file_is_an_input_error_and_leaves_no_work_folder(tmp_path):
    source = _truncated_mp4(tmp_path / "trunc.mp4")
    out = tmp_path / "out"
    out.mkdir()
    result = run("superres", source, "-x", 2, "-o", out / "out.mkv", "--model", "none", "--quiet")
    assert result.exit_code == 3, result.output
    error = [line for line in result.stderr.splitlines() if line.startswith("vidrestore: error:")]
    assert len(error) == 1 and "damaged" in error[0] and "Traceback" not in result.stderr
    assert list(out.iterdir()) == []


def test_a_small_chunk_gets_a_small_overlap_and_a_clamped_one_is_said_before_the_run(files, tmp_path):
    import json

    source = write_clip(tmp_path / "in.mkv", smooth_clip(16, 16, 24))
    result = run("superres", source, "-x", 2, "-o", tmp_path / "a.mkv", "--model", "none", "--chunk", 4, "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "a.mkv.metrics.json").read_text())["windows"] == 5  # overlap 1, not 13 windows
    assert "overlap" not in result.stderr  # nothing was asked, nothing to say
    # an overlap the chunk cannot hold is clamped and said before the model loads (here: fails to load)
    result = run("superres", source, "-x", 2, "-o", tmp_path / "b.mkv", "--model", tmp_path / "no-model",
                 "--chunk", 4, "--overlap", 9, "--quiet")
    assert result.exit_code == 5
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "vidrestore: warning: windows of 4 frames overlap by 3 (asked: 9)"
    assert lines[1].startswith("vidrestore: error:") and len(lines) == 2


def test_rgba_and_16_bit_frames_are_reduced_with_a_warning(tmp_path):
    folders = {"rgba": (np.full((16, 24, 4), 200, np.uint8), "alpha channel"),
               "deep": (np.full((16, 24, 3), 40000, np.uint16), "more than 8 bits")}
    for name, (frame, note) in folders.items():
        folder = tmp_path / name
        folder.mkdir()
        for i in range(3):
            cv2.imwrite(str(folder / f"{i}.png"), frame)
        result = run("superres", folder, "-x", 2, "-o", tmp_path / f"{name}.mkv", "--model", "none", "--quiet")
        assert result.exit_code == 0, result.output
        assert f"vidrestore: warning: {folder}: " in result.stderr and note in result.stderr


def test_hub_and_diffusers_notices_do_not_reach_the_user(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    source = write_clip(tmp_path / "in.mkv", smooth_clip(3, 16, 24))
    proc = subprocess.run([sys.executable, "-m", "vidrestore.cli", "superres", str(source), "-x", "2",
                           "--model", "someone/missing-model", "-o", str(tmp_path / "out.mkv")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 5 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    # the estimate of the embedded diffusion model (printed before every run) builds it on the meta device
    proc = subprocess.run([sys.executable, "-m", "vidrestore.cli", "superres", str(source), "-x", "2",
                           "--dry-run", "-o", str(tmp_path / "out.mkv")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "float32:" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_a_full_disk_while_restoring_is_one_line_and_the_work_folder_resumes(tmp_path):
    """RLIMIT_FSIZE (`ulimit -f`) makes ffmpeg's segment write fail as a full disk would, without root."""
    import resource

    source = write_clip(tmp_path / "in.mkv", smooth_clip(12, 48, 64))
    cmd = [sys.executable, "-m", "vidrestore", "superres", str(source), "-x", "2", "--model", "none",
           "--chunk", "4", "--overlap", "0", "--quiet"]
    subprocess.run(cmd + ["-o", str(tmp_path / "whole.mkv")], check=True, capture_output=True)
    limit = 1000  # bytes per file: the first segment cannot be written

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "out" / "out.mkv"
    proc = subprocess.run(cmd + ["-o", str(out)], capture_output=True, text=True, preexec_fn=limited)
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith(f"vidrestore: error: {out.parent}") and "limit" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "libpng" not in proc.stderr
    assert not out.exists() and not [p for p in out.parent.rglob("*") if p.is_file() and p.name.startswith(".")]
    assert not list(out.parent.rglob("*.mkv"))  # the failed window's segment is gone
    # with room again, the same command finishes and gives the uninterrupted output
    subprocess.run(cmd + ["-o", str(out)], check=True, capture_output=True)
    assert torch.equal(read_clip(out), read_clip(tmp_path / "whole.mkv"))
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.mkv", "out.mkv.config.json", "out.mkv.metrics.json"]


MIX_FLAGS = {  # the option mixes of issue 25: option -> the values tried (None: a switch)
    "-x": ["two", "2.5", "2", "3", "0", "-4", "8"],
    "--chunk": ["0", "1", "2", "4", "-1", "x"],
    "--overlap": ["0", "1", "9", "-2"],
    "--steps": ["0", "1", "2000"],
    "--crf": ["-1", "0", "51", "52"],
    "--fps": ["0", "-5", "nan", "inf", "24000/1001", "30"],
    "--seed": ["-1", "0", str(2**64)],
    "--micro-batch": ["0", "1"],
    "--tile": ["0", "8", "16"],
    "-o": ["", ".", "..", "out.mkv", "out", "sub/out.mp4", "out.avi", "in.mkv"],
    "--metrics": ["", ".", "no/such/m.json", "m.json", "in.mkv"],
    "--set": [f"{key}={value}" for key in ("sampler.cg_iterations", "sampler.start_t", "latent.inversion_t",
                                           "sampler.warp_correlation", "guidance.flow_updates", "runtime.overlap",
                                           "degradation.scale", "degradation.sigma_y", "io.fps",
                                           "sampler.noisy_gamma")
              for value in ("-3", "0", "1", "5000", ".nan", "two", "''", "[1]", "null")] + ["nope=1", "sampler"],
    "--bogus": None, "--strict": None, "--no-resume": None, "--overwrite": None, "--no-audio": None,
}


_MIX_CLIP: list[bytes] = []  # one small clip for every example (encoding it each time is most of the cost)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(task=st.sampled_from(task_names()),
       options=st.lists(st.sampled_from(sorted(MIX_FLAGS)).flatmap(
           lambda flag: st.tuples(st.just(flag), st.sampled_from(MIX_FLAGS[flag] or [None]))), max_size=4),
       dry_run=st.sampled_from([True, True, True, True, False]), no_input=st.booleans())
def test_option_mixes_never_an_internal_error_through_main(tmp_path_factory, task, options, dry_run, no_input):
    import contextlib
    import io

    from vidrestore.cli import main

    d = tmp_path_factory.mktemp("mix")
    if not _MIX_CLIP:
        _MIX_CLIP.append(write_clip(d / "in.mkv", smooth_clip(3, 16, 24)).read_bytes())
    source, before = d / "in.mkv", _MIX_CLIP[0]
    source.write_bytes(before)
    args = [task] + ([] if no_input else ["in.mkv"]) + ["--model", "none", "--quiet",
                                                        "--set", "classical.iterations=2"]  # fast
    if task == "inpaint":
        args += ["--box", "2,2,4,4"]
    if task == "deblur":
        args += ["--kernel", "gaussian:1"]
    for flag, value in options:
        args += [flag] if value is None else [flag, value]
    if dry_run:
        args.append("--dry-run")
    err, cwd = io.StringIO(), os.getcwd()
    os.chdir(d)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            with pytest.raises(SystemExit) as exit_info:
                main(args)
    finally:
        os.chdir(cwd)
    code, err = exit_info.value.code, err.getvalue()
    assert code in (0, 2, 3, 4), (args, err)
    assert "internal error" not in err and "Traceback" not in err, (args, err)
    assert source.read_bytes() == before  # the input is never touched
    if code != 0:
        assert len([line for line in err.splitlines() if line.startswith("vidrestore: error")]) == 1, (args, err)
        assert sorted(p.name for p in d.iterdir()) == ["in.mkv"], (args, err)  # nothing left behind


def test_two_runs_on_one_output_the_second_is_refused_and_the_first_keeps_its_own_frames(tmp_path):
    cmd, env = slow_superres(tmp_path)
    out = tmp_path / "out.mkv"
    first = subprocess.Popen(cmd + ["-o", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    state = tmp_path / "out.mkv.partial" / "state.json"
    deadline = time.time() + 120
    while not state.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert first.poll() is None, "the first run finished before the second started"
    second = subprocess.run(cmd + ["-o", str(out), "--set", "classical.smoothness=0.5", "--no-resume"], env=env,
                            capture_output=True, text=True)
    assert second.returncode == 4 and f"pid {first.pid}" in second.stderr, second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    subprocess.run(cmd + ["-o", str(tmp_path / "alone.mkv")], check=True, env=env, capture_output=True)
    assert torch.equal(read_clip(out), read_clip(tmp_path / "alone.mkv"))


def test_an_output_that_is_an_input_is_refused_even_with_overwrite(tmp_path):
    source = write_clip(tmp_path / "in.mkv", smooth_clip(3, 16, 24))
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((16, 24, 3), 100, np.uint8))
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a.mp4", "b.mp4"):  # a batch writes <stem>.mp4: these very files
        write_clip(clips / name, smooth_clip(3, 16, 24))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for args in ([source, "-o", source], [frames, "-o", frames], [clips, "-o", clips], [source, "-o", tmp_path]):
        result = run("superres", *args, "-x", 2, "--overwrite", "--model", "none", "--quiet")
        assert result.exit_code == 4, (args, result.output)
        assert "choose another -o" in result.stderr and "--overwrite" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_the_hidden_temporary_output_of_a_killed_final_encode_is_removed_by_the_next_run(tmp_path):
    source = write_clip(tmp_path / "in.mkv", smooth_clip(3, 16, 24))
    stale = [tmp_path / ".out.mkv.partial-0123abcd.mkv", tmp_path / ".out.mkv.partial-deadbeef.mp4"]
    for path in stale:
        path.write_bytes(b"half an encode")
    result = run("superres", source, "-x", 2, "-o", tmp_path / "out.mkv", "--model", "none", "--quiet")
    assert result.exit_code == 0, result.output
    assert not any(path.exists() for path in stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv", "out.mkv", "out.mkv.config.json",
                                                           "out.mkv.metrics.json"]
