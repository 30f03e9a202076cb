"""Where a run writes (the default output, its sidecar JSON files) and the checks before anything is written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from ..errors import OutputError
from .writer import output_kind

__all__ = ["check_output_not_input", "default_output", "sidecar_path"]


def default_output(input_path: Path, task: str) -> Path:
    """`clip.mp4` -> `clip.<task>.mp4`; a frame folder `frames/` -> `frames.<task>/`."""
    if input_path.is_dir():
        return input_path.with_name(f"{input_path.name}.{task}")
    return input_path.with_name(f"{input_path.stem}.{task}.mp4")


def sidecar_path(output: Path, name: str) -> Path:
    """Where `metrics.json` / `config.json` go: inside an output folder, else `<output>.<name>`."""
    return output / name if output_kind(output) == "folder" else output.with_name(f"{output.name}.{name}")


def _same(a: Path, b: Path) -> bool:
    """The same file or folder: by device and inode when both exist (hard and symbolic
    links, other spellings), else by the resolved path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def check_output_not_input(output: Path, inputs: Iterable[Path]) -> None:
    """``OutputError`` when ``output`` is one of ``inputs`` or a folder holding one of them:
    writing the output (with --overwrite) would destroy that input."""
    output = Path(output)
    for source in inputs:
        source = Path(source)
        if _same(output, source):
            raise OutputError(f"{output}: is the input {source}; choose another -o (nothing was written)")
        # a folder output replaces the whole folder: an input inside it would go too
        if any(_same(output, parent) for parent in source.absolute().parents) or \
                any(_same(output, parent) for parent in source.resolve().parents):
            raise OutputError(f"{output}: holds the input {source}; choose another -o (nothing was written)")
