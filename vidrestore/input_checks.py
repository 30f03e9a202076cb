"""What a run estimates and checks from its input, once, before any window is solved.

The first `ESTIMATE_FRAMES` frames are read once: whether compression
artifacts are removed first (`--deblock auto`: a lossy codec, where the task
asks for it; then the estimates below see the frames after removal, as the
solver does, and σ_y auto is at least `artifacts.DEBLOCKED_SIGMA`), the noise level
(`--sigma-y auto`, with compression blocking folded in; `vidrestore.noise`),
then the task's own blind estimates and checks (`Task.inspect_input`: deblur's
`--kernel auto`, superres' "is this already an upscale?"). Every window and
worker solves with the same resolved options, so a resumed run estimates the
same values again.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import torch

from vidrestore.artifacts import DEBLOCKED_SIGMA, resolve_deblock, shared_remover
from vidrestore.config import RunConfig
from vidrestore.noise import read_head, resolve_noise
from vidrestore.tasks import Task


def resolve_input(cfg: RunConfig, task: Task, input_path: Path, fps: Fraction | None = None,
                  codec: str | None = None, device: torch.device | None = None
                  ) -> tuple[RunConfig, Task, dict, list[str]]:
    """(`cfg` and `task` with every estimate resolved, what the metrics JSON reports, warnings for the user).
    `codec`: the input's (`VideoInfo.codec`), for `--deblock auto`; `device`: where the remover runs."""
    head = read_head(input_path, fps)
    deblock = resolve_deblock(cfg.degradation.deblock, codec, task.deblock_lossy)
    if deblock:  # every estimate below sees the frames the solver will
        head = shared_remover(device or torch.device("cpu"))(head)
    cfg, report, warnings = resolve_noise(cfg, input_path, fps, head=head, floor=DEBLOCKED_SIGMA if deblock else 0.0)
    report = {"deblock": deblock, "codec": codec} | report
    sigma = float(cfg.degradation.noise_level)
    options, found, task_warnings = task.inspect_input(head, sigma)
    # the task and the solvers see the resolved noise level and deblocking
    options = dataclasses.replace(options.with_noise_level(sigma), deblock="on" if deblock else "off")
    warnings = warnings + task_warnings
    if options != task.options:
        cfg = dataclasses.replace(cfg, degradation=options)
        task = type(task)(options, task.width, task.height, task.frame_count, task.source)
    return cfg, task, report | found, [f"{input_path}: {w}" for w in warnings]
