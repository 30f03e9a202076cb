#!/usr/bin/env python
"""Train the compression-artifact remover (`vidrestore.artifacts`) on libx264 output of Debian's photographs.

    python scripts/train_deblock.py --work runs/deblock --minutes 30          # data on first use, then train
    python scripts/train_deblock.py --work runs/deblock --minutes 0 --eval    # the held-out table only
    python scripts/train_deblock.py --work runs/deblock --minutes 0 --export vidrestore/weights/vr-deblock-x264

Data: short clips of a virtual camera over the training photographs (the
prior's: Debian wallpapers and the non-held-out PyPI stills; the held-out
stills never), at a random scale (1–6 photo pixels per clip pixel), random
pan and zoom (up to 5 px per frame), some with sensor-like Gaussian noise
(σ up to 6/255) before encoding, through libx264 (yuv420p, `.mp4`, the
writer vidrestore itself uses) at a random CRF in 15–35, decoded again.
Pairs (decoded, before encoding) are kept in `WORK/data.npz`; the target is
the clip before noise and encoding. Training resumes from `WORK/checkpoint.pt`
(written by this script; loaded with `weights_only`).

`--eval` prints the RMS error of the benchmark's held-out clips
(scripts/bench_real_inputs.py's, at their own size and box-downsampled ×2 and
×4; not encoded, and CRF 18, 23 and 28) as decoded and after the network,
against the frames before encoding.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import debian_photos  # noqa: E402
import stills  # noqa: E402
from clips import camera_clip  # noqa: E402

from vidrestore.artifacts import ArtifactRemover, DeblockNet  # noqa: E402
from vidrestore.evaluate import read_clip, write_clip  # noqa: E402
from vidrestore.io import quantize, to_uint8  # noqa: E402

SIZES = ((48, 64), (64, 64), (64, 96), (96, 128), (32, 48))
FRAMES = 8
CRF_RANGE = (15, 35)
NOISY_FRACTION, NOISE_MAX = 0.2, 6 / 255


def encode_decode(clip: torch.Tensor, crf: int, folder: Path) -> torch.Tensor:
    """`clip` through libx264 at `crf` (yuv420p) and back."""
    return read_clip(write_clip(folder / "clip.mp4", clip, Fraction(24), crf))


def make_data(n: int, seed: int, cache: Path, crf_range: tuple[int, int] = CRF_RANGE,
              lossless_fraction: float = 0.0) -> dict[str, np.ndarray]:
    """`n` (decoded, clean) clip pairs as uint8 arrays of (F, H, W, 3) (sizes mixed: one key per clip)."""
    rng = np.random.default_rng(seed)
    photos, _ = debian_photos.training_photos(cache, 1024)
    named = {**stills.training_stills(), **photos}
    assert not set(named) & set(stills.HELD_OUT)
    images = list(named.values())
    decoded, clean = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n):
            image = images[rng.integers(len(images))]
            size = SIZES[rng.integers(len(SIZES))]
            scale = float(np.exp(rng.uniform(0, math.log(6))))
            while min(image.shape[:2]) / scale < max(size) * 1.6:
                scale /= 1.25  # small photos: closer in
            speed = rng.uniform(0, 5)
            angle = rng.uniform(0, 2 * math.pi)
            zoom = rng.uniform(-0.01, 0.01) if rng.random() < 0.3 else 0.0
            truth = quantize(camera_clip(image, size, FRAMES, pan=(speed * math.cos(angle), speed * math.sin(angle)),
                                         zoom=zoom, source_scale=max(scale, 1.0)))
            noisy = truth
            if rng.random() < NOISY_FRACTION:
                noise = torch.from_numpy(rng.standard_normal(truth.shape).astype(np.float32))
                noisy = quantize(truth + rng.uniform(0, NOISE_MAX) * noise)
            crf = int(rng.integers(crf_range[0], crf_range[1] + 1))
            # nothing to remove: the network should leave it alone (no draw at 0: earlier data sets reproduce)
            lossless = lossless_fraction > 0 and rng.random() < lossless_fraction
            decoded.append(to_uint8(noisy if lossless else encode_decode(noisy, crf, Path(tmp))))
            clean.append(to_uint8(truth))
            if (i + 1) % 100 == 0:
                print(f"data: {i + 1}/{n} clips", flush=True)
    return {**{f"decoded{i}": d for i, d in enumerate(decoded)}, **{f"clean{i}": c for i, c in enumerate(clean)}}


class Crops:
    """Random aligned crops of (decoded, clean) frames as float tensors."""

    def __init__(self, data: dict[str, np.ndarray], crop: int, rng: np.random.Generator, radius: int = 0):
        n = sum(key.startswith("clean") for key in data)
        self.decoded = [data[f"decoded{i}"] for i in range(n)]
        self.clean = [data[f"clean{i}"] for i in range(n)]
        self.crop, self.rng, self.radius = crop, rng, radius

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(n, 3 (2 radius + 1), crop, crop) decoded frames with their neighbours, (n, 3, crop, crop) targets."""
        xs, ys = [], []
        for _ in range(n):
            i = self.rng.integers(len(self.decoded))
            d, c = self.decoded[i], self.clean[i]
            f = self.rng.integers(d.shape[0])
            h, w = d.shape[1:3]
            top, left = self.rng.integers(h - self.crop + 1), self.rng.integers(w - self.crop + 1)
            rows, cols = slice(top, top + self.crop), slice(left, left + self.crop)
            near = np.clip(np.arange(f - self.radius, f + self.radius + 1), 0, d.shape[0] - 1)
            xs.append(d[near][:, rows, cols])  # the ends repeated, as ArtifactRemover does
            ys.append(c[f, rows, cols][None])

        def to(a):
            return torch.from_numpy(np.stack(a)).permute(0, 1, 4, 2, 3).flatten(1, 2).float() / 255
        return to(xs), to(ys)


