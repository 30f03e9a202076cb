"""`--adapt STEPS`: fine-tune a copy of the pixel prior on the footage itself before restoring.

In the spirit of zero-shot super-resolution's internal learning and Gen-1's
customisation: low-rank adapters (`vidrestore.priors.lora`) on every convolution
of the UNet learn from random crops of the input's own frames, at their own
scale and zoomed out (up to `adapt.max_zoom`), so a super-resolution run learns
the footage's textures one scale below the one it restores; `--adapt-images`
adds the user's stills of the same scene or subject (half of each batch), zoomed
out to about the output's size. Only the noise levels the run will sample
(t below its `sampler.start_t`) are trained, with the loss the prior was trained
with. Crops, timesteps, noise and the adapters' start come from one
`torch.Generator` seeded from the run's seed.

The adapters are folded into the weights and the adapted model is written, as an
ordinary diffusers folder, to a cache keyed by a hash of the input's bytes, the
stills', the base model's files and every setting that changes the training, so
a rerun or a resumed run loads it instead of training again. The cache is
`adapt.cache` (`--adapt-cache`), else `$XDG_CACHE_HOME/vidrestore/adapt`, else
`~/.cache/vidrestore/adapt`. The shipped weights are only ever read.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from vidrestore.config import RunConfig
from vidrestore.errors import InputError, ModelError, OutputError, UsageError
from vidrestore.io import IMAGE_SUFFIXES, list_frame_files, read_frames, read_image, to_tensor
from vidrestore.io.jsonfile import write_json
from vidrestore.priors import load_pixel_prior, model_kind, resolve_model_location, to_model
from vidrestore.priors.lora import add_low_rank, merge_low_rank
from vidrestore.solve import task_schedule
from vidrestore.tasks import Task

__all__ = ["Adapted", "adapt_prior", "cache_root", "check_adapt", "folder_digest"]

SEED_SALT = 0xADA7          # the adaptation's generator: the run's seed plus this, apart from the sampler's noise
STILLS_SHARE = 0.5          # fraction of each batch cropped from --adapt-images, when given
MAX_FRAMES = 48             # input frames kept for training, evenly spaced over the clip
WARMUP_FRACTION = 0.1       # of the steps: linear warm-up, then cosine decay of the learning rate
LOG_EVERY = 10              # steps between the losses kept in adapt.json
FORMAT = 1                  # bump when the training changes: older cache entries are not reused


@dataclass(frozen=True)
class Adapted:
    """An adapted prior: where it is and what it cost."""

    model: Path               # a diffusers folder, loaded like any --model path
    key: str
    cached: bool              # found in the cache: nothing was trained by this run
    seconds: float            # this run's time on adaptation (hashing, and training when not cached)
    train_seconds: float      # how long the training took when it ran
    steps: int

    def summary(self) -> dict:
        return {"steps": self.steps, "cached": self.cached, "seconds": round(self.seconds, 3),
                "train_seconds": round(self.train_seconds, 3), "model": str(self.model)}


def cache_root(cfg: RunConfig) -> Path:
    if cfg.adapt.cache:
        return Path(cfg.adapt.cache).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vidrestore" / "adapt"


def check_adapt(cfg: RunConfig) -> None:
    """Every check of --adapt that needs no weights: a local pixel-space model and readable stills."""
    a = cfg.adapt
    if a.steps == 0:
        return
    kind = model_kind(None if cfg.model == "default" else cfg.model)
    if kind != "pixel":
        raise UsageError(f"--adapt fine-tunes a pixel-space diffusion prior; --model {cfg.model} is "
                         f"{'no prior' if kind == 'none' else 'a latent (' + kind + ') model'}")
    if not isinstance(resolve_model_location(None if cfg.model == "default" else cfg.model), Path):
        raise ModelError(f"--adapt needs a model folder on this machine; {cfg.model!r} is a hub id")
    if a.images:
        folder = Path(a.images)
        if not folder.is_dir():
            raise InputError(f"{folder}: --adapt-images needs a folder of images")
        if not list_frame_files(folder):
            raise InputError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) for --adapt-images")


def folder_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, or of a folder's files (relative names and bytes, sorted)."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode() + b"\0")
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def adapt_prior(cfg: RunConfig, task: Task, input_path: Path, frame_count: int, output_size: tuple[int, int],
                device: torch.device) -> Adapted | None:
    """The adapted model for this run (trained now, or found in the cache); None when `adapt.steps` is 0."""
    if cfg.adapt.steps == 0:
        return None
    started = time.perf_counter()
    location = resolve_model_location(None if cfg.model == "default" else cfg.model)
    settings = {k: v for k, v in dataclasses.asdict(cfg.adapt).items() if k != "cache"}
    identity = {"format": FORMAT, "input": folder_digest(input_path), "model": folder_digest(location),
                "images": folder_digest(Path(cfg.adapt.images)) if cfg.adapt.images else None,
                "settings": settings, "seed": cfg.runtime.seed, "start_t": cfg.sampler.start_t,
                "output_size": list(output_size), "noise_level": cfg.degradation.noise_level}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]
    folder = cache_root(cfg) / f"{location.name}+adapt-{key}"
    if (folder / "adapt.json").is_file():
        meta = json.loads((folder / "adapt.json").read_text())
        return Adapted(folder, key, True, time.perf_counter() - started, meta["train_seconds"], cfg.adapt.steps)
    prior = load_pixel_prior(None if cfg.model == "default" else cfg.model, device, torch.float32)
    t_max = task_schedule(cfg, task, prior).sampler.start_t
    frames = _input_frames(input_path, frame_count, cfg.io.fps)
    stills = [to_tensor(read_image(p)[None])[0] for p in list_frame_files(Path(cfg.adapt.images))] \
        if cfg.adapt.images else []
    threads = torch.get_num_threads()
    if cfg.runtime.threads:  # trained with the threads the windows will be solved with
        torch.set_num_threads(cfg.runtime.threads)
    train_started = time.perf_counter()
    try:
        losses = _train(prior, frames, stills, output_size, t_max, cfg)
    finally:
        torch.set_num_threads(threads)
    train_seconds = time.perf_counter() - train_started
    _save(prior.unet, location, folder, {
        "key": key, "identity": identity, "train_seconds": round(train_seconds, 3), "losses": losses,
        "t_max": t_max, "frames": len(frames), "stills": len(stills)})
    return Adapted(folder, key, False, time.perf_counter() - started, train_seconds, cfg.adapt.steps)


def _input_frames(path: Path, frame_count: int, fps: float) -> list[torch.Tensor]:
    """Up to MAX_FRAMES frames of the input, evenly spaced, as (3, H, W) tensors in [0, 1]."""
    n = min(MAX_FRAMES, frame_count)
    keep = {round(i * (frame_count - 1) / max(1, n - 1)) for i in range(n)}
    frames, index = [], 0
    for batch in read_frames(path, 16, folder_fps=fps):
        for frame in batch:
            if index in keep:
                frames.append(to_tensor(frame[None])[0])
            index += 1
    if not frames:
        raise InputError(f"{path}: no frames to adapt the prior to")
    return frames


def _crop(image: torch.Tensor, crop: int, zoom: tuple[float, float], gen: torch.Generator) -> torch.Tensor:
    """A random square of `crop` pixels, zoomed out by a log-uniform factor in `zoom`, maybe mirrored."""
    h, w = image.shape[-2:]
    if min(h, w) < crop:  # a frame smaller than a crop: bring it up to one
        image = F.interpolate(image[None], scale_factor=crop / min(h, w), mode="bicubic", align_corners=False)[0]
        h, w = image.shape[-2:]
    low, high = zoom[0], max(zoom[0], min(zoom[1], min(h, w) / crop))
    low = min(low, high)
    factor = math.exp(math.log(low) + float(torch.rand((), generator=gen)) * (math.log(high) - math.log(low)))
    size = max(crop, min(round(crop * factor), h, w))
    top = int(torch.randint(0, h - size + 1, (), generator=gen))
    left = int(torch.randint(0, w - size + 1, (), generator=gen))
    patch = image[:, top:top + size, left:left + size]
    if size != crop:
        patch = F.interpolate(patch[None], size=(crop, crop), mode="area")[0]
    if float(torch.rand((), generator=gen)) < 0.5:
        patch = patch.flip(-1)
    return patch


def _train(prior, frames: list[torch.Tensor], stills: list[torch.Tensor], output_size: tuple[int, int],
           t_max: int, cfg: RunConfig) -> list[list[float]]:
    """Fine-tune `prior.unet` in place through low-rank adapters, then fold them in; returns (step, loss) pairs."""
    a = cfg.adapt
    gen = torch.Generator().manual_seed(cfg.runtime.seed + SEED_SALT)
    unet, device = prior.unet, prior.device
    multiple = prior.multiple
    smallest = min(min(f.shape[-2:]) for f in frames)
    crop = max(multiple, min(a.crop, smallest) // multiple * multiple)
    out_side = min(output_size)
    still_zoom = [max(1.0, min(s.shape[-2:]) / out_side) for s in stills]  # stills shown at about the output's size
    params = add_low_rank(unet, a.rank, generator=gen)
    optimiser = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
    alphas = prior.alphas_cumprod.to(torch.float32)
    warmup = max(1, round(WARMUP_FRACTION * a.steps))
    losses = []
    with torch.enable_grad():
        for step in range(a.steps):
            batch = []
            for _ in range(a.batch):
                if stills and float(torch.rand((), generator=gen)) < STILLS_SHARE:
                    i = int(torch.randint(0, len(stills), (), generator=gen))
                    batch.append(_crop(stills[i], crop, (still_zoom[i], still_zoom[i] * a.max_zoom), gen))
                else:
                    i = int(torch.randint(0, len(frames), (), generator=gen))
                    batch.append(_crop(frames[i], crop, (1.0, a.max_zoom), gen))
            x0 = to_model(torch.stack(batch))
            t = torch.randint(0, t_max, (a.batch,), generator=gen)
            noise = torch.randn(x0.shape, generator=gen)
            alpha = alphas[t].view(-1, 1, 1, 1)
            x_t = alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise
            target = {"epsilon": noise, "sample": x0,
                      "v_prediction": alpha.sqrt() * noise - (1 - alpha).sqrt() * x0}[prior.prediction_type]
            prediction = unet(x_t.to(device), t.to(device)).sample
            loss = F.mse_loss(prediction.float(), target.to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            progress = max(0.0, (step + 1 - warmup) / max(1, a.steps - warmup))
            for group in optimiser.param_groups:
                group["lr"] = a.lr * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * progress))
            optimiser.step()
            if step % LOG_EVERY == 0 or step + 1 == a.steps:
                losses.append([step, round(loss.item(), 6)])
    merge_low_rank(unet)
    unet.requires_grad_(False)
    return losses


def _save(unet, base: Path, folder: Path, meta: dict) -> None:
    """The adapted model as a diffusers folder (the base's scheduler and index), written whole, then renamed."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        unet.save_pretrained(tmp / "unet", safe_serialization=True)
        if (base / "scheduler").is_dir():
            shutil.copytree(base / "scheduler", tmp / "scheduler")
        index = base / "model_index.json"
        if index.is_file():
            shutil.copyfile(index, tmp / "model_index.json")
        else:  # a bare UNet folder: the same default scheduler as loading it gives
            write_json(tmp / "model_index.json", {"_class_name": "DDPMPipeline", "unet": ["diffusers", "UNet2DModel"],
                                                  "scheduler": ["diffusers", "DDPMScheduler"]})
        write_json(tmp / "adapt.json", meta)
        if folder.exists():  # another run finished the same adaptation first
            shutil.rmtree(tmp, ignore_errors=True)
            return
        os.replace(tmp, folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"{folder.parent}: cannot write the adapted model ({exc.strerror or exc})") from None
