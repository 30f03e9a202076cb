"""What a video input is: size, exact frame rate, exact frame count, audio.

An input is either a video file any ffmpeg reads or a folder of image frames.
Everything is found without decoding a single frame: the frame count comes
from stream-copying the video packets into ffmpeg's null muxer.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from . import _ffmpeg

__all__ = ["VideoInfo", "probe", "parse_fps", "list_frame_files", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: a frame folder's codec, as ffmpeg names the one that decodes its first file
FOLDER_CODECS = {".png": "png", ".jpg": "mjpeg", ".jpeg": "mjpeg", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp"}


@dataclass(frozen=True)
class VideoInfo:
    """A probed input. ``width``/``height`` are those of the frames ``read_frames`` yields."""

    path: Path
    width: int
    height: int
    fps: Fraction
    frame_count: int
    has_audio: bool
    is_folder: bool
    notes: tuple[str, ...] = ()  # what the reader changes: variable rate made constant, >8-bit depth reduced
    errors: tuple[str, ...] = ()  # ffmpeg's complaints while reading the packets: a truncated or corrupt file
    codec: str | None = None  # the video stream's codec as ffmpeg names it ("h264", "ffv1"); folders: "mjpeg", "png"…


# --------------------------------------------------------------------------- fps


def parse_fps(value: Fraction | int | float | str) -> Fraction:
    """An exact frame rate from a Fraction, int, ``"N/D"`` or a decimal.

    Decimals (``"29.97"``, ``23.976``, ffmpeg's two-decimal ``"59.94 fps"``) are
    snapped to the NTSC rate ``N*1000/1001`` when that rate rounds to the digits
    given, else to the simplest fraction with denominator <= 12 that does
    (``"12.5"`` -> ``25/2``, ``"33.33"`` -> ``100/3``), else taken exactly.
    Raises ``ValueError`` for anything that is not a positive rate.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a frame rate: {value!r}")
    if isinstance(value, Fraction):
        fps = value
    elif isinstance(value, int):
        fps = Fraction(value)
    else:
        text = repr(value) if isinstance(value, float) else str(value).strip()
        try:
            if "/" in text:
                num, den = text.split("/", 1)
                fps = Fraction(int(num), int(den))
            else:
                fps = _snap_decimal(text)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"not a frame rate: {value!r}") from None
    if fps <= 0:
        raise ValueError(f"frame rate must be positive, got {value!r}")
    return fps


def _snap_decimal(text: str) -> Fraction:
    scale = 1
    if text[-1:] in ("k", "K"):  # ffmpeg prints 30000 as "30k"
        text, scale = text[:-1], 1000
    exact = Fraction(text) * scale  # raises ValueError on junk
    if "." not in text or scale != 1 or "e" in text.lower():
        return exact
    decimals = len(text.split(".", 1)[1])
    tolerance = Fraction(1, 2 * 10**decimals)
    ntsc = Fraction(round(exact * Fraction(1001, 1000)) * 1000, 1001)
    if ntsc > 0 and abs(ntsc - exact) <= tolerance and ntsc.denominator != 1:
        return ntsc
    for den in range(1, 13):  # simple rates such as 25/2 or a GIF's 100/3 ("33.33")
        candidate = Fraction(round(exact * den), den)
        if candidate > 0 and abs(candidate - exact) <= tolerance:
            return candidate
    return exact


# ----------------------------------------------------------------------- folders


def _natural_key(name: str) -> tuple:
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name


def list_frame_files(folder: Path) -> list[Path]:
    """Image files in ``folder``, sorted by name (digit runs compare as numbers,
    so ``f2.png`` < ``f10.png``; zero-padded names sort as plain text would).
    Hidden files are ignored."""
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise InputError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None
    files = [
        p
        for p in entries
        if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    ]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _image_header(path: Path) -> tuple[tuple[int, int], bool, bool]:
    """An image's (width, height), whether it has an alpha channel and more than 8 bits per sample
    (both dropped by ``read_image``), from its header."""
    from PIL import Image  # header only; pillow comes with imageio

    try:
        with Image.open(path) as image:
            mode, size = image.mode, image.size
            alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
            deep = mode.startswith("I") or mode == "F"
            if image.format == "PNG":  # 16-bit RGB(A) opens as 8-bit "RGB(A)": read the IHDR bit depth
                with open(path, "rb") as handle:
                    header = handle.read(26)
                deep = deep or (len(header) == 26 and header[24] > 8)
            bits = getattr(image, "tag_v2", {}).get(258) if image.format == "TIFF" else None
            if bits is not None:
                deep = deep or max(bits if isinstance(bits, tuple) else (bits,)) > 8
            return size, alpha, deep
    except Exception:  # noqa: BLE001 - any failure means "not an image we can read"
        raise InputError(f"{path}: not a readable image") from None


