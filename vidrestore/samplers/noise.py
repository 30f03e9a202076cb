"""Noise samplers: where the fresh noise of each diffusion step comes from.

Noise is a pure function of (seed, step, frame index), never of generator
state, so a clip processed in chunks sees exactly the noise it would see in
one piece, and every run with the same seed is reproducible. Warped noise is
also a function of the window's optical flow: a pure function of (seed, step,
frames, flows).
"""
from __future__ import annotations

from typing import Protocol, Sequence

import torch
import torch.nn.functional as F

INIT_STEP = -1  # the step index used for the initial x_T
#: the k-th of `sampler.average` samples uses seed + AVERAGE_SEED_STRIDE·k: a large stride (a prime), so that
#: the samples averaged for seed s are not the first samples of the nearby seeds s + 1, s + 2, …
AVERAGE_SEED_STRIDE = 7919

# Noise streams: every sampler mixes its own tag into the generator keys, so that two samplers
# (or two uses within one sampler) never draw the same numbers for the same (seed, step, frame).
STREAM_INDEPENDENT = 1  # IndependentNoise: (seed, step, tag, frame)
STREAM_SHARED = 2  # SharedNoise: (seed, step, tag)
STREAM_WARPED_FRESH = 3  # WarpedNoise: fresh noise of a frame, (seed, step, tag, frame)
STREAM_WARPED_SUBPIXEL = 4  # WarpedNoise: sub-pixel randomness and grid offset of a transport step
STREAM_WARPED_DECORRELATE = 5  # WarpedNoise: the independent part mixed in when correlation < 1

# `_generator`'s key mix: seed ← (seed · multiplier + key + offset) mod (2⁶³ − 1)
_MIX_MULTIPLIER = 1_000_003  # a prime
_MIX_OFFSET = 0x9E3779B9  # 2³² / golden ratio: keeps the key 0 from being a no-op
_KEY_MASK = 0xFFFFFFFF  # keys enter as 32-bit unsigned
_SEED_MODULUS = 2 ** 63 - 1  # a 63-bit seed (positive for torch)


