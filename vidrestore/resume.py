"""Resumable runs: finished output in segments and the state between windows, in `<output>.partial/`.

The folder is keyed by a hash of the input (path, size, modification time)
and of every config value that changes the restored frames; a rerun of the
same command continues after the last finished window and gives the same
frames as an uninterrupted run (noise depends only on seed, step and frame).

Each window's final frames are encoded at once, in the output's own codec, into
a segment `segments/<first frame>.mkv|.mp4` (FFV1 is lossless, so .mkv frames are
exactly the restored ones; .mp4 segments each start a new GOP). `state.json`
lists the finished segments and is replaced atomically after each one is
complete; a segment it does not list (a crash in between) is deleted on the
next start. The cross-fade tail and the metric sums are saved exactly (float32
`.npy`, read with `allow_pickle=False`, and JSON). A folder output (PNG frames)
is written frame by frame into `frames/`, which becomes the output by a rename.
So the disk holds about one output's worth, not every frame uncompressed.

`finish` joins the segments into the output by stream copy (`io.join_videos`)
and deletes each segment as soon as ffmpeg has read it through, so that the
disk never holds much more than one output (plus one window). The cost: a run
that dies while joining has lost those segments, and the state after the
windows in between is not kept (only the last state is), so the rerun, which
notices a listed segment missing, starts over from the first window. state.json
says `"assembling": true` from the start of the join. A join refused before it
starts (the output exists, no --overwrite) deletes nothing.

Only one run may use the folder: `PartialRun` holds an exclusive `flock` on
`<output>.partial.lock` (beside the folder, so that deleting and recreating the
folder never drops the claim) until `finish`, `remove` or `release`; the
kernel drops it when the process dies, so a killed run's claim is taken over.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from vidrestore.config import RunConfig
from vidrestore.errors import OutputError
from vidrestore.io import VideoWriter, output_kind, parse_fps
from vidrestore.io.join import join_videos
from vidrestore.io.writer import commit_output, output_os_error, remove_stale_temps, write_png

try:  # POSIX; elsewhere the claim only records the owner
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

STATE = "state.json"
FORMAT = 3  # state.json layout: 3 = segments + arrays named per window (an older layout is started over)
# config keys that change only how frames are encoded or reported, not the frames themselves
IRRELEVANT = {"output", "quiet", "metrics", "preset"}
IRRELEVANT_IO = {"overwrite", "crf", "audio", "strict"}
IRRELEVANT_RUNTIME = {"workers", "ray", "retries", "threads"}  # where windows are solved does not change them


def _input_identity(path: Path) -> list:
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def run_key(cfg: RunConfig, extra: dict | None = None) -> str:
    """A hash of the input and of every config value that changes the restored frames."""
    config = {k: v for k, v in cfg.to_dict().items() if k not in IRRELEVANT}
    config["io"] = {k: v for k, v in config["io"].items() if k not in IRRELEVANT_IO}
    config["runtime"] = {k: v for k, v in config["runtime"].items() if k not in IRRELEVANT_RUNTIME}
    # --adapt off: the key of a run from before the option existed; on: its settings and stills, not its cache
    adapt = config.pop("adapt")
    if cfg.adapt.steps:
        config["adapt"] = {k: v for k, v in adapt.items() if k != "cache"}
    paths = [cfg.input, *cfg.degradation.input_files()] + ([cfg.reference] if cfg.reference else [])
    paths += [cfg.adapt.images] if cfg.adapt.steps and cfg.adapt.images else []
    identity = {"config": config, "files": [_input_identity(Path(p)) for p in paths], "extra": extra or {}}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class ResumeState:
    windows_done: int = 0
    frames_done: int = 0
    network_evaluations: int = 0
    metrics: dict = field(default_factory=dict)      # RunningMetrics' sums
    seconds: float = 0.0                             # wall time of the attempts so far, up to their last window
    pending: torch.Tensor | None = None             # frames shared with the next window, before cross-fade
    last_pair: tuple[torch.Tensor, torch.Tensor] | None = None  # for the warping error across windows


def _claim(lock: Path, output: Path) -> int:
    """An open descriptor holding an exclusive flock on `lock`, with our pid and host written in."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise output_os_error(output, exc, f"creating {lock.name}") from None
        if fcntl is None:
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
            os.close(fd)
            pid = owner[0] if owner else "unknown"
            where = f" on {owner[1]}" if len(owner) > 1 and owner[1] != socket.gethostname() else ""
            raise OutputError(f"{output}: is being written by another vidrestore run (pid {pid}{where}); "
                              f"wait for it or choose another -o") from None
        except OSError:  # a file system without locks: run unguarded rather than not at all
            break
        # the owner before us may have deleted the file after we opened it: a lock on that
        # file would claim nothing, so lock the one now at the path
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:  # for the message another run gives; the lock itself is what counts
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    except OSError:
        pass
    return fd


