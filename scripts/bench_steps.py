"""Speed per preset (issue 21 items 1-2): the prior in fp32 against `--dtype auto` (bf16 on a CPU with native
bf16), and PSNR against the number of sampling steps at the same start t.

    python scripts/bench_steps.py                               # every pixel preset, writes docs/benchmarks.md
    python scripts/bench_steps.py --presets superres --steps 20 12 8 6 4 --no-write

Each clip is one `vidrestore evaluate` run with one `--variant` per (steps, dtype): the preset in fp32 at its own
steps (the reference row), then `auto` at each step count up to the preset's own. Rows are means over the clips;
"x fp32" is the fp32 row's seconds per frame over this row's (whole pipeline runs: model load, I/O, CG, flow).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from benchlib import ROOT, evaluate_clips, make_clips, markdown_table, write_section

# preset -> (task, task arguments, (H, W), frames, clip names); the clips and sizes of each task's own benchmark
SETUPS = {
    "superres": ("superres", ["-x", "4"], (128, 160), 8, ["chelsea-wobble", "coffee-pan", "rocket-zoom"]),
    "deblur": ("deblur", ["--kernel", "gaussian:2"], (96, 128), 12, ["coffee-pan", "rocket-zoom"]),
    "inpaint": ("inpaint", ["--box", "44,33,40,30"], (96, 128), 12, ["coffee-pan", "rocket-zoom"]),
    "denoise": ("denoise", ["--sigma", f"{25 / 255:.6f}"], (64, 64), 8, ["coffee-pan", "rocket-pan"]),
    "interpolate": ("interpolate", ["-x", "2"], (96, 128), 17, ["coffee-pan", "rocket-zoom"]),
}
PRESETS = ["superres", "superres-fast", "superres-fidelity", "deblur", "deblur-fast", "inpaint", "inpaint-fast",
           "denoise", "denoise-fast", "interpolate-diffusion"]
HEADER = ["preset", "steps", "dtype", "PSNR dB", "SSIM", "warping error", "s / frame", "x fp32"]


def preset_steps(preset: str) -> int:
    return yaml.safe_load((ROOT / "vidrestore" / "presets" / f"{preset}.yaml").read_text())["sampler"]["steps"]


def setup_of(preset: str):
    return next(v for k, v in SETUPS.items() if preset.startswith(k))


def variants(preset: str, steps: list[int]) -> list[tuple[str, int, str]]:
    own = preset_steps(preset)
    counts = [own] + [s for s in steps if s < own]
    return [(f"{preset}-{own}-fp32", own, "fp32")] + [(f"{preset}-{s}-auto", s, "auto") for s in counts]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=PRESETS)
    ap.add_argument("--steps", nargs="+", type=int, default=[20, 12, 10, 8, 6, 4])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench_steps")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    for preset in args.presets:
        task, task_args, size, frames, names = setup_of(preset)
        clips = {k: v for k, v in make_clips(size, frames, motions=("pan", "zoom", "wobble")).items() if k in names}
        runs = variants(preset, args.steps)
        specs = [f"{name}:preset={preset},sampler.steps={steps},runtime.dtype={dtype}" for name, steps, dtype in runs]
        per_method, commands = evaluate_clips(clips, task, task_args, args.work / preset, methods=["diffusion"],
                                              variants=specs)
        base = None
        for name, steps, dtype in runs:
            got = per_method[name]
            mean = {k: sum(r[k] for r in got) / len(got) for k in ("psnr", "ssim", "warping_error",
                                                                     "seconds_per_frame")}
            base = base or mean["seconds_per_frame"]
            rows.append([preset, steps, dtype, f"{mean['psnr']:.2f}", f"{mean['ssim']:.3f}",
                         f"{mean['warping_error']:.3g}", f"{mean['seconds_per_frame']:.3f}",
                         f"{base / mean['seconds_per_frame']:.2f}"])
            print(rows[-1], flush=True)
    table = markdown_table(HEADER, rows)
    print(table)
    if not args.no_write:
        write_section("steps", "### Steps and precision per preset (issue 21)\n\n"
                      f"`python scripts/bench_steps.py` (CPU, 2 cores). {__doc__.split(chr(10) + chr(10))[-1]}\n\n"
                      + table)


if __name__ == "__main__":
    main()
