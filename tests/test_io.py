"""Streaming video I/O: probe, read_frames, VideoWriter, frame conversions.

Every clip is made here, in tmp_path, with VideoWriter or the bundled ffmpeg.
Sizes are tiny so the whole file runs in seconds on a busy machine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from vidrestore.errors import InputError, OutputError
from vidrestore.io import (
    VideoWriter,
    parse_fps,
    probe,
    quantize,
    read_frames,
    to_tensor,
    to_uint8,
)
from vidrestore.io import writer as writer_module
from vidrestore.io._ffmpeg import ffmpeg_exe

# ------------------------------------------------------------------ helpers


def noise(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def smooth(n: int, h: int, w: int) -> np.ndarray:
    """A slowly moving colour gradient: what lossy codecs handle well."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    t = np.arange(n, dtype=np.float64)[:, None, None] / 60.0
    r = 128 + 90 * np.sin(2 * np.pi * (x / (2 * w) + t))
    g = 128 + 90 * np.cos(2 * np.pi * (y / (2 * h) + t))
    b = 128 + 80 * np.sin(2 * np.pi * ((x + y) / (2 * (w + h)) - t))
    return np.clip(np.round(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def write_clip(path: Path, frames: np.ndarray, fps=Fraction(25), batch: int = 8, **kwargs) -> Path:
    _, h, w, _ = frames.shape
    with VideoWriter(path, fps, w, h, **kwargs) as writer:
        for start in range(0, len(frames), batch):
            writer.write(frames[start : start + batch])
    return path


def read_all(path: Path, batch_size: int = 7, **kwargs) -> np.ndarray:
    batches = list(read_frames(path, batch_size, **kwargs))
    assert all(1 <= len(b) <= batch_size for b in batches)
    assert all(b.dtype == np.uint8 and b.ndim == 4 and b.shape[-1] == 3 for b in batches)
    return np.concatenate(batches)


def ffmpeg(*args: str) -> None:
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


def has_lavfi(name: str) -> bool:
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-filters"], capture_output=True, text=True
    ).stdout
    return any(line.split()[1:2] == [name] for line in out.splitlines() if line.strip())


def sine_source(tmp: Path, seconds: float = 1.0) -> list[str]:
    """ffmpeg input arguments for a mono 440 Hz tone (lavfi, else a WAV we write)."""
    if has_lavfi("sine"):
        return ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}"]
    rate = 16000
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    path = tmp / "sine.wav"
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())
    return ["-i", str(path)]


def video_with_audio(tmp: Path, name: str, audio_codec: str, n: int = 25) -> Path:
    """A short FFV1 clip (made with VideoWriter) muxed with a sine track in ``audio_codec``."""
    silent = write_clip(tmp / f"silent-{name}.mkv", noise(n, 16, 24))
    out = tmp / name
    ffmpeg("-i", str(silent), *sine_source(tmp), "-map", "0:v", "-map", "1:a",
           "-c:v", "copy", "-c:a", audio_codec, str(out))
    return out


def child_processes() -> list[str]:
    """Command lines of this process's children (zombies included), from /proc.

    Python's multiprocessing resource tracker is left out: an earlier test that
    spawned worker processes starts it once, and it lives as long as pytest.
    """
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == me:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if "multiprocessing.resource_tracker" not in cmdline:
                    found.append(cmdline)
        except (OSError, ValueError, IndexError):
            continue
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


# ------------------------------------------------------------ conversions


def test_to_tensor_and_back_is_exact():
    frames = noise(3, 5, 7)
    tensor = to_tensor(frames)
    assert tensor.dtype == torch.float32 and tuple(tensor.shape) == (3, 3, 5, 7)
    assert tensor.is_contiguous()
    assert float(tensor.min()) >= 0.0 and float(tensor.max()) <= 1.0
    assert torch.allclose(tensor[1, 2], torch.from_numpy(frames[1, :, :, 2]).float() / 255)
    back = to_uint8(tensor)
    assert back.dtype == np.uint8 and back.shape == frames.shape
    assert np.array_equal(back, frames)


