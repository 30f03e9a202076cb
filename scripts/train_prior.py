#!/usr/bin/env python
"""Train vidrestore's embedded pixel-space diffusion prior.

A fully convolutional diffusers UNet2DModel (no attention, so any resolution
works), epsilon-prediction, linear DDPM schedule with 1000 steps, trained on
random crops of the stills in `stills.py` (held-out images excluded) and of
the photographs from Debian's wallpaper packages in `debian_photos.py` (fetched
with apt-get into a cache folder on first use; `--no-debian-photos` trains
without them). EMA
weights are exported in diffusers DDPMPipeline layout (model_index.json,
unet/, scheduler/) as fp32 or (`--export-dtype fp16`) fp16 safetensors.

    python scripts/train_prior.py --minutes 120 --work runs/prior --export vidrestore/weights/vr-pixel-small

Rerunning the same command resumes from the last checkpoint in --work.
Checkpoints are safetensors plus JSON: nothing is pickled. `--init-from` an
export with a larger `--layers-per-block` grows the export first: the added
ResNet blocks start as the identity, so training continues from the same
function with more capacity (how the shipped model went from 1 to 2 layers).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

import cv2
import debian_photos
import numpy as np
import stills
import torch
from diffusers import DDPMScheduler, UNet2DModel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from safetensors.torch import load_file, save_file

NATURAL = {"astronaut", "china.jpg", "flower.jpg", "motorcycle_left", "motorcycle_right", "hubble_deep_field"}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/prior"), help="checkpoint and log folder")
    p.add_argument("--export", type=Path, default=None, help="write final EMA weights here (diffusers layout)")
    p.add_argument("--steps", type=int, default=1_000_000, help="stop after this many optimiser steps")
    p.add_argument("--minutes", type=float, default=120.0, help="stop after this much wall time in this run")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--channels", type=str, default="32,64,128,192")
    p.add_argument("--layers-per-block", type=int, default=1)
    p.add_argument("--low-noise-fraction", type=float, default=0.5,
                   help="fraction of each batch drawn from t < --low-noise-max, where restoration needs the prior most")
    p.add_argument("--low-noise-max", type=int, default=400,
                   help="upper end of the low-noise range (the presets start sampling at t <= 150)")
    p.add_argument("--bf16", action="store_true",
                   help="run forward and backward under bf16 autocast (weights, optimiser and EMA stay fp32): "
                        "1.7x faster on a CPU with AVX512-BF16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--init-from", type=Path, default=None,
                   help="when --work has no checkpoint, continue from these exported weights (a folder written by "
                        "--export): model and EMA start from its EMA, step count and wall time from its training.json, "
                        "the optimiser afresh")
    p.add_argument("--export-dtype", choices=("fp32", "fp16"), default="fp32",
                   help="fp32 lets a later --init-from continue without rounding loss; fp16 halves the size "
                        "(the shipped model must stay under 30 MB)")
    p.add_argument("--no-debian-photos", action="store_true",
                   help="train on the skimage/sklearn stills only, without the Debian wallpaper photographs")
    p.add_argument("--debian-cache", type=Path, default=debian_photos.DEFAULT_CACHE,
                   help="where the Debian packages are downloaded and unpacked (once; reruns need no network)")
    p.add_argument("--photo-max-side", type=positive_int, default=1024,
                   help="area-downscale each Debian photograph so its longer side is at most this many pixels")
    p.add_argument("--export-only", action="store_true",
                   help="export the EMA weights of the last checkpoint in --work and exit (no training)")
    return p.parse_args()


class CropSampler:
    """Random crops at random scales, flips, 90° rotations and mild colour jitter."""

    def __init__(self, images: dict[str, np.ndarray], crop: int, rng: np.random.Generator,
                 natural: set[str] = NATURAL):
        self.names = list(images)
        self.images = [images[n] for n in self.names]
        weights = np.array([math.sqrt(im.shape[0] * im.shape[1]) * (2.0 if n in natural else 1.0)
                            for n, im in zip(self.names, self.images)])
        self.p = weights / weights.sum()
        self.crop = crop
        self.rng = rng

    def one(self) -> np.ndarray:
        rng, c = self.rng, self.crop
        im = self.images[rng.choice(len(self.images), p=self.p)]
        h, w = im.shape[:2]
        max_scale = min(h, w) / c
        # log-uniform zoom-out factor: 1 = native pixels, >1 = downscaled (cleaner, more content)
        scale = math.exp(rng.uniform(0.0, math.log(max(1.0, min(4.0, max_scale)))))
        size = min(int(round(c * scale)), h, w)
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        patch = im[y:y + size, x:x + size]
        if size != c:
            patch = cv2.resize(patch, (c, c), interpolation=cv2.INTER_AREA if size > c else cv2.INTER_CUBIC)
        patch = np.rot90(patch, rng.integers(4))
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        gain = rng.uniform(0.9, 1.1, size=3) * rng.uniform(0.85, 1.15)
        patch = (patch - 0.5) * rng.uniform(0.85, 1.15) + 0.5
        patch = patch * gain + rng.uniform(-0.05, 0.05)
        return np.clip(patch, 0.0, 1.0)

    def batch(self, n: int) -> torch.Tensor:
        arr = np.stack([self.one() for _ in range(n)]).astype(np.float32)
        return torch.from_numpy(arr).permute(0, 3, 1, 2) * 2.0 - 1.0


def build_unet(channels: tuple[int, ...], layers_per_block: int) -> UNet2DModel:
    return UNet2DModel(
        sample_size=64,
        block_out_channels=channels,
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * len(channels),
        up_block_types=("UpBlock2D",) * len(channels),
        add_attention=False,
        norm_num_groups=16,
    )


def build_scheduler() -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon",
                         clip_sample=False)


def sample_timesteps(n: int, low_fraction: float, low_max: int, gen: torch.Generator) -> torch.Tensor:
    uniform = torch.randint(0, 1000, (n,), generator=gen)
    low = torch.randint(0, low_max, (n,), generator=gen)
    pick_low = torch.rand(n, generator=gen) < low_fraction
    return torch.where(pick_low, low, uniform)


def save_checkpoint(work: Path, model, ema, opt, step: int, elapsed: float) -> None:
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / "tmp"
    tmp.mkdir(exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, tmp / "ema.safetensors")
    opt_tensors = {}
    for i, state in opt.state_dict()["state"].items():
        for key, value in state.items():
            opt_tensors[f"{i}.{key}"] = value.detach().reshape(-1).clone() if key == "step" else value.contiguous()
    save_file(opt_tensors, tmp / "optim.safetensors")
    (tmp / "state.json").write_text(json.dumps({"step": step, "elapsed_s": elapsed, "config": dict(model.config)}))
    for f in tmp.iterdir():
        f.replace(work / f.name)
    tmp.rmdir()


def load_checkpoint(work: Path, model, ema, opt) -> tuple[int, float]:
    state_path = work / "state.json"
    if not state_path.exists():
        return 0, 0.0
    state = json.loads(state_path.read_text())
    model.load_state_dict(load_file(work / "model.safetensors"))
    ema.load_state_dict(load_file(work / "ema.safetensors"))
    opt_tensors = load_file(work / "optim.safetensors")
    opt_state = opt.state_dict()
    per_param: dict[int, dict] = {}
    for name, value in opt_tensors.items():
        i, key = name.split(".", 1)
        per_param.setdefault(int(i), {})[key] = value.reshape(()) if key == "step" else value
    opt_state["state"] = per_param
    opt.load_state_dict(opt_state)
    return int(state["step"]), float(state["elapsed_s"])


def identity_resnet(weights: dict, prefix: str, channels: int, skip: int) -> None:
    """Set a fresh ResNet block to the identity on its first `channels` inputs: zero last conv
    (the residual branch adds nothing) and, when a skip is concatenated, a 1×1 shortcut that
    keeps the main path and drops the skip. Training then grows the branch from zero."""
    weights[f"{prefix}.conv2.weight"].zero_()
    weights[f"{prefix}.conv2.bias"].zero_()
    if skip:
        shortcut = torch.zeros(channels, channels + skip, 1, 1)
        shortcut[:, :channels, 0, 0] = torch.eye(channels)
        weights[f"{prefix}.conv_shortcut.weight"] = shortcut
        weights[f"{prefix}.conv_shortcut.bias"] = torch.zeros(channels)


def grow_depth(shallow: dict[str, torch.Tensor], old_layers: int, deep: UNet2DModel) -> dict[str, torch.Tensor]:
    """Weights for `deep` (more ResNet layers per block) computing exactly what `shallow` computes.

    Each down block gets identity blocks appended, so its extra skip outputs repeat its last
    one; each up block gets identity blocks right after its first, which read those repeats.
    The old blocks keep reading the same skips as before (diffusers pops skips last-in first-out).
    """
    new_layers = deep.config.layers_per_block
    extra = new_layers - old_layers
    weights = {k: v.clone() for k, v in deep.state_dict().items()}

    def moved(key: str) -> str:
        """Where a shallow weight lives in `deep`: up-block layers after the first shift by `extra`."""
        parts = key.split(".")
        if parts[0] == "up_blocks" and parts[2] == "resnets" and int(parts[3]) >= 1:
            parts[3] = str(int(parts[3]) + extra)
        return ".".join(parts)

    for key, value in shallow.items():
        weights[moved(key)] = value.clone()
    for level, block in enumerate(deep.down_blocks):
        for i in range(old_layers, new_layers):
            identity_resnet(weights, f"down_blocks.{level}.resnets.{i}", block.resnets[i].out_channels, 0)
    for level, block in enumerate(deep.up_blocks):
        for i in range(1, 1 + extra):
            channels = block.resnets[i].out_channels
            identity_resnet(weights, f"up_blocks.{level}.resnets.{i}", channels, channels)
    return weights


def init_from_export(folder: Path, model: UNet2DModel, ema: UNet2DModel) -> tuple[int, float, list[dict]]:
    """Load exported EMA weights into model and EMA; return the step, wall time and phases they record.

    When `model` has more layers per block than the export, the export is grown to it first
    (`grow_depth`): training continues from the same function with more capacity."""
    weights = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    weights = {k: v.to(torch.float32) for k, v in weights.items()}
    old_layers = json.loads((folder / "unet" / "config.json").read_text())["layers_per_block"]
    if old_layers > model.config.layers_per_block:
        raise SystemExit(f"error: {folder} has {old_layers} layers per block; --layers-per-block cannot shrink it")
    if old_layers < model.config.layers_per_block:
        weights = grow_depth(weights, old_layers, model)
    model.load_state_dict(weights)
    ema.load_state_dict(weights)
    meta = json.loads((folder / "training.json").read_text())
    return int(meta["steps"]), float(meta["wall_time_s"]), meta.get("phases", [])


def export(ema: UNet2DModel, scheduler: DDPMScheduler, out: Path, meta: dict, dtype: str = "fp32") -> None:
    out.mkdir(parents=True, exist_ok=True)
    unet = copy.deepcopy(ema).to(torch.float16) if dtype == "fp16" else ema
    unet.save_pretrained(out / "unet", safe_serialization=True)
    scheduler.save_pretrained(out / "scheduler")
    (out / "model_index.json").write_text(json.dumps({
        "_class_name": "DDPMPipeline", "_diffusers_version": __import__("diffusers").__version__,
        "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]}, indent=2))
    (out / "training.json").write_text(json.dumps(meta, indent=2))


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    channels = tuple(int(c) for c in args.channels.split(","))
    rng = np.random.default_rng(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    photos: dict[str, np.ndarray] = {}
    debian_versions: dict[str, str] = {}
    if not args.no_debian_photos:
        try:
            photos, debian_versions = debian_photos.training_photos(args.debian_cache, args.photo_max_side)
        except debian_photos.DebianPhotosError as exc:
            raise SystemExit(f"error: {exc}") from None
    images = {**stills.training_stills(), **photos}
    assert not set(images) & set(stills.HELD_OUT)
    # the Debian photographs are natural colour photographs too: drawn twice as often as textures
    sampler = CropSampler(images, args.crop, rng, NATURAL | set(photos))
    scheduler = build_scheduler()
    alphas = scheduler.alphas_cumprod.to(device)

    model = build_unet(channels, args.layers_per_block).to(device)
    ema = build_unet(channels, args.layers_per_block).to(device)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    step, elapsed_before = load_checkpoint(args.work, model, ema, opt)
    earlier_phases: list[dict] = []
    if step == 0 and args.init_from is not None:
        step, elapsed_before, earlier_phases = init_from_export(args.init_from, model, ema)
    if args.export_only:
        args.minutes = 0.0
    n_params = sum(p.numel() for p in model.parameters())
    log_path = args.work / "loss.csv"
    args.work.mkdir(parents=True, exist_ok=True)
    if not log_path.exists() and not args.export_only:
        log_path.write_text("step,elapsed_s,loss\n")

    phases_path = args.work / "phases.json"
    phases = json.loads(phases_path.read_text()) if phases_path.exists() else earlier_phases
    if not args.export_only:
        # each invocation is one phase: a resumed run may change lr, crop size or the noise-level mix
        phases.append({"from_step": step, "minutes": args.minutes, "lr": args.lr,
                       "batch": args.batch, "crop": args.crop,
                       "low_noise_fraction": args.low_noise_fraction, "low_noise_max": args.low_noise_max,
                       "bf16": args.bf16, "debian_photos": not args.no_debian_photos})
        phases_path.write_text(json.dumps(phases, indent=2))

    start = time.time()
    last_ckpt = start
    running = None
    with Progress(TextColumn("step {task.completed}"), BarColumn(), TextColumn("loss {task.fields[loss]:.4f}"),
                  TimeElapsedColumn(), TimeRemainingColumn()) as progress:
        task = progress.add_task("train", total=args.steps, completed=step, loss=float("nan"))
        while step < args.steps and (time.time() - start) < args.minutes * 60:
            x0 = sampler.batch(args.batch).to(device)
            t = sample_timesteps(args.batch, args.low_noise_fraction, args.low_noise_max, gen).to(device)
            noise = torch.randn(x0.shape, generator=gen).to(device)
            a = alphas[t].view(-1, 1, 1, 1)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                prediction = model(xt, t).sample
            loss = torch.nn.functional.mse_loss(prediction.float(), noise)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            # linear warm-up, then cosine decay to 10 % over the requested minutes
            frac = min(1.0, (time.time() - start) / (args.minutes * 60))
            lr = args.lr * min(1.0, (step + 1) / args.warmup) * (0.55 + 0.45 * math.cos(math.pi * frac))
            for g in opt.param_groups:
                g["lr"] = lr
            opt.step()
            step += 1
            decay = min(args.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - decay)
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            progress.update(task, completed=step, loss=running)
            if step % 50 == 0:
                with log_path.open("a") as f:
                    f.write(f"{step},{elapsed_before + time.time() - start:.1f},{running:.5f}\n")
            if time.time() - last_ckpt > args.checkpoint_minutes * 60:
                save_checkpoint(args.work, model, ema, opt, step, elapsed_before + time.time() - start)
                last_ckpt = time.time()

    elapsed = elapsed_before + time.time() - start
    if not args.export_only:
        save_checkpoint(args.work, model, ema, opt, step, elapsed)
    if args.export is not None:
        export(ema, scheduler, args.export, {
            "steps": step, "wall_time_s": round(elapsed, 1), "parameters": n_params, "ema_decay": args.ema_decay, "device": str(device),
            "threads": args.threads, "phases": phases, "training_images": sorted(images), "held_out": list(stills.HELD_OUT),
            "dtype": args.export_dtype, "debian_packages": debian_versions,
        }, args.export_dtype)
    print(f"done: {step} steps, {elapsed / 60:.1f} min, {n_params / 1e6:.2f} M parameters")


if __name__ == "__main__":
    main()
