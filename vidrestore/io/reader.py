"""Streaming decode: a video file or frame folder as uint8 batches."""

from __future__ import annotations

import os
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from . import _ffmpeg
from .probe import VideoInfo, list_frame_files, probe

__all__ = ["read_frames", "read_image"]


def read_frames(
    path: Path | str,
    batch_size: int,
    folder_fps: Fraction | int | str = Fraction(25),
    *,
    info: VideoInfo | None = None,
    strict: bool = False,
    warnings: list[str] | None = None,
) -> Iterator[np.ndarray]:
    """Yield ``uint8 (B, H, W, 3)`` RGB batches of at most ``batch_size`` frames.

    The input is probed (and ``InputError`` raised) right away; decoding starts at
    the first ``next()``. Pass ``info`` from an earlier ``probe`` to skip probing
    again. Only one batch is in memory at a time. The ffmpeg process is stopped
    and reaped when the generator finishes, fails or is closed - wrap it in
    ``contextlib.closing`` to close it deterministically when the consumer may
    raise. Raises ``InputError`` if fewer or more frames decode than probed.

    Errors ffmpeg reports while decoding (a damaged file: the decoder conceals
    what it cannot read) are counted: one line is appended to ``warnings`` when
    decoding ends, or, with ``strict``, ``InputError`` is raised at the first.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if info is None:
        info = probe(path, folder_fps)
    if info.is_folder:
        return _read_folder(info, batch_size)
    return _read_video(info, batch_size, strict, warnings)


def read_image(path: Path) -> np.ndarray:
    """One image file as ``uint8 (H, W, 3)`` RGB (grey expanded, alpha dropped,
    16-bit and float scaled to 8 bits; EXIF orientation ignored, as ffmpeg does)."""
    import cv2

    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"{path}: cannot read image ({exc.strerror or exc})") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise InputError(f"{path}: not a readable image")
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = np.clip(np.nan_to_num(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise InputError(f"{path}: unsupported image sample type {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise InputError(f"{path}: unsupported image with {image.shape[2]} channels")


def _read_folder(info: VideoInfo, batch_size: int) -> Iterator[np.ndarray]:
    files = list_frame_files(info.path)
    if len(files) != info.frame_count:
        raise InputError(
            f"{info.path}: folder changed while reading ({len(files)} frames, expected {info.frame_count})"
        )
    for start in range(0, len(files), batch_size):
        chunk = files[start : start + batch_size]
        batch = np.empty((len(chunk), info.height, info.width, 3), dtype=np.uint8)
        for i, file in enumerate(chunk):
            image = read_image(file)
            if image.shape[:2] != (info.height, info.width):
                raise InputError(
                    f"{file}: frame size {image.shape[1]}x{image.shape[0]} differs from "
                    f"{info.width}x{info.height}"
                )
            batch[i] = image
        yield batch


def _fill(stream, view: memoryview) -> int:
    """Read into ``view`` until it is full or the stream ends; return bytes read."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _decode_errors(stderr) -> list[str]:
    """ffmpeg's error lines so far (it runs with ``-v error``: every line is one)."""
    return [_ffmpeg.clean(line) for line in _ffmpeg.read_text(stderr).splitlines() if line.strip()]


def decode_warning(path: Path, errors: list[str]) -> str:
    n = len(errors)
    return (f"{path}: ffmpeg reported {n} decoding error{'s' if n != 1 else ''} (first: {errors[0]}); "
            f"damaged frames are restored as decoded")


def _finish_decoding(proc: subprocess.Popen, stderr, info: VideoInfo, decoded: int, strict: bool,
                     warnings: list[str] | None) -> None:
    """After the last frame: ffmpeg's exit status, the frame count, the errors it reported."""
    path = info.path
    returncode = proc.wait()
    if returncode != 0:
        message = _ffmpeg.last_error(_ffmpeg.read_text(stderr))
        raise InputError(f"{path}: decoding failed after {decoded} frames ({message})")
    errors = _decode_errors(stderr)
    if decoded != info.frame_count:
        why = f" (ffmpeg: {errors[0]})" if errors else ""
        raise InputError(
            f"{path}: decoded {decoded} frames but the container holds {info.frame_count}{why}: "
            f"the file is damaged"
        )
    if errors and strict:
        raise InputError(f"{path}: decoding error ({errors[0]}; --strict stops on it)")
    if errors and warnings is not None:
        warnings.append(decode_warning(path, errors))


def _read_video(info: VideoInfo, batch_size: int, strict: bool = False,
                warnings: list[str] | None = None) -> Iterator[np.ndarray]:
    path = info.path
    frame_bytes = info.width * info.height * 3
    proc: subprocess.Popen | None = None
    stderr = tempfile.TemporaryFile()
    try:
        proc = _ffmpeg.start(
            [
                "-v", "error",
                "-i", _ffmpeg.file_url(path),
                "-map", "0:v:0",
                # full-resolution chroma interpolation: much closer to the source
                # than ffmpeg's default fast path for 4:2:0 -> RGB
                "-vf", "scale=flags=bicubic+accurate_rnd+full_chroma_int,format=rgb24",
                "-fps_mode", "passthrough",
                "-f", "rawvideo",
                "-pix_fmt", "rgb24",
                "pipe:1",
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        decoded = 0
        while True:
            batch = np.empty((batch_size, info.height, info.width, 3), dtype=np.uint8)
            got = _fill(proc.stdout, memoryview(batch).cast("B"))
            frames, partial = divmod(got, frame_bytes)
            if strict and os.fstat(stderr.fileno()).st_size:  # ffmpeg complained: stop at once
                where = f"in frames {decoded + 1}-{decoded + frames}" if frames else f"after frame {decoded}"
                raise InputError(f"{path}: decoding error {where} ({_decode_errors(stderr)[0]}; "
                                 f"--strict stops on it)")
            if partial:
                raise InputError(f"{path}: decoding ended in the middle of frame {decoded + frames + 1}")
            decoded += frames
            if decoded > info.frame_count:
                raise InputError(
                    f"{path}: decoded more frames than the {info.frame_count} the container holds"
                )
            # the last batch: finish (and check) decoding before handing it out, so that a consumer
            # that stops after the last frame still gets every check and warning
            last = frames < batch_size or decoded == info.frame_count
            if last:
                if frames == batch_size and proc.stdout.read(1):
                    raise InputError(
                        f"{path}: decoded more frames than the {info.frame_count} the container holds"
                    )
                _finish_decoding(proc, stderr, info, decoded, strict, warnings)
            if frames:
                yield batch if frames == batch_size else batch[:frames].copy()
            if last:
                break
    finally:
        _ffmpeg.stop(proc)
        stderr.close()
