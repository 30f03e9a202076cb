"""`--workers N`: N worker processes on this machine, each with its own device and the prior loaded once.

With `--device cuda` (or auto on a CUDA machine) worker i uses GPU i modulo the
visible GPUs; on CPU each worker gets cores/N threads. A worker that dies
(killed, out of memory) costs only its window: it is restarted and the window
solved again.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator

import torch

from vidrestore.config import RunConfig
from vidrestore.executors.base import ExecutorStats, Failed, WindowJob, WorkerDied, run_ordered
from vidrestore.solve import SolvedWindow
from vidrestore.tasks import Task

#: seconds a closing worker gets to finish before it is terminated
SHUTDOWN_SECONDS = 10


def worker_devices(spec: str, workers: int) -> list[str]:
    """The device of each worker: GPUs round-robin for cuda (or auto with CUDA), else the CPU."""
    if spec.startswith("cuda") or (spec == "auto" and torch.cuda.is_available()):
        if ":" in spec:  # one GPU named: every worker shares it
            return [spec] * workers
        count = max(1, torch.cuda.device_count())
        return [f"cuda:{i % count}" for i in range(workers)]
    return ["cpu"] * workers


def cpu_threads(workers: int) -> int:
    return max(1, (os.cpu_count() or 1) // workers)


def serve(conn, cfg: RunConfig, task: Task, device: str, threads: int, frame_size: tuple[int, int]) -> None:
    """A worker's life: load the prior once, then solve every job sent until None arrives."""
    from vidrestore.executors.local import LocalExecutor
    from vidrestore.runtime import resolve_dtype

    torch.set_num_threads(threads)
    try:
        dev = torch.device(device)
        executor = LocalExecutor(cfg, task, dev, resolve_dtype(cfg.runtime.dtype, dev), frame_size)
    except BaseException as exc:  # noqa: BLE001 - reported to the driver, which raises it
        executor, failure = None, Failed(exc)
    while True:
        job = conn.recv()
        if job is None:
            return
        if executor is None:
            conn.send(failure)
            continue
        try:
            conn.send(next(executor.solve([job])))
        except BaseException as exc:  # noqa: BLE001
            conn.send(Failed(exc))


class ProcessPool:
    """Worker processes (spawned: no state shared with the driver), one pipe each."""

    def __init__(self, cfg: RunConfig, task: Task, workers: int, frame_size: tuple[int, int]):
        self._ctx = mp.get_context("spawn")
        self._args = (cfg, task, frame_size)
        self._devices = worker_devices(cfg.runtime.device, workers)
        self._threads = cfg.runtime.threads or cpu_threads(workers)
        self.size = workers
        self.fresh = set(range(workers))
        self._procs: list[Any] = [None] * workers
        self._conns: list[Any] = [None] * workers
        for w in range(workers):
            self._start(w)

    def _start(self, w: int) -> None:
        cfg, task, frame_size = self._args
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=serve, args=(child, cfg, task, self._devices[w], self._threads, frame_size),
                                 name=f"vidrestore-worker-{w}", daemon=True)
        proc.start()
        child.close()
        self._procs[w], self._conns[w] = proc, parent

    def pid(self, w: int) -> int:
        return self._procs[w].pid

    def submit(self, worker: int, job: WindowJob) -> None:
        try:
            self._conns[worker].send(job)
        except OSError:
            pass  # the worker is gone: wait() reports it

    def wait(self, busy: list[int]) -> list[tuple[int, Any]]:
        ready = set(wait([self._conns[w] for w in busy] + [self._procs[w].sentinel for w in busy]))
        results = []
        for w in busy:
            conn, proc = self._conns[w], self._procs[w]
            if conn in ready or conn.poll():
                try:
                    results.append((w, conn.recv()))
                except (EOFError, OSError):  # it died: say how, if it has ended by now
                    proc.join(SHUTDOWN_SECONDS)
                    results.append((w, WorkerDied("its pipe closed" if proc.exitcode is None
                                                  else f"exit code {proc.exitcode}")))
            elif proc.sentinel in ready:
                proc.join(1)
                results.append((w, WorkerDied(f"exit code {proc.exitcode}")))
        return results

    def restart(self, worker: int) -> None:
        proc = self._procs[worker]
        if proc.is_alive():
            proc.kill()
        proc.join(SHUTDOWN_SECONDS)
        self._conns[worker].close()
        self._start(worker)

    def close(self) -> None:
        for w in range(self.size):
            try:
                self._conns[w].send(None)
            except OSError:
                pass
        for w in range(self.size):
            self._procs[w].join(SHUTDOWN_SECONDS)
            if self._procs[w].is_alive():
                self._procs[w].kill()
                self._procs[w].join()
            self._conns[w].close()


class ProcessExecutor:
    def __init__(self, cfg: RunConfig, task: Task, workers: int, frame_size: tuple[int, int]):
        self.pool = ProcessPool(cfg, task, workers, frame_size)
        self.retries = cfg.runtime.retries
        self.stats = ExecutorStats("workers", workers)

    def solve(self, jobs: Iterable[WindowJob], on_step: Callable[[], None] | None = None) -> Iterator[SolvedWindow]:
        return run_ordered(self.pool, jobs, self.stats, self.retries)

    def close(self) -> None:
        self.pool.close()
