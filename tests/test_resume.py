"""<output>.partial/: segments per window, resume after a crash, the exclusive claim, the joined output;
and outputs that would overwrite their input. Through real files, 16x16 clips of a few frames."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from vidrestore import resume as resume_module
from vidrestore.batch import restore_batch
from vidrestore.config import resolve_config
from vidrestore.errors import OutputError
from vidrestore.io import VideoWriter, check_output_not_input, join_videos, probe, read_frames, to_uint8
from vidrestore.io._ffmpeg import ffmpeg_exe
from vidrestore.resume import PartialRun, ResumeState

from helpers import smooth_clip

FPS = Fraction(30000, 1001)
WINDOWS = [2, 2, 1]  # final frames per window


def frames(n: int = sum(WINDOWS), seed: int = 0) -> np.ndarray:
    """Smooth frames with noise on top: every frame differs from its neighbours."""
    rng = np.random.default_rng(seed)
    base = to_uint8(smooth_clip(n, 16, 16, seed)).astype(np.int16)
    return np.clip(base + rng.integers(-12, 13, base.shape), 0, 255).astype(np.uint8)


def read_all(path: Path) -> np.ndarray:
    return np.concatenate(list(read_frames(path, 64)))


def partial_run(output: Path, key: str = "k", **kwargs) -> PartialRun:
    return PartialRun(output, key, fps=FPS, width=16, height=16, **kwargs)


def run_windows(partial: PartialRun, clip: np.ndarray, windows=WINDOWS, first_window: int = 0) -> None:
    """Append and commit `windows` (final frame counts), starting after the state `partial` loaded."""
    state = partial.load()
    start = state.frames_done
    for w, count in enumerate(windows, start=first_window):
        partial.append(clip[start:start + count], start)
        start += count
        partial.commit(ResumeState(w + 1, start, 0, {"sum": float(start)}))


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def ffmpeg_info(path: Path) -> str:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr


def with_audio(tmp_path: Path) -> Path:
    """A 5-frame FFV1 clip with one second of a 440 Hz tone."""
    silent = tmp_path / "silent.mkv"
    with VideoWriter(silent, FPS, 16, 16) as writer:
        writer.write(frames())
    source = tmp_path / "source.mkv"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(silent), "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=16000:duration=1", "-map", "0:v", "-map", "1:a", "-c:v", "copy",
                    "-c:a", "aac", str(source)], check=True)
    return source


def audio_seconds(path: Path) -> float:
    done = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy", "-f", "null",
                           "-progress", "pipe:1", "-"], capture_output=True, text=True)
    return int(re.findall(r"out_time_us=(\d+)", done.stdout)[-1]) / 1e6


# ----------------------------------------------------------------------------- segments and the output


@pytest.mark.parametrize("name", ["out.mkv", "out.mp4", "out"])
def test_each_window_is_a_segment_and_the_output_has_the_appended_frames(tmp_path, name):
    output, clip = tmp_path / name, frames()
    partial = partial_run(output)
    work = partial.frames_dir if name == "out" else partial.segments_dir
    state, start = partial.load(), 0
    assert state == ResumeState()
    for w, count in enumerate(WINDOWS):
        partial.append(clip[start:start + count], start)
        start += count
        partial.commit(ResumeState(w + 1, start, 0, {}))
        if name == "out":
            assert names(work) == [f"{i:06d}.png" for i in range(start)]
        else:  # one finished segment per window, nothing else
            assert len(names(work)) == w + 1 and not any(n.startswith(".") for n in names(work))
    partial.finish(audio_from=None, overwrite=False)
    assert names(tmp_path) == [name]  # no work folder, lock file or temporary output left
    result = read_all(output)
    if name == "out.mp4":  # each segment starts a new GOP: about as close as one encode, not the same
        with VideoWriter(tmp_path / "whole.mp4", FPS, 16, 16) as writer:
            writer.write(clip)
        error = np.abs(result.astype(int) - clip).mean()
        assert result.shape == clip.shape and error < np.abs(read_all(tmp_path / "whole.mp4").astype(int) - clip).mean() + 1
        (tmp_path / "whole.mp4").unlink()
    else:
        assert np.array_equal(result, clip)
    if name != "out":
        info = probe(output)  # frames on the exact grid: no variable rate, the exact rational rate
        assert (info.frame_count, info.fps, info.notes) == (len(clip), FPS, ())


def test_joined_mkv_equals_one_videowriter_encode(tmp_path):
    """What the old path gave: all frames through one VideoWriter; also short windows of 1 frame."""
    clip = frames(9)
    with VideoWriter(tmp_path / "whole.mkv", FPS, 16, 16) as writer:
        writer.write(clip)
    partial = partial_run(tmp_path / "out.mkv")
    run_windows(partial, clip, [3, 1, 4, 1])
    partial.finish(audio_from=None, overwrite=False)
    assert np.array_equal(read_all(tmp_path / "out.mkv"), read_all(tmp_path / "whole.mkv"))
    assert probe(tmp_path / "out.mkv") == probe(tmp_path / "whole.mkv").__class__(
        **{**probe(tmp_path / "whole.mkv").__dict__, "path": tmp_path / "out.mkv"})


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_audio_passes_through_once(tmp_path, suffix):
    source = with_audio(tmp_path)
    output = tmp_path / f"out{suffix}"
    partial = partial_run(output)
    run_windows(partial, frames())
    partial.finish(audio_from=source, overwrite=False)
    assert ffmpeg_info(output).count("Audio:") == 1
    assert audio_seconds(output) == pytest.approx(audio_seconds(source), abs=0.05)
    assert probe(output).frame_count == len(frames())


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes: POSIX")
def test_join_hands_each_part_over_before_the_next_one_and_it_can_go_at_once(tmp_path):
    """ffmpeg reads the parts through pipes: when part i is reported, the output holds little more
    than parts 0..i, and deleting it is safe; the disk never holds much more than one output."""
    clip, parts, start = frames(40), [], 0
    for i, count in enumerate([10, 10, 10, 10]):
        path = tmp_path / f"{i}.mkv"
        with VideoWriter(path, FPS, 16, 16) as writer:
            writer.write(clip[start:start + count])
        parts.append((path, count))
        start += count
    sizes = [path.stat().st_size for path, _ in parts]
    seen = []

    def on_part_read(i):
        temp = next(tmp_path.glob(".out.mkv.partial-*"))
        seen.append((i, temp.stat().st_size))
        parts[i][0].unlink()

    join_videos(parts, tmp_path / "out.mkv", FPS, 16, 16, on_part_read=on_part_read)
    assert [i for i, _ in seen] == [0, 1, 2, 3]
    assert all(written <= sum(sizes[:i + 1]) + 4096 for i, written in seen)
    assert np.array_equal(read_all(tmp_path / "out.mkv"), clip)
    assert names(tmp_path) == ["out.mkv"]


def test_an_existing_output_is_refused_without_overwrite_and_the_segments_are_kept(tmp_path):
    output = tmp_path / "out.mkv"
    output.write_bytes(b"keep me")
    partial = partial_run(output)
    run_windows(partial, frames())
    with pytest.raises(OutputError, match="already exists"):
        partial.finish(audio_from=None, overwrite=False)
    partial.release()
    assert output.read_bytes() == b"keep me"
    again = partial_run(output)  # nothing was lost: the rerun only assembles
    assert again.load().windows_done == len(WINDOWS)
    again.finish(audio_from=None, overwrite=True)
    assert np.array_equal(read_all(output), frames())


# ----------------------------------------------------------------------------- resume


@pytest.mark.parametrize("name", ["out.mkv", "out"])
def test_resume_after_a_crash_drops_the_orphan_and_continues(tmp_path, name):
    output, clip = tmp_path / name, frames()
    first = partial_run(output)
    run_windows(first, clip, WINDOWS[:2])
    saved = (first.folder / "state.json").read_bytes()
    # the third window's frames reach the disk, then the run dies before its state is saved
    first.append(clip[4:5], 4)
    first.commit(ResumeState(3, 5, 0, {}))
    (first.folder / "state.json").write_bytes(saved)
    first.release()
    assert not first.lock.exists() and first.folder.is_dir()

    second = partial_run(output)
    state = second.load()
    assert (state.windows_done, state.frames_done, state.metrics) == (2, 4, {"sum": 4.0})
    work = second.frames_dir if name == "out" else second.segments_dir
    assert len(names(work)) == (4 if name == "out" else 2)  # the orphan is gone
    run_windows(second, clip, WINDOWS[2:], first_window=2)
    second.finish(audio_from=None, overwrite=False)
    assert np.array_equal(read_all(output), clip)


def test_a_missing_segment_starts_over(tmp_path):
    output = tmp_path / "out.mkv"
    first = partial_run(output)
    run_windows(first, frames(), WINDOWS[:2])
    first.release()
    sorted(first.segments_dir.iterdir())[0].unlink()
    second = partial_run(output)
    assert second.load() == ResumeState() and names(second.segments_dir) == []
    run_windows(second, frames())
    second.finish(audio_from=None, overwrite=False)
    assert np.array_equal(read_all(output), frames())


def test_a_run_killed_while_joining_starts_over_and_its_temporary_output_goes(tmp_path, monkeypatch):
    output = tmp_path / "out.mp4"
    partial = partial_run(output)
    run_windows(partial, frames())

    def killed(parts, output, *args, on_part_read, **kwargs):
        (output.parent / ".out.mp4.partial-0badf00d.mp4").write_bytes(b"half")
        on_part_read(0)  # the first segment was read and deleted
        raise KeyboardInterrupt

    monkeypatch.setattr(resume_module, "join_videos", killed)
    with pytest.raises(KeyboardInterrupt):
        partial.finish(audio_from=None, overwrite=False)
    partial.release()
    monkeypatch.undo()
    assert len(names(partial.segments_dir)) == len(WINDOWS) - 1
    again = partial_run(output)
    assert again.load() == ResumeState()
    assert names(tmp_path) == ["out.mp4.partial", "out.mp4.partial.lock"]
    again.remove()
    assert names(tmp_path) == []


def test_another_key_or_no_resume_starts_over(tmp_path):
    output = tmp_path / "out.mkv"
    first = partial_run(output)
    run_windows(first, frames(), WINDOWS[:2])
    first.release()
    with partial_run(output, "other") as other:
        assert other.load() == ResumeState()
        run_windows(other, frames(), WINDOWS[:1])
    with partial_run(output, "other") as again:
        assert again.load().windows_done == 1
    with partial_run(output, "other", crf=30) as other_crf:  # FFV1 ignores --crf
        assert other_crf.load().windows_done == 1
    with partial_run(output, "other", resume=False) as fresh:
        assert fresh.load() == ResumeState() and names(fresh.segments_dir) == []


def test_mp4_segments_of_another_crf_are_not_mixed_in(tmp_path):
    with partial_run(tmp_path / "out.mp4") as first:
        run_windows(first, frames(), WINDOWS[:1])
    with partial_run(tmp_path / "out.mp4") as same:
        assert same.load().windows_done == 1
    with partial_run(tmp_path / "out.mp4", crf=30) as other:
        assert other.load() == ResumeState() and names(other.segments_dir) == []


def test_appends_must_follow_each_other(tmp_path):
    with partial_run(tmp_path / "out.mkv") as partial:
        with pytest.raises(ValueError, match="follow"):
            partial.append(frames()[:2], 1)
        partial.append(frames()[:2], 0)
        with pytest.raises(ValueError, match="3 frames are done"):
            partial.commit(ResumeState(1, 3, 0, {}))
    assert names(tmp_path) == ["out.mkv.partial"]  # the unfinished segment was discarded
    assert names(tmp_path / "out.mkv.partial" / "segments") == []


# ----------------------------------------------------------------------------- the claim

HOLDER = textwrap.dedent("""
    import sys, time
    from fractions import Fraction
    from pathlib import Path
    from vidrestore.resume import PartialRun
    partial = PartialRun(Path(sys.argv[1]), "k", fps=Fraction(30000, 1001), width=16, height=16)
    print("ready", flush=True)
    time.sleep(120)
