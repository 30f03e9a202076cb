"""Resumable runs: finished frames and the state between windows, kept in `<output>.partial/`.

The folder is keyed by a hash of the input (path, size, modification time)
and of every config value that changes the restored frames; a rerun of the
same command continues after the last finished window and gives the same
frames as an uninterrupted run (noise depends only on seed, step and frame).
Frames are lossless PNGs; the cross-fade tail and the metric sums are saved
exactly (float32 `.npy`, read with `allow_pickle=False`, and JSON).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from vidrestore.config import RunConfig
from vidrestore.errors import OutputError

STATE = "state.json"
# config keys that change only how frames are encoded or reported, not the frames themselves
IRRELEVANT = {"output", "quiet", "metrics", "preset"}
IRRELEVANT_IO = {"overwrite", "crf", "audio"}


def _input_identity(path: Path) -> list:
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def run_key(cfg: RunConfig, extra: dict | None = None) -> str:
    """A hash of the input and of every config value that changes the restored frames."""
    config = {k: v for k, v in cfg.to_dict().items() if k not in IRRELEVANT}
    config["io"] = {k: v for k, v in config["io"].items() if k not in IRRELEVANT_IO}
    paths = [cfg.input] + [p for p in (cfg.degradation.mask, cfg.reference) if p]
    identity = {"config": config, "files": [_input_identity(Path(p)) for p in paths], "extra": extra or {}}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class ResumeState:
    windows_done: int = 0
    frames_done: int = 0
    network_evaluations: int = 0
    metrics: dict = field(default_factory=dict)      # RunningMetrics' sums
    pending: torch.Tensor | None = None             # frames shared with the next window, before cross-fade
    last_pair: tuple[torch.Tensor, torch.Tensor] | None = None  # for the warping error across windows


class PartialRun:
    """The `<output>.partial/` folder of one run."""

    def __init__(self, output: Path, key: str, resume: bool = True):
        self.folder = output.with_name(f"{output.name}.partial")
        self.frames_dir = self.folder / "frames"
        self.key = key
        existing = self._read_state()
        if existing is None or existing.get("key") != key or not resume:
            shutil.rmtree(self.folder, ignore_errors=True)
        try:
            self.frames_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{self.folder}: cannot create ({exc.strerror})") from None

    def _read_state(self) -> dict | None:
        try:
            return json.loads((self.folder / STATE).read_text())
        except (OSError, ValueError):
            return None

    def load(self) -> ResumeState:
        data = self._read_state()
        if data is None:
            return ResumeState()
        state = ResumeState(data["windows_done"], data["frames_done"], data["network_evaluations"], data["metrics"])
        arrays = {name: self.folder / f"{name}.npy" for name in ("pending", "last_out", "last_ref")}
        if arrays["pending"].exists():
            state.pending = torch.from_numpy(np.load(arrays["pending"], allow_pickle=False))
        if arrays["last_out"].exists():
            state.last_pair = tuple(torch.from_numpy(np.load(arrays[n], allow_pickle=False))
                                    for n in ("last_out", "last_ref"))
        # frames written after the last saved state belong to an unfinished window: drop them
        for png in self.frames_dir.glob("*.png"):
            if int(png.stem) >= state.frames_done:
                png.unlink()
        return state

    def append(self, frames_u8: np.ndarray, start: int) -> None:
        for i, frame in enumerate(frames_u8):
            path = self.frames_dir / f"{start + i:06d}.png"
            ok = cv2.imwrite(str(path), np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
            if not ok:
                raise OutputError(f"{path}: cannot write (disk full or not writable?)")

    def commit(self, state: ResumeState) -> None:
        """Save the state after a finished window (atomically: a crash keeps the previous one)."""
        try:
            for name, tensor in (("pending", state.pending),
                                 ("last_out", state.last_pair[0] if state.last_pair else None),
                                 ("last_ref", state.last_pair[1] if state.last_pair else None)):
                path = self.folder / f"{name}.npy"
                if tensor is None:
                    path.unlink(missing_ok=True)
                else:
                    tmp = self.folder / f".{name}.tmp.npy"
                    np.save(tmp, tensor.detach().cpu().numpy().astype(np.float32), allow_pickle=False)
                    os.replace(tmp, path)
            data = {"key": self.key, "windows_done": state.windows_done, "frames_done": state.frames_done,
                    "network_evaluations": state.network_evaluations, "metrics": state.metrics}
            tmp = self.folder / f".{STATE}.tmp"
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.folder / STATE)
        except OSError as exc:
            raise OutputError(f"{self.folder}: cannot save progress ({exc.strerror})") from None

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
