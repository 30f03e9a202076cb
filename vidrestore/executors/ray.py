"""`--ray ADDRESS|local|auto`: windows on Ray actors, one per GPU (or CPU slot), each loading the prior once.

`local` starts a Ray instance on this machine, `auto` joins the cluster this
machine belongs to, anything else is a cluster address. The driver keeps a
queue of windows (`ray.wait`), re-submits a window whose actor died on a fresh
actor, and gives up with one line after `runtime.retries` tries. Ray is an
optional extra (`pip install "vidrestore[ray]"`), imported only here.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator

from vidrestore.config import RunConfig
from vidrestore.errors import DeviceError, UsageError
from vidrestore.executors.base import ExecutorStats, Failed, WindowJob, WorkerDied, run_ordered
from vidrestore.solve import SolvedWindow
from vidrestore.tasks import Task


def import_ray():
    try:
        import ray
    except ImportError:
        raise UsageError('--ray needs Ray: pip install "vidrestore[ray]"') from None
    return ray


def join(ray, address: str) -> None:
    """Connect to the running cluster at `address` ("auto": this machine's), or say in one line why not."""
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except ConnectionError as exc:
        # Ray >= 2.59 starts clusters with token authentication; a client given an explicit address sends the
        # token (~/.ray/auth_token or RAY_AUTH_TOKEN) only when told to
        hint = "" if os.environ.get("RAY_AUTH_MODE") else (
            "; a cluster with token authentication also needs RAY_AUTH_MODE=token")
        raise DeviceError(f"--ray {address}: no Ray cluster could be joined ({exc}). Start one with `ray start "
                          f"--head` (or use --ray local){hint}") from None


class WindowActor:
    """A Ray actor: the prior loaded once on its device, then one window per call."""

    def __init__(self, cfg: RunConfig, task: Task, device: str, threads: int, frame_size: tuple[int, int]):
        import torch

        from vidrestore.executors.local import LocalExecutor
        from vidrestore.runtime import resolve_dtype

        torch.set_num_threads(threads)
        self.failure = None
        try:
            dev = torch.device(device)
            self.executor = LocalExecutor(cfg, task, dev, resolve_dtype(cfg.runtime.dtype, dev), frame_size)
        except Exception as exc:  # noqa: BLE001 - reported with the first window
            self.failure = Failed(exc)

    def pid(self) -> int:
        import os

        return os.getpid()

    def solve(self, job: WindowJob):
        if self.failure is not None:
            return self.failure
        try:
            return next(self.executor.solve([job]))
        except Exception as exc:  # noqa: BLE001 - a user-facing error travels back as itself
            return Failed(exc)


class RayPool:
    def __init__(self, cfg: RunConfig, task: Task, workers: int | None, frame_size: tuple[int, int], address: str):
        ray = self.ray = import_ray()
        if not ray.is_initialized():
            if address == "local":
                ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
            else:
                join(ray, address)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if cfg.runtime.device != "cpu" else 0
        cpus = max(1, int(resources.get("CPU", 1)))
        self.size = workers or gpus or 1
        threads = cfg.runtime.threads or (1 if gpus else max(1, cpus // self.size))
        options = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": min(threads, cpus)}
        device = "cuda" if gpus else "cpu"  # Ray shows an actor only its own GPU, as cuda:0
        self._new = lambda: ray.remote(WindowActor).options(**options, max_restarts=0).remote(
            cfg, task, device, threads, frame_size)
        self.actors = [self._new() for _ in range(self.size)]
        self.fresh = set(range(self.size))
        self.refs: dict[int, Any] = {}

    def submit(self, worker: int, job: WindowJob) -> None:
        self.refs[worker] = self.actors[worker].solve.remote(job)

    def wait(self, busy: list[int]) -> list[tuple[int, Any]]:
        ray = self.ray
        ready, _ = ray.wait([self.refs[w] for w in busy], num_returns=1)
        results = []
        for w in busy:
            if self.refs[w] not in ready:
                continue
            try:
                results.append((w, ray.get(self.refs.pop(w))))
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError) as exc:
                results.append((w, WorkerDied(type(exc).__name__)))
        return results

    def restart(self, worker: int) -> None:
        try:
            self.ray.kill(self.actors[worker])
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.actors[worker] = self._new()

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001
                pass


class RayExecutor:
    def __init__(self, cfg: RunConfig, task: Task, frame_size: tuple[int, int]):
        self.pool = RayPool(cfg, task, cfg.runtime.workers or None, frame_size, cfg.runtime.ray)
        self.retries = cfg.runtime.retries
        self.stats = ExecutorStats("ray", self.pool.size)

    def solve(self, jobs: Iterable[WindowJob], on_step: Callable[[], None] | None = None) -> Iterator[SolvedWindow]:
        return run_ordered(self.pool, jobs, self.stats, self.retries)

    def close(self) -> None:
        self.pool.close()
