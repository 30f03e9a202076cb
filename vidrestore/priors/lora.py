"""Low-rank adapters (LoRA, Hu et al. 2021) for the convolutions and linear layers of a pixel UNet.

Each adapted layer computes ``W x + scale · up(down(x))`` with ``down`` a layer of the
same kind and geometry as the frozen one but `rank` outputs, and ``up`` a 1×1 map
back, started at zero (the adapted network starts as the network itself). Because
both parts are linear, :func:`merge_low_rank` folds them into the frozen weights:
the merged network is an ordinary ``UNet2DModel``, saved and loaded like any other.

Written here rather than taken from peft: peft's LoRA needs transformers and
accelerate at import, and diffusers' ``UNet2DModel`` has no adapter mixin; the
few lines below are all the fine-tuning of `vidrestore.adapt` needs.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["LowRank", "add_low_rank", "merge_low_rank", "low_rank_parameters"]


class LowRank(nn.Module):
    """A frozen conv / linear layer plus a trainable rank-`rank` update."""

    def __init__(self, base: nn.Conv2d | nn.Linear, rank: int, alpha: float, generator: torch.Generator):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.scale = alpha / rank
        if isinstance(base, nn.Conv2d):
            self.down = nn.Conv2d(base.in_channels, rank, base.kernel_size, base.stride, base.padding, base.dilation,
                                  groups=1, bias=False, padding_mode=base.padding_mode)
            self.up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
        else:
            self.down = nn.Linear(base.in_features, rank, bias=False)
            self.up = nn.Linear(rank, base.out_features, bias=False)
        fan_in = self.down.weight[0].numel()
        with torch.no_grad():  # Kaiming-uniform down, zero up: the update starts at exactly zero
            bound = (3.0 / fan_in) ** 0.5
            self.down.weight.copy_(torch.rand(self.down.weight.shape, generator=generator) * 2 * bound - bound)
            self.up.weight.zero_()
        self.to(base.weight.device, base.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * self.up(self.down(x))

    def delta(self) -> torch.Tensor:
        """The update as a weight of the base layer's shape."""
        up = self.up.weight.flatten(1)                              # (out, rank)
        down = self.down.weight                                     # (rank, in[, kh, kw])
        return self.scale * torch.einsum("or,r...->o...", up, down)


def add_low_rank(model: nn.Module, rank: int, alpha: float | None = None, *,
                 generator: torch.Generator) -> list[nn.Parameter]:
    """Wrap every ungrouped Conv2d and every Linear of `model` in place; returns the trainable parameters.
    The rest of the model is frozen."""
    model.requires_grad_(False)
    alpha = float(rank if alpha is None else alpha)
    targets = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if isinstance(child, nn.Linear) or (isinstance(child, nn.Conv2d) and child.groups == 1)]
    for parent, name, child in targets:  # the order of modules() fixes the generator's draws
        setattr(parent, name, LowRank(child, rank, alpha, generator))
    return low_rank_parameters(model)


def low_rank_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for m in model.modules() if isinstance(m, LowRank) for p in (m.down.weight, m.up.weight)]


@torch.no_grad()
def merge_low_rank(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base layer and put the base layer back in its place (in place)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LowRank):
                child.base.weight += child.delta().to(child.base.weight.dtype)
                setattr(parent, name, child.base)
    return model
