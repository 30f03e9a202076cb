"""Editing sampler: SDEdit from the noised input latents, ControlNet structure, temporal consistency.

No measurement constrains the result (the edit task has no operator), so this is not the DDS loop: the
state stays in latent space, every step runs the UNet with ControlNet residuals (classifier-free
guidance with the prior's negative prompt), and DDIM re-noises with injected noise. Temporal
consistency `c` in [0, 1] (0 = every frame edited alone) acts through

* cross-frame attention (`vidrestore.samplers.crossframe`): the first frame of every shot of the window
  is its anchor, run first at each step; the other frames' self-attention mixes in the anchor's tokens
  with weight c;
* flow-warped fusion of clean estimates (Rerender-A-Video's idea, on latents): at every step, frame j's
  x̂0 is pulled towards frame j−1's (already fused) x̂0 warped along the backward flow, with weight
  c · (trusted correspondence), frame after frame from the anchor; ε̂ is recomputed from the fused x̂0 so
  that the DDIM step stays consistent;
* the noise, which the caller injects (shared or warped with correlation c; independent for c = 0).

A scene cut inside the window starts a new shot: a new anchor, no fusion across it.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from vidrestore.priors.base import split_prediction
from vidrestore.samplers.crossframe import CrossFrameControl, cross_frame_attention
from vidrestore.samplers.noise import INIT_STEP, NoiseSampler
from vidrestore.samplers.spaces import latent_motion, noised, shot_starts
from vidrestore.temporal.warp import backward_warp


@dataclass(frozen=True)
class Structure:
    """ControlNet conditioning: maps (F, 3, H, W) in [0, 1] on the padded frame grid, and their weight."""

    controlnet: torch.nn.Module
    maps: torch.Tensor
    weight: float = 1.0


def _embeddings(prior, n: int, height: int, width: int) -> tuple[torch.Tensor, dict | None]:
    """Text conditioning of n frames ([unconditional; conditional] with classifier-free guidance)."""
    embs = [prior.uncond, prior.cond] if prior.cfg_active else [prior.cond]
    device, dtype = prior.device, prior.dtype
    hidden = torch.cat([e.hidden.to(device, dtype).expand(n, -1, -1) for e in embs])
    if not prior.sdxl:
        return hidden, None
    # SDXL micro-conditioning: original size, crop (0, 0), target size = the (padded) frame
    time_ids = torch.tensor([[height, width, 0, 0, height, width]], device=device, dtype=dtype)
    pooled = torch.cat([e.pooled.to(device, dtype).expand(n, -1) for e in embs])
    return hidden, {"text_embeds": pooled, "time_ids": time_ids.expand(len(hidden), -1)}


@torch.no_grad()
def predict(prior, z: torch.Tensor, t: int, structure: Structure | None, maps: torch.Tensor | None) -> torch.Tensor:
    """The network's prediction for latents z (n, C, h, w) at t, with ControlNet residuals and CFG."""
    n, (h, w) = z.shape[0], z.shape[-2:]
    hidden, added = _embeddings(prior, n, h * prior.factor, w * prior.factor)
    copies = hidden.shape[0] // n
    zz = torch.cat([z.to(prior.device, prior.dtype)] * copies)
    timestep = torch.full((zz.shape[0],), int(t), device=prior.device, dtype=torch.long)
    residuals = {}
    if structure is not None:
        image = torch.cat([maps.to(prior.device, prior.dtype)] * copies)
        down, mid = structure.controlnet(zz, timestep, encoder_hidden_states=hidden, controlnet_cond=image,
                                         conditioning_scale=structure.weight, added_cond_kwargs=added,
                                         return_dict=False)
        residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
    pred = prior.unet(zz, timestep, encoder_hidden_states=hidden, added_cond_kwargs=added, **residuals).sample
    pred = pred.float()
    prior.network_evaluations += zz.shape[0]
    if copies == 2:
        u, c = pred.chunk(2)
        pred = u + prior.guidance_scale * (c - u)
    return pred.to(z.device, z.dtype)


