"""The `vidrestore` command line: thin Typer commands that hand a resolved config to pipeline.restore."""
from __future__ import annotations

import inspect
import json
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from vidrestore.config import resolve_config
from vidrestore.errors import UsageError, VidrestoreError
from vidrestore.tasks import Task, TaskOption, get_task, task_names

stderr = Console(stderr=True)
stdout = Console()

# options shared by every command
Input = Annotated[list[str], typer.Argument(help="Video file (any format ffmpeg reads) or folder of frames; several files, a glob or a folder of videos make a batch (-o is then a folder).", show_default=False)]
Output = Annotated[Optional[str], typer.Option("-o", "--output", help="Output video (.mp4 H.264, .mkv lossless) or folder of PNG frames. Default: <input>.<task>.mp4")]
Preset = Annotated[Optional[str], typer.Option("--preset", help="Preset name (e.g. superres-fast) or YAML file. Default: the task's own.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key, e.g. --set sampler.eta=0.2 (repeatable).")]
Model = Annotated[Optional[str], typer.Option("--model", help="'none' (classical, fast), an embedded model name, a diffusers folder or hub id. Default: the embedded vr-pixel-small.")]
Steps = Annotated[Optional[int], typer.Option("--steps", help="Diffusion steps (NFE per frame).")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Random seed (results are reproducible per seed).")]
Device = Annotated[Optional[str], typer.Option("--device", help="auto, cpu or cuda[:i].")]
Dtype = Annotated[Optional[str], typer.Option("--dtype", help="The prior's precision: auto (bf16 on a CPU with native bf16, else fp32), fp32, fp16 or bf16 "
                                                "(fp16: CUDA only; latent priors: fp32 on CPU).")]
Chunk = Annotated[Optional[int], typer.Option("--chunk", help="Frames restored together as one problem.")]
Overlap = Annotated[Optional[int], typer.Option("--overlap", help="Frames shared (and cross-faded) by consecutive chunks.")]
Tile = Annotated[Optional[int], typer.Option("--tile", help="Spatial tile size for the denoiser (default: automatic from free memory).")]
Noise = Annotated[Optional[str], typer.Option("--noise", help="independent, shared (batch-consistent) or warped (moves with the optical flow).")]
Reference = Annotated[Optional[Path], typer.Option("--reference", help="Ground-truth clip: adds PSNR, SSIM and warping error to the metrics.")]
Metrics = Annotated[Optional[Path], typer.Option("--metrics", help="Metrics JSON path. Default: <output>.metrics.json (or metrics.json inside an output folder).")]
Fps = Annotated[Optional[float], typer.Option("--fps", help="Frame rate of frame-folder input (default 25).")]
Crf = Annotated[Optional[int], typer.Option("--crf", help="H.264 quality for .mp4 output (default 18; lower is better).")]
NoAudio = Annotated[bool, typer.Option("--no-audio", help="Drop the input's audio streams.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output.")]
NoResume = Annotated[bool, typer.Option("--no-resume", help="Start over instead of continuing an interrupted run from <output>.partial/.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary (for scripts).")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
MicroBatch = Annotated[Optional[int], typer.Option("--micro-batch", help="Frames per network call (memory vs speed); the result does not change.")]
Vae = Annotated[Optional[str], typer.Option("--vae", help="Stable Diffusion / SDXL: another VAE (folder or hub id), e.g. madebyollin/sdxl-vae-fp16-fix for fp16.")]
Prompt = Annotated[Optional[str], typer.Option("--prompt", help="Stable Diffusion / SDXL: text conditioning (default: the empty prompt).")]
NegativePrompt = Annotated[Optional[str], typer.Option("--negative-prompt", help="Stable Diffusion / SDXL: what classifier-free guidance steers away from (with --guidance > 1; default: the empty prompt).")]
Guidance = Annotated[Optional[float], typer.Option("--guidance", help="Stable Diffusion / SDXL: classifier-free guidance scale (default 1 = off; >1 costs two UNet passes).")]
AdaptSteps = Annotated[Optional[int], typer.Option("--adapt", metavar="STEPS", help="Fine-tune a copy of the pixel prior for STEPS steps on the input's own frames (own scale and zoomed out) before restoring; low-rank adapters, cached by the input's hash so a rerun or resume does not repeat it. Default 0: off.")]
AdaptImages = Annotated[Optional[Path], typer.Option("--adapt-images", help="With --adapt: a folder of your own stills of the same scene or subject, mixed into the fine-tuning.")]
AdaptCache = Annotated[Optional[Path], typer.Option("--adapt-cache", help="Folder for adapted models (default: $XDG_CACHE_HOME/vidrestore/adapt, else ~/.cache/vidrestore/adapt).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the estimated memory and time per frame and the resolved config, then exit.")]
Strict = Annotated[bool, typer.Option("--strict", help="Treat errors ffmpeg reports while decoding the input (a corrupt or truncated file) as fatal (exit 3) instead of a warning.")]


class ProgressDisplay:
    """A rich progress bar over output frames, on stderr."""

    def __init__(self, total: int):
        self._progress = Progress(TextColumn("[bold]restoring"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("frames {task.fields[fps]}"), TimeElapsedColumn(),
                                  TimeRemainingColumn(), console=stderr, transient=False)
        self._task = self._progress.add_task("restore", total=total, fps="")
        self._progress.start()

    def step(self) -> None:
        self._progress.refresh()

    def frames(self, done: int, workers: dict | None = None) -> None:
        elapsed = self._progress.tasks[0].elapsed or 0.0
        rate = f"{done / elapsed:.2f}/s" if elapsed > 0 else ""
        self._progress.update(self._task, completed=done, fps=rate)

    def close(self) -> None:
        self._progress.stop()


class JsonProgress:
    """Progress as one JSON object per line on stdout (for scripts and CI): frames, rate, ETA, worker state."""

    def __init__(self, total: int):
        self._total, self._started = total, time.perf_counter()
        self.emit({"event": "start", "total": total})

    @staticmethod
    def emit(event: dict) -> None:
        sys.stdout.write(json.dumps(event, default=str) + "\n")
        sys.stdout.flush()

    def step(self) -> None:
        pass

    def frames(self, done: int, workers: dict | None = None) -> None:
        elapsed = time.perf_counter() - self._started
        rate = done / elapsed if elapsed > 0 else None
        eta = (self._total - done) / rate if rate else None
        self.emit({"event": "progress", "frames": done, "total": self._total, "elapsed": round(elapsed, 3),
                    "frames_per_second": round(rate, 4) if rate else None,
                    "eta_seconds": round(eta, 1) if eta is not None else None, "workers": dict(workers or {})})

    def close(self) -> None:
        self.emit({"event": "end", "elapsed": round(time.perf_counter() - self._started, 3)})


def _progress_factory(quiet: bool, mode: str | None):
    """What shows a run's progress: rich bars on stderr (default), JSON lines on stdout, or nothing."""
    mode = mode or "rich"
    if mode not in ("rich", "json", "none"):
        raise UsageError(f"--progress {mode!r}: choose rich, json or none")
    if mode == "json":
        return JsonProgress
    return None if quiet or mode == "none" else ProgressDisplay


def _summary(result: dict) -> Table:
    table = Table(title="vidrestore", show_header=False)
    for key in ("task", "output", "frames", "width", "height", "fps", "seconds", "frames_per_second", "nfe",
                "model", "device", "peak_memory_mb", "data_consistency_residual", "psnr", "ssim", "warping_error"):
        if key in result and result[key] is not None:
            value = result[key]
            table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    adapt = result.get("adapt")
    if adapt:  # how long adaptation took (a cache hit: when it ran)
        table.add_row("adapt", f"{adapt['steps']} steps, cached (trained in {adapt['train_seconds']:.1f} s)"
                      if adapt["cached"] else f"{adapt['steps']} steps in {adapt['train_seconds']:.1f} s")
    return table


def _error(exc: VidrestoreError, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    stderr.print(f"vidrestore: error: {exc}", markup=False, highlight=False, soft_wrap=True)


def _warn(message: str) -> None:
    stderr.print(f"vidrestore: warning: {message}", markup=False, highlight=False, soft_wrap=True)


def check_output_arg(output: str | None) -> None:
    """UsageError for an -o that can never be an output: empty, or the current folder or one above it
    (with --overwrite the output replaces that folder)."""
    if output is None:
        return
    if not output.strip():
        raise UsageError(f"-o {output!r}: empty output path; name a video file or a new folder")
    try:
        resolved, cwd = Path(output).expanduser().resolve(), Path.cwd().resolve()
    except (OSError, RuntimeError):  # e.g. a symlink loop: the writer reports it in its own words
        return
    if resolved == cwd or resolved in cwd.parents:
        where = "the current folder" if resolved == cwd else "a folder that holds the current folder"
        raise UsageError(f"-o {output}: is {where}; name a video file or a new folder")


def _run(task: str, preset: str | None, sets: list[str] | None, quiet: bool, debug: bool, inputs: list[str],
         dry_run: bool = False, progress: str | None = None, **flags) -> None:
    from vidrestore.batch import expand_inputs, is_video_folder

    try:
        check_output_arg(flags.get("output"))
        factory = _progress_factory(quiet, progress)
        paths = expand_inputs(inputs)
        from vidrestore.config import default_preset
        from vidrestore.costs import estimate_run
        from vidrestore.pipeline import restore  # heavy imports only when a command runs

        preset = preset or default_preset(task, flags.get("model"))
        config = resolve_config(task, preset, sets or [], flags | {"quiet": quiet, "input": str(paths[0])})
        if dry_run:  # the estimate and the resolved config, nothing else
            estimate = estimate_run(config)
            if not quiet:
                stderr.print(f"vidrestore: {estimate.line()}", markup=False, highlight=False, soft_wrap=True)
            print(json.dumps({"estimate": estimate.to_dict(), "config": config.to_dict()}, indent=2))
            return

        shown: list[str] = []

        def show_estimate(notes: list[str] = ()) -> None:
            for note in notes:  # known before the model loads, e.g. the overlap used when it differs from the one asked
                _warn(note)
                shown.append(note)
            if not quiet:
                _print_estimate(config, estimate_run, debug)

        if len(inputs) > 1 or len(paths) > 1 or is_video_folder(Path(inputs[0])):
            estimated: list[bool] = []

            def restore_one(one, **kwargs) -> dict:  # after the batch's own checks: each file's notes, one estimate
                def ready(notes: list[str]) -> None:
                    for note in notes:
                        _warn(note)
                    if not estimated and not quiet:
                        estimated.append(True)
                        _print_estimate(config, estimate_run, debug)
                return restore(one, **kwargs, on_ready=ready)

            return _run_batch(config, paths, restore_one, quiet, debug, factory)
        result = restore(config, progress_factory=factory, on_ready=show_estimate)
        for warning in result.get("warnings", []):
            if warning not in shown:
                _warn(warning)  # found while restoring (e.g. decode errors in the input)
    except VidrestoreError as exc:
        _error(exc, debug)
        raise typer.Exit(exc.exit_code)
    if progress == "json":  # stdout holds JSON lines only: the summary is the last one
        JsonProgress.emit({"event": "result", **result})
    elif not quiet:
        stdout.print(_summary(result))


def _print_estimate(config, estimate_run, debug: bool) -> None:
    """The estimate before a run; a run never fails because of its estimate (restore reports real problems)."""
    try:
        line = estimate_run(config).line()
    except Exception:  # noqa: BLE001 - e.g. a model that restore will report in its own words
        if debug:
            traceback.print_exc()
        return
    stderr.print(f"vidrestore: {line}", markup=False, highlight=False, soft_wrap=True)


def _run_batch(config, paths: list[Path], restore, quiet: bool, debug: bool, progress_factory) -> None:
    from vidrestore.batch import restore_batch
    from vidrestore.errors import BatchError

    def report(item) -> None:
        if item.status == "failed":
            stderr.print(f"vidrestore: error: {item.message}", markup=False, highlight=False, soft_wrap=True)
        elif not quiet:
            stderr.print(f"{item.status}: {item.input} -> {item.output}", markup=False, highlight=False)

    out_dir = Path(config.output) if config.output else Path("restored")
    items = restore_batch(config, paths, out_dir, restore, progress_factory, report)
    if not quiet:
        table = Table(title=f"vidrestore batch: {out_dir}")
        for column in ("input", "status", "seconds", "PSNR", "residual"):
            table.add_column(column)
        for item in items:
            m = item.metrics or {}
            table.add_row(str(item.input), item.status, f"{item.seconds:.1f}",
                          f"{m['psnr']:.2f}" if m.get("psnr") is not None else "",
                          f"{m['data_consistency_residual']:.2e}" if m else "")
        stdout.print(table)
    failed = [item for item in items if item.status == "failed"]
    if failed:
        _error(BatchError(f"{len(failed)} of {len(items)} files failed"), False)
        raise typer.Exit(BatchError.exit_code)


ProgressOpt = Annotated[Optional[str], typer.Option("--progress", help="rich (a bar on stderr, default), json (one JSON object per line on stdout: frames, rate, ETA, each worker's window) or none.")]
Workers = Annotated[Optional[int], typer.Option("--workers", help="Solve windows in N worker processes (each loads the model; --device cuda spreads them over the GPUs). Default: in this process.")]
Ray = Annotated[Optional[str], typer.Option("--ray", help="Solve windows on a Ray cluster: local (start one here), auto (join this machine's) or an address. Needs vidrestore[ray].")]
SigmaY = Annotated[Optional[str], typer.Option("--sigma-y", help="Measurement noise std of the input (pixel range 0-1, e.g. 0.02), or 'auto': estimated from the input (default; a clean 8-bit input estimates to 0). Reported in the metrics as sigma_y.")]
Deblock = Annotated[Optional[str], typer.Option("--deblock", help="Remove compression artifacts (blocks, ringing, lost detail) from the input before solving: on, off, or auto (default: on for superres when the input's codec is lossy, such as H.264, HEVC, VP9, AV1 or JPEG frames; off for the other tasks, where it was measured to hurt good-quality inputs). Reported in the metrics as deblock.")]

#: the options every task command has, after the input and the task's own options: (parameter, annotation)
COMMON = (
    ("output", Output), ("preset", Preset), ("set_", SetOpt), ("model", Model), ("steps", Steps), ("seed", Seed),
    ("device", Device), ("dtype", Dtype), ("chunk", Chunk), ("overlap", Overlap), ("tile", Tile), ("noise", Noise),
    ("sigma_y", SigmaY), ("deblock", Deblock), ("reference", Reference), ("metrics", Metrics), ("fps", Fps), ("crf", Crf),
    ("no_audio", NoAudio), ("overwrite", Overwrite), ("no_resume", NoResume), ("micro_batch", MicroBatch),
    ("vae", Vae), ("prompt", Prompt), ("negative_prompt", NegativePrompt), ("guidance", Guidance),
    ("workers", Workers), ("ray", Ray),
    ("adapt", AdaptSteps), ("adapt_images", AdaptImages), ("adapt_cache", AdaptCache),
    ("progress", ProgressOpt), ("strict", Strict), ("dry_run", DryRun),
    ("quiet", Quiet), ("debug", Debug),
)
SWITCHES = {"no_audio", "overwrite", "no_resume", "strict", "dry_run", "quiet", "debug"}


def _option_value(option: TaskOption, value):
    """A task option's CLI value as its config value (None: not given)."""
    if value is None or (option.multiple and not value):
        return None
    if option.multiple:
        return [str(v) for v in value]
    return str(value) if option.type is Path else value


def _option_annotation(option: TaskOption, flags: tuple[str, ...] | None = None, help: str | None = None):
    kind = list[str] if option.multiple else (Path if option.type is Path else option.type)
    return Annotated[Optional[kind], typer.Option(*(flags or option.flags), help=help or option.help)]


def _with_signature(function, params: list[inspect.Parameter], name: str, doc: str):
    """Give `function(**kwargs)` the signature Typer reads its options from."""
    function.__signature__ = inspect.Signature(params)
    function.__annotations__ = {p.name: p.annotation for p in params}
    function.__name__, function.__doc__ = name, doc
    return function


def _task_command(task: type[Task]):
    """The `vidrestore <task>` command: the input, the task's own options, then the common ones."""
    own = {f"task_{o.field}": o for o in task.cli_options}

    def command(**kw) -> None:
        flags = _common(kw) | {f"degradation.{o.field}": _option_value(o, kw[p]) for p, o in own.items()}
        _run(task.name, kw["preset"], kw["set_"], kw["quiet"], kw["debug"], kw["input"], kw["dry_run"],
             progress=kw["progress"], **flags)

    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("input", keyword, annotation=Input)]
    params += [inspect.Parameter(p, keyword, default=None, annotation=_option_annotation(o)) for p, o in own.items()]
    params += [inspect.Parameter(p, keyword, default=False if p in SWITCHES else None, annotation=a)
               for p, a in COMMON]
    return _with_signature(command, params, task.name, task.help)


def _common(kw: dict) -> dict:
    return {
        "output": kw["output"], "model": kw["model"], "sampler.steps": kw["steps"],
        "runtime.seed": kw["seed"], "runtime.device": kw["device"], "runtime.dtype": kw["dtype"],
        "runtime.chunk": kw["chunk"], "runtime.overlap": kw["overlap"], "runtime.tile": kw["tile"],
        "sampler.noise": kw["noise"], "degradation.sigma_y": kw["sigma_y"],
        "degradation.deblock": kw["deblock"], "reference": str(kw["reference"]) if kw["reference"] else None,
        "metrics": str(kw["metrics"]) if kw["metrics"] else None, "io.fps": kw["fps"], "io.crf": kw["crf"],
        "io.audio": False if kw["no_audio"] else None, "io.overwrite": True if kw["overwrite"] else None,
        "runtime.resume": False if kw["no_resume"] else None, "runtime.micro_batch": kw["micro_batch"],
        "runtime.workers": kw["workers"], "runtime.ray": kw["ray"], "latent.vae": kw["vae"], "latent.prompt": kw["prompt"],
        "latent.negative_prompt": kw["negative_prompt"], "latent.guidance_scale": kw["guidance"],
        "io.strict": True if kw["strict"] else None, "adapt.steps": kw["adapt"],
        "adapt.images": str(kw["adapt_images"]) if kw["adapt_images"] else None,
        "adapt.cache": str(kw["adapt_cache"]) if kw["adapt_cache"] else None,
    }


class EvaluateProgress:
    """evaluate's events as a rich bar over methods and one over the current method's frames, on stderr."""

    def __init__(self):
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=stderr, transient=False)
        self._methods = self._frames = None

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "start":
            self._progress.start()
            self._methods = self._progress.add_task("methods", total=event["total"])
        elif kind == "method":
            if self._frames is not None:
                self._progress.remove_task(self._frames)
            self._frames = self._progress.add_task(event["method"], total=None)
        elif kind == "frame":
            self._progress.update(self._frames, completed=event["frame"], total=event["total"])
        elif kind == "method_done":
            self._progress.advance(self._methods)

    def close(self) -> None:
        self._progress.stop()


def _evaluate_option_groups() -> dict[str, list[TaskOption]]:
    """Every task's own options for `evaluate`, grouped by their first flag (-x is superres' scale and
    interpolate's factor)."""
    groups: dict[str, list[TaskOption]] = {}
    for name in task_names():
        for option in get_task(name).cli_options:
            groups.setdefault(option.flags[0], []).append(option)
    return groups


def _evaluate_degradation(task: str, groups: dict[str, list[TaskOption]], values: dict) -> dict:
    """The chosen task's options from evaluate's flags; a flag of another task is a usage error."""
    own = {o for o in get_task(task).cli_options}
    degradation = {}
    for flag, options in groups.items():
        value = values[flag]
        if value is None or value == []:
            continue
        option = next((o for o in options if o in own), None)
        if option is None:
            owners = ", ".join(n for n in task_names() if set(get_task(n).cli_options) & set(options))
            raise UsageError(f"{flag} applies to {owners}, not {task}")
        degradation[f"degradation.{option.field}"] = _option_value(option, value)
    return degradation


EVALUATE_OPTIONS = (
    ("methods", Annotated[Optional[list[str]], typer.Option("--methods", help="Comma-separated subset: the task's baselines, initial, none, diffusion (every diffusion run) or a run's name. Default: all.")]),
    ("presets", Annotated[Optional[list[str]], typer.Option("--presets", help="Diffusion presets to run, comma-separated (default: the task's own diffusion preset, e.g. interpolate-diffusion, unless --variant is given).")]),
    ("noise", Annotated[Optional[list[str]], typer.Option("--noise", help="Noise modes to run with each preset, comma-separated: independent, shared, warped.")]),
    ("variant", Annotated[Optional[list[str]], typer.Option("--variant", help="An extra diffusion run NAME:KEY=VALUE[,KEY=VALUE...] (key preset picks the preset; repeatable).")]),
    ("sigma_y", Annotated[Optional[str], typer.Option("--sigma-y", help="Gaussian measurement noise std added to the degraded input (0-1 range), told to the solvers; 'auto' (default): none added, the solvers estimate it.")]),
    ("input_crf", Annotated[Optional[int], typer.Option("--input-crf", help="Write the degraded input through libx264 at this CRF (input.mp4, yuv420p), as footage arrives; every method gets the decoded frames. Default: lossless input.mkv.")]),
    ("set_", SetOpt), ("model", Model), ("seed", Seed), ("device", Device),
    ("frames", Annotated[Optional[int], typer.Option("--frames", help="Use only the reference's first N frames.")]),
    ("output", Annotated[Optional[Path], typer.Option("-o", "--output", help="Report folder. Default: <reference>.evaluate/")]),
    ("overwrite", Overwrite),
    ("progress", Annotated[str, typer.Option("--progress", help="rich (bars on stderr), json (one JSON object per line on stdout, for CI) or none.")]),
    ("quiet", Quiet), ("debug", Debug),
)


def _evaluate_command():
    """`vidrestore evaluate`: the reference, --task, every task's own options, then evaluate's."""
    groups = _evaluate_option_groups()
    params_of = {f"task_option_{i}": flag for i, flag in enumerate(groups)}

    def evaluate(**kw) -> None:
        from vidrestore.evaluate import evaluate as run_evaluate
        from vidrestore.evaluate import resolve_evaluate_config

        display = None
        try:
            if kw["progress"] not in ("rich", "json", "none"):
                raise UsageError(f"--progress {kw['progress']!r}: choose rich, json or none")
            degradation = _evaluate_degradation(kw["task"], groups, {f: kw[p] for p, f in params_of.items()})
            cfg = resolve_evaluate_config(
                kw["reference"], kw["task"], kw["output"], degradation | {"degradation.sigma_y": kw["sigma_y"]},
                methods=kw["methods"], presets=kw["presets"], noise=kw["noise"], variants=kw["variant"],
                sets=kw["set_"], flags={"model": kw["model"], "runtime.seed": kw["seed"],
                                        "runtime.device": kw["device"]},
                max_frames=kw["frames"], overwrite=kw["overwrite"], input_crf=kw["input_crf"])
            mode = "none" if kw["quiet"] else kw["progress"]
            display = EvaluateProgress() if mode == "rich" else None
            report = run_evaluate(cfg, display or (JsonProgress.emit if mode == "json" else None))
        except VidrestoreError as exc:
            if display:
                display.close()
            _error(exc, kw["debug"])
            raise typer.Exit(exc.exit_code)
        if display:
            display.close()
        if mode == "rich":
            _print_report(report, cfg.output)

    keyword = inspect.Parameter.KEYWORD_ONLY
    reference = Annotated[Path, typer.Argument(help="Ground-truth clip (video or folder of frames); it is degraded with the task's operator.", show_default=False)]
    task = Annotated[str, typer.Option("--task", help=f"{', '.join(task_names())}.", show_default=False)]
    params = [inspect.Parameter("reference", keyword, annotation=reference),
              inspect.Parameter("task", keyword, annotation=task)]
    for p, flag in params_of.items():
        options = groups[flag]
        flags = tuple(dict.fromkeys(f for o in options for f in o.flags))
        owners = "; ".join(f"{n}: {o.help}" for n in task_names() for o in get_task(n).cli_options if o in options)
        params.append(inspect.Parameter(p, keyword, default=None,
                                        annotation=_option_annotation(options[0], flags, owners)))
    defaults = {"progress": "rich", **{s: False for s in SWITCHES}}
    params += [inspect.Parameter(p, keyword, default=defaults.get(p), annotation=a) for p, a in EVALUATE_OPTIONS]
    return _with_signature(evaluate, params, "evaluate", "Compare methods and settings on a reference clip: "
                           "degrade it, restore it every way, write a report.")


def _print_report(report: dict, output: Path) -> None:
    from vidrestore.report import fmt, table_columns

    table = Table(title=f"vidrestore evaluate: {output}")
    columns = table_columns(report)
    table.add_column("method", no_wrap=True)  # a method's name stays whole (it is what a user types)
    for header in [h for _, h in columns]:
        table.add_column(header, overflow="fold")  # narrow terminals wrap numbers instead of cutting them
    for name, row in report["methods"].items():
        table.add_row(name, *(fmt(row.get(key)) for key, _ in columns))
    stdout.print(table)


def build_app() -> typer.Typer:
    """The Typer app: one command per registered task, then `evaluate`."""
    app = typer.Typer(
        name="vidrestore", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
        help=f"Restore videos with pretrained image diffusion models: {', '.join(task_names())}.",
    )
    for name in task_names():
        task = get_task(name)
        app.command(name=name, epilog=f"Example: {task.example}" if task.example else None)(_task_command(task))
    app.command(name="evaluate", epilog="Example: vidrestore evaluate truth.mkv --task superres -x 4 "
                "--presets superres,superres-fast --noise shared,warped -o report/")(_evaluate_command())
    return app


app = build_app()


def _click_exceptions():
    """The exceptions module of the click that Typer parses with: Typer 0.2x vendors click as
    `typer._click` (its exceptions are no longer click's); older Typer uses click itself."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def _usage_line(exc) -> str:
    """click's own message for a usage error, as one line, with where to find help."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None) or "vidrestore"
    return f"vidrestore: error: {message} (see '{command} --help')"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one line on stderr and a documented exit code for every failure."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # deprecation notices of the hub client (e.g. `local_dir_use_symlinks`) say nothing to a user of this
    # command; problems with a model are reported as one line by vidrestore itself
    warnings.filterwarnings("ignore", category=UserWarning, module=r"huggingface_hub(\.|$)")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(huggingface_hub|diffusers)(\.|$)")
    command = typer.main.get_command(app)
    debug = "--debug" in argv
    clicks = _click_exceptions()
    exits = tuple({typer.Exit, getattr(clicks, "Exit", typer.Exit)})  # Typer 0.2x: its own Exit / Abort
    aborts = tuple({typer.Abort, getattr(clicks, "Abort", typer.Abort)})
    try:
        code = command.main(args=argv, prog_name="vidrestore", standalone_mode=False)
        if not argv:  # the help was printed (click < 8.2 returns 0 here): still a usage error
            code = 2
    except clicks.UsageError as exc:  # a bad option or value, a missing argument, no arguments: exit 2
        if not argv or isinstance(exc, getattr(clicks, "NoArgsIsHelpError", ())):
            if exc.format_message().strip():  # the help (Typer 0.2x has printed it already)
                exc.show()
        else:
            stderr.print(_usage_line(exc), markup=False, highlight=False, soft_wrap=True)
        code = exc.exit_code or 2
    except clicks.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except exits as exc:
        code = exc.exit_code
    except (KeyboardInterrupt, *aborts):
        code = 130
    except Exception as exc:  # a bug: one line unless --debug
        if debug:
            traceback.print_exc()
        stderr.print(f"vidrestore: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
                     markup=False, highlight=False, soft_wrap=True)
        code = 1
    if code == 130:  # Ctrl-C (Typer returns it as exit code 130)
        stderr.print("vidrestore: interrupted", markup=False)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
