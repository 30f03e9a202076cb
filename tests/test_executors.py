"""Executors: windows solved in process, in worker processes or on Ray actors give the same frames;
a worker that dies costs only its window; a window whose workers keep dying fails with one line."""
from __future__ import annotations

import json
import os
import signal
import sys

import pytest
import torch
from typer.testing import CliRunner

from helpers import read_clip, save_tiny_model, smooth_clip, write_clip
from vidrestore.cli import app
from vidrestore.config import resolve_config
from vidrestore.errors import UsageError
from vidrestore.executors import WindowJob, WorkerError, run_ordered
from vidrestore.executors.base import ExecutorStats, Failed, WorkerDied
from vidrestore.io import read_frames
from vidrestore.tasks import get_task
from vidrestore.windows import plan_windows

runner = CliRunner()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("executors")
    write_clip(folder / "in.mkv", smooth_clip(9, 16, 24))
    save_tiny_model(folder / "tiny")
    return folder


def restore(clip_dir, out, *extra):
    result = runner.invoke(app, ["superres", str(clip_dir / "in.mkv"), "-x", "2", "--model", str(clip_dir / "tiny"),
                                 "--steps", "2", "--chunk", "4", "--overlap", "1", "--device", "cpu", "-o", str(out),
                                 "--quiet", *extra])
    assert result.exit_code == 0, result.output
    return read_clip(out), json.loads(out.with_name(out.name + ".metrics.json").read_text())


class FakePool:
    """Workers that finish in a given order; `deaths[window]` = how many times its worker dies first."""

    def __init__(self, size, deaths=None, order=None):
        self.size, self.deaths, self.order = size, dict(deaths or {}), order
        self.jobs, self.submitted, self.restarts = {}, [], 0

    def submit(self, worker, job):
        self.jobs[worker] = job
        self.submitted.append(job.index)

    def wait(self, busy):
        # the highest window finishes first (out of order), unless told otherwise
        worker = max(busy, key=lambda w: self.jobs[w].index) if self.order is None else busy[0]
        job = self.jobs.pop(worker)
        if self.deaths.get(job.index, 0) > 0:
            self.deaths[job.index] -= 1
            return [(worker, WorkerDied("killed"))]
        return [(worker, f"window {job.index}")]

    def restart(self, worker):
        self.restarts += 1


def jobs(n, start=0):
    return (WindowJob(i, None) for i in range(start, n))


def test_results_come_back_in_window_order_whatever_order_workers_finish():
    stats = ExecutorStats("fake", 3)
    assert list(run_ordered(FakePool(3), jobs(7), stats, retries=2)) == [f"window {i}" for i in range(7)]
    assert stats.retried == [] and stats.worker_deaths == 0
    # a resumed run starts at a later window
    assert list(run_ordered(FakePool(2), jobs(5, start=3), ExecutorStats("fake", 2), 2)) == ["window 3", "window 4"]


def test_a_dead_workers_window_is_solved_again():
    pool, stats = FakePool(2, deaths={1: 2}), ExecutorStats("fake", 2)
    assert list(run_ordered(pool, jobs(4), stats, retries=2)) == [f"window {i}" for i in range(4)]
    assert pool.submitted.count(1) == 3 and pool.restarts == 2
    assert stats.retried == [1, 1] and stats.to_dict()["windows_retried"] == [1]


def test_a_window_whose_workers_keep_dying_gives_up_with_one_line():
    with pytest.raises(WorkerError, match="window 1: its worker died 3 times"):
        list(run_ordered(FakePool(2, deaths={1: 5}), jobs(4), ExecutorStats("fake", 2), retries=2))


def test_an_error_inside_a_worker_is_raised_as_itself():
    class Raising(FakePool):
        def wait(self, busy):
            worker = busy[0]
            self.jobs.pop(worker)
            return [(worker, Failed(UsageError("bad option")))]

    with pytest.raises(UsageError, match="bad option"):
        list(run_ordered(Raising(1), jobs(2), ExecutorStats("fake", 1), retries=1))


