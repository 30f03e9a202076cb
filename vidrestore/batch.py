"""Batch runs: several inputs (paths, shell globs, or a folder of videos) into one output folder.

A failing file is reported and the batch goes on; files whose output exists
are skipped unless --overwrite. A batch whose outputs would write over any of
its inputs (`clips/ -o clips/`) is refused before anything runs.
"""
from __future__ import annotations

import dataclasses
import glob
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from vidrestore.config import RunConfig
from vidrestore.errors import InputError, UsageError, VidrestoreError
from vidrestore.executors import SharedExecutor
from vidrestore.io import IMAGE_SUFFIXES, check_output_not_input

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".gif")


def is_video_folder(path: Path) -> bool:
    """A folder of video files (a batch), as opposed to a folder of image frames (one clip)."""
    if not path.is_dir():
        return False
    files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
    return any(p.suffix.lower() in VIDEO_SUFFIXES for p in files) and \
        not any(p.suffix.lower() in IMAGE_SUFFIXES for p in files)


def expand_inputs(paths: list[str]) -> list[Path]:
    """Videos to restore: folders of videos are expanded, glob patterns the shell left alone too."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if any(c in raw for c in "*?[") and not path.exists():
            matches = sorted(Path(p) for p in glob.glob(raw))
            if not matches:
                raise InputError(f"{raw}: no file matches")
            found.extend(matches)
        elif is_video_folder(path):
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES
                                and not p.name.startswith(".")))
        else:
            found.append(path)
    return found


def batch_output(input_path: Path, out_dir: Path, task: str) -> Path:
    """`<out_dir>/<stem>.mp4` for a video; `<out_dir>/<name>/` (PNG frames) for a frame folder."""
    return out_dir / input_path.name if input_path.is_dir() else out_dir / f"{input_path.stem}.mp4"


@dataclass
class BatchItem:
    input: Path
    output: Path
    status: str            # done | skipped | failed
    seconds: float = 0.0
    message: str = ""
    exit_code: int = 0
    metrics: dict | None = None


def restore_batch(cfg: RunConfig, inputs: list[Path], out_dir: Path, restore: Callable[..., dict],
                  progress_factory=None, on_item: Callable[[BatchItem], None] | None = None) -> list[BatchItem]:
    """Restore each input into `out_dir` with the same settings; never stops at a failing file."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir}: with several inputs, -o must be a folder")
    names = [batch_output(p, out_dir, cfg.task).name for p in inputs]
    clash = next((n for n in names if names.count(n) > 1), None)
    if clash:
        raise UsageError(f"two inputs would both write {out_dir / clash}; restore them separately")
    for path in inputs:
        check_output_not_input(batch_output(path, out_dir, cfg.task), inputs)
    items = []
    with SharedExecutor() as executors:  # workers start and load the prior once for every file
        for path in inputs:
            items.append(_restore_one(cfg, path, out_dir, restore, progress_factory, executors))
            if on_item:
                on_item(items[-1])
    return items


def _restore_one(cfg: RunConfig, path: Path, out_dir: Path, restore: Callable[..., dict], progress_factory,
                 executors: SharedExecutor) -> BatchItem:
    output = batch_output(path, out_dir, cfg.task)
    if output.exists() and not cfg.io.overwrite:
        return BatchItem(path, output, "skipped", message="output exists")
    started = time.perf_counter()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        one = dataclasses.replace(cfg, input=str(path), output=str(output), metrics=None)
        metrics = restore(one, progress_factory=progress_factory, executors=executors)
        return BatchItem(path, output, "done", time.perf_counter() - started, metrics=metrics)
    except VidrestoreError as exc:
        return BatchItem(path, output, "failed", time.perf_counter() - started, str(exc), exc.exit_code)