class NoiseSampler(Protocol):
    def __call__(self, step: int, frames: Sequence[int], shape: tuple[int, int, int],
                 device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Standard normal noise of shape (len(frames), *shape)."""
        ...


def _generator(*keys: int, device: torch.device | str = "cpu") -> torch.Generator:
    seed = 0
    for key in keys:  # a simple, stable mix of the keys into one 63-bit seed
        seed = (seed * _MIX_MULTIPLIER + (key & _KEY_MASK) + _MIX_OFFSET) % _SEED_MODULUS
    return torch.Generator(device=device).manual_seed(seed)


class IndependentNoise:
    """Fresh noise for every frame: image-diffusion sampling applied frame by frame."""

    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, step, frames, shape, device, dtype):
        noise = [torch.randn(shape, generator=_generator(self.seed, step, STREAM_INDEPENDENT, f)) for f in frames]
        return torch.stack(noise).to(device=device, dtype=dtype)


class SharedNoise:
    """One noise image for every frame: SVI's batch-consistent sampling."""

    def __init__(self, seed: int):
        self.seed = seed

    def __call__(self, step, frames, shape, device, dtype):
        noise = torch.randn(shape, generator=_generator(self.seed, step, STREAM_SHARED))
        return noise.to(device=device, dtype=dtype).expand(len(frames), *shape).contiguous()


class WarpedNoise:
    """Noise that moves with the video: integral noise warping along optical flow.

    A simplification of "How I Warped Your Noise" (Chang et al., ICLR 2024) that
    keeps every frame's noise exactly white, N(0, 1) i.i.d. per pixel:

    * the first frame of the window and of every shot (`cuts`) gets fresh noise,
      a function of (seed, step, frame index);
    * frame j+1 is made from frame j's noise: each pixel is split into k×k
      sub-pixels by conditional (Brownian-bridge) upsampling,
      Z = W − mean(W) + X/k with W ~ N(0, 1) i.i.d., so the sub-pixels are i.i.d.
      N(0, 1) and sum to k·X; every sub-pixel of frame j+1 looks up, along the
      backward flow, the sub-pixel of frame j it comes from; each source
      sub-pixel is used by at most one target sub-pixel (the lowest index wins
      collisions), and a pixel's noise is the sum of its distinct source
      sub-pixels / √(their count). Disjoint sums of i.i.d. normals are again
      i.i.d. N(0, 1), so the result is exactly white whatever the flow;
    * pixels whose correspondence is not trusted (`masks` = 0: occluded or
      newly revealed), that point outside frame j, or that receive no source
      sub-pixel get fresh noise;
    * with `correlation` ρ < 1, frame j+1 is ρ·(the moved noise) + √(1 − ρ²)·(fresh
      noise): still exactly white, correlated by ρ with frame j along the flow
      (ρ = 0 is independent noise in distribution).

    A pure integer translation moves the noise exactly (every source pixel's
    k² sub-pixels land in one target pixel and sum back to its value). Sub-pixel
    motion is resolved to 1/k pixel (k = `subpixels`, default 2); the sub-pixel
    grid is offset by a random fraction of a sub-pixel per frame (a function of
    seed, step and frame), so that rounding error does not accumulate into drift
    over a slow pan. (Measured on pans of 0.3–2.3 px/frame: k = 2 and k = 4 give
    the same correlation along the motion and the same warping error after
    sampling; k = 4 costs 4× the time and memory.)

    Fresh noise comes from CPU generators (the same on every device); the
    sub-pixel randomness (k² normals per pixel and frame) from a generator on
    the device the noise is made on, so warped noise is reproducible per
    (seed, step, frames, flows) and device type.

    Flows follow `vidrestore.temporal`: ``flows[j]`` is the backward flow from
    frame j+1 to frame j of the window, ``frame[j+1](p) ≈ frame[j](p + flows[j](p))``
    (the ``flows_bwd`` of `consecutive_flows`); ``masks[j]`` (F−1, 1, H, W) lies on
    frame j+1's grid (`occlusion_mask(flows_bwd, flows_fwd)`); `cuts` are window
    positions that start a new shot (`detect_scene_cuts`).
    """

    def __init__(self, seed: int, flows: torch.Tensor, masks: torch.Tensor | None = None,
                 cuts: Sequence[int] = (), *, subpixels: int = 2, correlation: float = 1.0):
        if flows.dim() != 4 or flows.shape[1] != 2:
            raise ValueError(f"warped noise needs flows of shape (F-1, 2, H, W), got {tuple(flows.shape)}")
        if masks is not None and (masks.dim() != 4 or masks.shape[0] != flows.shape[0]
                                  or masks.shape[-2:] != flows.shape[-2:]):
            raise ValueError(f"masks of shape {tuple(masks.shape)} do not fit flows of shape {tuple(flows.shape)}")
        if int(subpixels) < 1:
            raise ValueError(f"subpixels must be a positive integer, got {subpixels!r}")
        if not 0.0 <= correlation <= 1.0:
            raise ValueError(f"correlation must be in [0, 1], got {correlation!r}")
        self.seed = seed
        self.flows = flows.detach().float()
        self.masks = None if masks is None else (masks.detach() > 0.5).any(dim=1)
        self.cuts = frozenset(int(c) for c in cuts)
        self.subpixels = int(subpixels)
        self.correlation = float(correlation)

    def _fresh(self, step: int, frame: int, shape, device) -> torch.Tensor:
        return torch.randn(shape, generator=_generator(self.seed, step, STREAM_WARPED_FRESH, frame)).to(device)

    def __call__(self, step, frames, shape, device, dtype):
        frames = list(frames)
        n, (h, w) = len(frames), tuple(shape[-2:])
        if n != self.flows.shape[0] + 1 or (h, w) != tuple(self.flows.shape[-2:]):
            raise ValueError(f"warped noise for {n} frames of {h}x{w} needs {n - 1} flows of that size, "
                             f"got flows of shape {tuple(self.flows.shape)}")
        device = torch.device(device)
        out = [self._fresh(step, frames[0], shape, device)]
        for j in range(1, n):
            fresh = self._fresh(step, frames[j], shape, device)
            if j in self.cuts:
                out.append(fresh)
                continue
            valid = None if self.masks is None else self.masks[j - 1].to(device)
            subpixel = _generator(self.seed, step, STREAM_WARPED_SUBPIXEL, frames[j], device=device)
            moved = transport_noise(out[-1], self.flows[j - 1].to(device), fresh, subpixel, self.subpixels, valid)
            if self.correlation < 1.0:  # a sum of two independent white fields with weights ρ² + (1 − ρ²) = 1
                other = _generator(self.seed, step, STREAM_WARPED_DECORRELATE, frames[j])
                extra = torch.randn(shape, generator=other).to(device)
                moved = self.correlation * moved + (1.0 - self.correlation ** 2) ** 0.5 * extra
            out.append(moved)
        return torch.stack(out).to(dtype=dtype)


def transport_noise(prev: torch.Tensor, flow: torch.Tensor, fresh: torch.Tensor, generator: torch.Generator,
                    k: int = 2, valid: torch.Tensor | None = None) -> torch.Tensor:
    """One step of integral noise warping (see `WarpedNoise`).

    prev: (C, H, W) white noise of the source frame; flow: (2, H, W) backward
    flow, target(p) ≈ source(p + flow(p)); fresh: (C, H, W) white noise for the
    target pixels that receive nothing; generator: the sub-pixel randomness
    (and the grid offset), on `prev`'s device; valid: optional (H, W) bool,
    target pixels whose correspondence is trusted. Returns (C, H, W) white noise.
    """
    c, h, w = prev.shape
    device = prev.device
    hk, wk = h * k, w * k
    # grid offset (< half a sub-pixel, so integer motion stays exact) first, then conditional
    # upsampling: sub-pixels i.i.d. N(0, 1) whose sum over each pixel is k·prev (Brownian bridge)
    offset = ((torch.rand(2, generator=generator, device=generator.device, dtype=torch.float64) - 0.5)
              * 0.98).tolist()
    noise = torch.randn((c, h, k, w, k), generator=generator, device=generator.device).to(device)
    sub = noise.sub_(noise.mean(dim=(2, 4), keepdim=True)).add_(prev.float()[:, :, None, :, None] / k)
    sub = sub.reshape(c, hk * wk)

    # in sub-pixel units: where each target sub-pixel's centre (plus the offset) comes from
    flow_sub = F.interpolate(flow.float()[None], scale_factor=k, mode="bilinear", align_corners=False)[0]
    xs = torch.arange(wk, device=device, dtype=torch.float32) + (0.5 + offset[0])
    ys = torch.arange(hk, device=device, dtype=torch.float32) + (0.5 + offset[1])
    sx = torch.floor(flow_sub[0].mul_(k).add_(xs[None, :])).long()
    sy = torch.floor(flow_sub[1].mul_(k).add_(ys[:, None])).long()
    claim = (sx >= 0) & (sx < wk) & (sy >= 0) & (sy < hk)
    if valid is not None:
        claim &= valid.bool().repeat_interleave(k, 0).repeat_interleave(k, 1)
    src = sy.clamp_(0, hk - 1).mul_(wk).add_(sx.clamp_(0, wk - 1)).reshape(-1)
    claim = claim.reshape(-1)
    del sx, sy, flow_sub

    # each source sub-pixel goes to one target sub-pixel at most (the lowest index): disjoint sums
    n_sub = hk * wk
    target = torch.arange(n_sub, device=device)
    owner = torch.full((n_sub,), n_sub, device=device, dtype=torch.long)
    owner.scatter_reduce_(0, src, torch.where(claim, target, n_sub), reduce="amin")
    used = claim & (owner.index_select(0, src) == target)
    del owner, target, claim
    total = (sub.index_select(1, src) * used).reshape(c, h, k, w, k).sum(dim=(2, 4))
    count = used.reshape(h, k, w, k).sum(dim=(1, 3))
    warped = total / count.clamp(min=1).to(total.dtype).sqrt()
    return torch.where(count > 0, warped, fresh.to(warped.dtype))


NOISE_SAMPLERS = {"independent": IndependentNoise, "shared": SharedNoise, "warped": WarpedNoise}


def make_noise_sampler(kind: str, seed: int, *, flows: torch.Tensor | None = None,
                       masks: torch.Tensor | None = None, cuts: Sequence[int] = (),
                       correlation: float = 1.0) -> NoiseSampler:
    """The noise sampler `kind` for `seed`. Warped noise also needs the window's backward
    flows (and optionally occlusion masks and scene cuts, see `WarpedNoise`); the others ignore them."""
    if kind not in NOISE_SAMPLERS:
        raise ValueError(f"unknown noise {kind!r}; choose from {', '.join(NOISE_SAMPLERS)}")
    if kind == "warped":
        if flows is None:
            raise ValueError("warped noise needs the window's optical flows")
        return WarpedNoise(seed, flows, masks, cuts, correlation=correlation)
    return NOISE_SAMPLERS[kind](seed)
