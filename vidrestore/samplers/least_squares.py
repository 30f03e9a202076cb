"""The classical prior (`--model none`): smoothness-regularised least squares.

Solves (AᵀA + λ DᵀD) x = Aᵀy by conjugate gradients, where D is the spatial
finite-difference gradient with Neumann (replicate) boundaries. Fast, needs
no weights, and serves as preview mode and baseline.
"""
from __future__ import annotations

import torch

from vidrestore.operators import LinearOperator, conjugate_gradient


def gradient_normal(x: torch.Tensor) -> torch.Tensor:
    """DᵀD x: the negative Neumann Laplacian over the two spatial axes."""
    out = torch.zeros_like(x)
    for dim in (-1, -2):
        d = torch.diff(x, dim=dim)
        n = x.shape[dim]
        out.narrow(dim, 0, n - 1).sub_(d)
        out.narrow(dim, 1, n - 1).add_(d)
    return out


def least_squares(operator: LinearOperator, y: torch.Tensor, *, smoothness: float = 0.01,
                  iterations: int = 30, x_init: torch.Tensor | None = None) -> torch.Tensor:
    """argmin ‖Ax − y‖² + λ‖Dx‖², started from `x_init` (default: the operator's initial estimate)."""
    x0 = operator.initial_estimate(y) if x_init is None else x_init

    def normal(x: torch.Tensor) -> torch.Tensor:
        return operator.normal(x) + smoothness * gradient_normal(x)

    return conjugate_gradient(normal, operator.A_adjoint(y), x0, iterations)
