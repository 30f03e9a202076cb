#!/usr/bin/env python
"""Diagnostic for issue #5: how much of the x4 result depends on the optical flow?

Reruns the superres ablation's guided rows (independent and warped noise, λ = 1.5)
on the clips `bench_superres.py --scales 4` wrote, with the motion that drives the
warped noise and the guidance measured on another clip than the pipeline's initial
estimate. Run `bench_superres.py --scales 4` first: its references and outputs are
the inputs here.

    python scripts/probe_motion_source.py --source truth        # oracle: flow of the true frames
    python scripts/probe_motion_source.py --source first-pass   # flow of the default's output
    python scripts/probe_motion_source.py --source classical    # flow of the --model none output
    python scripts/probe_motion_source.py --source initial      # what the pipeline does

The motion is swapped by replacing `vidrestore.pipeline.window_motion` for the
run (a probe, not a feature: the pipeline has no way to take a user's flow).
The swapped source is blurred as `guidance.flow_blur` says, like the pipeline's
own (`--set guidance.flow_blur=0` measures it sharp).
Prints mean PSNR and warping error per variant; writes nothing under docs/.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from typer.testing import CliRunner

import vidrestore.pipeline as pipeline
from vidrestore.cli import app
from vidrestore.evaluate import read_clip

from benchlib import ROOT

SOURCES = {"truth": "reference.mkv", "first-pass": "runs/independent+eq1.5/output.mkv",
           "classical": "runs/none/output.mkv", "initial": None}
VARIANTS = ["independent+eq1.5:sampler.noise=independent,guidance.equivariance=1.5,guidance.sampling=bicubic",
            "warped+eq1.5:sampler.noise=warped,guidance.equivariance=1.5,guidance.sampling=bicubic"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", choices=sorted(SOURCES), default="truth")
    p.add_argument("--clips", nargs="+", default=["coffee-pan", "rocket-zoom", "chelsea-wobble"])
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_superres" / "superres" / "x4")
    p.add_argument("--set", dest="sets", action="append", default=[],
                   help="extra KEY=VALUE for every variant, e.g. guidance.flow_updates=0")
    args = p.parse_args()
    measured = pipeline.window_motion
    scores: dict[str, list[tuple[float, float]]] = {}
    for clip in args.clips:
        report = args.work / clip / "report"
        if SOURCES[args.source] is not None:
            source = read_clip(report / SOURCES[args.source])
            pipeline.window_motion = (lambda x, known=None, cuts=None, blur=0.0, s=source:
                                      measured(s if x.shape == s.shape else x, known, cuts, blur))
        out = ROOT / "runs" / "probe_motion_source" / args.source / clip
        cmd = ["evaluate", str(args.work / clip / "reference.mkv"), "--task", "superres", "-x", "4", "-o", str(out),
               "--methods", "diffusion", "--overwrite"]
        for v in VARIANTS:
            cmd += ["--variant", v + "".join("," + s for s in args.sets)]
        result = CliRunner().invoke(app, cmd)
        if result.exit_code != 0:
            raise SystemExit(result.output)
        for name, m in json.loads((out / "metrics.json").read_text())["methods"].items():
            scores.setdefault(name, []).append((m["psnr"], m["warping_error"]))
            print(f"{clip:16s} {name:18s} PSNR {m['psnr']:.2f}  warping error {m['warping_error']:.3e}", flush=True)
    for name, rows in scores.items():
        print(f"mean {name:18s} PSNR {sum(r[0] for r in rows) / len(rows):.2f}  "
              f"warping error {sum(r[1] for r in rows) / len(rows):.3e}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
