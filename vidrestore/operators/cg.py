"""Conjugate gradients for the data-consistency step (one system over the whole clip)."""

from __future__ import annotations

from typing import Callable

import torch

from .base import LinearOperator


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.dot(a.reshape(-1), b.reshape(-1))


def conjugate_gradient(
    apply: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    x0: torch.Tensor,
    iterations: int,
    tol: float = 0.0,
    gamma: float = 0.0,
) -> torch.Tensor:
    """Solve ``(apply + γ I) x = b`` by conjugate gradients, starting from ``x0``.

    ``apply`` must be symmetric positive semi-definite (e.g. ``AᵀA``). The whole
    tensor is one unknown vector: inner products are global, not per frame.
    Runs at most ``iterations`` iterations, fewer when ``‖r‖ / ‖b‖ < tol``
    (``tol > 0``; checking it synchronises with the GPU once per iteration).
    Safe when ``b`` is zero, ``x0`` already solves the system or the residual
    vanishes (steps become zero instead of NaN). ``b`` and ``x0`` are not modified.
    """
    if b.shape != x0.shape:
        raise ValueError(f"b and x0 must have the same shape, got {tuple(b.shape)} and {tuple(x0.shape)}")
    iterations = int(iterations)
    gamma = float(gamma)

    def op(v: torch.Tensor) -> torch.Tensor:
        out = apply(v)
        return out + gamma * v if gamma != 0.0 else out

    x = x0.clone()
    if iterations <= 0:
        return x
    r = b - op(x)
    p = r.clone()
    rs = _dot(r, r)
    threshold = None
    if tol > 0:
        threshold = (tol * torch.sqrt(_dot(b, b))).item()
        if rs.sqrt().item() < threshold or rs.item() == 0.0:
            return x
    zero = torch.zeros((), dtype=rs.dtype, device=rs.device)
    for _ in range(iterations):
        ap = op(p)
        pap = _dot(p, ap)
        alpha = torch.where(pap > 0, rs / torch.where(pap > 0, pap, torch.ones_like(pap)), zero)
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = _dot(r, r)
        if threshold is not None and (rs_new.sqrt().item() < threshold or rs_new.item() == 0.0):
            break
        beta = torch.where(rs > 0, rs_new / torch.where(rs > 0, rs, torch.ones_like(rs)), zero)
        p = r + beta * p
        rs = rs_new
    return x


def solve_normal_equations(
    op: LinearOperator,
    y: torch.Tensor,
    x_init: torch.Tensor,
    iterations: int,
    gamma: float = 0.0,
    x_prior: torch.Tensor | None = None,
    tol: float = 0.0,
) -> torch.Tensor:
    """Solve ``(AᵀA + γI) x = Aᵀy + γ·x_prior`` by CG from ``x_init``.

    ``x_prior`` defaults to ``x_init`` (the DDS / SVI data-consistency step with
    ``x_init = x̂0``). With γ = 0 this is least squares started at ``x_init``.
    """
    b = op.A_adjoint(y)
    if gamma != 0.0:
        b = b + gamma * (x_init if x_prior is None else x_prior)
    return conjugate_gradient(op.normal, b, x_init, iterations, tol=tol, gamma=gamma)