def fuse(z0: torch.Tensor, flows: torch.Tensor, masks: torch.Tensor | None, starts: Sequence[int],
         weight: float, mode: str = "bilinear") -> torch.Tensor:
    """Pull each frame's x̂0 towards its predecessor's (fused) x̂0 warped along the backward flow, with
    weight `weight` × (trusted correspondence, inside the frame); shot starts are left alone."""
    out = [z0[0]]
    for j in range(1, z0.shape[0]):
        if j in starts:
            out.append(z0[j])
            continue
        warped, inside = backward_warp(out[-1][None], flows[j - 1: j].to(z0.dtype), mode=mode)
        trust = inside if masks is None else inside * masks[j - 1: j].to(z0.dtype)
        out.append(torch.lerp(z0[j], warped[0], (weight * trust[0]).expand_as(z0[j])))
    return torch.stack(out)


def edit_sample(prior, x: torch.Tensor, frames: Sequence[int], timesteps: Sequence[int], noise: NoiseSampler, *,
                structure: Structure | None = None, consistency: float = 0.0, flows: torch.Tensor | None = None,
                masks: torch.Tensor | None = None, cuts: Sequence[int] = (), eta: float = 0.0,
                callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Edit the clip x (F, 3, H, W) in [0, 1]; returns the edited clip in [0, 1].

    `timesteps` descend to 0; the input latents are noised to the first one with the sampler's start
    noise. `flows` / `masks` are the window's backward pixel flows and trusted-pixel masks (F−1, 2 / 1,
    H, W) (`vidrestore.temporal.window_motion`), needed when `consistency` > 0; `cuts` start new shots.
    """
    if len(timesteps) == 0:
        raise ValueError("edit_sample needs at least one timestep")
    n_frames, size = x.shape[0], tuple(x.shape[-2:])
    shape = tuple(prior.latent_shape(*size))
    alphas = prior.alphas_cumprod
    starts = shot_starts(n_frames, cuts)
    bounds = list(zip(starts, starts[1:] + [n_frames]))
    fused = consistency > 0 and n_frames > 1
    if fused:
        if flows is None:
            raise ValueError("temporal consistency needs the window's flows")
        pixel_flows, pixel_masks = flows, masks
        # the share of a latent pixel's pixels that are trusted: an all-or-nothing rule (as for the noise)
        # would drop a latent pixel for one pixel the occlusion test flags on smooth texture
        trust = None if masks is None else F.adaptive_avg_pool2d(masks.float(), shape[1:])
        flows, masks = latent_motion(flows, None, shape[1:])[0], trust
    z = noised(prior.encode(x), float(alphas[timesteps[0]]), noise(INIT_STEP, frames, shape, x.device, x.dtype))
    maps = None if structure is None else structure.maps
    control = CrossFrameControl(consistency)
    models = [prior.unet] + ([structure.controlnet] if structure is not None else [])
    batch = prior.micro_batch
    eps_share = (1 - eta ** 2) ** 0.5  # DDIM: the rest of the noise's variance comes from ε̂
    with cross_frame_attention(models, control) if consistency > 0 else nullcontext():
        for i, t in enumerate(timesteps):
            pred = torch.empty_like(z)
            for start, stop in bounds:
                first = start
                if consistency > 0:  # the anchor alone first: the shot's other frames attend to its tokens
                    control.set("record")
                    pred[start: start + 1] = predict(prior, z[start: start + 1], t, structure,
                                                     None if maps is None else maps[start: start + 1])
                    control.set("attend")
                    first = start + 1
                for a in range(first, stop, batch):
                    b = min(a + batch, stop)
                    pred[a:b] = predict(prior, z[a:b], t, structure, None if maps is None else maps[a:b])
            a_t = float(alphas[t])
            eps, z0 = split_prediction(pred, z, a_t, prior.prediction_type)
            if fused:
                z0 = fuse(z0, flows.to(z0.device), None if masks is None else masks.to(z0.device), starts,
                          consistency)
                eps = (z - a_t ** 0.5 * z0) / (1 - a_t) ** 0.5
            if callback is not None:
                callback(i, t)
            if i + 1 == len(timesteps):
                break
            a_next = float(alphas[timesteps[i + 1]])
            fresh = noise(i, frames, shape, z.device, z.dtype)
            z = a_next ** 0.5 * z0 + (1 - a_next) ** 0.5 * (eta * fresh + eps_share * eps)
    x = prior.decode(z0, size).clamp(0, 1)
    if fused:  # the decoder is not shift-equivariant (its receptive field spans the frame): fuse once more
        x = fuse(x, pixel_flows.to(x.device), None if pixel_masks is None else pixel_masks.to(x.device), starts,
                 consistency, mode="bicubic").clamp(0, 1)
    return x
