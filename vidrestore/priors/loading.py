"""Find and load priors: the embedded default, a local folder, or a hub id.

Weights are read with safetensors only; a model that ships only pickled
`.bin` files is refused rather than unpickled.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import torch

from vidrestore.errors import ModelError
from vidrestore.priors.pixel import PixelDenoiser
from vidrestore.runtime import auto_tile, prior_dtype

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


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the model hub (HF_ENDPOINT) answers a TCP connection within `timeout` s."""
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    return _answers(host, port, timeout)


@functools.lru_cache(maxsize=None)
def _answers(host: str, port: int, timeout: float) -> bool:
    """TCP connect with DNS included, in a thread because name resolution has no timeout of its own.
    Asked once per process and host: one run asks for the preset, the estimate and the load."""
    import socket
    import threading

    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hub_offline(location: str | Path) -> bool:
    """Use only local files: always for folders, and for hub ids when HF_HUB_OFFLINE is set or the hub
    cannot be reached (then a model missing from the cache fails at once instead of retrying)."""
    return isinstance(location, Path) or _is_offline() or not _hub_reachable()


def model_kind(model: str | None) -> str:
    """"none", "pixel", "sd" or "sdxl", from the model's files (model_index.json) without loading weights."""
    location = resolve_model_location(model)
    if location is None:
        return "none"
    from vidrestore.priors.latent import latent_kind, read_model_index

    return latent_kind(read_model_index(location, hub_offline(location))) or "pixel"


def load_prior(model: str | None, device: torch.device, dtype: torch.dtype = torch.float32, *,
               micro_batch: int = 8, tile: int | None = None, vae: str | None = None, prompt: str = "",
               negative_prompt: str = "", guidance_scale: float = 1.0, vae_tiling: bool = False,
               frame_size: tuple[int, int] | None = None):
    """Load any prior: a PixelDenoiser, a LatentDenoiser (SD / SDXL pipelines) or None for "none".

    `tile`: the pixel denoiser's spatial tile (None: chosen from free memory for frames of `frame_size`),
    or the VAE's tile of a latent prior with `vae_tiling`.
    """
    location = resolve_model_location(model)
    if location is None:
        return None
    from vidrestore.priors.latent import latent_kind, load_latent_prior, read_model_index

    offline = hub_offline(location)
    index = read_model_index(location, offline)
    if latent_kind(index) is None:
        if vae is not None or prompt or guidance_scale != 1.0:
            raise ModelError(f"--vae, --prompt and --guidance need a Stable Diffusion / SDXL model; "
                             f"{model or DEFAULT_MODEL!r} is a pixel-space model")
        return load_pixel_prior(model, device, dtype, micro_batch=micro_batch, tile=tile, offline=offline,
                                frame_size=frame_size)
    return load_latent_prior(location, index, device, prior_dtype(dtype, device, latent_kind(index)),
                             offline=offline, micro_batch=micro_batch, vae=vae, prompt=prompt,
                             negative_prompt=negative_prompt, guidance_scale=guidance_scale,
                             vae_tiling=vae_tiling, vae_tile=tile)


def _layout(location: str | Path) -> dict:
    """Subfolders of a local model: DDPMPipeline layout (unet/ + scheduler/) or a bare UNet folder."""
    if isinstance(location, Path):
        if (location / "model_index.json").exists():
            index = json.loads((location / "model_index.json").read_text())
            if "vae" in index:
                raise ModelError(f"{location}: a latent diffusion pipeline (Stable Diffusion / SDXL), not a "
                                 "pixel-space UNet2DModel; load it with load_prior")
            return {"unet": "unet", "scheduler": "scheduler"}
        if (location / "config.json").exists():
            if not any(location.glob("*.safetensors")):
                raise ModelError(f"{location}: no .safetensors weights (pickled checkpoints are not loaded)")
            return {"unet": None, "scheduler": None}
        raise ModelError(f"{location}: not a diffusers model folder (no model_index.json or config.json)")
    return {"unet": "unet", "scheduler": "scheduler"}


def load_pixel_prior(model: str | None, device: torch.device, dtype: torch.dtype = torch.float32, *,
                     micro_batch: int = 8, tile: int | None = None, offline: bool | None = None,
                     frame_size: tuple[int, int] | None = None) -> PixelDenoiser | None:
    """Load a prior as a PixelDenoiser; `None` when the model is "none". Without `tile`, frames of
    `frame_size` (H, W) are tiled when their activations would not fit in half the free memory."""
    from diffusers import DDPMScheduler, UNet2DModel
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # our own errors say what went wrong, in one line

    location = resolve_model_location(model)
    if location is None:
        return None
    layout = _layout(location)
    name = location.name if isinstance(location, Path) else str(location)
    offline = (isinstance(location, Path) or _is_offline()) if offline is None else offline
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
        scheduler = DDPMScheduler.from_pretrained(location, subfolder=layout["scheduler"], local_files_only=offline)
    except Exception:
        scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", prediction_type="epsilon")
    unet = unet.to(device=device)
    if tile is None and frame_size is not None:
        tile = auto_tile(*frame_size, micro_batch, device, unet.config.block_out_channels[0])
    return PixelDenoiser(unet, scheduler, name=name, micro_batch=micro_batch, tile=tile)
