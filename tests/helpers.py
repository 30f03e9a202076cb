"""Shared test helpers: tiny randomly initialised models and small synthetic clips."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel


def tiny_unet(prediction_type: str = "epsilon", seed: int = 0) -> tuple[UNet2DModel, DDPMScheduler]:
    torch.manual_seed(seed)  # model init only; samplers never touch global RNG
    unet = UNet2DModel(sample_size=16, block_out_channels=(8, 16), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                       add_attention=False, norm_num_groups=4)
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type=prediction_type)
    return unet, scheduler


def save_tiny_model(folder: Path, prediction_type: str = "epsilon") -> Path:
    """A DDPMPipeline-layout folder (model_index.json, unet/, scheduler/) with a tiny random UNet."""
    unet, scheduler = tiny_unet(prediction_type)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    scheduler.save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "DDPMPipeline", "unet": ["diffusers", "UNet2DModel"],
        "scheduler": ["diffusers", "DDPMScheduler"]}))
    return folder


def smooth_clip(frames: int = 6, height: int = 16, width: int = 16, seed: int = 0) -> torch.Tensor:
    """A panning smooth colour pattern (F, 3, H, W) in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(3, generator=g) * 6.28
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    out = []
    for f in range(frames):
        chans = [0.5 + 0.4 * torch.sin((xx + 0.7 * f) / 3.0 + phase[c]) * torch.cos((yy + 0.3 * f) / 4.0 + phase[c])
                 for c in range(3)]
        out.append(torch.stack(chans))
    return torch.stack(out).clamp(0, 1)


def write_clip(path: Path, clip: torch.Tensor, fps: Fraction = Fraction(25), audio_from: Path | None = None) -> Path:
    from vidrestore.io import VideoWriter, to_uint8

    with VideoWriter(path, fps, clip.shape[3], clip.shape[2], crf=10, audio_from=audio_from, overwrite=True) as w:
        w.write(to_uint8(clip))
    return path


def read_clip(path: Path) -> torch.Tensor:
    from vidrestore.io import read_frames, to_tensor

    return torch.cat([to_tensor(b) for b in read_frames(path, 64)])


def random_clip(shape, seed=0, dtype=torch.float32) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def load_script(name: str):
    """A module of scripts/ (e.g. "golden"), for tests of the project's own scripts."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