def test_to_uint8_rounds_and_clips():
    t = torch.tensor([-0.5, 0.0, 0.5 / 255, 1.49 / 255, 0.5, 1.0, 2.0, float("nan")])
    t = t.view(1, 1, 1, 8).expand(1, 3, 1, 8)
    out = to_uint8(t)
    assert out.shape == (1, 1, 8, 3)
    assert out[0, 0, :, 0].tolist() == [0, 0, 0, 1, 128, 255, 255, 0]


def test_quantize_is_what_a_file_round_trip_gives():
    x = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0)) * 1.2 - 0.1
    assert torch.equal(quantize(x), to_tensor(to_uint8(x)))


def test_conversions_reject_wrong_shapes():
    with pytest.raises(ValueError):
        to_tensor(np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(ValueError):
        to_tensor(np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        to_uint8(torch.zeros(1, 4, 4, 3))


@pytest.mark.parametrize(
    "text, expected",
    [
        ("29.97", Fraction(30000, 1001)),
        ("23.98", Fraction(24000, 1001)),
        ("23.976", Fraction(24000, 1001)),
        ("59.94", Fraction(60000, 1001)),
        (29.97, Fraction(30000, 1001)),
        ("30000/1001", Fraction(30000, 1001)),
        ("25", Fraction(25)),
        (30, Fraction(30)),
        ("12.50", Fraction(25, 2)),
        ("33.33", Fraction(100, 3)),
        ("119.88", Fraction(120000, 1001)),
        ("29.93", Fraction(2993, 100)),
        ("30k", Fraction(30000)),
        (Fraction(7, 3), Fraction(7, 3)),
    ],
)
def test_parse_fps(text, expected):
    assert parse_fps(text) == expected


@pytest.mark.parametrize("bad", ["0", "-5", "abc", "1/0", 0])
def test_parse_fps_rejects(bad):
    with pytest.raises(ValueError):
        parse_fps(bad)


# ------------------------------------------------------------- round trips


@pytest.mark.parametrize("n", [1, 2, 17, 61])
@pytest.mark.parametrize("suffix", [".mkv", ""])
def test_lossless_round_trip_is_bit_exact(tmp_path, n, suffix):
    frames = noise(n, 12, 20, seed=n)
    out = write_clip(tmp_path / f"clip{suffix}", frames)
    info = probe(out)
    assert (info.width, info.height, info.frame_count) == (20, 12, n)
    assert info.is_folder == (suffix == "")
    assert np.array_equal(read_all(out), frames)
    assert leftovers(tmp_path) == []


def test_png_folder_layout(tmp_path):
    out = write_clip(tmp_path / "frames", noise(3, 4, 6))
    assert sorted(p.name for p in out.iterdir()) == ["000000.png", "000001.png", "000002.png"]


@pytest.mark.parametrize("n", [1, 2, 17, 61])
def test_mp4_round_trip_is_close(tmp_path, n):
    frames = smooth(n, 48, 64)
    out = write_clip(tmp_path / "clip.mp4", frames, fps=Fraction(30000, 1001))
    info = probe(out)
    assert (info.width, info.height, info.frame_count) == (64, 48, n)
    assert info.fps == Fraction(30000, 1001)
    decoded = read_all(out)
    assert decoded.shape == frames.shape
    assert psnr(decoded, frames) > 35


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ""])
def test_odd_size_is_kept_exactly(tmp_path, suffix):
    frames = smooth(5, 17, 33) if suffix == ".mp4" else noise(5, 17, 33)
    out = write_clip(tmp_path / f"odd{suffix}", frames)
    info = probe(out)
    assert (info.width, info.height, info.frame_count) == (33, 17, 5)
    decoded = read_all(out)
    assert decoded.shape == (5, 17, 33, 3)
    if suffix == ".mp4":
        assert psnr(decoded, frames) > 30
    else:
        assert np.array_equal(decoded, frames)


