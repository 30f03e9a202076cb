"""Streaming encode to .mp4 (H.264), .mkv (lossless FFV1) or a folder of PNGs.

Output is atomic: everything is written under a hidden temporary name next to
the target (``.NAME.partial-XXXXXXXX[.mp4|.mkv]``, a file or a folder) and
renamed to the final name only after the frame count has been verified. On any
failure (including KeyboardInterrupt) ffmpeg is stopped and reaped and the
temporary output removed, so the final name either holds a complete result or
is untouched. The steps (the temporary name, the rules for an existing output,
the final rename, audio passthrough) are functions of their own, so that
``join_videos`` and ``resume.PartialRun`` write outputs the same way.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError, OutputError
from . import _ffmpeg
from .probe import IMAGE_SUFFIXES, has_audio, parse_fps, probe

__all__ = [
    "VideoWriter",
    "audio_args",
    "audio_codec",
    "check_output_free",
    "commit_output",
    "make_temp_output",
    "output_kind",
    "output_os_error",
    "remove_stale_temps",
    "write_png",
]

_FORMATS = {"mp4": "mp4", "mkv": "matroska"}
_PNG_LEVEL = 3  # zlib level: fast, still compact
_FRAME_RE = re.compile(r"^frame=\s*(\d+)\s*$", re.MULTILINE)


def output_kind(path: Path | str) -> str:
    """``"mp4"``, ``"mkv"`` or ``"folder"`` (an existing directory or a path without
    suffix); ``OutputError`` for any other suffix."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix == "":
        return "folder"
    if suffix in (".mp4", ".mkv"):
        return suffix[1:]
    raise OutputError(
        f"{path}: unsupported output type '{path.suffix}' (use .mp4, .mkv or a folder for PNG frames)"
    )


def _temp_pattern(path: Path) -> re.Pattern:
    """The hidden temporary names ``make_temp_output`` gives for ``path``."""
    return re.compile(rf"^\.{re.escape(path.name)}\.partial-[0-9a-f]{{8}}(\.mp4|\.mkv)?$")


def _audio_copy_works(audio: Path, kind: str) -> bool:
    """Whether ffmpeg can stream-copy ``audio``'s audio tracks into a ``kind`` container
    (e.g. mp4 refuses pcm_alaw): a 0.1 s trial mux into a scratch folder."""
    with tempfile.TemporaryDirectory(prefix="vidrestore-audio-") as scratch:
        target = Path(scratch) / f"trial.{kind}"
        result = _ffmpeg.run(
            [
                "-v", "error",
                "-i", _ffmpeg.file_url(audio),
                "-map", "0:a", "-c:a", "copy", "-t", "0.1",
                "-f", _FORMATS[kind], "-y", _ffmpeg.file_url(target),
            ]
        )
        return result.returncode == 0


def audio_codec(audio_from: Path | str | None, kind: str) -> str | None:
    """How ``audio_from``'s audio goes into a ``kind`` output: ``"copy"``, ``"aac"`` (the
    container refuses the codec) or None (no audio, or a folder output)."""
    if audio_from is None or kind == "folder" or not has_audio(audio_from):
        return None
    return "copy" if _audio_copy_works(Path(audio_from), kind) else "aac"


def audio_args(codec: str | None) -> list[str]:
    """ffmpeg's output options for ``audio_codec``'s answer."""
    return {"copy": ["-c:a", "copy"], "aac": ["-c:a", "aac", "-b:a", "192k"]}.get(codec or "", [])


def output_os_error(path: Path, exc: OSError, action: str) -> OutputError:
    """One line for an ``OSError`` met while writing ``path``."""
    if exc.errno == errno.ENOSPC:
        return OutputError(f"{path}: no space left on device while {action}")
    if exc.errno == errno.EFBIG:
        return OutputError(f"{path}: file size limit reached while {action} (ulimit -f or the file system's limit)")
    if exc.errno is None and "written" in str(exc):  # a short write (numpy, ...): the disk filled up
        return OutputError(f"{path}: no space left on device (or a file size limit reached) while {action} ({exc})")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"{path}: cannot write here while {action} ({exc.strerror})")
    return OutputError(f"{path}: failed while {action} ({exc.strerror or exc})")


