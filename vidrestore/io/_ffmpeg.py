"""Small helpers around the ffmpeg binary shipped with imageio-ffmpeg.

Every process is started with a list of arguments (never a shell), with
``-nostdin`` so it never reads the terminal, and in its own session on POSIX so
that Ctrl-C reaches only Python, which then stops the child itself.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import IO, Sequence

__all__ = ["ffmpeg_exe", "start", "run", "stop", "file_url", "read_text", "last_error", "clean"]


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def file_url(path: Path) -> str:
    """An input/output argument ffmpeg can never mistake for an option or protocol."""
    return "file:" + str(Path(path).absolute())


def _argv(args: Sequence[str]) -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]


def start(args: Sequence[str], **kwargs) -> subprocess.Popen:
    """Start ffmpeg with ``args`` (after the global ``-hide_banner -nostdin``)."""
    kwargs.setdefault("stdin", subprocess.DEVNULL)
    if os.name == "posix":
        kwargs.setdefault("start_new_session", True)
    return subprocess.Popen(_argv(args), **kwargs)


def run(args: Sequence[str]) -> subprocess.CompletedProcess:
    """Run ffmpeg to completion, capturing stdout and stderr as text."""
    proc = start(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate()
    finally:
        stop(proc)
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
    )


def stop(proc: subprocess.Popen | None, timeout: float = 5.0) -> None:
    """Close our pipe ends, then terminate (and if needed kill) and reap ``proc``."""
    if proc is None:
        return
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError:  # e.g. BrokenPipeError while flushing stdin
                pass
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        except ProcessLookupError:
            proc.wait()


def read_text(handle: IO[bytes] | None) -> str:
    """The whole content of a temporary file that a process wrote to."""
    if handle is None:
        return ""
    try:
        handle.flush()
        handle.seek(0)
        return handle.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return ""


def last_error(stderr: str, default: str = "unknown ffmpeg error") -> str:
    """The most telling line of ffmpeg's stderr, shortened to fit one line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return default
    # ffmpeg often ends with generic summaries ("Conversion failed!"); prefer
    # the first specific complaint before them.
    generic = ("conversion failed", "error opening output files", "error opening input files")
    for line in lines:
        low = line.lower()
        if ("error" in low or "invalid" in low or "no such" in low or "denied" in low) and not low.startswith(
            generic
        ):
            message = line
            break
    else:
        message = lines[-1]
    return clean(message)


def clean(message: str) -> str:
    """One line of ffmpeg's stderr without its "[component @ 0x...]" prefixes, shortened to fit one line."""
    message = message.strip()
    while message.startswith("[") and "]" in message:
        message = message.split("]", 1)[1].strip()
    return message[:300]
