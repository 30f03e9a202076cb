"""Where windows are solved: in process (default), in N local worker processes, or on Ray actors."""
from __future__ import annotations

from vidrestore.config import RunConfig
from vidrestore.executors.base import Executor, ExecutorStats, Problem, WindowJob, WorkerError, run_ordered
from vidrestore.tasks import Task

__all__ = ["Executor", "ExecutorStats", "Problem", "SharedExecutor", "WindowJob", "WorkerError", "make_executor",
           "run_ordered"]


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


class SharedExecutor:
    """One executor for every file of a batch: worker processes or Ray actors start, and load the prior, once.

    Each file's jobs carry its `Problem`; a worker reloads the prior only when a file needs other prior
    settings. A file that fails discards the executor (its workers may hold that file's windows), and the
    next file starts a fresh one.
    """

    def __init__(self):
        self._executor: Executor | None = None

    def get(self, cfg: RunConfig, task: Task, device, dtype, frame_size: tuple[int, int]) -> Executor:
        if self._executor is None:
            self._executor = make_executor(cfg, task, device, dtype, frame_size)
        else:  # each file's metrics report its own windows
            stats = self._executor.stats
            self._executor.stats = ExecutorStats(stats.executor, stats.workers)
        return self._executor

    def discard(self) -> None:
        if self._executor is not None:
            executor, self._executor = self._executor, None
            executor.close()

    def __enter__(self) -> "SharedExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()
