"""Find and load priors: the embedded default, a local folder, or a hub id.

Weights are read with safetensors only; a model that ships only pickled
`.bin` files is refused rather than unpickled.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from vidrestore.errors import ModelError
from vidrestore.priors.pixel import PixelDenoiser

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "vr-pixel-small"


def embedded_models() -> list[str]:
    return sorted(p.name for p in WEIGHTS_DIR.iterdir() if (p / "model_index.json").exists()) \
        if WEIGHTS_DIR.exists() else []


def resolve_model_location(model: str | None) -> str | Path | None:
    """`None`/"default" → embedded default, "none" → no prior, else an embedded name, path or hub id."""
    if model is None or model == "default":
        model = DEFAULT_MODEL
    if model == "none":
        return None
    if (WEIGHTS_DIR / model / "model_index.json").exists():
        return WEIGHTS_DIR / model
    path = Path(model).expanduser()
    if path.exists():
        return path
    # hub ids are "name" or "org/name"; anything else was meant as a path
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise ModelError(f"model path not found: {model}")
    return model  # a hub id


def _is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _layout(location: str | Path) -> dict:
    """Subfolders of a local model: DDPMPipeline layout (unet/ + scheduler/) or a bare UNet folder."""
    if isinstance(location, Path):
        if (location / "model_index.json").exists():
            index = json.loads((location / "model_index.json").read_text())
            if "vae" in index:
                raise ModelError(f"{location}: latent diffusion pipelines (Stable Diffusion / SDXL) are not supported "
                                 "by this version; use a pixel-space UNet2DModel")
            return {"unet": "unet", "scheduler": "scheduler"}
        if (location / "config.json").exists():
            if not any(location.glob("*.safetensors")):
                raise ModelError(f"{location}: no .safetensors weights (pickled checkpoints are not loaded)")
            return {"unet": None, "scheduler": None}
        raise ModelError(f"{location}: not a diffusers model folder (no model_index.json or config.json)")
    return {"unet": "unet", "scheduler": "scheduler"}


def load_pixel_prior(model: str | None, device: torch.device, dtype: torch.dtype = torch.float32, *,
                     micro_batch: int = 8, tile: int | None = None) -> PixelDenoiser | None:
    """Load a prior as a PixelDenoiser; `None` when the model is "none"."""
    from diffusers import DDPMScheduler, UNet2DModel
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # our own errors say what went wrong, in one line

    location = resolve_model_location(model)
    if location is None:
        return None
    layout = _layout(location)
    name = location.name if isinstance(location, Path) else str(location)
    offline = isinstance(location, Path) or _is_offline()
    common = {"local_files_only": offline, "use_safetensors": True, "low_cpu_mem_usage": False,
              "torch_dtype": dtype}
    try:
        unet_kwargs = dict(common, **({"subfolder": layout["unet"]} if layout["unet"] else {}))
        unet = UNet2DModel.from_pretrained(location, **unet_kwargs)
    except ModelError:
        raise
    except Exception as exc:  # diffusers raises OSError/EnvironmentError/ValueError variants
        hint = "" if isinstance(location, Path) else (" (not in the local cache and no network)" if offline
                                                      else " (not in the local cache; download failed)")
        raise ModelError(f"cannot load model {name!r}{hint}: {str(exc).splitlines()[0]}") from exc
    try:
        if layout["scheduler"] is None:
            raise FileNotFoundError
        scheduler = DDPMScheduler.from_pretrained(location, subfolder=layout["scheduler"], **{"local_files_only": offline})
    except Exception:
        scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon")
    unet = unet.to(device=device)
    return PixelDenoiser(unet, scheduler, name=name, micro_batch=micro_batch, tile=tile)