""")


def test_a_second_run_on_the_same_output_fails_at_once_and_a_killed_runs_claim_is_taken_over(tmp_path):
    output = tmp_path / "out.mkv"
    first = partial_run(output)
    run_windows(first, frames(), WINDOWS[:2])
    first.release()
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent.parent), *sys.path]))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(output)], stdout=subprocess.PIPE, env=env)
    try:
        assert holder.stdout.readline() == b"ready\n"
        with pytest.raises(OutputError) as error:
            partial_run(output)
        assert str(error.value) == (f"{output}: is being written by another vidrestore run (pid {holder.pid}); "
                                    f"wait for it or choose another -o")
        with pytest.raises(OutputError, match="another vidrestore run"):
            partial_run(output, "other key", resume=False)
        assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.name != "out.mkv.partial.lock"} == \
            {p: t for p, t in before.items()}  # nothing was changed
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        holder.kill()
        holder.wait()
    taken = partial_run(output)  # the kernel dropped the dead run's lock
    assert taken.load().windows_done == 2
    with pytest.raises(OutputError, match=f"pid {os.getpid()}"):  # also within one process
        partial_run(output)
    taken.release()
    taken.release()  # idempotent
    assert not taken.lock.exists()


def test_stale_temporary_outputs_of_the_same_name_are_removed(tmp_path):
    stale = [".out.mp4.partial-0123abcd.mp4", ".out.mp4.partial-deadbeef", ".out.mp4.partial-00ff00ff.mkv"]
    kept = [".out.mp4.partial-0123ABCD.mp4", ".out.mp4.partial-0123abc.mp4", ".other.mp4.partial-0123abcd.mp4",
            ".out.mp4.partial-0123abcd.mp4.keep", "out.mp4.partial-0123abcd.mp4"]
    for name in stale + kept:
        (tmp_path / name).mkdir() if name.endswith("deadbeef") else (tmp_path / name).write_bytes(b"x")
    with partial_run(tmp_path / "out.mp4"):
        assert names(tmp_path) == sorted(kept + ["out.mp4.partial", "out.mp4.partial.lock"])


# ----------------------------------------------------------------------------- never write over the input


def test_an_output_that_is_the_input_is_refused(tmp_path):
    video = tmp_path / "in.mp4"
    video.write_bytes(b"video")
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    (frames_dir / "000000.png").write_bytes(b"png")
    link = tmp_path / "link.mp4"
    link.symlink_to(video)
    for output, source in ((video, video), (tmp_path / "." / "in.mp4", video), (frames_dir, frames_dir),
                           (tmp_path / "frames" / "..", tmp_path / "x" / ".." / "in.mp4"), (link, video)):
        with pytest.raises(OutputError, match="choose another -o \\(nothing was written\\)$"):
            check_output_not_input(output, [tmp_path / "other.mp4", source])
    with pytest.raises(OutputError, match=f"^{re.escape(str(video))}: is the input {re.escape(str(video))}; "):
        check_output_not_input(video, [video])
    with pytest.raises(OutputError, match="holds the input"):  # a folder output over a single image input
        check_output_not_input(frames_dir, [frames_dir / "000000.png"])
    for output in (tmp_path / "out.mp4", tmp_path / "in.mkv", frames_dir / "out.mp4", tmp_path / "frames2"):
        check_output_not_input(output, [video, frames_dir])


def test_a_batch_that_would_write_over_its_inputs_is_refused_before_anything_runs(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (clips / name).write_bytes(b"video")
    other = tmp_path / "c.mkv"
    other.write_bytes(b"video")
    cfg = resolve_config("superres", flags={"io.overwrite": True})
    calls = []

    def restore(one, progress_factory=None, executors=None):
        calls.append(one)
        return {}

    inputs = sorted(clips.iterdir())
    with pytest.raises(OutputError, match=f"^{re.escape(str(clips / 'a.mp4'))}: is the input"):
        restore_batch(cfg, inputs, clips, restore)  # `vidrestore superres clips/ -o clips/ --overwrite`
    shots = tmp_path / "shots"  # a folder of frames -> clips/shots/, which holds another input
    shots.mkdir()
    (shots / "0.png").write_bytes(b"png")
    (clips / "shots").mkdir()
    (clips / "shots" / "still.png").write_bytes(b"png")
    with pytest.raises(OutputError, match=f"^{re.escape(str(clips / 'shots'))}: holds the input"):
        restore_batch(cfg, [shots, clips / "shots" / "still.png"], clips, restore)
    assert calls == []
    assert [i.status for i in restore_batch(cfg, inputs, tmp_path / "out", restore)] == ["done", "done"]
    assert [i.status for i in restore_batch(cfg, [other], clips, restore)] == ["done"]  # next to the inputs


def test_a_failed_save_keeps_the_previous_state_and_its_arrays(tmp_path, monkeypatch):
    import torch

    clip = frames()
    out = tmp_path / "out.mkv"
    partial = partial_run(out)
    partial.load()
    partial.append(clip[:2], 0)
    pending = torch.full((1, 3, 16, 16), 0.25)
    partial.commit(ResumeState(1, 2, 0, {}, pending=pending))
    assert sorted(p.name for p in partial.folder.glob("*.npy")) == ["pending-000001.npy"]
    real_save, calls = np.save, []

    def failing_save(path, *args, **kwargs):  # the disk fills while the next window's state is saved
        calls.append(path)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", failing_save)
    partial.append(clip[2:4], 2)
    with pytest.raises(OutputError, match="no space left|saving progress"):
        partial.commit(ResumeState(2, 4, 0, {}, pending=pending + 0.5))
    monkeypatch.setattr(np, "save", real_save)
    partial.release()
    # the window that failed left nothing: its segment and arrays are gone, the state is window 1's
    again = partial_run(out)
    state = again.load()
    assert state.windows_done == 1 and state.frames_done == 2 and torch.equal(state.pending, pending)
    assert sorted(p.name for p in again.folder.glob("*.npy")) == ["pending-000001.npy"]
    assert len(list(again.segments_dir.iterdir())) == 1
    again.remove()
