"""edit: change the content of a clip from a text prompt while keeping its structure (Gen-1's job),
training-free, with an SD / SDXL model and a ControlNet.

There is no measurement: the operator is the identity only so that the shared plumbing (windows,
segments, resume, metrics) works; the task samples its windows itself (`sample`, the editing loop of
`vidrestore.samplers.edit`) and nothing is made data-consistent.

* Structure (`--structure`): OpenCV Canny edges (`canny`, `vidrestore.metrics.edge_map`, the map the
  structure metric `edge_fscore` compares), a difference-of-Gaussians line map
  (`edges`), or depth maps the user supplies as a video / frame folder (`depth:PATH`, one map per
  frame, read window by window). `--structure-detail D` in (0, 1] keeps that fraction of the map's
  resolution (area-downsampled, then blurred back up): lower detail, looser structure, as Gen-1 controls
  fidelity by the detail of its depth maps. The maps condition the ControlNet (`--controlnet`) with
  weight `--structure-weight`; without a ControlNet the edit is SDEdit alone.
* Content: the prompt (`--prompt`, `--negative-prompt`, classifier-free guidance `--guidance`) through
  the latent prior; the input latents are noised to `--strength` · T and denoised (SDEdit).
* Temporal consistency `--consistency C` in [0, 1]: cross-frame attention to the anchor (the first frame
  of the window and of every shot in it; windows overlap, so a window's anchor is a frame the previous
  window also edited), flow-warped fusion of the previous frame's clean estimate on trusted pixels, and
  the noise (`sampler.noise`; warped noise with correlation C). C = 0: every frame edited alone, with
  independent noise. Scene cuts start a new anchor and stop the fusion.

A window is still a pure function of its frames, the config and the seed: the anchor is not carried from
one window to the next as state, so parallel workers and a resumed run give the same frames; the
overlap is cross-faded as for every task.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vidrestore import operators as ops
from vidrestore.errors import InputError, UsageError
from vidrestore.metrics import edge_map
from vidrestore.priors.latent import pad_to_multiple
from vidrestore.samplers import latent_motion, latent_timesteps, make_noise_sampler
from vidrestore.samplers.edit import Structure, edit_sample
from vidrestore.tasks.base import Degradation, Sampling, Task, TaskOption, register
from vidrestore.temporal import window_motion

STRUCTURES = ("canny", "edges", "depth:PATH")
DEPTH_PREFIX = "depth:"
#: difference of Gaussians: inner σ in pixels, outer σ as a multiple of it, and the response (in grey
#: levels of [0, 1]) that maps to a full-strength line
DOG_SIGMA, DOG_RATIO, DOG_FULL = 1.0, 1.6, 0.02
#: ControlNet cost per frame as a share of the UNet's (its encoder half and middle block), for estimates
CONTROLNET_SHARE = 0.5
#: VAE passes per frame of an edit: one encode, one decode
EDIT_VAE_PASSES = 2


@dataclass(frozen=True)
class EditOptions(Degradation):
    controlnet: str | None = None        # ControlNetModel folder or hub id; None: SDEdit without structure
    structure: str = "canny"             # canny | edges | depth:PATH
    structure_detail: float = 1.0        # (0, 1]: fraction of the structure map's resolution kept
    structure_weight: float = 1.0        # ControlNet conditioning scale
    strength: float = 0.75               # (0, 1]: the input is noised to strength · T
    consistency: float = 0.8             # [0, 1]: 0 = frames edited alone

    def validate(self) -> None:
        super().validate()
        if not (self.structure in ("canny", "edges") or
                (self.structure.startswith(DEPTH_PREFIX) and len(self.structure) > len(DEPTH_PREFIX))):
            choices = f"{', '.join(STRUCTURES[:-1])} or {STRUCTURES[-1]}"
            raise UsageError(f"--structure {self.structure!r}: choose {choices}")
        checks = (("structure_detail", self.structure_detail, 0.0, 1.0, True),
                  ("structure_weight", self.structure_weight, 0.0, 10.0, False),
                  ("strength", self.strength, 0.0, 1.0, True),
                  ("consistency", self.consistency, 0.0, 1.0, False))
        for key, value, low, high, low_open in checks:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) and \
                (value > low if low_open else value >= low) and value <= high
            if not ok:
                raise UsageError(f"--{key.replace('_', '-')} must be in {'(' if low_open else '['}{low:g}, "
                                 f"{high:g}], got {value!r}")

    @property
    def controlnet_name(self) -> str | None:
        """The ControlNet to load; None for none ('' or 'none')."""
        return None if self.controlnet in (None, "", "none") else self.controlnet

    @property
    def depth(self) -> str | None:
        return self.structure[len(DEPTH_PREFIX):] if self.structure.startswith(DEPTH_PREFIX) else None

    def input_files(self) -> list[str]:
        return [self.depth] if self.depth else []


# ----------------------------------------------------------------------------- structure maps

def gray_uint8(frames: torch.Tensor) -> np.ndarray:
    """(F, 3, H, W) in [0, 1] → (F, H, W) uint8 luma."""
    rgb = (frames.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    return np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])


def line_maps(frames: torch.Tensor) -> torch.Tensor:
    """A difference-of-Gaussians line map of every frame (dark lines and edges as white), (F, 1, H, W)."""
    out = []
    for g in gray_uint8(frames).astype(np.float32) / 255:
        inner = cv2.GaussianBlur(g, (0, 0), DOG_SIGMA)
        outer = cv2.GaussianBlur(g, (0, 0), DOG_SIGMA * DOG_RATIO)
        out.append(np.clip((outer - inner) / DOG_FULL, 0, 1))  # positive where a pixel is darker than around it
    return torch.from_numpy(np.stack(out))[:, None]


def reduce_detail(maps: torch.Tensor, detail: float) -> torch.Tensor:
    """Keep the fraction `detail` of the maps' resolution: area-downsample, then bilinear back up."""
    if detail >= 1:
        return maps
    h, w = maps.shape[-2:]
    small = F.interpolate(maps, size=(max(1, round(h * detail)), max(1, round(w * detail))), mode="area")
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


