"""The default executor: windows solved one after another in this process, on the run's device."""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator

import torch

from vidrestore.config import RunConfig
from vidrestore.executors.base import ExecutorStats, Problem, WindowJob
from vidrestore.io import to_tensor
from vidrestore.solve import SolvedWindow, load_configured_prior, prior_settings, solve_window
from vidrestore.tasks import Task


class LocalExecutor:
    """Loads the prior once; `solve` runs each job in order (per-step progress through `on_step`). A job of
    another file (`job.problem`) switches config and task, and reloads the prior only if its settings differ."""

    def __init__(self, cfg: RunConfig, task: Task, device: torch.device, dtype: torch.dtype,
                 frame_size: tuple[int, int]):
        self.device, self.dtype = device, dtype
        self._threads = torch.get_num_threads()
        if cfg.runtime.threads:  # this process's setting, given back by close()
            torch.set_num_threads(cfg.runtime.threads)
        self.problem = Problem(cfg, task, frame_size)
        self.prior = load_configured_prior(cfg, device, dtype, frame_size)
        self.stats = ExecutorStats("local", 1)

    def _use(self, problem: Problem) -> None:
        if prior_settings(problem.cfg, problem.frame_size) != prior_settings(self.problem.cfg,
                                                                             self.problem.frame_size):
            self.prior = None  # the old one goes first: two priors need not fit in memory at once
            self.prior = load_configured_prior(problem.cfg, self.device, self.dtype, problem.frame_size)
        self.problem = problem

    def solve(self, jobs: Iterable[WindowJob], on_step: Callable[[], None] | None = None) -> Iterator[SolvedWindow]:
        for job in jobs:
            if job.problem is not None and job.problem is not self.problem:
                self._use(job.problem)
            cfg, task = self.problem.cfg, self.problem.task
            self.stats.state["0"] = f"window {job.index}"
            started = time.perf_counter()
            solved = solve_window(self.prior, task, cfg, to_tensor(job.y).to(self.device), job.streams,
                                  job.frames, on_step=on_step)
            self.stats.solved(solved.seconds, time.perf_counter() - started)
            self.stats.state["0"] = "idle"
            yield solved

    def close(self) -> None:
        torch.set_num_threads(self._threads)
