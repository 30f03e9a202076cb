"""The one JSON writer: atomic (temporary file, then rename), standard JSON (non-finite numbers become null)."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..errors import OutputError


def finite(value):
    """Standard JSON: non-finite numbers (e.g. the PSNR of identical frames) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_json(path: Path, data: dict) -> None:
    """Write `data` to `path` atomically; OutputError (one line) when it cannot be written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(finite(data), indent=2, default=str))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None


def check_writable(path: Path) -> None:
    """OutputError now, before any work, if a file cannot be created at `path` later."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder, expected a file path")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"{path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"{path}: not writable")
