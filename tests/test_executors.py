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

from vidrestore.cli import app
from vidrestore.config import resolve_config
from vidrestore.errors import UsageError
from vidrestore.executors import WindowJob, WorkerError, run_ordered
from vidrestore.executors.base import ExecutorStats, Failed, WorkerDied
from vidrestore.io import read_frames
from vidrestore.tasks import Task, get_task, register, unregister
from vidrestore.windows import plan_windows

from helpers import read_clip, save_tiny_model, smooth_clip, write_clip

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


class Solved(str):
    """A fake solved window: its name, and the seconds the executor statistics ask for."""

    seconds = 0.0


class FakePool:
    """Workers that finish in a given order; `deaths[window]` = how many times its worker dies first."""

    def __init__(self, size, deaths=None, order=None):
        self.size, self.deaths, self.order = size, dict(deaths or {}), order
        self.fresh = set(range(size))
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
        return [(worker, Solved(f"window {job.index}"))]

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


def test_start_up_is_told_apart_from_the_steady_overhead():
    pool, stats = FakePool(2, deaths={2: 1}), ExecutorStats("fake", 2)
    assert len(list(run_ordered(pool, jobs(6), stats, retries=2))) == 6
    # each worker's first window after it started, and the first after the restart, wait for a start-up
    assert len(stats.first_overheads) == 3 and len(stats.later_overheads) == 3
    summary = stats.to_dict()
    assert summary["startup_seconds_per_worker"] >= 0 and summary["steady_overhead_seconds_per_window"] >= 0


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


TASKS = {
    "superres": ["-x", "2"],
    "inpaint": ["--box", "4,3,8,6"],
    "deblur": ["--kernel", "gaussian:1", "--temporal", "uniform:3"],
    "interpolate": ["-x", "2", "--preset", "interpolate-diffusion"],
}


def run_task(clip_dir, task, out, *extra):
    result = runner.invoke(app, [task, str(clip_dir / "in.mkv"), *TASKS[task], "--model", str(clip_dir / "tiny"),
                                 "--steps", "2", "--chunk", "4", "--overlap", "1", "--device", "cpu", "-o", str(out),
                                 "--quiet", "--seed", "5", *extra])
    assert result.exit_code == 0, result.output
    return read_clip(out), json.loads(out.with_name(out.name + ".metrics.json").read_text())


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # noqa: BLE001 - a sandbox that cannot start Ray (ports, shared memory): say so
        pytest.skip(f"a local Ray instance does not start here: {type(exc).__name__}: {exc}")
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_gives_the_same_frames_in_process_in_workers_and_on_ray(clip_dir, tmp_path, task, ray_local):
    # one thread per process everywhere: float sums in the same order, so bit-equal frames
    local, m_local = run_task(clip_dir, task, tmp_path / "local.mkv", "--set", "runtime.threads=1")
    workers, m_workers = run_task(clip_dir, task, tmp_path / "workers.mkv", "--workers", "2", "--set",
                                  "runtime.threads=1")
    on_ray, m_ray = run_task(clip_dir, task, tmp_path / "ray.mkv", "--ray", "auto", "--workers", "2", "--set",
                             "runtime.threads=1")
    assert torch.equal(local, workers) and torch.equal(local, on_ray)
    assert (m_local["executor"], m_workers["executor"], m_ray["executor"]) == ("local", "workers", "ray")
    assert m_workers["workers"] == m_ray["workers"] == 2 and m_local["windows"] > 1
    assert m_local["network_evaluations"] == m_workers["network_evaluations"] == m_ray["network_evaluations"]


def test_progress_json_reports_frames_and_each_worker(clip_dir, tmp_path):
    result = runner.invoke(app, ["superres", str(clip_dir / "in.mkv"), "-x", "2", "--model", "none", "--chunk", "3",
                                 "--overlap", "1", "--workers", "2", "--progress", "json", "-o",
                                 str(tmp_path / "out.mkv")])
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]  # nothing but JSON on stdout
    assert events[0] == {"event": "start", "total": 9} and events[-2]["event"] == "end"
    progress = [e for e in events if e["event"] == "progress"]
    assert [e["frames"] for e in progress] == sorted(e["frames"] for e in progress) and progress[-1]["frames"] == 9
    assert set(progress[0]["workers"]) == {"0", "1"} and progress[-1]["eta_seconds"] == 0
    assert events[-1]["event"] == "result" and events[-1]["executor"] == "workers" and events[-1]["workers"] == 2


