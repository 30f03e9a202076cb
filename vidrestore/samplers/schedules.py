"""Timestep schedules for DDIM-style samplers."""
from __future__ import annotations


def ddim_timesteps(steps: int, num_train_timesteps: int = 1000, start_t: int | None = None) -> list[int]:
    """Descending, evenly spaced timesteps ending at 0.

    With 20 steps and 1000 training steps: 950, 900, …, 0 (SVI's schedule).
    `start_t` < num_train_timesteps starts part-way (from a noised initial
    estimate) and spreads the same number of steps over [0, start_t).
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    top = num_train_timesteps if start_t is None else max(1, min(int(start_t), num_train_timesteps))
    stride = top / steps
    timesteps = sorted({int(round(i * stride)) for i in range(steps)}, reverse=True)
    return [min(t, num_train_timesteps - 1) for t in timesteps]