@register
class Edit(Task):
    name = "edit"
    help = ("Edit the content of a clip from a text prompt, keeping its structure (SD / SDXL + ControlNet, "
            "training-free; --consistency for temporal consistency).")
    example = ("vidrestore edit in.mp4 --prompt 'a watercolour painting' --model runwayml/stable-diffusion-v1-5 "
               "--controlnet lllyasviel/sd-controlnet-canny -o out.mp4")
    Options = EditOptions
    cli_options = (
        TaskOption("controlnet", ("--controlnet",), "ControlNet for the structure maps: a diffusers folder or hub "
                   "id (SD or SDXL, matching --model). Default: the preset's; 'none': no structure conditioning."),
        TaskOption("structure", ("--structure",), "Structure maps: canny (OpenCV Canny edges), edges (a "
                   "difference-of-Gaussians line map) or depth:PATH (a depth video or frame folder, one map per "
                   "frame). Default canny."),
        TaskOption("structure_detail", ("--structure-detail",), "Fraction of the structure maps' resolution "
                   "kept, in (0, 1]: lower follows the input's structure more loosely (default 1).", float),
        TaskOption("structure_weight", ("--structure-weight",), "ControlNet conditioning scale (default 1).",
                   float),
        TaskOption("strength", ("--strength",), "How far the input is noised before it is denoised with the "
                   "prompt, in (0, 1]: 1 keeps only the structure maps (default 0.75).", float),
        TaskOption("consistency", ("--consistency",), "Temporal consistency in [0, 1]: cross-frame attention to "
                   "an anchor frame, flow-warped fusion of the previous frame, correlated noise; 0 = every frame "
                   "edited alone (default 0.8).", float),
    )

    def __init__(self, options: EditOptions, width: int, height: int, frame_count: int, source: str = "input"):
        super().__init__(options, width, height, frame_count, source)
        depth = options.depth
        if depth is not None:
            from vidrestore.io import probe

            path = Path(depth)
            if not path.exists():
                raise InputError(f"{path}: depth maps not found")
            info = probe(path)
            if (info.width, info.height) != (width, height):
                raise InputError(f"{path}: depth maps are {info.width}x{info.height}, video is {width}x{height}")
            if info.frame_count != frame_count:
                raise InputError(f"{path}: {info.frame_count} depth maps, video has {frame_count} frames")

    def frame_streams(self) -> dict[str, Path]:
        return {"depth": Path(self.options.depth)} if self.options.depth else {}

    def operator(self, streams=None) -> ops.LinearOperator:
        return ops.Identity()

    def structure_maps(self, y: torch.Tensor, streams: dict[str, np.ndarray]) -> torch.Tensor:
        """The window's structure maps, (F, 3, H, W) in [0, 1] (ControlNets take three channels)."""
        o = self.options
        if o.depth:
            depth = torch.from_numpy(np.ascontiguousarray(streams["depth"])).float().permute(0, 3, 1, 2) / 255
            maps = depth.mean(dim=1, keepdim=True)
        else:
            maps = edge_map(y) if o.structure == "canny" else line_maps(y)
        return reduce_detail(maps, o.structure_detail).expand(-1, 3, -1, -1).contiguous()

    def latent_start(self, num_train_timesteps: int) -> int | None:
        return max(1, min(num_train_timesteps, round(self.options.strength * num_train_timesteps)))

    def network_passes(self, steps: int) -> tuple[float, float]:
        share = 1 + (CONTROLNET_SHARE if self.options.controlnet_name else 0)
        return steps * share, EDIT_VAE_PASSES

    def sample(self, prior, y: torch.Tensor, streams: dict[str, np.ndarray], frames: list[int], sampling: Sampling,
               on_step=None) -> torch.Tensor:
        from vidrestore.priors.controlnet import load_controlnet  # diffusers: only when a run samples

        if prior is None or getattr(prior, "space", None) != "latent":
            raise UsageError("edit needs a Stable Diffusion / SDXL model: --model FOLDER_OR_HUB_ID")
        o = self.options
        structure = None
        if o.controlnet_name:
            controlnet = load_controlnet(o.controlnet_name, prior.device, prior.dtype)
            maps = pad_to_multiple(self.structure_maps(y, streams), prior.factor)
            structure = Structure(controlnet, maps, o.structure_weight)
        c = o.consistency
        motion = window_motion(y) if c > 0 and y.shape[0] > 1 else None
        cuts = motion.cuts if motion is not None else []
        kind = sampling.noise if c > 0 else "independent"
        warp = {}
        if kind == "warped" and motion is not None:  # the noise moves with the input, on the latent grid
            flows, masks = latent_motion(motion.flows_bwd, motion.valid_bwd, prior.latent_shape(*y.shape[-2:])[1:])
            warp = {"flows": flows, "masks": masks, "cuts": cuts, "correlation": c}
        elif kind == "warped":
            kind = "independent"  # one frame: nothing to warp along
        noise = make_noise_sampler(kind, sampling.seed, **warp)
        timesteps = latent_timesteps(sampling.steps, prior.num_train_timesteps, "noised",
                                     self.latent_start(prior.num_train_timesteps))
        return edit_sample(prior, y, frames, timesteps, noise, structure=structure, consistency=c,
                           flows=None if motion is None else motion.flows_bwd,
                           masks=None if motion is None else motion.valid_bwd, cuts=cuts, eta=sampling.eta,
                           callback=(lambda i, t: on_step()) if on_step else None)

    def summary(self) -> dict:
        o = self.options
        return {"structure": o.structure, "structure_detail": o.structure_detail, "strength": o.strength,
                "structure_weight": o.structure_weight, "consistency": o.consistency,
                **({"controlnet": o.controlnet_name} if o.controlnet_name else {})}