@pytest.mark.parametrize("fps", [Fraction(30000, 1001), Fraction(25), Fraction(24000, 1001)])
@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_exact_frame_rate_is_kept(tmp_path, fps, suffix):
    out = write_clip(tmp_path / f"rate{suffix}", smooth(3, 16, 16), fps=fps)
    assert probe(out).fps == fps


def test_folder_reports_folder_fps(tmp_path):
    out = write_clip(tmp_path / "frames", noise(2, 4, 4))
    assert probe(out).fps == Fraction(25)
    assert probe(out, folder_fps="30000/1001").fps == Fraction(30000, 1001)


def test_probe_counts_frames_of_plain_h264_and_ffv1(tmp_path):
    """Files from ffmpeg itself (B-frames in H.264, 1 ms time base in mkv)."""
    for name, codec in (("x264.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"]),
                        ("ffv1.mkv", ["-c:v", "ffv1"])):
        src = tmp_path / name
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=48x32:rate=30000/1001",
               "-frames:v", "23", *codec, str(src))
        info = probe(src)
        assert (info.frame_count, info.fps, info.has_audio) == (23, Fraction(30000, 1001), False)
        assert len(read_all(src)) == 23


def test_rotated_video_reports_displayed_size(tmp_path):
    src = write_clip(tmp_path / "src.mp4", smooth(3, 16, 32))
    rotated = tmp_path / "rotated.mp4"
    try:
        ffmpeg("-display_rotation", "90", "-i", str(src), "-c", "copy", str(rotated))
    except subprocess.CalledProcessError:
        pytest.skip("this ffmpeg has no -display_rotation")
    info = probe(rotated)
    assert (info.width, info.height) == (16, 32)
    assert read_all(rotated).shape == (3, 32, 16, 3)


# -------------------------------------------------------------------- audio


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_audio_is_copied(tmp_path, suffix):
    src = video_with_audio(tmp_path, "src.mkv", "aac")
    info = probe(src)
    assert info.has_audio
    out = tmp_path / f"out{suffix}"
    with VideoWriter(out, info.fps, info.width, info.height, audio_from=src) as writer:
        for batch in read_frames(src, 10, info=info):
            writer.write(batch)
    assert writer.audio_codec == "copy"
    result = probe(out)
    assert result.has_audio and result.frame_count == info.frame_count


def test_audio_falls_back_to_aac_when_mp4_refuses_the_codec(tmp_path):
    src = video_with_audio(tmp_path, "alaw.mkv", "pcm_alaw")  # mp4 cannot hold A-law
    info = probe(src)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, info.fps, info.width, info.height, audio_from=src) as writer:
        writer.write(next(read_frames(src, 5, info=info)))
    assert writer.audio_codec == "aac"
    assert probe(out).has_audio


def test_no_audio_when_source_has_none_or_target_is_folder(tmp_path):
    silent = write_clip(tmp_path / "silent.mkv", noise(2, 8, 8))
    out = write_clip(tmp_path / "out.mp4", smooth(2, 8, 8), audio_from=silent)
    assert not probe(out).has_audio
    src = video_with_audio(tmp_path, "src.mkv", "aac", n=2)
    folder = write_clip(tmp_path / "frames", noise(2, 8, 8), audio_from=src)
    assert probe(folder).frame_count == 2


