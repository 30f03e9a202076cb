"""evaluate(cfg): degrade a reference clip with a task's operator, restore it with every method, report.

The reference is degraded with the very operator the solvers invert
(:meth:`vidrestore.tasks.Task.operator`), rounded to 8 bits and saved
losslessly as ``input.mkv`` (or, with ``--input-crf``, through libx264 as
``input.mp4``, and decoded again). Classical baselines run in-process on that
input; solver methods (``--model none`` and diffusion presets / noise modes /
variants) run through :func:`vidrestore.pipeline.restore` with a resolved
config, each writing its own metrics JSON. Baselines write the same JSON, so
every number in the report comes from a per-run metrics file; flicker and
the per-frame curves are computed here from the restored clips.

The report is built in a hidden temporary folder beside the final one and
renamed into place only when complete.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vidrestore import metrics as M
from vidrestore import operators as ops
from vidrestore import realism
from vidrestore.config import RunConfig, resolve_config
from vidrestore.errors import InputError, OutputError, UsageError
from vidrestore.io import VideoWriter, probe, quantize, read_frames, to_tensor, to_uint8
from vidrestore.io.jsonfile import write_json
from vidrestore.pipeline import restore
from vidrestore.runtime import peak_memory_mb
from vidrestore.tasks import Task, get_task
from vidrestore.temporal import consecutive_flows

#: method names that are not a task's baselines: the task's own initial estimate, every diffusion run
INITIAL, DIFFUSION = "initial", "diffusion"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")

Event = Callable[[dict], None]


@dataclass(frozen=True)
class SolverRun:
    """One method restored by pipeline.restore: its name and resolved config (paths filled in at run time)."""

    name: str
    config: RunConfig


@dataclass(frozen=True)
class EvaluateConfig:
    """Everything `vidrestore evaluate` needs, resolved and validated."""

    reference: Path
    output: Path
    base: RunConfig                       # the task and degradation (no preset of its own)
    baselines: tuple[str, ...]
    solvers: tuple[SolverRun, ...]
    max_frames: int | None = None
    overwrite: bool = False
    input_crf: int | None = None          # the degraded input through libx264 at this CRF (`input.mp4`)

    @property
    def methods(self) -> list[str]:
        return [*self.baselines, *(s.name for s in self.solvers)]


def parse_variant(spec: str) -> tuple[str, list[str]]:
    """`NAME:KEY=VALUE,KEY=VALUE` → (name, ["KEY=VALUE", ...]); the key `preset` picks the preset."""
    name, sep, body = spec.partition(":")
    if not sep or not NAME.match(name) or not body:
        raise UsageError(f"--variant {spec!r}: expected NAME:KEY=VALUE[,KEY=VALUE...], "
                         "e.g. warped-eq:sampler.noise=warped,guidance.equivariance=0.5")
    items = [item.strip() for item in body.split(",") if item.strip()]
    if any("=" not in item for item in items):
        raise UsageError(f"--variant {spec!r}: every override must be KEY=VALUE")
    return name, items


def _split(values: list[str] | None) -> list[str]:
    """Comma-separated and/or repeated option values, in order, without duplicates."""
    out: list[str] = []
    for value in values or []:
        out += [v.strip() for v in value.split(",") if v.strip() and v.strip() not in out]
    return out


def resolve_evaluate_config(reference: Path, task: str, output: Path | None, degradation: dict, *,
                            methods: list[str] | None = None, presets: list[str] | None = None,
                            noise: list[str] | None = None, variants: list[str] | None = None,
                            sets: list[str] | None = None, flags: dict | None = None,
                            max_frames: int | None = None, overwrite: bool = False,
                            input_crf: int | None = None) -> EvaluateConfig:
    """Validate the task options and every method's config before any work starts.

    `degradation` holds the task's own options as dotted config keys (`degradation.scale`, ...).
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    kind = get_task(task)
    base = resolve_config(task, None, [], degradation | {"runtime.seed": flags.get("runtime.seed"),
                                                          "runtime.device": flags.get("runtime.device")})
    base.degradation.check_complete()
    if max_frames is not None and max_frames < kind.min_frames:
        raise UsageError(f"--frames must be at least {kind.min_frames}, got {max_frames}")
    if input_crf is not None and not 0 <= input_crf <= 51:
        raise UsageError(f"--input-crf must be in [0, 51] (libx264's range), got {input_crf}")
    solver_flags = degradation | flags | {"quiet": True, "io.overwrite": True, "runtime.resume": False}
    run = {"none": resolve_config(task, None, sets or [], solver_flags | {"model": "none"})}
    noise_modes = _split(noise) or [None]
    # the task's own preset, or the diffusion preset it names where its own runs no prior (interpolate)
    own = kind.evaluate_preset or task
    for preset in _split(presets) or ([] if variants else [own]):
        for mode in noise_modes:
            name = preset if mode is None else f"{preset}+{mode}"
            run[name] = resolve_config(task, preset, sets or [], solver_flags | {"sampler.noise": mode})
    for spec in variants or []:
        name, items = parse_variant(spec)
        preset = next((v.split("=", 1)[1] for v in items if v.split("=", 1)[0].strip() == "preset"), None)
        items = [v for v in items if v.split("=", 1)[0].strip() != "preset"]
        if name in run or name in kind.baselines or name in (INITIAL, DIFFUSION):
            raise UsageError(f"--variant {spec!r}: the name {name!r} is taken")
        run[name] = resolve_config(task, preset, [*(sets or []), *items], solver_flags)
    available = [*kind.baselines, INITIAL, *run]
    named = _split(methods)
    wanted = named or [*available]
    for name in wanted:
        if name not in available and name != DIFFUSION:
            raise UsageError(f"unknown method {name!r} for {task} (available: {', '.join(available)}, {DIFFUSION})")
    diffusion = [n for n in run if n != "none"]
    chosen = [n for n in available if n in wanted or (DIFFUSION in wanted and n in diffusion)]
    chosen = [n for n in chosen if n not in kind.baselines
              or kind.baseline_applies(base.degradation, n, explicit=n in named)]
    # a baseline's applicability depends on the options (and, for a peer tool, on what is installed)
    if not chosen:
        raise UsageError("no method to evaluate")
    return EvaluateConfig(
        reference=Path(reference), output=Path(output) if output else _default_output(Path(reference)), base=base,
        baselines=tuple(n for n in chosen if n not in run),
        solvers=tuple(SolverRun(n, run[n]) for n in chosen if n in run),
        max_frames=max_frames, overwrite=overwrite, input_crf=input_crf)


