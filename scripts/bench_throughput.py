"""Throughput of the embedded prior's UNet forward pass on this machine (issue 21 item 1).

For each frame size: FLOP of one forward (torch's FLOP counter), seconds per forward and
GFLOP/s under each setting, and the share of the CPU's fp32 FMA peak. Prints a Markdown table.

    python scripts/bench_throughput.py --profile 704x576          # fp32 / channels-last / bf16, three sizes
    python scripts/bench_throughput.py --sizes 704x576 --settings bf16_channels_last --batch 4   # frames per call
    python scripts/bench_throughput.py --sizes 704x576 --settings bf16_channels_last,bf16_channels_last_compile

A setting names its parts: `bf16` (autocast), `channels_last`, `compile` (torch.compile, inductor; the
warm-up pass compiles and is not timed).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from vidrestore.priors.loading import load_pixel_prior


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: oneDNN primitive creation, compile
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


#: operator kinds by a part of the aten name
KINDS = {"convolution": ("conv",), "GroupNorm": ("group_norm",), "SiLU": ("silu",),
         "copies and layout": ("copy", "contiguous", "clone", "cat", "reorder"),
         "upsampling": ("upsample",), "add / mul": ("add", "mul", "div")}


def profile_table(unet, size: str) -> str:
    """Share of one forward's CPU time per operator kind, fp32 and bf16 channels-last."""
    from torch.profiler import ProfilerActivity, profile

    w, h = (int(v) for v in size.split("x"))
    t = torch.full((1,), 50, dtype=torch.long)
    lines = ["| setting | " + " | ".join(KINDS) + " | other |", "|---|" + "---|" * (len(KINDS) + 1)]
    for setting, bf16 in (("fp32 channels-last", False), ("bf16 channels-last", True)):
        net = unet.to(memory_format=torch.channels_last)
        x = torch.randn(1, 3, h, w).contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            net(x, t)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                net(x, t)
        shares = dict.fromkeys([*KINDS, "other"], 0.0)
        events = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in events)
        for e in events:
            name = e.key.removeprefix("aten::")
            kind = next((k for k, names in KINDS.items() if any(n in name for n in names)), "other")
            shares[kind] += e.self_cpu_time_total / total
        lines.append(f"| {setting} | " + " | ".join(f"{100 * v:.0f} %" for v in shares.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="176x144,352x288,704x576")
    ap.add_argument("--settings", default="fp32,channels_last,bf16,bf16_channels_last")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1, help="frames per forward pass (the table is per frame)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--profile", default="", help="WxH: also print where one forward's time goes, per setting")
    ap.add_argument("--peak-gflops", type=float, default=None,
                    help="fp32 FMA peak (default: threads x the clock in /proc/cpuinfo x 32 FLOP/cycle, two 256-bit "
                         "FMA pipes)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.peak_gflops is None:
        mhz = max(float(line.split(":")[1]) for line in open("/proc/cpuinfo") if line.startswith("cpu MHz"))
        args.peak_gflops = args.threads * mhz / 1000 * 32
    print(f"fp32 FMA peak: {args.peak_gflops:.0f} GFLOP/s")
    prior = load_pixel_prior(None, torch.device("cpu"))
    unet = prior.unet
    rows = []
    for size in args.sizes.split(","):
        w, h = (int(v) for v in size.split("x"))
        x = torch.randn(args.batch, 3, h, w)
        t = torch.full((args.batch,), 50, dtype=torch.long)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            unet(x, t)
        flop = counter.get_total_flops() / args.batch
        for setting in args.settings.split(","):
            net = unet
            xi = x
            if "channels_last" in setting:
                net = unet.to(memory_format=torch.channels_last)
                xi = x.contiguous(memory_format=torch.channels_last)
            else:
                net = unet.to(memory_format=torch.contiguous_format)
            bf16 = "bf16" in setting
            fwd = net
            if "compile" in setting:
                fwd = torch.compile(net)

            def run():
                with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    return fwd(xi, t).sample
            s = timed(run, args.repeats) / args.batch
            gf = flop / s / 1e9
            rows.append((size, setting, flop / 1e9, s, gf, 100 * gf / args.peak_gflops))
            print(rows[-1], flush=True)
    if args.profile:
        print(profile_table(unet, args.profile))
    print(f"batch {args.batch}")
    print("| size | setting | GFLOP / frame | s / frame | GFLOP/s | % of fp32 FMA peak |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.3f} | {r[4]:.1f} | {r[5]:.0f} % |")


if __name__ == "__main__":
    main()
