"""restore(config): check everything, load the prior, solve the windows in order, stitch, write.

Orchestration only: the task (`vidrestore.tasks`) says what the problem is,
`vidrestore.solve` solves one window, `vidrestore.windows` plans and
cross-fades them, `vidrestore.resume` writes finished windows as segments and
assembles the output, `vidrestore.costs` counts what a run costs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import torch

from vidrestore.config import RunConfig
from vidrestore.errors import InputError, OutputError
from vidrestore.executors import Executor, WindowJob, make_executor
from vidrestore.io import VideoInfo, output_kind, probe, read_frames, to_tensor, to_uint8
from vidrestore.io.jsonfile import check_writable, write_json
from vidrestore.io.paths import check_output_not_input
from vidrestore.io.probe import damage_note
from vidrestore.metrics import RunningMetrics
from vidrestore.noise import resolve_noise
from vidrestore.resume import PartialRun, ResumeState, run_key
from vidrestore.runtime import peak_memory_mb, resolve_device, resolve_dtype
from vidrestore.tasks import Task, get_task
from vidrestore.windows import FrameWindows, cross_fade, plan_windows, window_overlap


def default_output(input_path: Path, task: str) -> Path:
    if input_path.is_dir():
        return input_path.with_name(f"{input_path.name}.{task}")
    return input_path.with_name(f"{input_path.stem}.{task}.mp4")


def sidecar_path(output: Path, name: str) -> Path:
    """Where `metrics.json` / `config.json` go: inside an output folder, else `<output>.<name>`."""
    return output / name if output_kind(output) == "folder" else output.with_name(f"{output.name}.{name}")


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


def restore(cfg: RunConfig, progress_factory=None, on_ready: Callable[[list[str]], None] | None = None) -> dict:
    """Run one restoration described by `cfg`; returns the metrics written to the metrics JSON.

    `on_ready(notes)` is called once the input, output, reference and device have been checked, before
    the model loads, with the plan's warnings (the CLI prints them and its estimate there, so bad input
    still gets one line). The
    windows are solved by the executor `cfg.runtime` names (in process, worker processes, Ray).
    """
    started = time.perf_counter()
    plan = plan_run(cfg)
    device = resolve_device(cfg.runtime.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    dtype = resolve_dtype(cfg.runtime.dtype, device)
    # claim the work folder first: a second run on this output fails before its model loads
    partial = PartialRun(plan.output, run_key(cfg), resume=cfg.runtime.resume, fps=plan.fps, width=plan.width,
                         height=plan.height, crf=cfg.io.crf)
    state = None
    try:
        state = partial.load()
        if on_ready is not None:
            on_ready(list(plan.notes))
        solve_cfg, noise = resolve_noise(cfg, plan.input, plan.info.fps)  # "auto": estimated once, from the input
        executor = make_executor(solve_cfg, plan.task, device, dtype, (plan.height, plan.width))
        try:
            running, evaluations, prior = _solve_windows(cfg, plan, executor, partial, state, device,
                                                         progress_factory, started)
        finally:
            executor.close()
        audio = cfg.io.audio and plan.info.has_audio and output_kind(plan.output) != "folder"
        partial.finish(audio_from=plan.input if audio else None, overwrite=cfg.io.overwrite)
    except BaseException as exc:
        # nothing to resume (no window finished, or an input that does not decode): leave nothing behind
        if isinstance(exc, InputError) or state is None or partial.windows_done == 0:
            partial.remove()
        raise
    finally:
        partial.release()
    attempt = time.perf_counter() - started
    seconds = state.seconds + attempt  # earlier attempts count up to their last finished window
    result = {
        "task": cfg.task, "input": str(plan.input), "output": str(plan.output), "frames": plan.frames,
        "width": plan.width, "height": plan.height, "fps": str(plan.fps), "fps_float": float(plan.fps),
        # a resumed run: `seconds` and `frames_per_second` cover every attempt (each up to its last finished
        # window: the work an interruption lost is not counted); `frames_resumed` were finished before this one
        "seconds": round(seconds, 3), "seconds_this_attempt": round(attempt, 3), "frames_resumed": state.frames_done,
        "frames_per_second": round(plan.frames / seconds, 4) if seconds > 0 else None,
        "model": cfg.model, **prior, "network_evaluations": evaluations, "device": str(device),
        "seed": cfg.runtime.seed, "preset": cfg.preset, "noise": cfg.sampler.noise if prior.get("nfe") else None,
        **noise,
        "windows": len(plan.windows), **executor.stats.to_dict(), "peak_memory_mb": round(peak_memory_mb(device), 1),
        **running.summary(), "warnings": plan.notes,
    }
    write_json(plan.metrics, result)
    write_json(sidecar_path(plan.output, "config.json"), cfg.to_dict() | {"output": str(plan.output)})
    return result


def _solve_windows(cfg: RunConfig, plan: RunPlan, executor: Executor, partial: PartialRun, state: ResumeState,
                   device: torch.device, progress_factory, started: float) -> tuple[RunningMetrics, int, dict]:
    """Hand the windows not finished before to the executor; stitch what comes back (in order) and give
    finished frames to `partial` (`started`: this attempt's start, on `time.perf_counter`). Returns the running metrics, the network evaluations and the prior's info."""
    task, windows, chunk = plan.task, plan.windows, cfg.runtime.chunk
    inputs = FrameWindows(read_frames(plan.input, chunk, folder_fps=plan.info.fps, strict=cfg.io.strict,
                                      warnings=plan.notes), str(plan.input))  # decode errors: a warning
    streams = {name: FrameWindows(read_frames(path, chunk), str(path)) for name, path in task.frame_streams().items()}
    refs = FrameWindows(read_frames(Path(cfg.reference), chunk), cfg.reference) if cfg.reference else None
    running = RunningMetrics.from_state(state.metrics, state.last_pair)
    pending = None if state.pending is None else state.pending.to(device)
    written, evaluations = state.frames_done, state.network_evaluations
    progress = progress_factory(plan.frames) if progress_factory else None
    if progress and written:
        progress.frames(written)

    def jobs():  # read lazily: the executor asks for the next window only when a worker is free
        for w in range(state.windows_done, len(windows)):  # windows finished before an interruption are skipped
            (ys, ye), (xs, xe) = windows[w], task.x_range(*windows[w])
            yield WindowJob(w, inputs.get(ys, ye), {n: s.get(ys, ye) for n, s in streams.items()},
                            list(range(xs, xe)))

    prior = {"model": "none" if cfg.model == "none" else cfg.model}
    try:
        if pending is None and 0 < state.windows_done < len(windows):
            # the shared tail was not saved (see `_tail_is_own`): solve the last finished window again for it
            w = state.windows_done - 1
            (ys, ye), (xs, _) = windows[w], task.x_range(*windows[w])
            job = WindowJob(w, inputs.get(ys, ye), {n: s.get(ys, ye) for n, s in streams.items()},
                            list(range(xs, task.x_range(ys, ye)[1])))
            pending = next(iter(executor.solve([job]))).x[task.x_range(*windows[w + 1])[0] - xs:]
        for w, solved in zip(range(state.windows_done, len(windows)),
                             executor.solve(jobs(), on_step=progress.step if progress else None)):
            last, (xs, xe) = w + 1 == len(windows), task.x_range(*windows[w])
            evaluations += solved.network_evaluations
            prior = solved.prior
            running.add_residual(solved.residual_sq, solved.measurement_sq)
            x = cross_fade(pending, solved.x)
            keep = (xe if last else task.x_range(*windows[w + 1])[0]) - xs  # the rest is shared with the next
            final, pending = x[:keep], (None if last else x[keep:])
            if final.shape[0]:
                frames_u8 = to_uint8(final.cpu())
                partial.append(frames_u8, written)
                if refs is not None:
                    running.add_reference(to_tensor(frames_u8), to_tensor(refs.get(written, written + keep)))
                written += keep
            # a tail a rerun can compute again is not saved: the disk holds the output, not float frames
            saved = None if _tail_is_own(task, windows, w) else pending
            seconds = state.seconds + time.perf_counter() - started
            partial.commit(ResumeState(w + 1, written, evaluations, running.state(), seconds, saved,
                                       running.last_pair))
            if progress:
                progress.frames(written, executor.stats.state)
    finally:
        for source in (inputs, refs, *streams.values()):
            if source is not None:
                source.close()
        if progress:
            progress.close()
    if written != plan.frames:
        raise OutputError(f"{plan.output}: restored {written} frames, expected {plan.frames}")
    return running, evaluations, prior


def _tail_is_own(task: Task, windows: list[tuple[int, int]], w: int) -> bool:
    """Whether window w's frames shared with the next are its own solve alone (the cross-fade with the
    window before reaches only its first frames), so that solving it again gives them exactly."""
    if w + 1 >= len(windows):
        return True
    start, stop = task.x_range(*windows[w])
    shared_before = task.x_range(*windows[w - 1])[1] - start if w > 0 else 0
    return task.x_range(*windows[w + 1])[0] - start >= shared_before
