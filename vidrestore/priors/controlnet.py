"""ControlNet models (diffusers' `ControlNetModel`, SD and SDXL variants): structure conditioning for a
latent prior. Loaded from a local folder or a hub id, safetensors only, once per process and device."""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from vidrestore.errors import ModelError
from vidrestore.priors.loading import hub_offline


def controlnet_location(name: str) -> str | Path:
    """A local folder (it must exist when named as a path) or a hub id."""
    path = Path(name).expanduser()
    if path.exists():
        return path
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(f"--controlnet {name}: no such folder")
    return name


@functools.lru_cache(maxsize=2)
def load_controlnet(name: str, device: torch.device, dtype: torch.dtype):
    """The ControlNetModel `name` on `device` in `dtype`, in eval mode without gradients."""
    from diffusers import ControlNetModel
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()
    location = controlnet_location(name)
    offline = hub_offline(location)
    try:
        model = ControlNetModel.from_pretrained(location, torch_dtype=dtype, use_safetensors=True,
                                                local_files_only=offline, low_cpu_mem_usage=False)
    except Exception as exc:  # diffusers raises OSError / ValueError variants
        hint = "" if isinstance(location, Path) else (" (not in the local cache and no network)" if offline
                                                     else " (not in the local cache; download failed)")
        raise ModelError(f"cannot load --controlnet {name!r}{hint}: {str(exc).splitlines()[0]}") from exc
    return model.to(device).eval().requires_grad_(False)
