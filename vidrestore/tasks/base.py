"""The Task protocol and the task registry.

A task is one module under `vidrestore/tasks/`: a `Degradation` subclass with
its options, and a `Task` subclass registered with `@register` that says
everything the rest of the program asks about it — its command-line options,
its operator, where solvers start, the window problem, what it keeps exactly,
and its `evaluate` hooks (how a reference is degraded, which baselines run,
which pixels no measurement gives). Nothing outside `vidrestore/tasks/`
branches on a task's name.

Tasks do not import the run configuration: they see their own options, the
input's geometry and the name of the input (for messages).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from vidrestore import operators as ops
from vidrestore.errors import UsageError

#: `sigma_y` value that asks for the noise level to be estimated from the input
AUTO = "auto"
#: `deblock`: remove compression artifacts before solving (auto: when the codec is lossy and the task asks for it)
DEBLOCK_CHOICES = (AUTO, "on", "off")


@dataclass(frozen=True)
class Degradation:
    """Options every task has: the measurement model y = A x + n (n Gaussian with std `sigma_y`).

    `sigma_y` is a number in [0, 1] units, or "auto" (the default): the run estimates it from the input
    (`vidrestore.operators.noise.estimate_sigma`); a clean 8-bit input estimates to 0. `deblock`: whether y
    went through a lossy encoder whose artifacts are removed before solving (`vidrestore.artifacts`); "auto"
    resolves from the input's codec where the task asks for it (`Task.deblock_lossy`), else to "off".
    """

    sigma_y: float | str = AUTO    # measurement noise std in [0, 1] units, or "auto"
    deblock: str = AUTO            # remove compression artifacts first: "on", "off", or "auto" (see below)

    def validate(self) -> None:
        """Value ranges (raise UsageError); called for every resolved config."""
        check_noise_level("degradation.sigma_y", self.sigma_y)
        if self.deblock not in DEBLOCK_CHOICES:
            raise UsageError(f"degradation.deblock must be one of {', '.join(DEBLOCK_CHOICES)}, got {self.deblock!r}")

    def check_complete(self) -> None:
        """What a run needs that no default gives (e.g. deblur's kernel); called before a run or evaluate."""

    def input_files(self) -> list[str]:
        """Files the options name whose content changes the result (a resumed run checks they did not change)."""
        return []

    @property
    def noise_level(self) -> float | str:
        """The input's noise std as the options give it: a number, or AUTO (estimate it from the input)."""
        return self.sigma_y

    def with_noise_level(self, sigma: float) -> "Degradation":
        """These options with the noise std resolved to the number `sigma` (after an AUTO estimate)."""
        return replace(self, sigma_y=float(sigma))


def check_noise_level(key: str, value: float | str | None) -> None:
    """UsageError unless `value` is AUTO or a finite non-negative number (None: not given)."""
    if value is None or value == AUTO:
        return
    if isinstance(value, str) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{key} must be {AUTO!r} or a finite non-negative number, got {value!r}")


@dataclass(frozen=True)
class Sampling:
    """What a task's own sampler (`Task.sample`) takes from the run configuration (tasks do not see it)."""

    steps: int
    eta: float
    noise: str                     # independent | shared | warped
    seed: int


@dataclass(frozen=True)
class TaskOption:
    """One command-line option of a task: its flags, the `Degradation` field it sets, its help."""

    field: str
    flags: tuple[str, ...]
    help: str
    type: type = str               # int, float, str or Path (Path values are stored as strings)
    multiple: bool = False         # repeatable; the field is a tuple


def choose(key: str, value: Any, choices: tuple) -> None:
    """UsageError unless `value` is one of `choices` (the message names the key)."""
    if value not in choices:
        raise UsageError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")


class Task:
    """One restoration task for one input. Subclasses live one per module and are `@register`ed.

    Class attributes describe the task (name, help, options, baselines);
    an instance is made for one input geometry and validates the options
    against it (unsupported values raise UsageError, inconsistent inputs
    InputError) before any work starts.
    """

    name: ClassVar[str]
    help: ClassVar[str]
    example: ClassVar[str] = ""
    Options: ClassVar[type[Degradation]] = Degradation
    cli_options: ClassVar[tuple[TaskOption, ...]] = ()
    #: classical methods `evaluate` runs (names as in the report), and the diffusion preset it runs by default
    baselines: ClassVar[tuple[str, ...]] = ()
    peer_baselines: ClassVar[tuple[str, ...]] = ()  # of `baselines`: other tools, run only where installed
    evaluate_preset: ClassVar[str | None] = None      # None: the task's own preset
    #: the smallest clip the task can restore
    min_frames: ClassVar[int] = 1
    #: whether `--deblock auto` removes a lossy codec's artifacts (`vidrestore.artifacts`): only where measured
    #: to help (superres' low-res inputs); elsewhere "auto" is off and `--deblock on` asks for it
    deblock_lossy: ClassVar[bool] = False
    #: report header of the PSNR over the pixels `unknown` marks (None: every pixel is measured)
    unknown_header: ClassVar[str | None] = None

    spatial_scale: int = 1          # output size / input size
    temporal_factor: int = 1        # output frames per input frame interval

    def __init__(self, options: Degradation, width: int, height: int, frame_count: int, source: str = "input"):
        if not isinstance(options, self.Options):
            raise TypeError(f"{self.name} takes {self.Options.__name__}, got {type(options).__name__}")
        options.validate()
        options.check_complete()
        self.options = options
        self.width, self.height, self.frame_count, self.source = width, height, frame_count, source

    # ------------------------------------------------------------------ geometry

    @property
    def temporal_radius(self) -> int:
        """Neighbouring frames one measurement depends on (windows must overlap by twice this)."""
        return 0

    @property
    def min_overlap(self) -> int:
        """Frames consecutive windows must share for this task to be stitched correctly."""
        return max(1 if self.temporal_factor > 1 else 0, 2 * self.temporal_radius)

    def output_frame_count(self, n_in: int) -> int:
        return (n_in - 1) * self.temporal_factor + 1

    def output_fps(self, fps: Fraction) -> Fraction:
        return fps * self.temporal_factor

    def x_range(self, y_start: int, y_stop: int) -> tuple[int, int]:
        """Restored frames that belong to measurement frames [y_start, y_stop)."""
        k = self.temporal_factor
        return y_start * k, (y_stop - 1) * k + 1

    # ------------------------------------------------------------------ the problem

    def frame_streams(self) -> dict[str, Path]:
        """Per-frame side inputs read window by window beside the input (e.g. inpainting's mask video)."""
        return {}

    def operator(self, streams: dict[str, np.ndarray] | None = None) -> ops.LinearOperator:
        """The degradation A of one window; `streams` holds the window's frames of `frame_streams()`."""
        raise NotImplementedError

    def initial_estimate(self, y: torch.Tensor, operator: ops.LinearOperator) -> torch.Tensor:
        """Where solvers start, in [0, 1]."""
        return operator.initial_estimate(y).clamp(0, 1)

    def window_problem(self, y: torch.Tensor, operator: ops.LinearOperator
                       ) -> tuple[torch.Tensor, ops.LinearOperator, torch.Tensor]:
        """(measurements, operator, initial estimate) the solver works on for one window."""
        return y, operator, self.initial_estimate(y, operator)

    def keep_known(self, x: torch.Tensor, y: torch.Tensor, operator: ops.LinearOperator) -> torch.Tensor:
        """Put measured pixels back exactly where the task keeps them (default: nothing is kept)."""
        return x

    def measured(self, y: torch.Tensor, operator: ops.LinearOperator) -> torch.Tensor:
        """What of the input is a measurement (the data-consistency residual is taken against it)."""
        return y

    def sample(self, prior, y: torch.Tensor, streams: dict[str, np.ndarray], frames: list[int], sampling: Sampling,
               on_step=None) -> torch.Tensor | None:
        """The task's own sampling of one window (a task with no measurement, e.g. edit): the restored
        frames in [0, 1]; None (default): the shared DDS loop (`vidrestore.solve.restore_window`)."""
        return None

    def latent_start(self, num_train_timesteps: int) -> int | None:
        """Where a latent prior's schedule starts for this task: a noised start at this timestep replaces
        `latent.init` / `latent.inversion_t` (edit: its strength); None (default): as configured."""
        return None

    def network_passes(self, steps: int) -> tuple[float, float] | None:
        """(UNet-equivalent passes, VAE passes) per frame of the task's own sampler over `steps` sampled
        steps, for the estimate; None (default): the shared loop's count."""
        return None

    def inspect_input(self, frames: torch.Tensor, sigma_y: float) -> tuple[Degradation, dict, list[str]]:
        """Blind estimates and checks on the input's first frames (F, C, H, W) in [0, 1] (noise std `sigma_y`,
        resolved), once per run before any window is solved: (these options with what was estimated filled in,
        what the metrics JSON reports, one-line warnings). Default: nothing to estimate or check."""
        return self.options, {}, []

    def start_timestep(self, sigma_y: float, alphas_cumprod: torch.Tensor,
                       operator: ops.LinearOperator | None = None) -> int | None:
        """Where a pixel prior's partial schedule starts for input noise `sigma_y` (resolved, [0, 1] units) on
        the window problem's `operator` (from `window_problem`; None: not known yet); None (default):
        `sampler.start_t` as configured. The schedule's first step samples at this timestep."""
        return None

    def start_noise(self, sigma_y: float, operator: ops.LinearOperator | None = None) -> float:
        """With `start_timestep`: the noise std the initial estimate already carries, which the start tops up
        instead of adding a full dose (0, default: the estimate counts as clean)."""
        return 0.0

    # ------------------------------------------------------------------ evaluate hooks

    @classmethod
    def fit_reference(cls, options: Degradation, truth: torch.Tensor, source: str) -> torch.Tensor:
        """The part of a reference clip the task can be scored on (e.g. sizes divisible by the scale)."""
        return truth

    @classmethod
    def input_geometry(cls, options: Degradation, frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(frames, height, width) of the degraded input of a reference of this size."""
        return frames, height, width

    def input_fps(self, fps: Fraction) -> Fraction:
        """Frame rate of the degraded input of a reference at `fps`."""
        return fps / self.temporal_factor

    def degrade(self, truth: torch.Tensor, operator: ops.LinearOperator, generator: torch.Generator
                ) -> torch.Tensor:
        """y = A x + n of a reference (before 8-bit rounding); the noise follows `noise_level` (AUTO: none)."""
        y = operator.A(truth)
        sigma = self.options.noise_level
        if sigma != AUTO and sigma > 0:  # AUTO adds nothing: the solvers estimate what the input has
            y = y + sigma * torch.randn(y.shape, generator=generator)
        return y

    def unknown(self, operator: ops.LinearOperator, frames: int, height: int, width: int) -> torch.Tensor | None:
        """(F, 1, H or 1, W or 1) mask of output pixels no measurement gives directly; None when all are."""
        return None

    @classmethod
    def baseline_applies(cls, options: Degradation, name: str, explicit: bool) -> bool:
        """Whether baseline `name` can run with these options (asked for by name and impossible: UsageError).
        A peer tool (`peer_baselines`) runs where it is installed; asked for by name and missing, the error
        says what to install."""
        if name not in cls.peer_baselines:
            return True
        from vidrestore import peers  # the peers' packages are optional: imported only when asked about

        if explicit:
            peers.require(name)
        return peers.missing(name) is None

    def run_baseline(self, name: str, y: torch.Tensor, operator: ops.LinearOperator, truth: torch.Tensor
                     ) -> torch.Tensor:
        """The restored clip of classical method `name` (one of `baselines`)."""
        raise UsageError(f"unknown baseline {name!r} for {self.name}")

    def baseline_note(self, name: str) -> str | None:
        """What the report should say about how baseline `name` made its result (e.g. a composed scale)."""
        return None

    def summary(self) -> dict:
        """The degradation in a report: the task's command-line options that are set, and the noise."""
        keys = [o.field for o in self.cli_options] + ["sigma_y"]
        return {k: (list(v) if isinstance(v, tuple) else v) for k in keys
                if (v := getattr(self.options, k)) not in (None, (), 0, AUTO)}


# ----------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available to the CLI, configs and `evaluate` under `cls.name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"a task named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a task (tests that register a toy one)."""
    _REGISTRY.pop(name, None)


def get_task(name: str) -> type[Task]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown task {name!r} (choose one of {', '.join(task_names())})") from None


def task_names() -> list[str]:
    return list(_REGISTRY)