def check_output_free(path: Path, kind: str, overwrite: bool) -> None:
    """``OutputError`` unless ``path`` may be written: it does not exist, is an empty folder,
    or ``overwrite`` is set (a folder is only replaced if it holds nothing but images and JSON)."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if kind == "folder" and path.is_dir():
        entries = list(path.iterdir())
        if not entries:
            return  # an empty folder prepared by the user is fine
        if not overwrite:
            raise OutputError(f"{path}: output folder is not empty (use --overwrite to replace it)")
        keep = (*IMAGE_SUFFIXES, ".json")
        odd = next((e for e in entries if not (e.is_file() and e.suffix.lower() in keep)), None)
        if odd is not None:
            raise OutputError(f"{path}: refusing to replace a folder that holds more than frames ({odd.name})")
    elif not overwrite:
        raise OutputError(f"{path}: output already exists (use --overwrite to replace it)")


def make_temp_output(path: Path, kind: str) -> Path:
    """Create the hidden temporary ``.NAME.partial-XXXXXXXX[.mp4|.mkv]`` (a folder for
    ``kind == "folder"``) next to ``path``, whose parent must exist. Raises ``OSError``."""
    path = Path(path).absolute()
    name = f".{path.name}.partial-{secrets.token_hex(4)}"
    if kind == "folder":
        temp = path.parent / name
        temp.mkdir(mode=0o777)
    else:
        temp = path.parent / f"{name}.{kind}"
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return temp


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete the temporary outputs of ``path`` that a killed writer left (only names that
    ``make_temp_output`` gives); the caller must be the only writer of ``path``."""
    path = Path(path).absolute()
    pattern = _temp_pattern(path)
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            try:
                entry.unlink()
            except OSError:
                continue
        removed.append(entry)
    return removed


def commit_output(temp: Path, final: Path, kind: str, overwrite: bool) -> None:
    """Move a finished temporary output into place; ``final`` is replaced only if
    ``overwrite`` (checked again here: another writer may have made it meanwhile).
    Raises ``OutputError``, or ``OSError`` from the rename."""
    if kind == "folder":
        _commit_folder(temp, final, overwrite)
    elif overwrite:
        os.replace(temp, final)
    else:
        try:
            os.link(temp, final)  # fails if final exists: no race with another writer
        except FileExistsError:
            raise OutputError(f"{final}: output already exists (use --overwrite to replace it)") from None
        except OSError:  # no hard links on this file system
            if final.exists():
                raise OutputError(f"{final}: output already exists (use --overwrite to replace it)") from None
            os.replace(temp, final)
        else:
            os.unlink(temp)


def _commit_folder(temp: Path, final: Path, overwrite: bool) -> None:
    if final.is_dir() and not final.is_symlink() and not any(final.iterdir()):
        final.rmdir()
    if not (final.exists() or final.is_symlink()):
        os.rename(temp, final)
        return
    if not overwrite:
        raise OutputError(f"{final}: output already exists (use --overwrite to replace it)")
    check_output_free(final, "folder", overwrite)  # still only frames in there?
    trash = final.parent / f".{final.name}.old-{secrets.token_hex(4)}"
    os.rename(final, trash)
    try:
        os.rename(temp, final)
    except OSError:
        os.rename(trash, final)
        raise
    if trash.is_dir() and not trash.is_symlink():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink()


def write_png(path: Path, frame: np.ndarray) -> None:
    """One ``uint8 (H, W, 3)`` RGB frame as a lossless PNG. Raises ``OSError`` or ``OutputError``."""
    import cv2

    ok, encoded = cv2.imencode(
        ".png", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, _PNG_LEVEL]
    )
    if not ok:
        raise OutputError(f"{path}: PNG encoding failed")
    with open(path, "wb") as handle:
        handle.write(encoded.data)


