"""The prepared GPU check: CUDA tests, the embedded prior's throughput per dtype and compile setting, tiny SD runs.

    python scripts/gpu_check.py --out gpu_check.json [--size 1280x720] [--frames 4] [--quick]

Every case is timed on its own and a failure is recorded, not raised, so one
bad case never hides the others. `--quick` runs small sizes and skips the
tests and the SD runs (superres, edit) (what the CPU test of this script uses); without CUDA the cases run on
the CPU and fp16/bf16 are recorded as skipped.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--size", default="1280x720", help="frame WxH of the prior benchmark (a x2 output)")
    parser.add_argument("--frames", type=int, default=4, help="frames per network call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes, no pytest (for a CPU smoke test)")
    args = parser.parse_args(argv)
    try:
        args.width, args.height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        parser.error(f"--size {args.size!r}: expected WxH, e.g. 1280x720")
    if args.frames < 1 or args.repeats < 1:
        parser.error("--frames and --repeats must be at least 1")
    return args


def timed(fn, device: torch.device, repeats: int) -> dict:
    fn()  # warm-up (and compilation)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - started) / repeats
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
    return {"seconds_per_call": round(seconds, 4), "peak_memory_mb": round(peak, 1) if peak else None}


def prior_case(device: torch.device, dtype_name: str, compiled: bool, args) -> dict:
    from vidrestore.priors import load_prior

    case = {"case": "prior", "dtype": dtype_name, "compile": compiled, "size": f"{args.width}x{args.height}",
            "frames": args.frames}
    if device.type == "cpu" and dtype_name != "fp32":
        return case | {"status": "skipped", "why": "half precision runs on CUDA only"}
    try:
        prior = load_prior(None, device, DTYPES[dtype_name], micro_batch=args.frames, tile=None)
        if compiled:
            prior.unet = torch.compile(prior.unet)
        x = torch.randn(args.frames, 3, args.height, args.width, device=device, dtype=DTYPES[dtype_name])
        result = timed(lambda: prior.tweedie(x, 50), device, args.repeats)
        return case | result | {"status": "ok",
                                "seconds_per_frame_step": round(result["seconds_per_call"] / args.frames, 4)}
    except Exception as exc:  # noqa: BLE001 - recorded, the other cases still run
        return case | {"status": "failed", "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                       "traceback": traceback.format_exc(limit=3)}


def sd_case(device: torch.device) -> dict:
    """A tiny random SD pipeline, superres x2 end to end through the CLI."""
    from helpers import smooth_clip, write_clip
    from latent_models import save_tiny_latent_pipeline

    case = {"case": "tiny-sd-superres"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            save_tiny_latent_pipeline(folder / "sd", "sd", vae_sample_size=64)
            write_clip(folder / "in.mkv", smooth_clip(4, 64, 96))
            started = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "vidrestore", "superres", str(folder / "in.mkv"), "-x", "2",
                                   "--model", str(folder / "sd"), "--steps", "7", "--device", device.type,
                                   "-o", str(folder / "out.mkv"), "--quiet"], capture_output=True, text=True)
            seconds = time.perf_counter() - started
            if proc.returncode != 0:
                return case | {"status": "failed", "error": proc.stderr.strip().splitlines()[-1:]}
            metrics = json.loads((folder / "out.mkv.metrics.json").read_text())
            return case | {"status": "ok", "seconds": round(seconds, 2), "peak_memory_mb": metrics["peak_memory_mb"],
                           "device": metrics["device"]}
    except Exception as exc:  # noqa: BLE001
        return case | {"status": "failed", "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def edit_case(device: torch.device) -> dict:
    """A tiny random SD pipeline and ControlNet, `edit` end to end through the CLI (consistency 0 and 1), with
    the input as --reference: the warping error along the input's flow and the structure agreement."""
    from helpers import smooth_clip, write_clip
    from latent_models import save_tiny_controlnet, save_tiny_latent_pipeline

    case = {"case": "tiny-sd-edit"}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            save_tiny_latent_pipeline(folder / "sd", "sd", vae_sample_size=64)
            save_tiny_controlnet(folder / "cn", "sd")
            write_clip(folder / "in.mkv", smooth_clip(8, 64, 96))
            for consistency in ("0", "1"):
                out = folder / f"out{consistency}.mkv"
                started = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "vidrestore", "edit", str(folder / "in.mkv"), "--prompt",
                                       "a cat", "--model", str(folder / "sd"), "--controlnet", str(folder / "cn"),
                                       "--consistency", consistency, "--steps", "8", "--device", device.type,
                                       "--reference", str(folder / "in.mkv"), "-o", str(out), "--quiet"],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    return case | {"status": "failed", "error": proc.stderr.strip().splitlines()[-1:]}
                metrics = json.loads(out.with_name(out.name + ".metrics.json").read_text())
                case[f"consistency_{consistency}"] = {
                    "seconds": round(time.perf_counter() - started, 2), "peak_memory_mb": metrics["peak_memory_mb"],
                    "device": metrics["device"], "warping_error": metrics["warping_error"],
                    "edge_fscore": metrics["edge_fscore"]}
            return case | {"status": "ok"}
    except Exception as exc:  # noqa: BLE001
        return case | {"status": "failed", "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def tests_case() -> dict:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda",
                           str(ROOT / "tests")], capture_output=True, text=True)
    return {"case": "pytest -k cuda", "status": "ok" if proc.returncode in (0, 5) else "failed",
            "summary": proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.quick:
        args.width, args.height, args.frames, args.repeats = 64, 48, 1, 1
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    report = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "cases": []}
    if not args.quick:
        report["cases"].append(tests_case())
    for dtype_name in DTYPES:
        for compiled in (False, True):
            if args.quick and compiled:
                continue  # compilation takes minutes on a CPU
            report["cases"].append(prior_case(device, dtype_name, compiled, args))
    if args.quick:  # the latent path has its own tests; a CLI subprocess costs the smoke test a minute
        report["cases"].append({"case": "tiny-sd-superres", "status": "skipped", "why": "--quick"})
        report["cases"].append({"case": "tiny-sd-edit", "status": "skipped", "why": "--quick"})
    else:
        report["cases"].append(sd_case(device))
        report["cases"].append(edit_case(device))
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    failed = [c for c in report["cases"] if c["status"] == "failed"]
    print(f"gpu_check: {len(report['cases'])} cases, {len(failed)} failed -> {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
