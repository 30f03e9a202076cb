"""Where windows are solved: in process (default), in N local worker processes, or on Ray actors."""
from __future__ import annotations

from vidrestore.config import RunConfig
from vidrestore.executors.base import Executor, ExecutorStats, WindowJob, WorkerError, run_ordered
from vidrestore.tasks import Task

__all__ = ["Executor", "ExecutorStats", "WindowJob", "WorkerError", "make_executor", "run_ordered"]


def make_executor(cfg: RunConfig, task: Task, device, dtype, frame_size: tuple[int, int]) -> Executor:
    """The executor `cfg.runtime` asks for (`ray` > `workers` > in process)."""
    if cfg.runtime.ray:
        from vidrestore.executors.ray import RayExecutor

        return RayExecutor(cfg, task, frame_size)
    if cfg.runtime.workers > 0:
        from vidrestore.executors.processes import ProcessExecutor

        return ProcessExecutor(cfg, task, cfg.runtime.workers, frame_size)
    from vidrestore.executors.local import LocalExecutor

    return LocalExecutor(cfg, task, device, dtype, frame_size)
