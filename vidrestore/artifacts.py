"""Compression artifacts: a small network that maps decoded lossy frames (H.264 and the like) to clean ones.

A compressed input is not y = A x + noise: the encoder quantised its DCT
coefficients, so detail is missing and blocks and ringing were added, and
exact (or noise-aware) data consistency copies both into the output. Before a
window is solved, `ArtifactRemover` replaces the decoded frames by an estimate
of what went into the encoder (trained on libx264 output at CRF 15–35 of
Debian's photographs, `scripts/train_deblock.py`; model card:
docs/model-card.md), and the solver inverts the task's operator from there.

The network is a three-level convolutional U-Net predicting a residual:
cheap next to the diffusion prior (it runs once per input frame, at the
input's resolution). Weights are safetensors, never pickles.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS = Path(__file__).resolve().parent / "weights" / "vr-deblock-x264"
#: the input is padded to a multiple of this (two stride-2 levels)
MULTIPLE = 4


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.1))


class DeblockNet(nn.Module):
    """Residual U-Net over RGB frames in [0, 1]: out = centre + f(frames). It sees `2 radius + 1` frames stacked
    on the channels (the frame and its neighbours: x264 quantises each frame differently) and restores the
    centre one."""

    def __init__(self, width: int = 32, radius: int = 0):
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.config = {"width": width} | ({"radius": radius} if radius else {})
        self.radius = radius
        self.enc1 = nn.Sequential(_conv(3 * (2 * radius + 1), w1), _conv(w1, w1))
        self.enc2 = nn.Sequential(_conv(w1, w2, 2), _conv(w2, w2))
        self.mid = nn.Sequential(_conv(w2, w3, 2), _conv(w3, w3), _conv(w3, w3))
        self.up2 = nn.Sequential(nn.Conv2d(w3, 4 * w2, 1), nn.PixelShuffle(2))
        self.dec2 = nn.Sequential(_conv(2 * w2, w2), _conv(w2, w2))
        self.up1 = nn.Sequential(nn.Conv2d(w2, 4 * w1, 1), nn.PixelShuffle(2))
        self.dec1 = nn.Sequential(_conv(2 * w1, w1), nn.Conv2d(w1, 3, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        d2 = self.dec2(torch.cat([self.up2(self.mid(e2)), e2], 1))
        centre = x[:, 3 * self.radius:3 * self.radius + 3]
        return centre + self.dec1(torch.cat([self.up1(d2), e1], 1))


class ArtifactRemover:
    """The shipped network on a device, applied to batches of frames of any size."""

    def __init__(self, net: DeblockNet, device: torch.device, batch: int = 8):
        self.net, self.device, self.batch = net.to(device).eval(), device, batch

    @classmethod
    def load(cls, device: torch.device, folder: Path = WEIGHTS) -> "ArtifactRemover":
        from safetensors.torch import load_file

        config = json.loads((folder / "config.json").read_text())
        net = DeblockNet(**config["architecture"])
        net.load_state_dict({k: v.float() for k, v in load_file(folder / "model.safetensors").items()})
        return cls(net, device)

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        """(F, 3, H, W) decoded frames in [0, 1] → the estimate of the frames before compression, in [0, 1]."""
        n, h, w = frames.shape[0], *frames.shape[-2:]
        ph, pw = -h % MULTIPLE, -w % MULTIPLE  # padded to the network's multiple, cropped after
        r = self.net.radius
        out = []
        for start in range(0, n, self.batch):
            stop = min(start + self.batch, n)
            # each frame with its neighbours (the first and last frame repeated at the ends)
            index = (torch.arange(start, stop)[:, None] + torch.arange(-r, r + 1)[None]).clamp(0, n - 1)
            x = frames[index.flatten()].to(self.device, torch.float32).reshape(stop - start, -1, h, w)
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
            out.append(self.net(x)[..., :h, :w].clamp(0, 1).to(frames.device, frames.dtype))
        return torch.cat(out)


#: codecs (as ffmpeg names them) whose output carries quantisation artifacts: `--deblock auto` removes them
#: where the task asks for it (`Task.deblock_lossy`)
LOSSY_CODECS = frozenset({
    "h264", "hevc", "av1", "vp8", "vp9", "mpeg4", "mpeg2video", "mpeg1video", "mjpeg", "h263", "msmpeg4v2",
    "msmpeg4v3", "wmv1", "wmv2", "wmv3", "vc1", "theora", "flv1", "rv40",
})


#: the noise level the solver assumes in frames the remover returned (with `--sigma-y auto`): what it leaves is
#: 3–17/255 RMS on the benchmark's held-out clips at CRF 18–33, and solving with σ_y 0.03 instead of 0 gained
#: 0.05–0.27 dB on its compressed super-resolution rows (docs/benchmarks.md, "Real inputs")
DEBLOCKED_SIGMA = 0.03


def resolve_deblock(setting: str, codec: str | None, lossy_default: bool = True) -> bool:
    """Whether to remove compression artifacts: "on" / "off" as given; "auto" for a lossy codec where the task
    asks for it (`lossy_default`: `Task.deblock_lossy`)."""
    if setting == "auto":
        return lossy_default and codec in LOSSY_CODECS
    return setting == "on"


@functools.lru_cache(maxsize=None)
def shared_remover(device: torch.device) -> ArtifactRemover:
    """The shipped remover on `device`, loaded once per process (it is never modified)."""
    return ArtifactRemover.load(device)
