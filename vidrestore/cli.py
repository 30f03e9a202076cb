"""The `vidrestore` command line: thin Typer commands that hand a resolved config to pipeline.restore."""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from vidrestore.config import resolve_config
from vidrestore.errors import UsageError, VidrestoreError

app = typer.Typer(
    name="vidrestore", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    help="Restore videos with pretrained image diffusion models: superres, inpaint, deblur, interpolate.",
)
stderr = Console(stderr=True)
stdout = Console()

# options shared by every command
Input = Annotated[list[str], typer.Argument(help="Video file (any format ffmpeg reads) or folder of frames; several files, a glob or a folder of videos make a batch (-o is then a folder).", show_default=False)]
Output = Annotated[Optional[Path], typer.Option("-o", "--output", help="Output video (.mp4 H.264, .mkv lossless) or folder of PNG frames. Default: <input>.<task>.mp4")]
Preset = Annotated[Optional[str], typer.Option("--preset", help="Preset name (e.g. superres-fast) or YAML file. Default: the task's own.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key, e.g. --set sampler.eta=0.2 (repeatable).")]
Model = Annotated[Optional[str], typer.Option("--model", help="'none' (classical, fast), an embedded model name, a diffusers folder or hub id. Default: the embedded vr-pixel-small.")]
Steps = Annotated[Optional[int], typer.Option("--steps", help="Diffusion steps (NFE per frame).")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Random seed (results are reproducible per seed).")]
Device = Annotated[Optional[str], typer.Option("--device", help="auto, cpu or cuda[:i].")]
Dtype = Annotated[Optional[str], typer.Option("--dtype", help="fp32, fp16 or bf16 (CUDA only; fp32 on CPU).")]
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
Guidance = Annotated[Optional[float], typer.Option("--guidance", help="Stable Diffusion / SDXL: classifier-free guidance scale (default 1 = off; >1 costs two UNet passes).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the estimated memory and time per frame and the resolved config, then exit.")]


def _latent(micro_batch, vae, prompt, guidance) -> dict:
    return {"runtime.micro_batch": micro_batch, "latent.vae": vae, "latent.prompt": prompt,
            "latent.guidance_scale": guidance}


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

    def frames(self, done: int) -> None:
        elapsed = self._progress.tasks[0].elapsed or 0.0
        rate = f"{done / elapsed:.2f}/s" if elapsed > 0 else ""
        self._progress.update(self._task, completed=done, fps=rate)

    def close(self) -> None:
        self._progress.stop()


def _summary(result: dict) -> Table:
    table = Table(title="vidrestore", show_header=False)
    for key in ("task", "output", "frames", "width", "height", "fps", "seconds", "frames_per_second", "nfe",
                "model", "device", "peak_memory_mb", "data_consistency_residual", "psnr", "ssim", "warping_error"):
        if key in result and result[key] is not None:
            value = result[key]
            table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    return table


def _error(exc: VidrestoreError, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    stderr.print(f"vidrestore: error: {exc}", markup=False, highlight=False, soft_wrap=True)


def _run(task: str, preset: str | None, sets: list[str] | None, quiet: bool, debug: bool, inputs: list[str],
         dry_run: bool = False, **flags) -> None:
    from vidrestore.batch import expand_inputs, is_video_folder

    try:
        paths = expand_inputs(inputs)
        from vidrestore.pipeline import default_preset, estimate_run, restore  # heavy imports only when a command runs

        preset = preset or default_preset(task, flags.get("model"))
        config = resolve_config(task, preset, sets or [], flags | {"quiet": quiet, "input": str(paths[0])})
        if dry_run:  # the estimate and the resolved config, nothing else
            estimate = estimate_run(config)
            if not quiet:
                stderr.print(f"vidrestore: {estimate.line()}", markup=False, highlight=False, soft_wrap=True)
            print(json.dumps({"estimate": estimate.to_dict(), "config": config.to_dict()}, indent=2))
            return

        def show_estimate() -> None:
            if not quiet:
                _print_estimate(config, estimate_run, debug)

        if len(inputs) > 1 or len(paths) > 1 or is_video_folder(Path(inputs[0])):
            show_estimate()
            return _run_batch(config, paths, restore, quiet, debug)
        result = restore(config, progress_factory=None if quiet else ProgressDisplay, on_ready=show_estimate)
        for warning in result.get("warnings", []):
            stderr.print(f"vidrestore: warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    except VidrestoreError as exc:
        _error(exc, debug)
        raise typer.Exit(exc.exit_code)
    if not quiet:
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


def _run_batch(config, paths: list[Path], restore, quiet: bool, debug: bool) -> None:
    from vidrestore.batch import restore_batch
    from vidrestore.errors import BatchError

    def report(item) -> None:
        if item.status == "failed":
            stderr.print(f"vidrestore: error: {item.message}", markup=False, highlight=False, soft_wrap=True)
        elif not quiet:
            stderr.print(f"{item.status}: {item.input} -> {item.output}", markup=False, highlight=False)

    out_dir = Path(config.output) if config.output else Path("restored")
    items = restore_batch(config, paths, out_dir, restore, None if quiet else ProgressDisplay, report)
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


def _common(output, preset, set_, model, steps, seed, device, dtype, chunk, overlap, tile, noise, reference,
            metrics, fps, crf, no_audio, overwrite, no_resume) -> dict:
    return {
        "output": str(output) if output else None, "model": model, "sampler.steps": steps,
        "runtime.seed": seed, "runtime.device": device, "runtime.dtype": dtype, "runtime.chunk": chunk,
        "runtime.overlap": overlap, "runtime.tile": tile, "sampler.noise": noise,
        "reference": str(reference) if reference else None, "metrics": str(metrics) if metrics else None,
        "io.fps": fps, "io.crf": crf, "io.audio": False if no_audio else None,
        "io.overwrite": True if overwrite else None, "runtime.resume": False if no_resume else None,
    }


@app.command(epilog="Example: vidrestore superres clip.mp4 -x 4 -o clip_x4.mp4")
def superres(
    input: Input,
    scale: Annotated[int, typer.Option("-x", "--scale", help="Upscaling factor: 2, 3, 4 or 8.")] = 4,
    degradation: Annotated[Optional[str], typer.Option("--degradation", help="How the input was made from the unknown high-res video: box (area average) or bicubic.")] = None,
    output: Output = None, preset: Preset = None, set_: SetOpt = None, model: Model = None, steps: Steps = None,
    seed: Seed = None, device: Device = None, dtype: Dtype = None, chunk: Chunk = None, overlap: Overlap = None,
    tile: Tile = None, noise: Noise = None, reference: Reference = None, metrics: Metrics = None, fps: Fps = None,
    crf: Crf = None, no_audio: NoAudio = False, overwrite: Overwrite = False, no_resume: NoResume = False,
    micro_batch: MicroBatch = None, vae: Vae = None, prompt: Prompt = None, guidance: Guidance = None,
    dry_run: DryRun = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """Super-resolve a video by 2x-8x."""
    flags = _common(output, preset, set_, model, steps, seed, device, dtype, chunk, overlap, tile, noise, reference,
                    metrics, fps, crf, no_audio, overwrite, no_resume)
    _run("superres", preset, set_, quiet, debug, input, dry_run, **flags, **_latent(micro_batch, vae, prompt, guidance),
         **{"degradation.scale": scale, "degradation.downsample": degradation})


@app.command(epilog="Example: vidrestore inpaint clip.mp4 --box 40,30,64,48 -o clip_filled.mp4")
def inpaint(
    input: Input,
    mask: Annotated[Optional[Path], typer.Option("--mask", help="Mask image (every frame), video or folder (per frame); non-zero = missing.")] = None,
    box: Annotated[Optional[list[str]], typer.Option("--box", help="Missing rectangle X,Y,W,H in pixels (repeatable).")] = None,
    dilate: Annotated[Optional[int], typer.Option("--dilate", help="Grow the mask by N pixels.")] = None,
    output: Output = None, preset: Preset = None, set_: SetOpt = None, model: Model = None, steps: Steps = None,
    seed: Seed = None, device: Device = None, dtype: Dtype = None, chunk: Chunk = None, overlap: Overlap = None,
    tile: Tile = None, noise: Noise = None, reference: Reference = None, metrics: Metrics = None, fps: Fps = None,
    crf: Crf = None, no_audio: NoAudio = False, overwrite: Overwrite = False, no_resume: NoResume = False,
    micro_batch: MicroBatch = None, vae: Vae = None, prompt: Prompt = None, guidance: Guidance = None,
    dry_run: DryRun = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """Fill missing regions of a video."""
    flags = _common(output, preset, set_, model, steps, seed, device, dtype, chunk, overlap, tile, noise, reference,
                    metrics, fps, crf, no_audio, overwrite, no_resume)
    _run("inpaint", preset, set_, quiet, debug, input, dry_run, **flags, **_latent(micro_batch, vae, prompt, guidance),
         **{"degradation.mask": str(mask) if mask else None, "degradation.boxes": box or None,
            "degradation.dilate": dilate})


@app.command(epilog="Example: vidrestore deblur clip.mp4 --kernel gaussian:2 --temporal uniform:5")
def deblur(
    input: Input,
    kernel: Annotated[Optional[str], typer.Option("--kernel", help="gaussian:SIGMA | uniform:SIZE | motion:LENGTH,ANGLE | PATH (.npy or grayscale image).")] = None,
    temporal: Annotated[Optional[str], typer.Option("--temporal", help="Frame-averaging blur: uniform:K | gaussian:SIGMA.")] = None,
    sigma_y: Annotated[Optional[float], typer.Option("--sigma-y", help="Measurement noise std (pixel range 0-1).")] = None,
    output: Output = None, preset: Preset = None, set_: SetOpt = None, model: Model = None, steps: Steps = None,
    seed: Seed = None, device: Device = None, dtype: Dtype = None, chunk: Chunk = None, overlap: Overlap = None,
    tile: Tile = None, noise: Noise = None, reference: Reference = None, metrics: Metrics = None, fps: Fps = None,
    crf: Crf = None, no_audio: NoAudio = False, overwrite: Overwrite = False, no_resume: NoResume = False,
    micro_batch: MicroBatch = None, vae: Vae = None, prompt: Prompt = None, guidance: Guidance = None,
    dry_run: DryRun = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """Remove spatial and/or temporal (frame-averaging) blur."""
    flags = _common(output, preset, set_, model, steps, seed, device, dtype, chunk, overlap, tile, noise, reference,
                    metrics, fps, crf, no_audio, overwrite, no_resume)
    _run("deblur", preset, set_, quiet, debug, input, dry_run, **flags, **_latent(micro_batch, vae, prompt, guidance),
         **{"degradation.kernel": kernel, "degradation.temporal": temporal, "degradation.sigma_y": sigma_y})


@app.command(epilog="Example: vidrestore interpolate clip.mp4 -x 2 -o clip_2x_fps.mp4")
def interpolate(
    input: Input,
    factor: Annotated[int, typer.Option("-x", "--factor", help="Frame-rate factor: 2, 4 or 8. N frames become (N-1)*k+1.")] = 2,
    output: Output = None, preset: Preset = None, set_: SetOpt = None, model: Model = None, steps: Steps = None,
    seed: Seed = None, device: Device = None, dtype: Dtype = None, chunk: Chunk = None, overlap: Overlap = None,
    tile: Tile = None, noise: Noise = None, reference: Reference = None, metrics: Metrics = None, fps: Fps = None,
    crf: Crf = None, no_audio: NoAudio = False, overwrite: Overwrite = False, no_resume: NoResume = False,
    micro_batch: MicroBatch = None, vae: Vae = None, prompt: Prompt = None, guidance: Guidance = None,
    dry_run: DryRun = False, quiet: Quiet = False, debug: Debug = False,
) -> None:
    """Raise the frame rate k times by inventing the frames in between."""
    flags = _common(output, preset, set_, model, steps, seed, device, dtype, chunk, overlap, tile, noise, reference,
                    metrics, fps, crf, no_audio, overwrite, no_resume)
    _run("interpolate", preset, set_, quiet, debug, input, dry_run, **flags, **_latent(micro_batch, vae, prompt, guidance),
         **{"degradation.factor": factor})


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


def _json_progress(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


@app.command(epilog="Example: vidrestore evaluate truth.mkv --task superres -x 4 --presets superres,superres-fast "
                    "--noise shared,warped -o report/")
def evaluate(
    reference: Annotated[Path, typer.Argument(help="Ground-truth clip (video or folder of frames); it is degraded with the task's operator.", show_default=False)],
    task: Annotated[str, typer.Option("--task", help="superres, inpaint, deblur or interpolate.", show_default=False)],
    scale: Annotated[Optional[int], typer.Option("-x", "--scale", help="superres scale (2, 3, 4, 8; default 4) or interpolate factor (2, 4, 8; default 2).")] = None,
    degradation: Annotated[Optional[str], typer.Option("--degradation", help="superres: box or bicubic downsampling.")] = None,
    mask: Annotated[Optional[Path], typer.Option("--mask", help="inpaint: mask image, video or folder; non-zero = missing.")] = None,
    box: Annotated[Optional[list[str]], typer.Option("--box", help="inpaint: missing rectangle X,Y,W,H (repeatable).")] = None,
    kernel: Annotated[Optional[str], typer.Option("--kernel", help="deblur: gaussian:SIGMA | uniform:SIZE | motion:LENGTH,ANGLE | PATH.")] = None,
    temporal: Annotated[Optional[str], typer.Option("--temporal", help="deblur: frame averaging uniform:K | gaussian:SIGMA.")] = None,
    sigma_y: Annotated[Optional[float], typer.Option("--sigma-y", help="deblur: Gaussian measurement noise std added to the input (0-1 range).")] = None,
    methods: Annotated[Optional[list[str]], typer.Option("--methods", help="Comma-separated subset: the task's baselines, initial, none, diffusion (every diffusion run) or a run's name. Default: all.")] = None,
    presets: Annotated[Optional[list[str]], typer.Option("--presets", help="Diffusion presets to run, comma-separated (default: the task's own diffusion preset, e.g. interpolate-diffusion, unless --variant is given).")] = None,
    noise: Annotated[Optional[list[str]], typer.Option("--noise", help="Noise modes to run with each preset, comma-separated: independent, shared, warped.")] = None,
    variant: Annotated[Optional[list[str]], typer.Option("--variant", help="An extra diffusion run NAME:KEY=VALUE[,KEY=VALUE...] (key preset picks the preset; repeatable).")] = None,
    set_: SetOpt = None, model: Model = None, seed: Seed = None, device: Device = None,
    frames: Annotated[Optional[int], typer.Option("--frames", help="Use only the reference's first N frames.")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Report folder. Default: <reference>.evaluate/")] = None,
    overwrite: Overwrite = False,
    progress: Annotated[str, typer.Option("--progress", help="rich (bars on stderr), json (one JSON object per line on stdout, for CI) or none.")] = "rich",
    quiet: Quiet = False, debug: Debug = False,
) -> None:
    """Compare methods and settings on a reference clip: degrade it, restore it every way, write a report."""
    from vidrestore.evaluate import evaluate as run_evaluate, resolve_evaluate_config

    display = None
    try:
        if progress not in ("rich", "json", "none"):
            raise UsageError(f"--progress {progress!r}: choose rich, json or none")
        cfg = resolve_evaluate_config(
            reference, task, output, {
                "degradation.downsample": degradation, "degradation.mask": str(mask) if mask else None,
                "degradation.boxes": box or None, "degradation.kernel": kernel, "degradation.temporal": temporal,
                "degradation.sigma_y": sigma_y},
            scale=scale, methods=methods, presets=presets, noise=noise, variants=variant, sets=set_,
            flags={"model": model, "runtime.seed": seed, "runtime.device": device}, max_frames=frames,
            overwrite=overwrite)
        mode = "none" if quiet else progress
        display = EvaluateProgress() if mode == "rich" else None
        report = run_evaluate(cfg, display or (_json_progress if mode == "json" else None))
    except VidrestoreError as exc:
        if display:
            display.close()
        _error(exc, debug)
        raise typer.Exit(exc.exit_code)
    if display:
        display.close()
    if mode == "rich":
        from vidrestore.report import fmt, table_columns

        table = Table(title=f"vidrestore evaluate: {cfg.output}")
        columns = table_columns(report["task"])
        for header in ["method"] + [h for _, h in columns]:
            table.add_column(header, overflow="fold")  # narrow terminals wrap numbers instead of cutting them
        for name, row in report["methods"].items():
            table.add_row(name, *(fmt(row.get(key)) for key, _ in columns))
        stdout.print(table)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: one line on stderr and a documented exit code for every failure."""
    command = typer.main.get_command(app)
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = command.main(args=argv, prog_name="vidrestore", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except (KeyboardInterrupt, click.exceptions.Abort):
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
