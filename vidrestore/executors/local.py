"""The default executor: windows solved one after another in this process, on the run's device."""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator

import torch

from vidrestore.config import RunConfig
from vidrestore.executors.base import ExecutorStats, WindowJob
from vidrestore.io import to_tensor
from vidrestore.solve import SolvedWindow, load_configured_prior, solve_window
from vidrestore.tasks import Task


class LocalExecutor:
    """Loads the prior once; `solve` runs each job in order (per-step progress through `on_step`)."""

    def __init__(self, cfg: RunConfig, task: Task, device: torch.device, dtype: torch.dtype,
                 frame_size: tuple[int, int]):
        self.cfg, self.task, self.device = cfg, task, device
        self._threads = torch.get_num_threads()
        if cfg.runtime.threads:  # this process's setting, given back by close()
            torch.set_num_threads(cfg.runtime.threads)
        self.prior = load_configured_prior(cfg, device, dtype, frame_size)
        self.stats = ExecutorStats("local", 1)

    def solve(self, jobs: Iterable[WindowJob], on_step: Callable[[], None] | None = None) -> Iterator[SolvedWindow]:
        for job in jobs:
            self.stats.state["0"] = f"window {job.index}"
            started = time.perf_counter()
            solved = solve_window(self.prior, self.task, self.cfg, to_tensor(job.y).to(self.device), job.streams,
                                  job.frames, on_step=on_step)
            self.stats.solved(solved.seconds, time.perf_counter() - started)
            self.stats.state["0"] = "idle"
            yield solved

    def close(self) -> None:
        torch.set_num_threads(self._threads)