def test_default_threads_differ_by_float_rounding_only(clip_dir, tmp_path):
    local, _ = restore(clip_dir, tmp_path / "local.mkv")
    workers, _ = restore(clip_dir, tmp_path / "workers.mkv", "--workers", "2")
    # all cores in process, cores/2 per worker: sums in another order, at most one 8-bit level apart
    assert (local - workers).abs().max() <= 1 / 255 + 1e-6 and (local != workers).float().mean() < 0.01


class Crash(Task):
    """A task whose every window kills the process solving it (a worker lost mid-window, every time)."""

    name = "crash"
    help = "Kill the worker."

    def operator(self, streams=None):
        os._exit(9)


def test_a_window_that_fails_every_try_gives_one_line_and_no_output(clip_dir, tmp_path):
    from vidrestore.cli import build_app

    register(Crash)
    try:
        out = tmp_path / "out.mkv"
        result = CliRunner().invoke(build_app(), ["crash", str(clip_dir / "in.mkv"), "--model", "none", "--workers",
                                                  "1", "--set", "runtime.retries=1", "-o", str(out), "--quiet"])
    finally:
        unregister("crash")
    assert result.exit_code == 8, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["vidrestore: error: window 0: its worker died 2 times (exit code 9); giving up"]
    assert not out.exists() and not list(tmp_path.glob(".out.mkv*"))


def _expected(cfg, task, window_jobs, threads):
    """The windows solved in this process with the workers' thread count (then bit-equal to theirs)."""
    from vidrestore.executors.local import LocalExecutor
    from vidrestore.runtime import resolve_dtype

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        cpu = torch.device("cpu")
        local = LocalExecutor(cfg, task, cpu, resolve_dtype(cfg.runtime.dtype, cpu), (32, 48))  # as the workers
        return [s.x for s in local.solve(window_jobs)]
    finally:
        torch.set_num_threads(before)


def _window_jobs(clip_dir, cfg):
    frames = next(read_frames(clip_dir / "in.mkv", 64))
    task = get_task("superres")(cfg.degradation, 24, 16, len(frames))
    windows = plan_windows(len(frames), cfg.runtime.chunk, cfg.runtime.overlap)
    return task, [WindowJob(w, frames[a:b], {}, list(range(a, b))) for w, (a, b) in enumerate(windows)]


def test_killing_a_worker_process_costs_only_its_window(clip_dir):
    from vidrestore.executors.processes import ProcessExecutor

    cfg = resolve_config("superres", flags={"model": str(clip_dir / "tiny"), "sampler.steps": 2, "runtime.chunk": 2,
                                            "runtime.overlap": 1, "runtime.device": "cpu",
                                            "runtime.threads": 1, "degradation.scale": 2})
    task, window_jobs = _window_jobs(clip_dir, cfg)
    expected = _expected(cfg, task, window_jobs, 1)
    executor = ProcessExecutor(cfg, task, 2, (32, 48))
    try:
        list(executor.solve(window_jobs[:2]))  # both workers have loaded the model
        executor.stats = ExecutorStats("workers", 2)
        results = executor.solve(window_jobs)
        first = next(results)
        # busy or idle, worker 0 has windows left to do: the one it dies with is solved again
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


def test_a_cluster_that_cannot_be_joined_gives_one_line_and_no_output(clip_dir, tmp_path, monkeypatch):
    class Unreachable:  # stands in for Ray: a real unreachable address takes Ray a minute of retries
        @staticmethod
        def is_initialized():
            return False

        @staticmethod
        def init(**kwargs):
            raise ConnectionError(f"Failed to connect to Ray cluster at {kwargs['address']}")

    monkeypatch.setitem(sys.modules, "ray", Unreachable)
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    out = tmp_path / "out.mkv"
    result = runner.invoke(app, ["superres", str(clip_dir / "in.mkv"), "-o", str(out), "--model", "none",
                                 "--ray", "10.0.0.9:6379", "--quiet"])
    assert result.exit_code == 6, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--ray 10.0.0.9:6379: no Ray cluster could be joined" in lines[0]
    assert "ray start --head" in lines[0] and "RAY_AUTH_MODE=token" in lines[0]
    assert "Traceback" not in result.output and not out.exists()