def held_out_problems(scales=(1, 2, 4), crfs=(None, 18, 23, 28)) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, decoded, clean) clips of the real-inputs benchmark (held-out stills) at their own size (×1) and
    box-downsampled; CRF None: not encoded at all (what the network does to a clean input)."""
    from bench_real_inputs import make_clips

    problems = []
    clips = make_clips((96, 128), 8, ["coffee-pan", "chelsea-wobble", "rocket-zoom", "coffee-fast"])
    with tempfile.TemporaryDirectory() as tmp:
        for s in scales:
            for crf in crfs:
                for name, hr in clips.items():
                    low = quantize(F.avg_pool2d(hr, s))
                    decoded = low if crf is None else encode_decode(low, crf, Path(tmp))
                    problems.append((f"x{s}-{'lossless' if crf is None else f'crf{crf}'}-{name}", decoded, low))
    return problems


def evaluate(net: DeblockNet, problems) -> dict[str, tuple[float, float]]:
    remover = ArtifactRemover(net, torch.device("cpu"))
    table = {}
    for name, decoded, clean in problems:
        # RMS error in 1/255 (PSNR is infinite for an input not encoded)
        table[name] = tuple(float((x - clean).pow(2).mean().sqrt()) * 255 for x in (decoded, quantize(remover(decoded))))
    net.train()
    return table


def print_eval(table: dict[str, tuple[float, float]]) -> None:
    groups: dict[str, list[tuple[float, float]]] = {}
    for name, pair in table.items():
        groups.setdefault("-".join(name.split("-")[:2]), []).append(pair)
        print(f"{name:30s} RMS error /255: decoded {pair[0]:6.2f}  restored {pair[1]:6.2f}")
    for g, pairs in groups.items():
        a, b = np.mean([p[0] for p in pairs]), np.mean([p[1] for p in pairs])
        better = sum(p[1] < p[0] for p in pairs)
        print(f"mean {g:25s} RMS error /255: decoded {a:6.2f}  restored {b:6.2f}  (restored better on {better}/{len(pairs)})")


def grown(weights: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`weights` of a network that sees fewer frames, fitted to `target`'s shapes: its first layer's
    weights go to the centre frame's channels, the neighbours' start at 0 (so it starts as the same function)."""
    out = dict(weights)
    key = "enc1.0.0.weight"
    small, big = weights[key], target[key]
    if small.shape != big.shape:
        offset = (big.shape[1] - small.shape[1]) // 2
        out[key] = torch.zeros_like(big)
        out[key][:, offset:offset + small.shape[1]] = small
    return out