def _probe_folder(folder: Path, folder_fps) -> VideoInfo:
    files = list_frame_files(folder)
    if not files:
        raise InputError(
            f"{folder}: folder contains no image frames ({', '.join(IMAGE_SUFFIXES)})"
        )
    (width, height), alpha, deep = _image_header(files[0])
    for path in files[1:]:
        size, has_alpha, is_deep = _image_header(path)
        if size != (width, height):
            raise InputError(
                f"{path}: frame size {size[0]}x{size[1]} differs from "
                f"{width}x{height} of {files[0].name}"
            )
        alpha, deep = alpha or has_alpha, deep or is_deep
    notes = []
    if deep:
        notes.append("more than 8 bits per sample: frames are restored and written with 8 bits")
    if alpha:
        notes.append("an alpha channel (transparency): it is dropped, the output is opaque RGB")
    return VideoInfo(
        path=folder,
        width=width,
        height=height,
        fps=parse_fps(folder_fps),
        frame_count=len(files),
        has_audio=False,
        is_folder=True,
        notes=tuple(notes),
        codec=FOLDER_CODECS.get(files[0].suffix.lower()),
    )


# ------------------------------------------------------------------------ videos

_STREAM_RE = re.compile(
    r"^\s*Stream #(\d+):(\d+)\S*?: (Video|Audio|Subtitle|Data|Attachment): (.*)$"
)
_SIZE_RE = re.compile(r", (\d{1,6})x(\d{1,6})(?=[ ,\[]|$)")
_FPS_RE = re.compile(r"(\d+(?:\.\d+)?k?) fps")
_TBR_RE = re.compile(r"(\d+(?:\.\d+)?k?) tbr")
_DEEP_RE = re.compile(r"\b\w+p(?:9|10|12|14|16)(?:le|be)?\b")
_ROTATION_RE = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees", re.IGNORECASE)
_FRAME_RE = re.compile(r"^frame=\s*(\d+)\s*$", re.MULTILINE)
# `-loglevel level+info` tags every line: "[info] ...", "[h264 @ 0x...] [error] ..."
_LEVEL_RE = re.compile(r"^((?:\[[^\]]*\] )?)\[(trace|debug|verbose|info|warning|error|fatal|panic)\] ")
_OUT_TIME_RE = re.compile(r"^out_time_us=\s*(\d+)\s*$", re.MULTILINE)


@dataclass
class _Streams:
    width: int | None = None
    height: int | None = None
    fps_text: str | None = None
    tbr_text: str | None = None
    high_bit_depth: bool = False
    video_streams: int = 0
    rotation: float = 0.0
    has_video: bool = False
    has_audio: bool = False
    codec: str | None = None
    span_s: float | None = None  # last video timestamp, from counting (containers without an average rate)


def _parse_streams(stderr: str) -> _Streams:
    """The first video stream and whether audio exists, from ``ffmpeg -i``'s listing."""
    info = _Streams()
    in_input = in_first_video = False
    for line in stderr.splitlines():
        if line.startswith("Input #"):
            in_input = line.startswith("Input #0")
            continue
        if line.startswith(("Output #", "Stream mapping")):
            in_input = False
        if not in_input:
            continue
        match = _STREAM_RE.match(line)
        if match:
            kind, details = match.group(3), match.group(4)
            in_first_video = False
            if kind == "Audio":
                info.has_audio = True
            elif kind == "Video":
                info.video_streams += 1
            if kind == "Video" and not info.has_video:  # the stream "-map 0:v:0" picks
                info.has_video = in_first_video = True
                info.codec = details.split(maxsplit=1)[0].rstrip(",") if details.strip() else None
                info.high_bit_depth = bool(_DEEP_RE.search(details))
                tbr = _TBR_RE.search(details)
                info.tbr_text = tbr.group(1) if tbr else None
                size = _SIZE_RE.search(details)
                if size:
                    info.width, info.height = int(size.group(1)), int(size.group(2))
                fps = _FPS_RE.search(details) or _TBR_RE.search(details)
                info.fps_text = fps.group(1) if fps else None
            continue
        if in_first_video:
            rotation = _ROTATION_RE.search(line)
            if rotation:
                info.rotation = float(rotation.group(1))
    return info


def _open_error(path: Path, stderr: str) -> InputError:
    low = stderr.lower()
    if "permission denied" in low:
        return InputError(f"{path}: cannot read the file (permission denied)")
    if "end of file" in low:
        return InputError(f"{path}: contains no video frames (or is truncated)")
    if "invalid data found" in low:
        return InputError(f"{path}: not a video ffmpeg can read (invalid data)")
    if "error opening input" in low:
        return InputError(f"{path}: not a video ffmpeg can read ({_ffmpeg.last_error(stderr)})")
    return InputError(f"{path}: cannot read video ({_ffmpeg.last_error(stderr)})")


