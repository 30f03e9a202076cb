"""restore(config): check everything, load the prior, solve the windows in order, stitch, write.

Orchestration only: `vidrestore.plan` checks the run before any model loads,
the task (`vidrestore.tasks`) says what the problem is,
`vidrestore.solve` solves one window, `vidrestore.windows` plans and
cross-fades them, `vidrestore.resume` writes finished windows as segments and
assembles the output, `vidrestore.costs` counts what a run costs.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import torch

from vidrestore.adapt import adapt_prior
from vidrestore.config import RunConfig
from vidrestore.errors import InputError, OutputError
from vidrestore.executors import Executor, Problem, SharedExecutor, WindowJob, make_executor
from vidrestore.input_checks import resolve_input
from vidrestore.io import output_kind, read_frames, to_tensor, to_uint8
from vidrestore.io.jsonfile import write_json
from vidrestore.io.paths import sidecar_path
from vidrestore.io.prefetch import prefetch
from vidrestore.metrics import RunningMetrics
from vidrestore.plan import RunPlan, plan_run
from vidrestore.resume import PartialRun, ResumeState, run_key
from vidrestore.runtime import peak_memory_mb, resolve_device, resolve_dtype
from vidrestore.windows import FrameWindows, cross_fade, tail_is_own


def restore(cfg: RunConfig, progress_factory=None, on_ready: Callable[[list[str]], None] | None = None,
            executors: SharedExecutor | None = None) -> dict:
    """Run one restoration described by `cfg`; returns the metrics written to the metrics JSON.

    `on_ready(notes)` is called once the input, output, reference and device have been checked, before
    the model loads, with the plan's warnings (the CLI prints them and its estimate there, so bad input
    still gets one line). The windows are solved by the executor `cfg.runtime` names (`executors`: the one a
    batch keeps across its files).
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
        # "auto" noise, blind estimates (deblur's --kernel auto) and input checks: once, from the input's first frames
        solve_cfg, plan.task, noise, found = resolve_input(cfg, plan.task, plan.input, plan.info.fps,
                                                           plan.info.codec, device)
        plan.notes.extend(found)  # said with the result (the CLI prints the warnings it has not shown yet)
        # --adapt: the windows are solved with the adapted copy of the prior (trained now or found in the cache)
        adapted = adapt_prior(solve_cfg, plan.task, plan.input, plan.info.frame_count, (plan.height, plan.width),
                              device)
        if adapted is not None:
            solve_cfg = dataclasses.replace(solve_cfg, model=str(adapted.model))
        problem = Problem(solve_cfg, plan.task, (plan.height, plan.width))
        if executors is None:
            executor = make_executor(solve_cfg, plan.task, device, dtype, problem.frame_size)
        else:
            executor = executors.get(solve_cfg, plan.task, device, dtype, problem.frame_size)
        try:
            running, evaluations, prior = _solve_windows(cfg, plan, executor, problem, partial, state, device,
                                                         progress_factory, started)
        except BaseException:
            if executors is not None:
                executors.discard()  # its workers may still hold this file's windows
            raise
        finally:
            if executors is None:
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
        **({"adapt": adapted.summary()} if adapted is not None else {}),
    }
    write_json(plan.metrics, result)
    write_json(sidecar_path(plan.output, "config.json"), cfg.to_dict() | {"output": str(plan.output)})
    return result


def _solve_windows(cfg: RunConfig, plan: RunPlan, executor: Executor, problem: Problem, partial: PartialRun,
                   state: ResumeState,
                   device: torch.device, progress_factory, started: float) -> tuple[RunningMetrics, int, dict]:
    """Hand the windows not finished before to the executor; stitch what comes back (in order) and give
    finished frames to `partial` (`started`: this attempt's start, on `time.perf_counter`). Returns the
    running metrics, the network evaluations and the prior's info."""
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

    def job(w: int) -> WindowJob:
        (ys, ye), (xs, xe) = windows[w], task.x_range(*windows[w])
        return WindowJob(w, inputs.get(ys, ye), {n: s.get(ys, ye) for n, s in streams.items()}, list(range(xs, xe)),
                         problem)

    def jobs():  # read lazily: the executor asks for the next window only when a worker is free
        yield from map(job, range(state.windows_done, len(windows)))  # windows finished before are skipped

    prior = {"model": "none" if cfg.model == "none" else cfg.model}
    fetched = prefetch(jobs())  # the next window decodes while this one is solved (starts at the first request)
    try:
        if pending is None and 0 < state.windows_done < len(windows):
            # the shared tail was not saved (see `tail_is_own`): solve the last finished window again for it
            w = state.windows_done
            pending = next(iter(executor.solve([job(w - 1)]))).x[task.x_range(*windows[w])[0] -
                                                                   task.x_range(*windows[w - 1])[0]:]
        for w, solved in zip(range(state.windows_done, len(windows)),
                             executor.solve(fetched, on_step=progress.step if progress else None)):
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
            saved = None if tail_is_own(task.x_range, windows, w) else pending
            seconds = state.seconds + time.perf_counter() - started
            partial.commit(ResumeState(w + 1, written, evaluations, running.state(), seconds, saved,
                                       running.last_pair))
            if progress:
                progress.frames(written, executor.stats.state)
    finally:
        fetched.close()  # joins the read-ahead thread before its sources close
        for source in (inputs, refs, *streams.values()):
            if source is not None:
                source.close()
        if progress:
            progress.close()
    if written != plan.frames:
        raise OutputError(f"{plan.output}: restored {written} frames, expected {plan.frames}")
    return running, evaluations, prior