# ----------------------------------------------------- output safety rules


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_existing_output_is_kept_without_overwrite(tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    out.write_bytes(b"precious")
    with pytest.raises(OutputError, match="exists"):
        write_clip(out, smooth(2, 8, 8))
    assert out.read_bytes() == b"precious"
    assert leftovers(tmp_path) == []


def test_existing_output_is_replaced_with_overwrite(tmp_path):
    out = tmp_path / "out.mkv"
    out.write_bytes(b"old")
    frames = noise(3, 8, 8)
    write_clip(out, frames, overwrite=True)
    assert np.array_equal(read_all(out), frames)
    assert leftovers(tmp_path) == []


def test_existing_folder_rules(tmp_path):
    out = tmp_path / "frames"
    out.mkdir()  # an empty folder is fine
    write_clip(out, noise(2, 4, 4))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(OutputError, match="not empty"):
        write_clip(out, noise(1, 4, 4, seed=1))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (out / "metrics.json").write_text("{}")
    write_clip(out, noise(1, 4, 4, seed=1), overwrite=True)  # frames + json: replaced
    assert sorted(p.name for p in out.iterdir()) == ["000000.png"]
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="notes.txt"):
        write_clip(out, noise(1, 4, 4), overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert leftovers(tmp_path) == []


@needs_proc
@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ""])
def test_exception_inside_writer_leaves_nothing(tmp_path, suffix):
    out = tmp_path / "sub" / f"out{suffix}"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, 25, 8, 8) as writer:
            writer.write(noise(3, 8, 8))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # the created parent "sub" is gone too
    assert child_processes() == []


@needs_proc
def test_keyboard_interrupt_inside_writer_leaves_nothing(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(out, 25, 8, 8) as writer:
            writer.write(smooth(2, 8, 8))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    assert child_processes() == []


def test_writer_rejects_bad_use(tmp_path):
    with pytest.raises(OutputError, match="unsupported output type"):
        VideoWriter(tmp_path / "out.avi", 25, 8, 8)
    with VideoWriter(tmp_path / "out.mkv", 25, 8, 8) as writer:
        with pytest.raises(ValueError):
            writer.write(np.zeros((1, 8, 9, 3), np.uint8))
        with pytest.raises(ValueError):
            writer.write(np.zeros((1, 8, 8, 3), np.float32))
        writer.write(np.zeros((8, 8, 3), np.uint8))  # a single frame is fine
    assert writer.frames_written == 1
    with pytest.raises(ValueError, match="closed"):
        writer.write(np.zeros((1, 8, 8, 3), np.uint8))
    with pytest.raises(OutputError, match="no frames"):
        with VideoWriter(tmp_path / "empty.mkv", 25, 8, 8):
            pass
    assert not (tmp_path / "empty.mkv").exists() and leftovers(tmp_path) == []


def test_unwritable_destination_raises_output_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="file.txt"):
        VideoWriter(blocker / "out.mp4", 25, 8, 8)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_folder_raises_output_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="cannot write"):
            VideoWriter(locked / "out.mkv", 25, 8, 8)
    finally:
        locked.chmod(0o755)


