"""Windows of frames: planning with overlap, streaming access to their frames, and the cross-fade.

Measurement frames are restored in windows of `runtime.chunk` frames that
share `runtime.overlap` frames with the next window; each window is one
spatio-temporal problem and the shared frames are cross-faded, so memory is
bounded by the window whatever the video length.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from vidrestore.errors import InputError


def plan_windows(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """Windows [start, stop) of at most `chunk` frames covering [0, n), consecutive ones sharing ≥ `overlap`."""
    if n <= chunk:
        return [(0, n)]
    step = max(1, chunk - overlap)
    windows = []
    start = 0
    while start + chunk < n:
        windows.append((start, start + chunk))
        start += step
    windows.append((n - chunk, n))
    return windows


def default_overlap(chunk: int) -> int:
    """The overlap when none is asked: a quarter of the chunk, at most 4 frames (16 → 4, 8 → 2, 4 → 1), so a
    small chunk does not turn into a window per frame."""
    return min(4, chunk // 4)


def window_overlap(chunk: int, asked: int | None, needed: int) -> tuple[int, int]:
    """(chunk, overlap) used: the overlap asked for (None: `default_overlap`), below the chunk, at least
    what the task needs (which may grow the chunk)."""
    overlap = max(min(default_overlap(chunk) if asked is None else asked, chunk - 1), needed)
    return max(chunk, overlap + 1), overlap


class FrameWindows:
    """Monotonic windowed access to a stream of frame batches, holding only what is still needed."""

    def __init__(self, batches: Iterator[np.ndarray], name: str):
        self._batches = batches
        self._frames: list[np.ndarray] = []
        self._offset = 0
        self._name = name

    def get(self, start: int, stop: int) -> np.ndarray:
        while True:  # forget frames before `start`, reading (and dropping) any not yet read
            drop = min(max(0, start - self._offset), len(self._frames))
            del self._frames[:drop]
            self._offset += drop
            if self._offset >= start or not self._fill():
                break
        while self._offset + len(self._frames) < stop:
            if not self._fill():
                raise InputError(f"{self._name}: ended after {self._offset + len(self._frames)} frames, "
                                 f"expected at least {stop}")
        return np.stack(self._frames[start - self._offset: stop - self._offset])

    def _fill(self) -> bool:
        try:
            self._frames.extend(next(self._batches))
            return True
        except StopIteration:
            return False

    def close(self) -> None:
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()


def cross_fade(pending: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """`x` with its first frames blended from the previous window's `pending` ones by a linear ramp."""
    if pending is None:
        return x
    n = pending.shape[0]
    ramp = (torch.arange(1, n + 1, device=x.device, dtype=x.dtype) / (n + 1)).view(-1, 1, 1, 1)
    x = x.clone()
    x[:n] = (1 - ramp) * pending + ramp * x[:n]
    return x


def tail_is_own(x_range: Callable[[int, int], tuple[int, int]], windows: list[tuple[int, int]], w: int) -> bool:
    """Whether window w's output frames shared with the next are its own solve alone (the cross-fade with
    the window before reaches only its first frames), so that solving it again gives them exactly.
    `x_range` maps a window's input frames to its output frames (`Task.x_range`)."""
    if w + 1 >= len(windows):
        return True
    start = x_range(*windows[w])[0]
    shared_before = x_range(*windows[w - 1])[1] - start if w > 0 else 0
    return x_range(*windows[w + 1])[0] - start >= shared_before
