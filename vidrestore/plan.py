"""plan_run(config): every check a run needs before any model loads, and what the run will do.

The input, the output and sidecar paths (never over an input, writable, not
already there), the task and its geometry, the reference, the windows.
Nothing is written here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from vidrestore.adapt import check_adapt
from vidrestore.config import RunConfig
from vidrestore.errors import InputError, OutputError
from vidrestore.io import VideoInfo, output_kind, probe
from vidrestore.io.jsonfile import check_writable
from vidrestore.io.paths import check_output_not_input, default_output, sidecar_path
from vidrestore.io.probe import damage_note
from vidrestore.tasks import Task, get_task
from vidrestore.windows import plan_windows, window_overlap


@dataclass
class RunPlan:
    """What a run will do, checked before any work: paths, geometry, the task and its windows."""

    input: Path
    output: Path
    metrics: Path
    info: VideoInfo
    task: Task
    windows: list[tuple[int, int]]
    frames: int                      # output frames
    width: int
    height: int
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> Fraction:
        return self.task.output_fps(self.info.fps)


def plan_run(cfg: RunConfig) -> RunPlan:
    """Every check that needs no model: input, output and sidecar paths, the task, the reference."""
    input_path = Path(cfg.input)
    if not input_path.exists():
        raise InputError(f"{input_path}: no such file or folder")
    output = Path(cfg.output) if cfg.output else default_output(input_path, cfg.task)
    kind = output_kind(output)  # rejects unsupported suffixes before any work
    inputs = [input_path, *map(Path, cfg.degradation.input_files()), *([Path(cfg.reference)] if cfg.reference else [])]
    check_output_not_input(output, inputs)
    empty_folder = kind == "folder" and output.is_dir() and not any(output.iterdir())
    if output.exists() and not cfg.io.overwrite and not empty_folder:
        raise OutputError(f"{output}: already exists (use --overwrite to replace it)")
    metrics = Path(cfg.metrics) if cfg.metrics else sidecar_path(output, "metrics.json")
    if cfg.metrics:
        check_output_not_input(metrics, inputs)
        check_writable(metrics)
    info = probe(input_path, folder_fps=Fraction(cfg.io.fps).limit_denominator(1001))
    task = get_task(cfg.task)(cfg.degradation, info.width, info.height, info.frame_count, str(input_path))
    n_out = task.output_frame_count(info.frame_count)
    width, height = info.width * task.spatial_scale, info.height * task.spatial_scale
    if cfg.reference:
        ref = probe(Path(cfg.reference))
        if (ref.width, ref.height, ref.frame_count) != (width, height, n_out):
            raise InputError(f"{cfg.reference}: reference is {ref.width}x{ref.height} with {ref.frame_count} "
                             f"frames; the output will be {width}x{height} with {n_out}")
    check_adapt(cfg)
    chunk, overlap = window_overlap(cfg.runtime.chunk, cfg.runtime.overlap, task.min_overlap)
    notes = [f"{input_path}: {note}" for note in info.notes]
    if info.errors:  # ffmpeg complained while reading the packets: a truncated or damaged file
        damage = f"{input_path}: {damage_note(info)}"
        if cfg.io.strict:
            raise InputError(f"{damage} (--strict stops on it)")
        notes.append(damage)
    asked = cfg.runtime.overlap  # None: the default for the chunk (a quarter of it)
    changed = (asked is not None and overlap != asked) or chunk != cfg.runtime.chunk
    if info.frame_count > cfg.runtime.chunk and changed:
        notes.append(f"windows of {chunk} frames overlap by {overlap} (asked: "
                     f"{'--chunk ' + str(cfg.runtime.chunk) if asked is None else asked})")
    windows = plan_windows(info.frame_count, chunk, overlap)
    return RunPlan(input_path, output, metrics, info, task, windows, n_out, width, height, notes)
