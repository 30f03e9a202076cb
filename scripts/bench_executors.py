"""Executors side by side: one process (1 and 2 threads) against 2 worker processes and 2 Ray actors.

    python scripts/bench_executors.py [--frames 48] [--size 64x64] [--preset superres-fast]

A 48-frame clip from a held-out still is super-resolved x2 with the embedded
model in windows of 8 frames; every run is a fresh CLI process, timed whole
(model loading included). The `--ray local` run starts a local instance (its start-up
is part of its wall time); the last run joins a cluster started beforehand
with `ray start --head` (not timed), as a machine serving many runs would. Per-window overhead is the executor's own
measurement (hand-out to result, minus the solve inside the worker). Prints a
markdown table for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import make_clips, markdown_table, run_cli, write_lossless  # noqa: E402

#: marks the run that joins a cluster started beforehand
CLUSTER = "<cluster>"
RUNS = {  # name: extra CLI arguments
    "in process, 1 thread": ["--set", "runtime.threads=1"],
    "in process, 2 threads": ["--set", "runtime.threads=2"],
    "--workers 2 (1 thread each)": ["--workers", "2", "--set", "runtime.threads=1"],
    "--ray local, 2 actors (1 thread each)": ["--ray", "local", "--workers", "2", "--set", "runtime.threads=1"],
    # the cluster is started before the clock starts (`ray start --head`), as on a machine that serves many runs
    "--ray auto, running cluster, 2 actors (1 thread each)": ["--ray", CLUSTER, "--workers", "2", "--set",
                                                              "runtime.threads=1"],
}


RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def start_cluster() -> None:
    """Start a one-machine Ray cluster (`ray start --head`; `--ray auto` joins it, `ray stop` ends it)."""
    subprocess.run([*RAY, "start", "--head", "--port=6390", "--include-dashboard=false", "--disable-usage-stats"],
                   check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="64x64", help="input size WxH (the output is twice that)")
    parser.add_argument("--preset", default="superres-fast")
    parser.add_argument("--chunk", type=int, default=8)
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    clip = next(iter(make_clips((2 * h, 2 * w), args.frames, motions=("pan",)).values()))
    rows, base = [], None
    with tempfile.TemporaryDirectory(prefix="vidrestore-bench-exec-") as tmp:
        folder = Path(tmp)
        low = clip.reshape(-1, 3, h, 2, w, 2).mean(dim=(3, 5))  # the box downsample superres assumes
        source = write_lossless(folder / "in.mkv", low)
        for name, extra in RUNS.items():
            cluster = CLUSTER in extra
            if cluster:
                start_cluster()
                extra = ["auto" if a == CLUSTER else a for a in extra]
            try:
                started = time.perf_counter()
                metrics = run_cli(["superres", source, "-x", "2", "--preset", args.preset, "--chunk", args.chunk,
                                   "--device", "cpu", "--sigma-y", "0", "-o", folder / "out.mkv", *extra],
                                  folder / "metrics.json")
                wall = time.perf_counter() - started
            finally:
                if cluster:
                    subprocess.run([*RAY, "stop"], check=True, capture_output=True)
            base = base or wall
            rows.append([name, wall, base / wall, metrics.get("windows"), metrics.get("overhead_seconds_per_window"),
                         metrics.get("startup_seconds_per_worker"), metrics.get("steady_overhead_seconds_per_window"),
                         metrics["seconds"] / max(metrics.get("windows") or 1, 1)])
            print(json.dumps({"run": name, "wall": wall, "metrics": {k: metrics.get(k) for k in (
                "executor", "workers", "windows", "overhead_seconds_per_window", "startup_seconds_per_worker",
                "steady_overhead_seconds_per_window", "seconds", "dtype")}}), flush=True)
    print(markdown_table(["run", "wall s", "speed-up vs 1 thread", "windows", "overhead s / window",
                          "of which start-up s / worker (first window)", "steady overhead s / window (later windows)",
                          "s / window (whole run)"], rows))


if __name__ == "__main__":
    main()
