"""Shared benchmark plumbing: clips from held-out stills, running the CLI, metrics, markdown tables."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import torch

from clips import camera_clip, quantize, wobble_clip
from stills import held_out_stills
from vidrestore import metrics as M
from vidrestore.io import VideoWriter, read_frames, to_tensor, to_uint8

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
    with VideoWriter(path, fps, clip.shape[3], clip.shape[2], overwrite=True) as writer:
        writer.write(to_uint8(clip))
    return path


def read_clip(path: Path) -> torch.Tensor:
    return torch.cat([to_tensor(b) for b in read_frames(path, 64)])


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


def score(out: torch.Tensor, truth: torch.Tensor) -> dict:
    """PSNR, SSIM, warping error (flow from the truth) and flicker (warping error of the error)."""
    return {"psnr": M.psnr(out, truth), "ssim": M.ssim(out, truth),
            "warping_error": M.warping_error(out, flow_source=truth), "flicker": M.flicker(out, truth)}


def mean_rows(rows: list[dict], keys: list[str]) -> dict:
    return {k: sum(r[k] for r in rows) / len(rows) for k in keys if all(r.get(k) is not None for r in rows)}


def markdown_table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e-2 and v != 0 else f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


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


def method_runs(presets: dict[str, list], model: str | None, sets=()) -> dict[str, list]:
    """CLI arguments of each method: `--model none`, then each diffusion preset with the chosen model."""
    model_args = ["--model", model] if model else []
    set_args = [a for s in sets for a in ("--set", s)]
    return {"--model none": ["--model", "none"]} | {k: model_args + v + set_args for k, v in presets.items()}


def run_classical(methods: dict, truth: torch.Tensor, scorer, only=None) -> dict[str, dict]:
    """Time and score in-process baselines: {name: zero-argument function returning a clip}."""
    from clips import quantize

    rows = {}
    for name, fn in methods.items():
        if only and name not in only:
            continue
        started = time.perf_counter()
        out = quantize(fn())
        rows[name] = scorer(out, truth) | {"sec_per_frame": (time.perf_counter() - started) / truth.shape[0]}
    return rows


def run_cli_methods(command: list, runs: dict[str, list], work: Path, truth: torch.Tensor, scorer,
                    only=None) -> dict[str, dict]:
    """Run each method through the CLI (`command`: task, input and task options) and score its lossless output."""
    rows = {}
    for name, extra in runs.items():
        if only and name not in only:
            continue
        out_path = work / f"{re.sub(r'[^A-Za-z0-9.-]+', '_', name).strip('_')}.mkv"
        m = run_cli([*command, "-o", out_path, *extra], out_path.with_suffix(".json"))
        rows[name] = scorer(read_clip(out_path), truth) | {
            "sec_per_frame": m["seconds"] / truth.shape[0], "nfe": m["nfe"], "seconds": m["seconds"],
            "peak_memory_mb": m["peak_memory_mb"], "residual": m["data_consistency_residual"]}
    return rows


def summary_rows(per_method: dict[str, list[dict]], keys: list[str]) -> list[list]:
    """One table row per method: the mean of each key over the clips."""
    return [[name] + [mean_rows(rows, keys).get(k, "—") for k in keys] for name, rows in per_method.items()]