class VideoWriter:
    """Write ``uint8 (B, H, W, 3)`` RGB batches to a video file or PNG folder.

    ``.mp4``: H.264 (libx264), CRF ``crf``, BT.709 tagged, ``+faststart``; yuv420p,
    or yuv444p when width or height is odd, because 4:2:0 chroma needs even sizes
    and the output must keep the exact input size (no silent rescale or padding;
    4:4:4 H.264 plays in ffmpeg/VLC/mpv but not in every browser).
    ``.mkv``: FFV1 level 3 in bgr0, which holds RGB24 bit-exactly.
    No suffix or an existing directory: lossless PNGs ``000000.png, 000001.png, ...``.

    The frame rate goes to ffmpeg as the exact rational (``-r 30000/1001``).
    With ``audio_from`` (a video file) its audio tracks are copied unchanged into
    video outputs, or re-encoded to AAC if the container refuses the codec.
    An existing output raises ``OutputError`` unless ``overwrite`` (it is then
    replaced at the final rename; a folder is only replaced if it holds nothing
    but images and JSON files). Missing parent folders are created (and removed
    again on failure). Use as a context manager; ``close()`` commits, ``abort()``
    discards.
    """

    def __init__(
        self,
        path: Path | str,
        fps: Fraction | int | str,
        width: int,
        height: int,
        *,
        crf: int = 18,
        audio_from: Path | str | None = None,
        overwrite: bool = False,
    ) -> None:
        self._closed = True  # until set up, so that __del__/abort have nothing to do
        self._proc: subprocess.Popen | None = None
        self._temp: Path | None = None
        self._created_dirs: list[Path] = []
        self._stderr = self._progress = None
        self._frames = 0

        self.path = Path(path)
        self.fps = parse_fps(fps)
        for name, value in (("width", width), ("height", height)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.width, self.height = int(width), int(height)
        if not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
            raise ValueError(f"crf must be an int in 0..51, got {crf!r}")
        self.crf = int(crf)
        self.overwrite = bool(overwrite)
        self.kind = output_kind(self.path)
        self.pix_fmt = {
            "mp4": "yuv420p" if self.width % 2 == 0 and self.height % 2 == 0 else "yuv444p",
            "mkv": "bgr0",
            "folder": "rgb24",
        }[self.kind]
        self._check_existing()

        self.audio_codec = audio_codec(audio_from, self.kind)
        self.audio_from = Path(audio_from) if self.audio_codec is not None else None

        self._make_temp()
        self._closed = False

    # ----------------------------------------------------------------- public

    @property
    def frames_written(self) -> int:
        return self._frames

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    def __del__(self) -> None:  # an abandoned writer never leaves ffmpeg or temp files behind
        if not getattr(self, "_closed", True):
            try:
                self.abort()
            except Exception:  # noqa: BLE001 - e.g. during interpreter shutdown
                pass

    def write(self, batch: np.ndarray) -> None:
        """Append frames: ``uint8 (B, H, W, 3)`` (or one ``(H, W, 3)`` frame), RGB."""
        if self._closed:
            raise ValueError(f"VideoWriter for {self.path} is closed")
        array = np.asarray(batch)
        if array.ndim == 3:
            array = array[None]
        if array.dtype != np.uint8 or array.ndim != 4 or array.shape[1:] != (self.height, self.width, 3):
            raise ValueError(
                f"expected uint8 (B, {self.height}, {self.width}, 3), got {array.dtype} {tuple(array.shape)}"
            )
        if len(array) == 0:
            return
        try:
            if self.kind == "folder":
                self._write_pngs(array)
            else:
                self._write_pipe(array)
        except OutputError:
            self.abort()
            raise

    def close(self) -> None:
        """Finish encoding, verify the frame count and move the output into place."""
        if self._closed:
            return
        try:
            if self._frames == 0:
                raise OutputError(f"{self.path}: no frames were written")
            if self.kind != "folder":
                self._finish_ffmpeg()
            self._commit()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._close_logs()

    def abort(self) -> None:
        """Discard everything: stop ffmpeg, delete the temporary output."""
        if self._closed:
            return
        self._closed = True
        _ffmpeg.stop(self._proc)
        self._close_logs()
        self._remove_temp()
        for directory in reversed(self._created_dirs):
            try:
                directory.rmdir()
            except OSError:
                break

    # --------------------------------------------------------------- helpers

    def _os_error(self, exc: OSError, action: str) -> OutputError:
        return output_os_error(self.path, exc, action)

    def _check_existing(self) -> None:
        check_output_free(self.path, self.kind, self.overwrite)

    def _make_temp(self) -> None:
        parent = self.path.absolute().parent
        missing = []
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        try:
            for directory in reversed(missing):
                directory.mkdir()
                self._created_dirs.append(directory)
            self._temp = make_temp_output(self.path, self.kind)
        except OSError as exc:
            self._closed = False
            self.abort()
            raise self._os_error(exc, f"creating a file in {self.path.absolute().parent}") from None

    def _remove_temp(self) -> None:
        temp, self._temp = self._temp, None
        if temp is None:
            return
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            try:
                temp.unlink()
            except OSError:
                pass

    def _close_logs(self) -> None:
        for handle in (self._stderr, self._progress):
            if handle is not None:
                handle.close()
        self._stderr = self._progress = None

    # folder output

    def _write_pngs(self, array: np.ndarray) -> None:
        assert self._temp is not None
        for frame in array:
            try:
                write_png(self._temp / f"{self._frames:06d}.png", frame)
            except OutputError:
                raise OutputError(f"{self.path}: PNG encoding failed for frame {self._frames}") from None
            except OSError as exc:
                raise self._os_error(exc, f"writing frame {self._frames}") from None
            self._frames += 1

    # ffmpeg output

    def _ffmpeg_args(self) -> list[str]:
        assert self._temp is not None
        rate = f"{self.fps.numerator}/{self.fps.denominator}"
        args = [
            "-v", "error",
            "-f", "rawvideo", "-pix_fmt", "rgb24",
            "-video_size", f"{self.width}x{self.height}",
            # input-side -r, not the rawvideo demuxer's -framerate, which turns 120000/1001 into 120
            "-r", rate,
            "-i", "pipe:0",
        ]
        if self.audio_from is not None:
            args += ["-i", _ffmpeg.file_url(self.audio_from)]
        args += ["-map", "0:v:0"]
        if self.audio_from is not None:
            args += ["-map", "1:a"]
        if self.kind == "mp4":
            args += [
                # explicit BT.709 limited-range conversion, tagged so players agree
                "-vf", (
                    "scale=out_color_matrix=bt709:out_range=tv:flags=bicubic+accurate_rnd+full_chroma_int,"
                    f"format={self.pix_fmt},"
                    "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv"
                ),
                "-c:v", "libx264", "-crf", str(self.crf), "-pix_fmt", self.pix_fmt,
                "-movflags", "+faststart",
            ]
        else:
            args += ["-c:v", "ffv1", "-level", "3", "-g", "1", "-slicecrc", "1", "-pix_fmt", "bgr0"]
        args += audio_args(self.audio_codec)
        args += [
            "-fps_mode", "passthrough",
            "-progress", "pipe:1", "-nostats",
            "-f", _FORMATS[self.kind], "-y", _ffmpeg.file_url(self._temp),
        ]
        return args

    def _write_pipe(self, array: np.ndarray) -> None:
        if self._proc is None:
            self._stderr = tempfile.TemporaryFile()
            self._progress = tempfile.TemporaryFile()
            self._proc = _ffmpeg.start(
                self._ffmpeg_args(), stdin=subprocess.PIPE, stdout=self._progress, stderr=self._stderr
            )
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(memoryview(np.ascontiguousarray(array)).cast("B"))
        except OSError as exc:  # BrokenPipeError: ffmpeg stopped
            raise self._ffmpeg_failure(exc) from None
        self._frames += len(array)

    def _ffmpeg_failure(self, exc: OSError | None) -> OutputError:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        stderr = _ffmpeg.read_text(self._stderr)
        if "no space left" in stderr.lower() or (exc is not None and exc.errno == errno.ENOSPC):
            return OutputError(f"{self.path}: no space left on device while encoding")
        xfsz = getattr(signal, "SIGXFSZ", None)  # POSIX: ffmpeg killed for writing past `ulimit -f`
        killed = self._proc is not None and xfsz is not None and self._proc.returncode == -xfsz
        if killed or "file too large" in stderr.lower():
            return OutputError(f"{self.path}: file size limit reached while encoding "
                               f"(ulimit -f or the file system's limit)")
        if exc is not None and not isinstance(exc, BrokenPipeError) and not stderr.strip():
            return self._os_error(exc, "encoding")
        return OutputError(f"{self.path}: ffmpeg failed while encoding ({_ffmpeg.last_error(stderr)})")

    def _finish_ffmpeg(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdin is not None
        try:
            proc.stdin.close()
        except OSError as exc:
            raise self._ffmpeg_failure(exc) from None
        if proc.wait() != 0:
            raise self._ffmpeg_failure(None)
        counts = _FRAME_RE.findall(_ffmpeg.read_text(self._progress))
        encoded = int(counts[-1]) if counts else -1
        if encoded != self._frames:
            raise OutputError(f"{self.path}: wrote {self._frames} frames but ffmpeg encoded {encoded}")
        assert self._temp is not None
        try:
            info = probe(self._temp)
        except InputError as exc:
            raise OutputError(f"{self.path}: the encoded file does not read back ({exc})") from None
        if info.frame_count != self._frames or (info.width, info.height) != (self.width, self.height):
            raise OutputError(
                f"{self.path}: encoded file holds {info.frame_count} frames of {info.width}x{info.height}, "
                f"expected {self._frames} of {self.width}x{self.height}"
            )

    # commit

    def _commit(self) -> None:
        temp = self._temp
        assert temp is not None
        try:
            commit_output(temp, self.path, self.kind, self.overwrite)
        except OSError as exc:
            raise self._os_error(exc, "moving the finished output into place") from None
        self._temp = None
