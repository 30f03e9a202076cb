"""Latent diffusion priors: Stable Diffusion 1.x/2.x and SDXL through diffusers.

`LatentDenoiser` is a Denoiser over VAE latents: `tweedie` runs the
conditional UNet on latents (frames in micro-batches, the pseudo-batch of
VISION-XL), `encode` / `decode` map [0, 1] pixel clips to latents and back.
Text conditioning (the empty prompt unless one is given) is computed once when
the model is loaded; the text encoders are then dropped, so sampling holds
only the UNet and the VAE.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from vidrestore.errors import ModelError
from vidrestore.priors.base import UNetDenoiserBase, from_model, split_prediction, to_model

if TYPE_CHECKING:
    from diffusers import AutoencoderKL, UNet2DConditionModel


@dataclass(frozen=True)
class PromptEmbedding:
    """One prompt's conditioning: CLIP hidden states (1, L, D) and, for SDXL, pooled text embeds (1, D')."""

    hidden: torch.Tensor
    pooled: torch.Tensor | None = None


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the last two axes at the bottom/right up to a multiple (reflect; replicate when too small)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return x
    mode = "reflect" if (ph < h and pw < w) else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


class LatentDenoiser(UNetDenoiserBase):
    """VAE + conditional UNet (SD 1.x/2.x or SDXL) as a Denoiser over latents.

    Frames go through the UNet and the VAE in micro-batches of `micro_batch`
    frames. Classifier-free guidance runs only when `guidance_scale` != 1 and
    an unconditional embedding is given (two passes per frame); otherwise one
    pass with the cached prompt embedding.
    """

    space = "latent"  # sampled by `vidrestore.samplers.spaces.LatentSpace`

    def __init__(self, vae: "AutoencoderKL", unet: "UNet2DConditionModel", scheduler_config: dict, *,
                 cond: PromptEmbedding, uncond: PromptEmbedding | None = None, guidance_scale: float = 1.0,
                 name: str = "latent", micro_batch: int = 8, vae_tiling: bool = False, vae_tile: int | None = None,
                 sdxl: bool = False):
        from diffusers import DDIMScheduler

        self.vae = vae.eval().requires_grad_(False)
        self.unet = unet.eval().requires_grad_(False)
        self.name = name
        self.sdxl = sdxl
        scheduler = DDIMScheduler.from_config(scheduler_config)
        self.prediction_type = scheduler.config.prediction_type
        self.alphas_cumprod = scheduler.alphas_cumprod.to(torch.float64).cpu()
        self.micro_batch = max(1, int(micro_batch))
        self.cond, self.uncond = cond, uncond
        self.guidance_scale = float(guidance_scale)
        # pixels per latent pixel: the VAE halves the size once per block but the last
        self.factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.latent_channels = int(vae.config.latent_channels)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)
        self.vae_tiling = bool(vae_tiling)
        if vae_tiling:
            vae.enable_tiling()  # diffusers tiles only frames larger than the VAE's sample_size
        self.network_evaluations = 0  # frames through the UNet (counting both CFG passes), for the metrics
        if vae_tiling and vae_tile:
            self._tile_vae(vae_tile)

    def _tile_vae(self, pixels: int) -> None:
        """Encode / decode frames larger than `pixels` in overlapping tiles of that size (blended by diffusers)."""
        pixels = max(self.factor * 4, pixels - pixels % self.factor)
        self.vae.enable_tiling()
        self.vae.tile_sample_min_size = pixels
        self.vae.tile_latent_min_size = pixels // self.factor
        self.vae_tiling = True

    @property
    def cfg_active(self) -> bool:
        return self.uncond is not None and self.guidance_scale != 1.0

    @property
    def classifier_free_guidance(self) -> bool:
        return self.cfg_active

    def summary(self, latent) -> dict:
        return {"prior": "sdxl" if self.sdxl else "sd", "init": latent.init,
                "inversion_t": latent.inversion_t if latent.init != "noise" else None,
                "classifier_free_guidance": self.cfg_active}

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(C, h, w) of one frame's latent; frames are padded up to a multiple of the VAE factor."""
        return self.latent_channels, -(-height // self.factor), -(-width // self.factor)

    def _conditioning(self, emb: PromptEmbedding, n: int, height: int, width: int) -> tuple[torch.Tensor, dict]:
        hidden = emb.hidden.to(self.device, self.dtype).expand(n, -1, -1)
        extra = {}
        if self.sdxl:
            # SDXL micro-conditioning: original size, crop (0, 0), target size = the (padded) frame
            time_ids = torch.tensor([[height, width, 0, 0, height, width]], device=self.device, dtype=self.dtype)
            extra = {"added_cond_kwargs": {"text_embeds": emb.pooled.to(self.device, self.dtype).expand(n, -1),
                                           "time_ids": time_ids.expand(n, -1)}}
        return hidden, extra

    @torch.no_grad()
    def _network(self, z: torch.Tensor, t: int) -> torch.Tensor:
        height, width = z.shape[-2] * self.factor, z.shape[-1] * self.factor
        out = []
        for chunk in z.split(self.micro_batch):
            n = chunk.shape[0]
            x = chunk.to(self.device, self.dtype)
            if self.cfg_active:  # unconditional and conditional passes in one batch
                hu, eu = self._conditioning(self.uncond, n, height, width)
                hc, ec = self._conditioning(self.cond, n, height, width)
                extra = {"added_cond_kwargs": {k: torch.cat([eu["added_cond_kwargs"][k], ec["added_cond_kwargs"][k]])
                                               for k in ("text_embeds", "time_ids")}} if self.sdxl else {}
                timestep = torch.full((2 * n,), t, device=self.device, dtype=torch.long)
                pred = self.unet(torch.cat([x, x]), timestep, encoder_hidden_states=torch.cat([hu, hc]),
                                 **extra).sample
                u, c = pred.float().chunk(2)
                pred = u + self.guidance_scale * (c - u)
                self.network_evaluations += 2 * n
            else:
                hidden, extra = self._conditioning(self.cond, n, height, width)
                timestep = torch.full((n,), t, device=self.device, dtype=torch.long)
                pred = self.unet(x, timestep, encoder_hidden_states=hidden, **extra).sample.float()
                self.network_evaluations += n
            out.append(pred.to(z.dtype).to(z.device))
        return torch.cat(out)

    def tweedie(self, z_t: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, ẑ0) with z_t = √ᾱ_t ẑ0 + √(1−ᾱ_t) ε̂, for latents (F, C, h, w)."""
        prediction = self._network(z_t, int(t))
        return split_prediction(prediction, z_t, float(self.alphas_cumprod[int(t)]), self.prediction_type)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] frames (F, 3, H, W) → latents (F, C, ⌈H/f⌉, ⌈W/f⌉); the posterior mean, so no randomness."""
        x = pad_to_multiple(to_model(x), self.factor)
        vae_dtype = next(self.vae.parameters()).dtype
        out = []
        for chunk in x.split(self.micro_batch):
            mean = self.vae.encode(chunk.to(self.device, vae_dtype)).latent_dist.mean
            out.append(((mean.float() - self.shift_factor) * self.scaling_factor).to(x.dtype).to(x.device))
        return torch.cat(out)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Latents → [0, 1] frames cropped to `size` (H, W) (unclipped)."""
        vae_dtype = next(self.vae.parameters()).dtype
        out = []
        for chunk in z.split(self.micro_batch):
            latent = chunk.float() / self.scaling_factor + self.shift_factor
            out.append(self.vae.decode(latent.to(self.device, vae_dtype)).sample.float().to(z.device))
        return from_model(torch.cat(out))[..., : size[0], : size[1]].to(z.dtype)


# ----------------------------------------------------------------------------- loading

def read_model_index(location: str | Path, offline: bool) -> dict | None:
    """The pipeline's model_index.json, or None when there is none (a bare model folder / repo)."""
    if isinstance(location, Path):
        path = location / "model_index.json"
        return json.loads(path.read_text()) if path.exists() else None
    from huggingface_hub import hf_hub_download

    try:
        return json.loads(Path(hf_hub_download(str(location), "model_index.json",
                                               local_files_only=offline)).read_text())
    except Exception:  # not cached offline, no such file, or no network: the loader reports it
        return None


def latent_kind(index: dict | None) -> str | None:
    """"sdxl", "sd" or None (not a latent diffusion pipeline), from a model_index.json."""
    if not index or "vae" not in index or "unet" not in index:
        return None
    if "text_encoder_2" in index or "XL" in str(index.get("_class_name", "")):
        return "sdxl"
    return "sd"


def encode_prompt(prompt: str, tokenizers: list, text_encoders: list, sdxl: bool,
                  device: torch.device) -> PromptEmbedding:
    """CLIP conditioning of one prompt: SD uses the last hidden state of its encoder; SDXL concatenates
    the penultimate hidden states of both encoders and adds the second one's pooled projection."""
    hidden, pooled = [], None
    with torch.no_grad():
        for tokenizer, encoder in zip(tokenizers, text_encoders):
            length = min(int(tokenizer.model_max_length), int(encoder.config.max_position_embeddings))
            ids = tokenizer([prompt], padding="max_length", max_length=length, truncation=True,
                            return_tensors="pt").input_ids.to(device)
            out = encoder(ids, output_hidden_states=sdxl)
            if sdxl:
                hidden.append(out.hidden_states[-2])
                pooled = out[0]  # CLIPTextModelWithProjection: text_embeds come first
            else:
                hidden.append(out[0])
    return PromptEmbedding(torch.cat(hidden, dim=-1).float().cpu(), None if pooled is None else pooled.float().cpu())


def load_latent_prior(location: str | Path, index: dict, device: torch.device, dtype: torch.dtype, *,
                      offline: bool, micro_batch: int = 8, vae: str | None = None, prompt: str = "",
                      negative_prompt: str = "", guidance_scale: float = 1.0,
                      vae_tiling: bool = False, vae_tile: int | None = None) -> LatentDenoiser:
    """Load an SD / SDXL pipeline folder or hub id (safetensors only) as a LatentDenoiser."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    try:
        from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer
        from transformers.utils import logging as transformers_logging
    except ImportError:
        raise ModelError("Stable Diffusion models need transformers: pip install 'vidrestore[sd]'") from None
    from diffusers.utils import logging as diffusers_logging

    transformers_logging.set_verbosity_error()  # our own errors say what went wrong, in one line
    transformers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()

    kind = latent_kind(index)
    sdxl = kind == "sdxl"
    name = location.name if isinstance(location, Path) else str(location)
    common = {"local_files_only": offline, "use_safetensors": True}
    diffusers_common = dict(common, low_cpu_mem_usage=False)  # no accelerate needed

    def load(what: str, fn, source=location, **kwargs):
        try:
            return fn(source, **kwargs)
        except Exception as exc:  # diffusers / transformers raise OSError, ValueError, EnvironmentError variants
            hint = "" if isinstance(source, Path) else (" (not in the local cache and no network)" if offline
                                                         else " (not in the local cache; download failed)")
            label = source.name if isinstance(source, Path) else str(source)
            raise ModelError(f"cannot load {what} of model {label!r}{hint}: {str(exc).splitlines()[0]}") from exc

    unet = load("unet", UNet2DConditionModel.from_pretrained, subfolder="unet", torch_dtype=dtype,
                **diffusers_common)
    if vae is not None:
        vae_path = Path(vae).expanduser()
        source = vae_path if vae_path.exists() else vae
        sub = {"subfolder": "vae"} if isinstance(source, Path) and (source / "vae" / "config.json").exists() else {}
        vae_model = load("--vae", AutoencoderKL.from_pretrained, source=source, torch_dtype=dtype, **sub,
                         **diffusers_common)
    else:
        vae_model = load("vae", AutoencoderKL.from_pretrained, subfolder="vae", torch_dtype=dtype,
                         **diffusers_common)
    if dtype == torch.float16 and getattr(vae_model.config, "force_upcast", False):
        vae_model = vae_model.to(torch.float32)  # this VAE overflows in fp16 (SDXL's); --vae takes a fixed one
    scheduler = load("scheduler", DDIMScheduler.from_pretrained, subfolder="scheduler",
                     local_files_only=offline)
    tokenizers, encoders = [], []
    parts = [("tokenizer", "text_encoder", CLIPTextModel)]
    if sdxl:
        parts.append(("tokenizer_2", "text_encoder_2", CLIPTextModelWithProjection))
    for tok_name, enc_name, cls in parts:
        if tok_name not in index or index.get(enc_name, [None])[0] is None:
            continue  # SDXL refiner-style pipelines have no first encoder
        tokenizers.append(load(tok_name, CLIPTokenizer.from_pretrained, subfolder=tok_name, local_files_only=offline))
        encoders.append(load(enc_name, cls.from_pretrained, subfolder=enc_name, torch_dtype=dtype,
                             **common).to(device).eval())
    if not encoders:
        raise ModelError(f"model {name!r}: no text encoder in model_index.json")
    cond = encode_prompt(prompt, tokenizers, encoders, sdxl, device)
    uncond = None
    if guidance_scale != 1.0 and prompt != negative_prompt:  # two equal prompts would only double the cost
        if sdxl and not negative_prompt and index.get("force_zeros_for_empty_prompt", True):
            uncond = PromptEmbedding(torch.zeros_like(cond.hidden), torch.zeros_like(cond.pooled))
        else:
            uncond = encode_prompt(negative_prompt, tokenizers, encoders, sdxl, device)
    del encoders  # conditioning is cached; the encoders are not needed while sampling
    return LatentDenoiser(vae_model.to(device), unet.to(device), dict(scheduler.config), cond=cond, uncond=uncond,
                          guidance_scale=guidance_scale, name=name, micro_batch=micro_batch, vae_tiling=vae_tiling,
                          vae_tile=vae_tile, sdxl=sdxl)
