"""Timestep schedules for DDIM-style samplers.

Why not diffusers' `DDIMScheduler.set_timesteps`: none of its spacings gives these numbers in
general, and outputs must not change. "leading" uses the integer ratio T // steps, which agrees
with ours only when `steps` divides T (20 steps: 950, 900, …, 0 both) and not otherwise (7 steps:
ours 857, 714, 571, 429, 286, 143, 0; leading 852, 710, 568, 426, 284, 142, 0; with an SD
scheduler's steps_offset = 1 every timestep is one higher still); "trailing" starts at T − 1
(7 steps: 999, 856, 713, …) and "linspace" spans [0, T − 1] (999, 832, 666, …). It also has
no partial start (`start_t`). Not importing diffusers here keeps the samplers fast to import.
"""
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


def start_for_first(first: int, steps: int, num_train_timesteps: int = 1000) -> int:
    """The `start_t` whose `ddim_timesteps(steps, …)` begin at timestep `first` (or the nearest above it):
    for a start that must sample at a given noise level (one step has only t = 0)."""
    if steps < 2:
        return max(1, min(int(first), num_train_timesteps))
    start = max(1, min(int(first * steps / (steps - 1)), num_train_timesteps))
    while start < num_train_timesteps and ddim_timesteps(steps, num_train_timesteps, start)[0] < first:
        start += 1
    return start


def latent_timesteps(steps: int, num_train_timesteps: int, init: str, inversion_t: int) -> list[int]:
    """VISION-XL's schedule: `steps` DDIM timesteps over the whole range (the NFE of a full run), of which
    only those ≤ `inversion_t` are sampled after an inversion / noised start (25 and 300: 8 steps)."""
    timesteps = ddim_timesteps(steps, num_train_timesteps)
    return timesteps if init == "noise" else [t for t in timesteps if t <= inversion_t]