def test_workers_give_the_same_frames_as_one_process(clip_dir, tmp_path):
    local, m_local = restore(clip_dir, tmp_path / "local.mkv")
    workers, m_workers = restore(clip_dir, tmp_path / "workers.mkv", "--workers", "2")
    # on the CPU a worker has cores/2 threads: float sums in another order, at most one 8-bit level apart
    assert (local - workers).abs().max() <= 1 / 255 + 1e-6 and (local != workers).float().mean() < 0.01
    assert m_local["executor"] == "local" and m_workers["executor"] == "workers" and m_workers["workers"] == 2
    assert m_workers["network_evaluations"] == m_local["network_evaluations"]
    assert m_workers["windows_retried"] == []


def _expected(cfg, task, window_jobs, threads):
    """The windows solved in this process with the workers' thread count (then bit-equal to theirs)."""
    from vidrestore.executors.local import LocalExecutor

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        local = LocalExecutor(cfg, task, torch.device("cpu"), torch.float32, (32, 48))
        return [s.x for s in local.solve(window_jobs)]
    finally:
        torch.set_num_threads(before)


def _window_jobs(clip_dir, cfg):
    frames = next(read_frames(clip_dir / "in.mkv", 64))
    task = get_task("superres")(cfg.degradation, 24, 16, len(frames))
    windows = plan_windows(len(frames), cfg.runtime.chunk, cfg.runtime.overlap)
    return task, [WindowJob(w, frames[a:b], {}, list(range(a, b))) for w, (a, b) in enumerate(windows)]


def test_killing_a_worker_process_costs_only_its_window(clip_dir):
    from vidrestore.executors.processes import ProcessExecutor, cpu_threads

    cfg = resolve_config("superres", flags={"model": str(clip_dir / "tiny"), "sampler.steps": 2, "runtime.chunk": 3,
                                            "runtime.overlap": 1, "runtime.device": "cpu",
                                            "degradation.scale": 2})
    task, window_jobs = _window_jobs(clip_dir, cfg)
    expected = _expected(cfg, task, window_jobs, cpu_threads(2))
    executor = ProcessExecutor(cfg, task, 2, (32, 48))
    try:
        results = executor.solve(window_jobs)
        first = next(results)  # both workers are busy with the next windows now
        os.kill(executor.pool.pid(0), signal.SIGKILL)
        got = [first.x] + [s.x for s in results]
    finally:
        executor.close()
    assert all(torch.equal(a, b) for a, b in zip(got, expected)) and len(got) == len(expected)
    assert executor.stats.worker_deaths == 1 and len(executor.stats.retried) == 1


def test_ray_is_optional_with_a_one_line_hint(monkeypatch):
    from vidrestore.executors.ray import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError, match=r'pip install "vidrestore\[ray\]"'):
        import_ray()


def test_ray_actors_give_the_same_frames_and_survive_a_killed_actor(clip_dir, tmp_path):
    ray = pytest.importorskip("ray")
    from vidrestore.executors.processes import cpu_threads
    from vidrestore.executors.ray import RayExecutor

    cfg = resolve_config("superres", flags={"model": str(clip_dir / "tiny"), "sampler.steps": 2, "runtime.chunk": 3,
                                            "runtime.overlap": 1, "runtime.device": "cpu", "runtime.ray": "local",
                                            "runtime.workers": 2, "degradation.scale": 2})
    task, window_jobs = _window_jobs(clip_dir, cfg)
    expected = _expected(cfg, task, window_jobs, cpu_threads(2))  # a local cluster has this machine's CPUs
    try:
        executor = RayExecutor(cfg, task, (32, 48))
        pid = ray.get(executor.pool.actors[0].pid.remote())
        results = executor.solve(window_jobs)
        first = next(results)
        os.kill(pid, signal.SIGKILL)
        got = [first.x] + [s.x for s in results]
        executor.close()
        assert all(torch.equal(a, b) for a, b in zip(got, expected)) and len(got) == len(expected)
        assert executor.stats.worker_deaths == 1
        # and through the CLI, joining the running instance
        workers, _ = restore(clip_dir, tmp_path / "workers.mkv", "--workers", "2")
        on_ray, metrics = restore(clip_dir, tmp_path / "ray.mkv", "--ray", "auto", "--workers", "2")
        assert torch.equal(workers, on_ray) and metrics["executor"] == "ray" and metrics["workers"] == 2
    finally:
        ray.shutdown()