def split_levels(stderr: str) -> tuple[str, list[str]]:
    """ffmpeg's ``-loglevel level+...`` output as (the text without the level tags, the error lines)."""
    lines, errors = [], []
    for line in stderr.splitlines():
        match = _LEVEL_RE.match(line)
        if match:
            line = match.group(1) + line[match.end():]
            if match.group(2) in ("error", "fatal", "panic"):
                errors.append(line.strip())
        lines.append(line)
    return "\n".join(lines), errors


def _inspect(path: Path, count: bool) -> tuple[_Streams, int | None, list[str]]:
    """Stream listing of a video file and, if ``count``, its exact frame count and the errors
    ffmpeg reported while reading the packets (a truncated or damaged file)."""
    args = ["-loglevel", "level+info", "-i", _ffmpeg.file_url(path)]
    if count:
        args += ["-map", "0:v:0", "-c", "copy", "-f", "null", "-progress", "pipe:1", "-nostats", "-"]
    result = _ffmpeg.run(args)
    text, errors = split_levels(result.stderr)
    result = subprocess.CompletedProcess(result.args, result.returncode, result.stdout, text)
    streams = _parse_streams(result.stderr)
    if "Input #0" not in result.stderr:
        raise _open_error(path, result.stderr)
    if not streams.has_video:
        raise InputError(f"{path}: has no video stream")
    if not count:
        return streams, None, errors
    if result.returncode != 0:
        raise InputError(f"{path}: cannot read video ({_ffmpeg.last_error(result.stderr)})")
    frames = _FRAME_RE.findall(result.stdout)
    if not frames:
        raise InputError(f"{path}: could not count frames ({_ffmpeg.last_error(result.stderr)})")
    out_time = _OUT_TIME_RE.findall(result.stdout)
    streams.span_s = int(out_time[-1]) / 1e6 if out_time else None
    return streams, int(frames[-1]), errors


def damage_note(info: VideoInfo) -> str:
    """One line on the errors ffmpeg reported while reading a file's packets (``info.errors``)."""
    n = len(info.errors)
    return (f"ffmpeg reported {n} error{'s' if n != 1 else ''} reading the file (first: {info.errors[0]}): "
            f"it may be truncated or damaged")


def _check_input_path(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
        if size == 0:
            raise InputError(f"{path}: file is empty (0 bytes)")


def has_audio(path: Path | str) -> bool:
    """Whether a video file has an audio stream (a folder has none). Cheap: no counting."""
    path = Path(path)
    _check_input_path(path)
    if path.is_dir():
        return False
    streams, _, _ = _inspect(path, count=False)
    return streams.has_audio


def probe(path: Path | str, folder_fps: Fraction | int | str = Fraction(25)) -> VideoInfo:
    """Describe a video file or a folder of image frames; raise ``InputError`` on bad input.

    ``folder_fps`` is the frame rate reported for folders (they carry none).
    """
    path = Path(path)
    _check_input_path(path)
    if path.is_dir():
        return _probe_folder(path, folder_fps)
    streams, frame_count, errors = _inspect(path, count=True)
    if streams.width is None or streams.height is None or not streams.width or not streams.height:
        raise InputError(f"{path}: cannot determine the frame size of the video stream")
    if streams.fps_text is None:
        raise InputError(f"{path}: cannot determine the frame rate of the video stream")
    try:
        fps = parse_fps(streams.fps_text)
    except ValueError:
        raise InputError(f"{path}: unusable frame rate {streams.fps_text!r}") from None
    width, height = streams.width, streams.height
    if round(streams.rotation) % 180 == 90:  # ffmpeg auto-rotates when decoding
        width, height = height, width
    if frame_count == 0:
        raise InputError(f"{path}: contains no video frames")
    notes = []
    try:
        tbr = parse_fps(streams.tbr_text) if streams.tbr_text else fps
    except ValueError:
        tbr = fps
    # .mp4 lists an average rate next to the nominal one; .mkv lists only the nominal rate, so
    # compare the last timestamp with where a constant rate would put it (±2 frames: reordering)
    expected_span = (frame_count - 1) / float(fps)
    timestamps_off = (streams.span_s is not None
                      and abs(streams.span_s - expected_span) > 2.0 / float(fps) + 0.02 * expected_span)
    if abs(float(tbr) - float(fps)) > 0.01 * float(fps) or timestamps_off:
        notes.append(f"variable frame rate: frames are kept in order at {float(fps):.3f} fps "
                     f"(timestamps are not preserved)")
    if streams.high_bit_depth:
        notes.append("more than 8 bits per sample: frames are restored and written with 8 bits")
    if streams.video_streams > 1:
        notes.append(f"{streams.video_streams} video streams: only the first is restored")
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        frame_count=frame_count,
        has_audio=streams.has_audio,
        is_folder=False,
        notes=tuple(notes),
        errors=tuple(_ffmpeg.clean(e) for e in errors),
        codec=streams.codec,
    )
