"""Equivariance self-guidance (Warped Diffusion, Daras et al., NeurIPS 2024).

The Tweedie estimates x̂0 of consecutive frames should agree along the optical
flow. The energy

    e(x) = Σ_j Σ_p m_j(p) ‖warp(x^(j+1), flow_j)(p) − x^(j)(p)‖²

(`flow_j` the forward flow of pair (j, j+1), so that backward warping frame
j+1 with it lands on frame j's grid; `m_j` the pixels of frame j whose
correspondence is trusted: not occluded, inside frame j+1, not across a scene
cut) is what `vidrestore.metrics.warping_error` measures, up to normalisation.

Where the gradient is taken: with respect to x̂0, between the Tweedie step and
the conjugate-gradient data-consistency step of the SVI/DDS sampler, not with
respect to x_t through the denoiser. e is a quadratic function of x̂0 whose
gradient costs two warps and no network evaluation, so guidance is free next to
the denoiser (no backward pass through the UNet, no activations kept for the
whole window, works with any `Denoiser`, whose `tweedie` runs without autograd,
tiled or not). This is the DDS view the sampler is built on: corrections are
applied on the clean manifold estimate, and the CG step that follows keeps the
result consistent with the measurements, so guidance only acts where the
measurements leave freedom. The guided x̂0 then enters the DDIM re-noising,
so the next x_t carries the correction too.

The step is x̂0 ← x̂0 − (λ / L) ∇e with L = 8, a bound on the Lipschitz constant of
∇e for warps of norm ≤ 1 (∇²e = 2 DᵀMD with D the warped temporal difference,
‖D‖² ≤ 4): λ is unit-free, 0 < λ < 2 is a contraction, and λ = 1 is the
classical 1/L gradient step (frame-to-frame flicker at the highest temporal
frequency is removed in one step; the residual of a single pair halves).
"""
from __future__ import annotations

from typing import Callable, Collection, Protocol

import torch

from vidrestore.temporal.warp import backward_warp

LIPSCHITZ = 8.0


class GuidanceHook(Protocol):
    def __call__(self, x0: torch.Tensor, step: int, t: int) -> torch.Tensor:
        """Return the guided Tweedie estimate (frames on the batch axis, [0, 1] range)."""
        ...


def _check(x: torch.Tensor, flows: torch.Tensor, masks: torch.Tensor | None) -> None:
    f, _, h, w = x.shape
    if flows.shape != (f - 1, 2, h, w):
        raise ValueError(f"flows of shape {tuple(flows.shape)} do not fit a clip of shape {tuple(x.shape)}")
    if masks is not None and (masks.shape[0] != f - 1 or masks.shape[-2:] != (h, w)):
        raise ValueError(f"masks of shape {tuple(masks.shape)} do not fit a clip of shape {tuple(x.shape)}")


def equivariance_energy(x: torch.Tensor, flows: torch.Tensor, masks: torch.Tensor | None = None, *,
                        sampling: str = "bilinear") -> tuple[torch.Tensor, torch.Tensor]:
    """The warping energy e of a clip and its gradient ∂e/∂x.

    Args:
        x: (F, C, H, W) clip (any range; the energy is quadratic).
        flows: (F−1, 2, H, W) forward flows, ``x[j](p) ≈ x[j+1](p + flows[j](p))``
            (the ``flows_fwd`` of `vidrestore.temporal.consecutive_flows`).
        masks: (F−1, 1, H, W) weights on frame j's grid, 1 where the pair's
            correspondence is trusted (`occlusion_mask(flows_fwd, flows_bwd)`, zeroed
            for a pair across a scene cut); default: pixels whose flow stays in frame.
        sampling: how the warp reads between pixels (`backward_warp`'s mode):
            bilinear blurs the neighbour at sub-pixel offsets, so its target is
            softer than the frame; bicubic keeps the detail multi-frame SR needs.

    Returns:
        (e, grad): the scalar energy (in x's dtype) and its gradient, shaped like x.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a clip (F, C, H, W), got shape {tuple(x.shape)}")
    _check(x, flows, masks)
    if x.shape[0] < 2:
        return x.new_zeros(()), torch.zeros_like(x)
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        warped, inside = backward_warp(xg[1:], flows.to(x.device), mode=sampling)
        m = inside if masks is None else masks.to(device=x.device, dtype=x.dtype)
        e = ((warped - xg[:-1]).pow(2) * m).sum()
        (grad,) = torch.autograd.grad(e, xg)
    return e.detach(), grad


FlowEstimator = Callable[[torch.Tensor], "tuple[torch.Tensor, torch.Tensor]"]  # clip → (flows, masks)


def update_steps(steps: int, updates: int) -> frozenset[int]:
    """`updates` step indices spread evenly over a schedule of `steps` steps.

    A flow measured after step i serves steps i+1 on: never after the last step
    (nothing would use it), nor after the first (the estimate is still the input's)."""
    if updates <= 0 or steps < 3:
        return frozenset()
    return frozenset(min(steps - 2, max(1, round(steps * k / (updates + 1)))) for k in range(1, updates + 1))


class EquivarianceGuidance:
    """A `dds_sample` guidance hook: one step x̂0 ← x̂0 − (λ/8) ∇e per diffusion step.

    The flow starts as the one given (measured on the initial estimate, which for
    super-resolution is a blurry upsampling). With `reestimate` and `update_at`, the
    flow is measured again on the guided estimate after the steps in `update_at`:
    later steps follow the motion of a sharper, temporally consistent clip. The hook
    keeps that state, so use a fresh one per sampling run.
    """

    def __init__(self, weight: float, flows: torch.Tensor, masks: torch.Tensor | None = None, *,
                 sampling: str = "bilinear", reestimate: FlowEstimator | None = None,
                 update_at: Collection[int] = ()):
        if not weight >= 0:
            raise ValueError(f"equivariance weight must be >= 0, got {weight!r}")
        if update_at and reestimate is None:
            raise ValueError("update_at needs a reestimate function")
        self.weight = float(weight)
        self.sampling = sampling
        self.flows = flows.detach()
        self.masks = None if masks is None else masks.detach()
        self.reestimate = reestimate
        self.update_at = frozenset(update_at)
        self.energies: list[float] = []  # e before each step, for diagnostics

    def __call__(self, x0: torch.Tensor, step: int, t: int) -> torch.Tensor:
        if self.weight == 0 or x0.shape[0] < 2:
            return x0
        e, grad = equivariance_energy(x0, self.flows, self.masks, sampling=self.sampling)
        self.energies.append(float(e))
        guided = x0 - (self.weight / LIPSCHITZ) * grad
        if step in self.update_at:
            flows, masks = self.reestimate(guided.clamp(0, 1))
            self.flows, self.masks = flows.detach(), masks.detach()
        return guided
