"""Shared benchmark plumbing: clips from held-out stills, running the CLI, metrics, markdown tables."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import torch
from clips import camera_clip, wobble_clip
from stills import held_out_stills

from vidrestore.evaluate import read_clip, write_clip  # noqa: F401  (read_clip: the benchmarks' reader)
from vidrestore.io import quantize
from vidrestore.report import markdown_table  # noqa: F401  (the benchmarks' tables, as evaluate's)

ROOT = Path(__file__).resolve().parent.parent
BENCH_MD = ROOT / "docs" / "benchmarks.md"

# motions with known ground truth: camera paths (output pixels per frame) and a non-rigid wobble
MOTIONS = {
    "pan": (camera_clip, dict(pan=(1.25, 0.5))),
    "zoom": (camera_clip, dict(pan=(0.3, -0.2), zoom=0.01)),
    "wobble": (wobble_clip, dict(amplitude=3.0, speed=0.15)),
}


def make_clips(size: tuple[int, int], frames: int, names=None, motions=("pan", "zoom"), source_scale=1.5):
    """{clip name: HR clip (F,3,H,W) quantised to 8 bits} from the held-out stills."""
    stills = held_out_stills()
    clips = {}
    for still_name, still in stills.items():
        if names and still_name not in names:
            continue
        for motion in motions:
            make, kwargs = MOTIONS[motion]
            clip = make(still, size, frames, source_scale=source_scale, **kwargs)
            clips[f"{still_name}-{motion}"] = quantize(clip)
    return clips


def write_lossless(path: Path, clip: torch.Tensor, fps: Fraction = Fraction(24)) -> Path:
    return write_clip(path, clip, fps)


def run_cli(args: list, metrics_path: Path) -> dict:
    """Run the vidrestore CLI in a fresh process (so peak memory is its own) and return its metrics."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "vidrestore", *map(str, args), "--metrics", str(metrics_path), "--quiet",
           "--overwrite"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    result = json.loads(metrics_path.read_text())
    result["process_seconds"] = time.perf_counter() - started
    return result


def mean_rows(rows: list[dict], keys: list[str]) -> dict:
    return {k: sum(r[k] for r in rows) / len(rows) for k in keys if all(r.get(k) is not None for r in rows)}


def write_section(name: str, text: str, path: Path = BENCH_MD) -> None:
    """Replace (or append) the section between `<!-- name -->` markers in docs/benchmarks.md."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = path.read_text() if path.exists() else "# Benchmarks\n\nEvery table is written by a script in `scripts/`; the command is given with it.\n"
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    if begin in doc:
        doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, doc, flags=re.S)
    else:
        doc = doc.rstrip() + "\n\n" + block + "\n"
    path.write_text(doc)


def evaluate_command(reference: Path, task: str, task_args: list, report: Path, *, methods=None, presets=(),
                     noise=(), variants=(), sets=(), model=None) -> list[str]:
    """The `vidrestore evaluate` arguments for one clip (methods / presets / noise comma-joined as the CLI takes them)."""
    args = ["evaluate", reference, "--task", task, *task_args, "-o", report]
    for option, values in (("--methods", methods), ("--presets", presets), ("--noise", noise)):
        if values:
            args += [option, ",".join(values)]
    args += [a for v in variants for a in ("--variant", v)] + [a for s in sets for a in ("--set", s)]
    args += ["--model", model] if model else []
    return [str(a) for a in args]


def run_evaluate(args: list[str]) -> dict:
    """Run `vidrestore evaluate` in a fresh process (`--progress json`), echo each finished method, return metrics.json."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "vidrestore", *args, "--overwrite", "--progress", "json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "method_done":
            print(f"  {event['method']:28s} PSNR {event['psnr']:.2f}  {event['seconds']:.1f} s", flush=True)
    stderr = proc.stderr.read()
    if proc.wait() != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{stderr}")
    return json.loads((Path(args[args.index("-o") + 1]) / "metrics.json").read_text())


def evaluate_clips(clips: dict[str, torch.Tensor], task: str, task_args, work: Path, *, fps: Fraction = Fraction(24),
                   **options) -> tuple[dict[str, list[dict]], list[str]]:
    """Write each clip losslessly to `work/<clip>/reference.mkv`, run `vidrestore evaluate` on it, gather the reports.

    `task_args`: the task's options, a list, or a function (clip name, clip folder) -> list (e.g. to write a
    per-clip mask); `options`: evaluate_command's keywords. Returns ({method: [report row per clip]}, the
    commands run, as a user would type them); each row has the clip's `truth_warping_error` added.
    """
    per_method: dict[str, list[dict]] = {}
    commands = []
    for name, truth in clips.items():
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        reference = write_lossless(folder / "reference.mkv", truth, fps)
        extra = task_args(name, folder) if callable(task_args) else task_args
        args = evaluate_command(reference, task, extra, folder / "report", **options)
        shown = [a.replace(f"{ROOT}/", "") for a in args]  # repository-relative paths in the docs
        commands.append(" ".join(["vidrestore", *(shlex.quote(a) for a in shown)]))
        print(commands[-1], flush=True)
        report = run_evaluate(args)
        for method, row in report["methods"].items():
            per_method.setdefault(method, []).append(row | {"truth_warping_error": report["truth_warping_error"]})
    return per_method, commands


#: how the evaluate-based sections were measured
EVALUATE_NOTE = ("which runs `vidrestore evaluate` on each clip and averages the reports' `metrics.json` (CPU, 2 cores; "
                 "baselines are timed on their computation alone, `none` and diffusion as whole pipeline runs, "
                 "model loading and I/O included")


def evaluate_table(title: str, per_method: dict[str, list[dict]], commands: list[str], header: list[str],
                   keys: list[str], note: str = "") -> str:
    """A docs subsection: title, the first clip's evaluate command, the mean table and the truth's warping error."""
    return (f"### {title}\n\nPer clip: `{commands[0]}` (then the other clips).\n\n"
            + markdown_table(header, summary_rows(per_method, keys))
            + f"\n\nWarping error of the ground truth itself: {truth_warping_error(per_method):.5f}.{note}\n")


def truth_warping_error(per_method: dict[str, list[dict]]) -> float:
    """The mean over clips of the reference's own warping error."""
    rows = next(iter(per_method.values()))
    return sum(r["truth_warping_error"] for r in rows) / len(rows)


def summary_rows(per_method: dict[str, list[dict]], keys: list[str]) -> list[list]:
    """One table row per method: the mean of each key over the clips."""
    return [[name] + [mean_rows(rows, keys).get(k, "—") for k in keys] for name, rows in per_method.items()]
