"""Join video files that ``VideoWriter`` wrote in pieces into one output, by stream copy.

ffmpeg's concat demuxer reads the pieces in order; the packets are copied, not
re-encoded, so FFV1 (.mkv) pieces give bit-identical frames. Each piece's
length is given to the demuxer from its frame count (the container's own
duration is rounded, e.g. to milliseconds in Matroska, and the error would add
up over thousands of pieces), and the ``setts`` bitstream filter puts every
packet back on the exact frame grid. The output is written like
``VideoWriter``'s: under a hidden temporary name, verified, then renamed.

On POSIX the pieces reach ffmpeg through named pipes that we fill one after
the other, so we know when ffmpeg has read a piece through; ffmpeg can read
ahead by no more than a pipe's buffer, which lets the caller delete each piece
at once and keep the disk at about one output (ffmpeg copies far faster than
any progress report could tell).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

from ..errors import InputError, OutputError
from . import _ffmpeg
from .probe import probe
from .writer import (
    audio_args,
    audio_codec,
    check_output_free,
    commit_output,
    make_temp_output,
    output_kind,
    output_os_error,
)

__all__ = ["join_videos"]

_FORMATS = {"mp4": "mp4", "mkv": "matroska"}
# packets decode this many frames before they are shown: VideoWriter's libx264 uses B-frame
# pyramids (2); FFV1 is intra-only (0)
_DECODE_DELAY = {"mp4": 2, "mkv": 0}
_FRAME_RE = re.compile(r"^frame=\s*(\d+)\s*$", re.MULTILINE)
_CHUNK = 1 << 20


def _concat_line(path: Path) -> str:
    text = str(Path(path).absolute())
    if "\n" in text or "\r" in text:
        raise OutputError(f"{path}: a line break in the file name cannot be passed to ffmpeg")
    return "file '" + ("file:" + text).replace("'", "'\\''") + "'\n"


def _micros(frames: int, fps: Fraction) -> int:
    return round(Fraction(frames) * 1_000_000 / fps)


def _open_pipe(pipe: Path, proc: subprocess.Popen) -> int | None:
    """A blocking write end of ``pipe`` once ffmpeg opens it for reading; None if ffmpeg ended."""
    wait = 0.0002
    while True:
        try:
            fd = os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)  # not blocking: ffmpeg may have failed
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        else:
            os.set_blocking(fd, True)
            return fd
        if proc.poll() is not None:
            return None
        time.sleep(wait)
        wait = min(2 * wait, 0.01)


def _feed(parts: Sequence[tuple[Path, int]], pipes: list[Path], proc: subprocess.Popen,
          on_part_read: Callable[[int], None] | None) -> None:
    """Copy each part into its pipe, in order; ``on_part_read(i)`` once part i is all in."""
    for index, ((path, _), pipe) in enumerate(zip(parts, pipes)):
        fd = _open_pipe(pipe, proc)
        if fd is None:
            return  # ffmpeg stopped: its exit status and stderr tell why
        try:
            with open(fd, "wb", buffering=0, closefd=True) as sink, open(path, "rb") as source:
                shutil.copyfileobj(source, sink, _CHUNK)
        except BrokenPipeError:
            pass  # ffmpeg closed it: done with this part, or stopped (then the next open says so)
        if on_part_read is not None:
            on_part_read(index)


def join_videos(parts: Sequence[tuple[Path, int]], output: Path, fps: Fraction, width: int, height: int, *,
                audio_from: Path | None = None, overwrite: bool = False,
                on_part_read: Callable[[int], None] | None = None) -> None:
    """Concatenate ``parts`` (``(file, frame count)``, in order; one codec and size, as
    ``VideoWriter`` writes them for ``output``'s suffix) into ``output`` (.mp4 or .mkv).

    Audio tracks of ``audio_from`` are added once (copied, or AAC when the container
    refuses the codec). ``on_part_read(i)`` is called as soon as ffmpeg has read part
    ``i`` through (POSIX; elsewhere never): the part may then be deleted.
    ``OutputError`` for an existing output without ``overwrite`` or a failed join;
    nothing is left under the final name then.
    """
    output = Path(output)
    kind = output_kind(output)
    if kind not in _FORMATS:
        raise ValueError(f"join_videos writes .mp4 or .mkv, not {output}")
    if not parts:
        raise OutputError(f"{output}: no frames were written")
    check_output_free(output, kind, overwrite)
    codec = audio_codec(audio_from, kind)
    total = sum(count for _, count in parts)
    try:
        temp = make_temp_output(output, kind)
    except OSError as exc:
        raise output_os_error(output, exc, f"creating a file in {output.absolute().parent}") from None
    proc = None
    try:
        with tempfile.TemporaryDirectory(prefix="vidrestore-join-") as scratch, \
                tempfile.TemporaryFile() as stderr, tempfile.TemporaryFile() as progress:
            pipes = [Path(path) for path, _ in parts]
            if hasattr(os, "mkfifo"):
                pipes = [Path(scratch) / f"{i:08d}" for i in range(len(parts))]
                for pipe in pipes:
                    os.mkfifo(pipe, 0o600)
            listing = Path(scratch) / "parts.txt"
            lines, start = ["ffconcat version 1.0\n"], 0
            for pipe, (_, count) in zip(pipes, parts):
                # durations from the frame grid, so that the rounding never adds up
                lines += [_concat_line(pipe), f"duration {_micros(start + count, fps) - _micros(start, fps)}us\n"]
                start += count
            listing.write_text("".join(lines))
            grid = 1 / Fraction(fps)
            args = ["-v", "error", "-f", "concat", "-safe", "0", "-i", _ffmpeg.file_url(listing)]
            if codec is not None:
                args += ["-i", _ffmpeg.file_url(audio_from), "-map", "0:v:0", "-map", "1:a"]
            else:
                args += ["-map", "0:v:0"]
            args += [
                "-c:v", "copy",
                # timestamps on the exact frame grid; decode order as the encoder made it
                "-bsf:v", (f"setts=time_base={grid.numerator}/{grid.denominator}:prescale=1:pts=PTS:"
                           f"dts=N-{_DECODE_DELAY[kind]}:duration=1"),
                *audio_args(codec),
            ]
            if kind == "mp4":
                args += ["-movflags", "+faststart"]
            args += ["-progress", "pipe:1", "-nostats", "-f", _FORMATS[kind], "-y", _ffmpeg.file_url(temp)]
            proc = _ffmpeg.start(args, stdout=progress, stderr=stderr)
            if hasattr(os, "mkfifo"):
                _feed(parts, pipes, proc, on_part_read)
            if proc.wait() != 0:
                message = _ffmpeg.read_text(stderr)
                if "no space left" in message.lower():
                    raise OutputError(f"{output}: no space left on device while joining the pieces")
                raise OutputError(f"{output}: ffmpeg failed while joining the pieces ({_ffmpeg.last_error(message)})")
            counts = _FRAME_RE.findall(_ffmpeg.read_text(progress))
        joined = int(counts[-1]) if counts else -1
        if joined != total:
            raise OutputError(f"{output}: joined {joined} frames, expected {total}")
        try:
            info = probe(temp)
        except InputError as exc:
            raise OutputError(f"{output}: the joined file does not read back ({exc})") from None
        if info.frame_count != total or (info.width, info.height) != (width, height):
            raise OutputError(f"{output}: joined file holds {info.frame_count} frames of {info.width}x{info.height}, "
                              f"expected {total} of {width}x{height}")
        try:
            commit_output(temp, output, kind, overwrite)
        except OSError as exc:
            raise output_os_error(output, exc, "moving the finished output into place") from None
    except OSError as exc:
        _ffmpeg.stop(proc)
        Path(temp).unlink(missing_ok=True)
        raise output_os_error(output, exc, "joining the pieces") from None
    except BaseException:  # also KeyboardInterrupt: never leave ffmpeg or the temporary file
        _ffmpeg.stop(proc)
        Path(temp).unlink(missing_ok=True)
        raise