def export(net: DeblockNet, out: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().to(torch.float16).contiguous() for k, v in net.state_dict().items()},
              out / "model.safetensors")
    (out / "config.json").write_text(json.dumps({"architecture": net.config, "training": meta}, indent=2) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--clips", type=int, default=1200)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--total-steps", type=int, default=20000, help="the cosine schedule's length")
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--radius", type=int, default=0, help="neighbouring frames on each side the network sees")
    p.add_argument("--data", type=Path, help="the clip pairs (default: WORK/data.npz, made on first use)")
    p.add_argument("--crf", type=int, nargs=2, default=list(CRF_RANGE), help="the CRF range of new data")
    p.add_argument("--lossless-fraction", type=float, default=0.0,
                   help="of new data, the share of clips not encoded at all (the target is the input, or clean)")
    p.add_argument("--init-from", type=Path, help="an export to start from (a single-frame one grows to --radius: "
                                                     "the neighbours' weights start at 0)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval", action="store_true")
    p.add_argument("--export", type=Path)
    p.add_argument("--debian-cache", type=Path, default=debian_photos.DEFAULT_CACHE)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    data_path = args.data or args.work / "data.npz"
    if not data_path.exists():
        np.savez(data_path, **make_data(args.clips, args.seed, args.debian_cache, tuple(args.crf),
                                        args.lossless_fraction))
    data = dict(np.load(data_path))
    net = DeblockNet(args.width, args.radius)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    ckpt = args.work / "checkpoint.pt"
    step, elapsed = 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
    elif args.init_from is not None:
        net.load_state_dict(grown(ArtifactRemover.load(torch.device("cpu"), args.init_from).net.state_dict(),
                                  net.state_dict()))
    rng = np.random.default_rng(args.seed + step)
    crops = Crops(data, args.crop, rng, args.radius)
    started, last_save, losses = time.perf_counter(), time.perf_counter(), []
    log = (args.work / "loss.csv").open("a")
    while time.perf_counter() - started < args.minutes * 60:
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * min(step / args.total_steps, 1.0)))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = crops.batch(args.batch)
        loss = F.l1_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(loss.item())
        if step % 200 == 0:
            now = elapsed + time.perf_counter() - started
            print(f"step {step} loss {np.mean(losses):.5f} lr {lr:.2e} {now / 60:.1f} min", flush=True)
            log.write(f"{step},{now:.1f},{np.mean(losses):.6f}\n")
            log.flush()
            losses = []
        if time.perf_counter() - last_save > 300:
            torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step,
                        "elapsed": elapsed + time.perf_counter() - started}, ckpt)
            last_save = time.perf_counter()
    elapsed += time.perf_counter() - started
    if args.minutes > 0:
        torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed}, ckpt)
    net.eval()
    if args.eval:
        print_eval(evaluate(net, held_out_problems()))
    if args.export:
        clips = sum(key.startswith("clean") for key in data)
        export(net, args.export, {"steps": step, "cpu_minutes": round(elapsed / 60, 1), "clips": clips,
                                  "crf": args.crf, "lossless_fraction": args.lossless_fraction, "batch": args.batch,
                                  "init_from": str(args.init_from) if args.init_from else None, "crop": args.crop, "lr": args.lr,
                                  "script": "scripts/train_deblock.py"})


if __name__ == "__main__":
    main()