class PartialRun:
    """The `<output>.partial/` folder of one run, claimed for this process from creation
    until `finish`, `remove` or `release` (also usable as a context manager that releases)."""

    def __init__(self, output: Path, key: str, *, resume: bool = True, fps: Fraction, width: int, height: int,
                 crf: int = 18):
        self._fd: int | None = None              # the claim, held from here until released
        self._writer: VideoWriter | None = None  # the segment being written
        self.output = Path(output)
        self.kind = output_kind(self.output)
        self.fps = parse_fps(fps)
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in (width, height)):
            raise ValueError(f"width and height must be positive ints, got {width!r}, {height!r}")
        if not isinstance(crf, (int, np.integer)) or not 0 <= crf <= 51:
            raise ValueError(f"crf must be an int in 0..51, got {crf!r}")
        self.width, self.height, self.crf = int(width), int(height), int(crf)
        named = self.output if self.output.name not in ("", ".", "..") else self.output.resolve()  # `-o .`
        self.folder = named.with_name(f"{named.name}.partial")
        self.lock = named.with_name(f"{named.name}.partial.lock")
        self.segments_dir = self.folder / "segments"
        self.frames_dir = self.folder / "frames"  # folder outputs only
        self.key = key
        self._segment_start = 0
        self._segments: list[dict] = []          # finished: {"file", "first", "frames"}
        self._frames = 0                         # frames finished and appended so far
        self._saved: dict | None = None
        try:
            self.output.absolute().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_os_error(self.output, exc, "creating its folder") from None
        self._fd = _claim(self.lock, self.output)
        try:
            remove_stale_temps(named)  # a writer killed while encoding the output left them
            existing = self._read_state()
            if existing is None or not resume or any(existing.get(k) != v for k, v in self._identity().items()):
                shutil.rmtree(self.folder, ignore_errors=True)
                existing = None
            self._recover(existing)
        except BaseException:
            self.release()
            raise

    def __enter__(self) -> "PartialRun":
        return self

    def __exit__(self, *exc) -> bool:
        self.release()
        return False

    def __del__(self) -> None:  # an abandoned run never keeps its claim
        try:
            self.release()
        except Exception:  # noqa: BLE001 - e.g. during interpreter shutdown
            pass

    # ----------------------------------------------------------------- state

    def _identity(self) -> dict:
        """What the saved pieces must have been made for (the key leaves out --crf)."""
        encoding = [self.kind, str(self.fps), self.width, self.height, self.crf if self.kind == "mp4" else None]
        return {"format": FORMAT, "key": self.key, "encoding": encoding}

    def _read_state(self) -> dict | None:
        try:
            data = json.loads((self.folder / STATE).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def windows_done(self) -> int:
        """Windows finished and saved in the folder so far (0: nothing a rerun could resume)."""
        data = self._read_state()
        return int(data.get("windows_done", 0)) if data else 0

    def _work_dir(self) -> Path:
        return self.frames_dir if self.kind == "folder" else self.segments_dir

    def _recover(self, data: dict | None) -> None:
        """Keep what `data` lists, delete what it does not; start over if a listed piece is gone."""
        if data is not None and not self._complete(data):
            shutil.rmtree(self.folder, ignore_errors=True)  # e.g. a join that deleted segments, then died
            data = None
        try:
            self._work_dir().mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_os_error(self.folder, exc, "creating it") from None
        done = data["frames_done"] if data else 0
        listed = {s["file"] for s in data["segments"]} if data else set()
        for entry in self._work_dir().iterdir():  # written after the last saved state: an unfinished window
            if self.kind == "folder":
                stale = not (entry.suffix == ".png" and entry.stem.isdigit() and int(entry.stem) < done)
            else:
                stale = entry.name not in listed
            if stale and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            elif stale:
                entry.unlink(missing_ok=True)
        self._saved = data
        self._segments = list(data["segments"]) if data else []
        self._frames = done

    def _complete(self, data: dict) -> bool:
        try:
            done, segments = int(data["frames_done"]), data["segments"]
            if self.kind == "folder":
                return not segments and all((self.frames_dir / f"{i:06d}.png").is_file() for i in range(done))
            expected = 0
            for segment in segments:
                if segment["first"] != expected or not (self.segments_dir / segment["file"]).is_file():
                    return False
                expected += segment["frames"]
            return expected == done
        except (KeyError, TypeError, ValueError):
            return False

    def load(self) -> ResumeState:
        """The state after the last finished window (a fresh one if there is none); what
        was written after it was deleted when the folder was claimed."""
        data = self._saved
        if data is None:
            return ResumeState()
        state = ResumeState(data["windows_done"], data["frames_done"], data["network_evaluations"], data["metrics"],
                            data.get("seconds", 0.0))
        arrays = {name: self.folder / file for name, file in data.get("arrays", {}).items()}
        if "pending" in arrays:
            state.pending = torch.from_numpy(np.load(arrays["pending"], allow_pickle=False))
        if "last_out" in arrays:
            state.last_pair = tuple(torch.from_numpy(np.load(arrays[n], allow_pickle=False))
                                    for n in ("last_out", "last_ref"))
        return state

    # ---------------------------------------------------------------- frames

    def append(self, frames_u8: np.ndarray, start: int) -> None:
        """Frames `[start, start + B)` (uint8 (B, H, W, 3) RGB) of the window being finished;
        they are encoded (or written as PNGs) at once, not kept in memory."""
        if self._fd is None:
            raise ValueError(f"{self.folder}: the claim was released")
        if start != self._frames:
            raise ValueError(f"frames must follow each other: got start {start}, expected {self._frames}")
        if len(frames_u8) == 0:
            return
        if self.kind == "folder":
            for i, frame in enumerate(frames_u8):
                path = self.frames_dir / f"{start + i:06d}.png"
                try:
                    write_png(path, np.ascontiguousarray(frame))
                except OSError as exc:
                    raise output_os_error(path, exc, f"writing frame {start + i}") from None
        else:
            if self._writer is None:
                self._segment_start = start
                self._writer = VideoWriter(self.segments_dir / f"{start:08d}.{self.kind}", self.fps, self.width,
                                           self.height, crf=self.crf, overwrite=True)
            try:
                self._writer.write(frames_u8)
            except BaseException:
                self._abort_segment()
                raise
        self._frames += len(frames_u8)

    def _abort_segment(self) -> None:
        """Discard the segment being written, and the count of its frames."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.abort()
            self._frames = self._segment_start

    def commit(self, state: ResumeState) -> None:
        """Close the window's segment (encoded, verified, in place), then save `state`
        atomically: a crash before keeps the previous state, and the segment is dropped."""
        if state.frames_done != self._frames:
            raise ValueError(f"state says {state.frames_done} frames are done, {self._frames} were appended")
        new_segment = None
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except BaseException:
                writer.abort()
                self._frames = self._segment_start  # the window is done again after a resume
                raise
            new_segment = {"file": writer.path.name, "first": self._segment_start, "frames": writer.frames_written}
            self._segments.append(new_segment)
        # the arrays are named after the window, and the previous ones are deleted only once state.json names
        # the new ones: whenever the process dies, state.json and the arrays it names belong together
        arrays = {}
        try:
            for name, tensor in (("pending", state.pending),
                                 ("last_out", state.last_pair[0] if state.last_pair else None),
                                 ("last_ref", state.last_pair[1] if state.last_pair else None)):
                if tensor is not None:
                    arrays[name] = f"{name}-{state.windows_done:06d}.npy"
                    np.save(self.folder / arrays[name], tensor.detach().cpu().numpy().astype(np.float32),
                            allow_pickle=False)
            self._save({"windows_done": state.windows_done, "frames_done": state.frames_done,
                        "network_evaluations": state.network_evaluations, "metrics": state.metrics,
                        "seconds": state.seconds, "assembling": False, "arrays": arrays})
        except OSError as exc:
            if new_segment is not None:  # this window is not done: its segment goes with it
                self._segments.remove(new_segment)
                (self.segments_dir / new_segment["file"]).unlink(missing_ok=True)
                self._frames = self._segment_start
            self._drop_unlisted_arrays()
            raise output_os_error(self.folder, exc, "saving progress") from None
        self._drop_unlisted_arrays()

    def _drop_unlisted_arrays(self) -> None:
        """Delete the saved arrays state.json does not name (the previous window's, or a failed save's)."""
        listed = set((self._saved or {}).get("arrays", {}).values())
        for path in self.folder.glob("*.npy"):
            if path.name not in listed:
                path.unlink(missing_ok=True)

    def _save(self, values: dict) -> None:
        data = {**(self._saved or {}), **values, **self._identity(), "segments": self._segments}
        tmp = self.folder / f".{STATE}.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.folder / STATE)
        self._saved = data

    # ---------------------------------------------------------------- output

    def finish(self, *, audio_from: Path | None, overwrite: bool) -> None:
        """Assemble the output from the finished pieces (atomically, as VideoWriter does),
        then delete the folder and release the claim."""
        if self._fd is None:
            raise ValueError(f"{self.folder}: the claim was released")
        if self._writer is not None:
            raise ValueError("finish() before commit() of the last window")
        if self._frames == 0:
            raise OutputError(f"{self.output}: no frames were written")
        if self.kind == "folder":
            try:
                commit_output(self.frames_dir, self.output, "folder", overwrite)
            except OSError as exc:
                raise output_os_error(self.output, exc, "moving the finished output into place") from None
        else:
            if self._saved is None:
                raise ValueError("finish() before commit()")
            try:
                self._save({"assembling": True})  # the segments are about to be deleted
            except OSError as exc:
                raise output_os_error(self.folder, exc, "saving progress") from None
            parts = [(self.segments_dir / s["file"], s["frames"]) for s in self._segments]
            # each segment goes as soon as ffmpeg has read it: the disk holds about one output
            join_videos(parts, self.output, self.fps, self.width, self.height, audio_from=audio_from,
                        overwrite=overwrite, on_part_read=lambda i: parts[i][0].unlink(missing_ok=True))
        self.remove()

    def remove(self) -> None:
        """Delete the folder and release the claim."""
        self._abort_segment()
        if self._fd is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.release()

    def release(self) -> None:
        """Give up the claim, keeping the folder for a resume (idempotent)."""
        self._abort_segment()
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            self.lock.unlink()  # while still held: a run waiting on this file retries on the new one
        except OSError:
            pass
        os.close(fd)