def test_permission_denied_raises_output_error(tmp_path, monkeypatch):
    """The same path as a read-only folder, simulated so that it also runs as root."""

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(writer_module.os, "open", denied)
    with pytest.raises(OutputError, match="cannot write here"):
        VideoWriter(tmp_path / "out.mkv", 25, 8, 8)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_frames_raises_output_error(tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "frames"
    with pytest.raises(OutputError, match="no space left"):
        with VideoWriter(out, 25, 4, 4) as writer:
            monkeypatch.setattr(writer_module, "open", full_disk, raising=False)
            writer.write(noise(2, 4, 4))
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def io_tiny_disk(tmp_path):
    """A 96 KiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


@needs_proc
@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_disk_full_in_ffmpeg_raises_output_error(io_tiny_disk, suffix):
    out = io_tiny_disk / f"out{suffix}"
    with pytest.raises(OutputError, match="no space left"):
        write_clip(out, noise(40, 64, 64), batch=4)
    assert list(io_tiny_disk.iterdir()) == []
    assert child_processes() == []


# ---------------------------------------------------------------- reading


@needs_proc
@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_stopping_read_early_leaves_no_process(tmp_path, suffix):
    src = write_clip(tmp_path / f"src{suffix}", smooth(30, 32, 32))
    assert child_processes() == []

    frames = read_frames(src, 2)
    for _ in frames:
        assert len(child_processes()) == 1  # ffmpeg is running now
        break
    frames.close()
    assert child_processes() == []

    frames = read_frames(src, 2)
    next(frames)
    del frames  # garbage collection closes the generator
    assert child_processes() == []

    for error in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(error):
            with contextlib.closing(read_frames(src, 2)) as frames:
                for _ in frames:
                    raise error()
        assert child_processes() == []


def test_read_is_lazy_and_probes_eagerly(tmp_path):
    with pytest.raises(InputError):
        read_frames(tmp_path / "missing.mp4", 4)  # raised at the call, not at next()
    src = write_clip(tmp_path / "src.mkv", noise(2, 4, 4))
    read_frames(src, 4)  # never iterated: nothing to clean up
    with pytest.raises(ValueError):
        read_frames(src, 0)


def test_frame_count_mismatch_is_an_error(tmp_path):
    src = write_clip(tmp_path / "src.mkv", noise(5, 4, 4))
    wrong = dataclasses.replace(probe(src), frame_count=6)
    with pytest.raises(InputError, match="decoded 5 frames"):
        list(read_frames(src, 4, info=wrong))
    wrong = dataclasses.replace(probe(src), frame_count=4)
    with pytest.raises(InputError, match="more frames"):
        list(read_frames(src, 4, info=wrong))


def test_folder_is_read_in_natural_name_order_and_normalised(tmp_path):
    import cv2

    folder = tmp_path / "in"
    folder.mkdir()
    frames = noise(3, 6, 5)
    # f2 < f10 by number; plain RGB, 16-bit and RGBA variants all read as 8-bit RGB
    cv2.imwrite(str(folder / "f1.png"), frames[0][:, :, ::-1])
    cv2.imwrite(str(folder / "f2.png"), frames[1][:, :, ::-1].astype(np.uint16) * 257)
    rgba = np.concatenate([frames[2][:, :, ::-1], np.full((6, 5, 1), 7, np.uint8)], axis=2)
    cv2.imwrite(str(folder / "f10.png"), rgba)
    (folder / "notes.txt").write_text("ignored")
    info = probe(folder)
    assert (info.frame_count, info.width, info.height, info.has_audio) == (3, 5, 6, False)
    assert np.array_equal(read_all(folder), frames)


# ------------------------------------------------------------- bad inputs


def test_missing_input(tmp_path):
    with pytest.raises(InputError, match="nope.mp4: no such file"):
        probe(tmp_path / "nope.mp4")


def test_text_file_renamed_mp4(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video\n" * 20)
    with pytest.raises(InputError, match="fake.mp4: not a video"):
        probe(fake)


def test_zero_byte_file(tmp_path):
    empty = tmp_path / "empty.mkv"
    empty.touch()
    with pytest.raises(InputError, match="empty.mkv: file is empty"):
        probe(empty)


def test_video_with_zero_frames(tmp_path):
    zero = tmp_path / "zero.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=16x16:rate=25", "-frames:v", "0", "-c:v", "ffv1", str(zero))
    with pytest.raises(InputError, match="zero.mkv: .*no video frames"):
        probe(zero)


def test_audio_only_file(tmp_path):
    wav = tmp_path / "tone.wav"
    ffmpeg(*sine_source(tmp_path, 0.2), str(wav))
    with pytest.raises(InputError, match="tone.wav: has no video stream"):
        probe(wav)


def test_folder_without_images(tmp_path):
    (tmp_path / "readme.txt").write_text("no frames here")
    with pytest.raises(InputError, match="no image frames"):
        probe(tmp_path)


def test_folder_with_mixed_sizes_names_first_odd_file(tmp_path):
    import cv2

    for name, (h, w) in {"a.png": (4, 6), "b.png": (4, 6), "c.png": (5, 6), "d.png": (4, 7)}.items():
        cv2.imwrite(str(tmp_path / name), np.zeros((h, w, 3), np.uint8))
    with pytest.raises(InputError, match=r"c\.png: frame size 6x5 differs from 6x4"):
        probe(tmp_path)


def test_folder_with_broken_image(tmp_path):
    (tmp_path / "000000.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="000000.png: not a readable image"):
        probe(tmp_path)
