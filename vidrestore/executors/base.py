"""The executor seam: windows go out as jobs, solved windows come back in window order.

An executor is built once per run (or batch) with what every window shares —
the resolved config and the task — and loads the prior once per worker. The
pipeline hands it jobs lazily (so only a few windows' frames are in memory)
and receives `SolvedWindow`s in the order of the jobs; it cross-fades, writes
segments and resume state itself. Because a window's solve is a pure function
of its frames, the config and the seed (`vidrestore.solve`), any worker
anywhere gives the same frames, and a window whose worker died is simply
solved again by another.

`run_ordered` is the one scheduling loop over a `Pool` of workers (processes
or Ray actors): it keeps every worker busy, re-submits a window whose worker
died (up to `retries` times), and yields results in job order.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np

from vidrestore.config import RunConfig
from vidrestore.errors import WorkerError
from vidrestore.solve import SolvedWindow
from vidrestore.tasks import Task


@dataclass
class Problem:
    """What every window of one file shares: the resolved config, the task and the output frame size (H, W)."""

    cfg: RunConfig
    task: Task
    frame_size: tuple[int, int]


@dataclass
class WindowJob:
    """One window to solve: its measurement frames (uint8 RGB), side streams and output frame indices, and the
    file's problem (None: the one the executor was built for; an executor kept across a batch gets each file's)."""

    index: int
    y: np.ndarray                                   # (F, H, W, 3) uint8
    streams: dict[str, np.ndarray] = field(default_factory=dict)
    frames: list[int] = field(default_factory=list)
    problem: Problem | None = None


@dataclass
class ExecutorStats:
    """What the metrics JSON records about how the windows were run."""

    executor: str
    workers: int
    retried: list[int] = field(default_factory=list)   # window indices solved more than once
    worker_deaths: int = 0
    state: dict[str, str] = field(default_factory=dict)  # worker -> "idle" | "window N"
    # per solved window: from handing it out to getting it back, minus the solve inside the worker; a worker's
    # first window after it (re)started also waits for its start-up (a new process importing torch and loading
    # the prior), its later windows only for serialisation and scheduling
    first_overheads: list[float] = field(default_factory=list)
    later_overheads: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        def mean(values):
            return round(sum(values) / len(values), 4) if values else None

        return {"executor": self.executor, "workers": self.workers, "windows_retried": sorted(set(self.retried)),
                "worker_deaths": self.worker_deaths,
                "overhead_seconds_per_window": mean(self.first_overheads + self.later_overheads),
                "startup_seconds_per_worker": mean(self.first_overheads),
                "steady_overhead_seconds_per_window": mean(self.later_overheads)}

    def solved(self, seconds: float, round_trip: float, first: bool = False) -> None:
        (self.first_overheads if first else self.later_overheads).append(round_trip - seconds)


class Executor(Protocol):
    stats: ExecutorStats

    def solve(self, jobs: Iterable[WindowJob], on_step: Callable[[], None] | None = None) -> Iterator[SolvedWindow]:
        """Solved windows in job order."""
        ...

    def close(self) -> None: ...


class Pool(Protocol):
    """Workers that solve one job at a time each (processes, Ray actors)."""

    size: int
    fresh: set[int]   # workers that have not returned a window since they (re)started (kept across a batch's files)

    def submit(self, worker: int, job: WindowJob) -> None: ...

    def wait(self, busy: list[int]) -> list[tuple[int, Any]]:
        """Finished workers among `busy`: (worker, SolvedWindow) or (worker, WorkerDied(...))."""
        ...

    def restart(self, worker: int) -> None: ...


@dataclass
class WorkerDied:
    """A worker ended (killed, crashed, node lost) while solving its window."""

    reason: str


@dataclass
class Failed:
    """The window raised an error in the worker (a user-facing problem is re-raised as is)."""

    error: BaseException


def run_ordered(pool: Pool, jobs: Iterable[WindowJob], stats: ExecutorStats, retries: int,
                on_window: Callable[[], None] | None = None) -> Iterator[SolvedWindow]:
    """Keep every worker busy with the next job; yield results in job order; re-run a dead worker's job."""
    jobs = iter(jobs)
    queue: list[tuple[WindowJob, int]] = []          # jobs to (re-)submit, with their tries so far
    running: dict[int, tuple[WindowJob, int, float]] = {}   # worker -> (job, tries, handed out at)
    done: dict[int, SolvedWindow] = {}
    next_index, exhausted = None, False
    fresh = pool.fresh
    while True:
        # refill: at most one job per worker
        # (a window to re-run always goes out; new ones only while few results wait for an earlier window)
        while len(running) < pool.size and (queue or (not exhausted and len(done) <= pool.size)):
            if not queue:
                job = next(jobs, None)
                if job is None:
                    exhausted = True
                    break
                queue.append((job, 0))
                next_index = job.index if next_index is None else next_index
            worker = next(w for w in range(pool.size) if w not in running)
            job, tries = queue.pop(0)
            pool.submit(worker, job)
            running[worker] = (job, tries, time.perf_counter())
            stats.state[str(worker)] = f"window {job.index}"
        while next_index in done:  # hand back what is next in order
            yield done.pop(next_index)
            next_index += 1
        if not running:
            if exhausted and not queue:
                return
            continue
        for worker, result in pool.wait(sorted(running)):
            job, tries, handed_out = running.pop(worker)
            stats.state[str(worker)] = "idle"
            if isinstance(result, WorkerDied):
                stats.worker_deaths += 1
                stats.retried.append(job.index)
                if tries + 1 > retries:
                    raise WorkerError(f"window {job.index}: its worker died {tries + 1} times "
                                      f"({result.reason}); giving up")
                pool.restart(worker)
                fresh.add(worker)
                queue.insert(0, (job, tries + 1))
            elif isinstance(result, Failed):
                raise result.error
            else:
                stats.solved(result.seconds, time.perf_counter() - handed_out, first=worker in fresh)
                fresh.discard(worker)
                done[job.index] = result
                if on_window is not None:
                    on_window()