def test_ray_actors_survive_a_killed_actor(clip_dir, ray_local):
    ray = ray_local
    from vidrestore.executors.ray import RayExecutor

    cfg = resolve_config("superres", flags={"model": str(clip_dir / "tiny"), "sampler.steps": 2, "runtime.chunk": 2,
                                            "runtime.overlap": 1, "runtime.device": "cpu", "runtime.ray": "local",
                                            "runtime.workers": 2, "runtime.threads": 1, "degradation.scale": 2})
    task, window_jobs = _window_jobs(clip_dir, cfg)
    expected = _expected(cfg, task, window_jobs, 1)
    executor = RayExecutor(cfg, task, (32, 48))
    pids = ray.get([actor.pid.remote() for actor in executor.pool.actors])
    list(executor.solve(window_jobs[:2]))  # both actors have loaded the model
    executor.stats = ExecutorStats("ray", 2)
    results = executor.solve(window_jobs)
    first = next(results)
    os.kill(pids[0], signal.SIGKILL)  # busy or idle, actor 0 has windows left to do
    got = [first.x] + [s.x for s in results]
    executor.close()
    assert all(torch.equal(a, b) for a, b in zip(got, expected)) and len(got) == len(expected)
    assert executor.stats.worker_deaths == 1


def test_a_batch_keeps_its_workers_across_files_with_the_frames_of_single_runs(clip_dir, tmp_path):
    import dataclasses

    from vidrestore.batch import restore_batch
    from vidrestore.pipeline import restore

    clips = tmp_path / "clips"
    clips.mkdir()
    write_clip(clips / "a.mkv", smooth_clip(9, 16, 24, seed=1))
    write_clip(clips / "b.mkv", smooth_clip(7, 20, 28, seed=2))  # another frame size: the prior is set up again
    write_clip(clips / "c.mkv", smooth_clip(9, 16, 24, seed=3))
    cfg = resolve_config("superres", flags={
        "model": str(clip_dir / "tiny"), "sampler.steps": 2, "runtime.chunk": 4, "runtime.overlap": 1,
        "runtime.device": "cpu", "runtime.workers": 2, "runtime.threads": 1, "degradation.scale": 2})
    items = restore_batch(cfg, sorted(clips.iterdir()), tmp_path / "out", restore)
    assert [i.status for i in items] == ["done"] * 3, [i.message for i in items]
    # the workers started (and waited for their start-up) during the first file only
    assert items[0].metrics["startup_seconds_per_worker"] is not None
    assert [i.metrics["startup_seconds_per_worker"] for i in items[1:]] == [None, None]
    for item in items:  # each file alone, with workers of its own
        alone = tmp_path / f"alone-{item.output.name}"
        restore(dataclasses.replace(cfg, input=str(item.input), output=str(alone)))
        assert torch.equal(read_clip(item.output), read_clip(alone)), item.input.name


def test_a_shared_executor_is_made_once_and_discarded_after_a_failed_file(monkeypatch):
    import vidrestore.executors as executors

    made = []

    class Fake:
        def __init__(self):
            self.stats, self.closed = ExecutorStats("fake", 2), False
            made.append(self)

        def close(self):
            self.closed = True

    monkeypatch.setattr(executors, "make_executor", lambda *args: Fake())
    with executors.SharedExecutor() as shared:
        first = shared.get(None, None, None, None, (8, 8))
        first.stats.retried.append(3)
        assert shared.get(None, None, None, None, (8, 8)) is first and first.stats.retried == []  # per-file stats
        shared.discard()
        assert first.closed and shared.get(None, None, None, None, (8, 8)) is made[1]
    assert made[1].closed and len(made) == 2


def test_a_file_that_fails_mid_run_discards_the_batchs_executor(clip_dir, tmp_path, monkeypatch):
    import vidrestore.executors as executors
    import vidrestore.pipeline as pipeline
    from vidrestore.errors import InputError

    def broken(*args, **kwargs):
        raise InputError("frame 3: broken")

    made = []
    real = executors.make_executor
    monkeypatch.setattr(executors, "make_executor", lambda *args: made.append(real(*args)) or made[-1])
    monkeypatch.setattr(pipeline, "_solve_windows", broken)
    cfg = resolve_config("superres", flags={"model": "none", "runtime.device": "cpu", "degradation.scale": 2,
                                            "input": str(clip_dir / "in.mkv"), "output": str(tmp_path / "o.mkv")})
    with executors.SharedExecutor() as shared:
        with pytest.raises(InputError, match="broken"):
            pipeline.restore(cfg, executors=shared)
        shared.get(cfg, None, None, None, (32, 48))  # the next file starts an executor of its own
    assert len(made) == 2
    assert not (tmp_path / "o.mkv").exists()