def _default_output(reference: Path) -> Path:
    return reference.with_name(f"{reference.stem if reference.is_file() else reference.name}.evaluate")


# ----------------------------------------------------------------------------- the problem


@dataclass
class Problem:
    """The reference, its degradation and what every method is scored with."""

    truth: torch.Tensor              # (F, 3, H, W) in [0, 1], as decoded (cropped / trimmed)
    y: torch.Tensor                  # degraded, 8-bit
    task: Task
    operator: ops.LinearOperator
    fps: Fraction
    flows: tuple[torch.Tensor, torch.Tensor] = field(repr=False, default=None)
    unknown: torch.Tensor | None = None   # (F, 1, H, W) pixels no measurement gives directly (inpaint, interpolate)
    input_name: str = "input.mkv"         # the degraded input in the report folder (`input.mp4`: through libx264)


def read_clip(path: Path, max_frames: int | None = None) -> torch.Tensor:
    frames, count = [], 0
    for batch in read_frames(path, 64):
        frames.append(to_tensor(batch))
        count += len(batch)
        if max_frames is not None and count >= max_frames:
            break
    return torch.cat(frames)[:max_frames]


def write_clip(path: Path, clip: torch.Tensor, fps: Fraction, crf: int | None = None) -> Path:
    """A lossless FFV1 .mkv (or a PNG folder), so every method is scored on exactly what it wrote; `.mp4`:
    libx264 at `crf` (the writer's default when None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, fps, clip.shape[3], clip.shape[2], overwrite=True,
                     **({} if crf is None else {"crf": crf})) as writer:
        writer.write(to_uint8(clip))
    return path


def make_problem(cfg: EvaluateConfig, folder: Path) -> Problem:
    """Read the reference, fit it to the task (e.g. sizes divisible by the scale) and degrade it."""
    base = cfg.base
    if not cfg.reference.exists():
        raise InputError(f"{cfg.reference}: no such file or folder")
    kind = get_task(base.task)
    info = probe(cfg.reference)
    truth = kind.fit_reference(base.degradation, read_clip(cfg.reference, cfg.max_frames), str(cfg.reference))
    n, h, w = truth.shape[0], truth.shape[2], truth.shape[3]
    n_in, h_in, w_in = kind.input_geometry(base.degradation, n, h, w)
    task = kind(base.degradation, w_in, h_in, n_in, str(cfg.reference))
    streams = {name: np.concatenate([batch for batch in read_frames(path, 64)])
               for name, path in task.frame_streams().items()}
    operator = task.operator(streams)
    # measurement noise is seeded like the runs
    y = quantize(task.degrade(truth, operator, torch.Generator().manual_seed(base.runtime.seed)))
    write_clip(folder / "reference.mkv", truth, info.fps)
    name = "input.mkv" if cfg.input_crf is None else "input.mp4"
    write_clip(folder / name, y, task.input_fps(info.fps), cfg.input_crf)
    if cfg.input_crf is not None:  # as footage arrives: every method, baselines included, gets the decoded frames
        y = read_clip(folder / name)
    return Problem(truth, y, task, operator, info.fps, consecutive_flows(truth), task.unknown(operator, n, h, w),
                   name)


# ----------------------------------------------------------------------------- running the methods


def run_baseline(name: str, p: Problem) -> torch.Tensor:
    """One classical baseline (or the task's initial estimate) on the degraded input."""
    if name == INITIAL:
        return p.task.initial_estimate(p.y, p.operator)
    return p.task.run_baseline(name, p.y, p.operator, p.truth)


def reset_peak_memory() -> None:
    """Start the process's peak-RSS counter afresh (Linux), so each method reports its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # elsewhere the peak is the process's so far


def _baseline_metrics(name: str, p: Problem, path: Path, on_event: Event, started: float
                      ) -> tuple[dict, torch.Tensor]:
    reset_peak_memory()
    t0 = time.perf_counter()
    out = run_baseline(name, p)
    seconds = time.perf_counter() - t0
    residual = M.data_consistency_residual(p.operator.A, out.clamp(0, 1), p.y)
    write_clip(path, out, p.fps)
    out = read_clip(path)  # scored on exactly what was written, as the pipeline scores its output
    on_event({"event": "frame", "method": name, "frame": out.shape[0], "total": out.shape[0],
              "elapsed": round(time.perf_counter() - started, 3)})
    result = {
        "task": p.task.name, "method": name, "output": str(path), "frames": out.shape[0],
        "width": out.shape[3], "height": out.shape[2], "seconds": round(seconds, 4),
        "frames_per_second": round(out.shape[0] / seconds, 4) if seconds > 0 else None, "nfe": 0,
        "device": "cpu", "model": None, "peak_memory_mb": round(peak_memory_mb(torch.device("cpu")), 1),
        "data_consistency_residual": residual, "psnr": M.psnr(out, p.truth), "ssim": M.ssim(out, p.truth),
        "warping_error": M.warping_error(out, flows=p.flows),
    }
    write_json(path.with_name(f"{path.name}.metrics.json"), result)
    return result, out


class _RunProgress:
    """pipeline.restore's progress protocol, turned into evaluate events."""

    def __init__(self, on_event: Event, method: str, started: float, total: int):
        self._on_event, self._method, self._started, self._total = on_event, method, started, total

    def step(self) -> None:
        pass

    def frames(self, done: int, workers: dict | None = None) -> None:
        self._on_event({"event": "frame", "method": self._method, "frame": done, "total": self._total,
                        "elapsed": round(time.perf_counter() - self._started, 3)})

    def close(self) -> None:
        pass


def _solver_metrics(run: SolverRun, folder: Path, path: Path, on_event: Event, started: float,
                    input_name: str = "input.mkv") -> dict:
    cfg = dataclasses.replace(run.config, input=str(folder / input_name), output=str(path),
                              reference=str(folder / "reference.mkv"), metrics=None)
    reset_peak_memory()
    restore(cfg, progress_factory=lambda total: _RunProgress(on_event, run.name, started, total))
    return json.loads(path.with_name(f"{path.name}.metrics.json").read_text())


def _curves(out: torch.Tensor, p: Problem) -> dict:
    """What the per-run metrics JSON lacks: flicker, per-frame curves, realism (patch SWD per pyramid level,
    sharpness ratio) and PSNR where nothing was measured."""
    swd = realism.sliced_wasserstein(out, p.truth) if min(out.shape[-2:]) >= realism.PATCH else None
    row = {"swd": swd.mean if swd else None, "swd_per_level": swd.per_level if swd else [],
           "sharpness": realism.sharpness_ratio(out, p.truth),
           "flicker": M.flicker(out, p.truth, flows=p.flows),
           "psnr_per_frame": M.psnr_per_frame(out, p.truth), "ssim_per_frame": M.ssim_per_frame(out, p.truth),
           "warping_error_per_frame": M.warping_error_per_pair(out, flows=p.flows)}
    if p.unknown is not None:
        row["psnr_unknown"] = M.psnr_masked(out, p.truth, p.unknown)
    return row


def evaluate(cfg: EvaluateConfig, on_event: Event | None = None) -> dict:
    """Run every method of `cfg` and write the report folder; returns the report's metrics.json content."""
    on_event = on_event or (lambda event: None)
    final = cfg.output
    if final.exists() and not cfg.overwrite:
        raise OutputError(f"{final}: already exists (use --overwrite to replace it)")
    if not cfg.reference.exists():
        raise InputError(f"{cfg.reference}: no such file or folder")
    tmp = final.with_name(f".{final.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        report = _build(cfg, tmp, on_event)
        _relocate_paths(tmp, final)
        _replace_folder(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"{final}: cannot write the report ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    on_event({"event": "done", "report": str(final), "elapsed": report["seconds"]})
    return report


def _build(cfg: EvaluateConfig, folder: Path, on_event: Event) -> dict:
    from vidrestore import report as R  # matplotlib is imported only when a report is drawn

    started = time.perf_counter()
    p = make_problem(cfg, folder)
    methods = cfg.methods
    on_event({"event": "start", "methods": methods, "total": len(methods), "frames": p.truth.shape[0],
              "elapsed": round(time.perf_counter() - started, 3)})
    rows, outputs = {}, {}
    solvers = {s.name: s for s in cfg.solvers}
    for index, name in enumerate(methods):
        on_event({"event": "method", "method": name, "index": index, "total": len(methods),
                  "elapsed": round(time.perf_counter() - started, 3)})
        run_dir = folder / "runs" / name
        path = run_dir / "output.mkv"
        run_dir.mkdir(parents=True)
        if name in solvers:
            result = _solver_metrics(solvers[name], folder, path, on_event, started, p.input_name)
            out = read_clip(path)
        else:
            result, out = _baseline_metrics(name, p, path, on_event, started)
        frames = out.shape[0]
        rows[name] = {
            "kind": "solver" if name in solvers else "baseline",
            **{k: result.get(k) for k in ("psnr", "ssim", "warping_error", "data_consistency_residual", "seconds",
                                          "peak_memory_mb", "nfe", "model")},
            "seconds_per_frame": result["seconds"] / frames,
            **_curves(out, p),
            "output": f"runs/{name}/output.mkv", "metrics_file": f"runs/{name}/output.mkv.metrics.json",
        }
        if name not in solvers and (note := p.task.baseline_note(name)):
            rows[name]["note"] = note  # e.g. how a peer's x8 was composed from its x4 model
        outputs[name] = out
        on_event({"event": "method_done", "method": name, "index": index, "total": len(methods),
                  "psnr": rows[name]["psnr"], "seconds": result["seconds"],
                  "elapsed": round(time.perf_counter() - started, 3)})
    deg = cfg.base.degradation
    report = {
        "task": cfg.base.task, "reference": str(cfg.reference), "frames": p.truth.shape[0],
        "width": p.truth.shape[3], "height": p.truth.shape[2], "fps": str(p.fps),
        "degradation": p.task.summary(), "operator": p.operator.name, "sigma_y": deg.sigma_y,
        "input": p.input_name, "input_crf": cfg.input_crf,
        "unknown_header": p.task.unknown_header,
        "truth_warping_error": M.warping_error(p.truth, flows=p.flows),
        "methods": rows,
    }
    R.draw_plots(report, folder)
    R.draw_strip(p.truth, p.y, outputs, p.task.temporal_factor, p.unknown, folder / "strip.png")
    report["seconds"] = round(time.perf_counter() - started, 3)
    write_json(folder / "metrics.json", report)
    (folder / "index.md").write_text(R.index_markdown(report))
    return report


def _relocate_paths(tmp: Path, final: Path) -> None:
    """The per-run JSON files name paths inside the temporary folder; point them at the final one."""
    old, new = json.dumps(str(tmp.resolve()))[1:-1], json.dumps(str(final.resolve()))[1:-1]
    old_rel, new_rel = json.dumps(str(tmp))[1:-1], json.dumps(str(final))[1:-1]
    for path in tmp.rglob("*.json"):
        text = path.read_text()
        path.write_text(text.replace(old, new).replace(old_rel, new_rel))


def _replace_folder(tmp: Path, final: Path) -> None:
    if not final.exists():
        os.replace(tmp, final)
        return
    trash = final.with_name(f".{final.name}.old-{os.getpid()}")
    os.replace(final, trash)  # the old report stays whole until the new one is in place
    os.replace(tmp, final)
    if trash.is_dir():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink()
