"""deblur: a spatial blur kernel and/or temporal frame averaging (SVI's temporal degradations).

Solvers start from a Tikhonov-regularised temporal deconvolution (frame
averaging), then Wiener deconvolution per frame (spatial kernel). `evaluate`
compares with the blurred input itself, Wiener (the balance tuned on the
reference: an oracle) and Richardson-Lucy deconvolution with the known kernel.

`--kernel auto` estimates a Gaussian kernel's σ from the input once per run
(`vidrestore.operators.blind.estimate_gaussian_blur`, from the first frames'
spectrum, the input noise subtracted) and solves with `gaussian:σ`; the
metrics JSON reports `kernel_estimated`. `evaluate` needs the true kernel to
degrade the reference: run the estimate on its `input.mkv`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from vidrestore import baselines
from vidrestore import metrics as M
from vidrestore import operators as ops
from vidrestore.errors import UsageError
from vidrestore.io import quantize
from vidrestore.operators.blind import estimate_gaussian_blur
from vidrestore.tasks.base import AUTO, Degradation, Task, TaskOption, register

#: Wiener balance (noise-to-signal ratio) of the initial estimate: 8-bit input has quantisation noise;
#: after a temporal deconvolution (which amplifies it) a larger one
WIENER_BALANCE = 1e-3
WIENER_BALANCE_AFTER_TEMPORAL = 1e-2
#: weight of ‖x − y‖² in the temporal (frame-averaging) deconvolution of the initial estimate
TEMPORAL_TIKHONOV = 3e-3
#: Wiener balances tried per clip by the baseline; the best PSNR against the reference wins
WIENER_BALANCES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
RICHARDSON_LUCY_ITERATIONS = 30
#: --kernel auto: the estimated σ is clamped to this range (pixels); below the lower end there is nothing to undo
AUTO_SIGMA_RANGE = (0.3, 8.0)


@dataclass(frozen=True)
class DeblurOptions(Degradation):
    kernel: str | None = None      # gaussian:SIGMA | uniform:SIZE | motion:LENGTH,ANGLE | PATH | auto
    temporal: str | None = None    # frame averaging: uniform:K | gaussian:SIGMA

    def validate(self) -> None:
        super().validate()
        build_operator(self, check=True)  # kernel specs are parsed before any work starts

    def check_complete(self) -> None:
        if not self.kernel and not self.temporal:
            raise UsageError("deblur needs --kernel and/or --temporal")


def build_operator(options: DeblurOptions, check: bool = False) -> ops.LinearOperator | None:
    """Temporal blur ∘ spatial blur, or whichever one is given (None: neither). A kernel still "auto" is
    estimated from the input before a run: `check` (validation) leaves it out, a run cannot."""
    parts = []
    if options.temporal:
        parts.append(ops.TemporalBlur(ops.temporal_kernel(options.temporal)))
    if options.kernel == AUTO:
        if not check:
            raise UsageError("--kernel auto is estimated from the input when restoring; evaluate degrades the "
                             "reference with a known kernel (e.g. --kernel gaussian:2)")
    elif options.kernel:
        parts.append(ops.Blur(ops.parse_kernel_spec(options.kernel)))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else ops.Compose(*parts)


def temporal_deconvolve(y: torch.Tensor, op: ops.TemporalBlur, weight: float) -> torch.Tensor:
    """argmin ‖M x − y‖² + weight·‖x − y‖² per pixel, M the frames × frames blur matrix.

    Anchored at y rather than at 0: the columns of M do not sum to 1 at the clip's
    ends, and a pull towards 0 would darken the frames. The solution is one
    frames × frames matrix (solved in float64) applied to the clip.
    """
    m = op.matrix(y.shape[0]).to(torch.float64)
    eye = torch.eye(m.shape[0], dtype=torch.float64)
    g = torch.linalg.solve(m.T @ m + weight * eye, m.T + weight * eye).to(y)
    return torch.einsum("fg,g...->f...", g, y)


def deblur_initial_estimate(y: torch.Tensor, operator: ops.LinearOperator, *, balance: float | None = None,
                            temporal_weight: float = TEMPORAL_TIKHONOV) -> torch.Tensor:
    """Regularised inverses of each blur: temporal deconvolution, then per-frame Wiener (they commute).

    `balance` defaults to WIENER_BALANCE, or WIENER_BALANCE_AFTER_TEMPORAL when a
    frame-averaging blur was undone first.
    """
    parts = operator.ops if isinstance(operator, ops.Compose) else (operator,)
    temporal = [op for op in parts if isinstance(op, ops.TemporalBlur)]
    if balance is None:
        balance = WIENER_BALANCE_AFTER_TEMPORAL if temporal else WIENER_BALANCE
    x = y
    for op in temporal:
        x = temporal_deconvolve(x, op, temporal_weight)
    for op in parts:
        if isinstance(op, ops.Blur):
            kh, kw = op.kernel.shape
            if kh <= 2 * y.shape[2] and kw <= 2 * y.shape[3]:  # Wiener's FFT needs the kernel to fit
                x = baselines.wiener_deconvolve(x.clamp(0, 1), op.kernel.numpy(), balance).to(y)
        elif not isinstance(op, ops.TemporalBlur):
            x = op.initial_estimate(x)
    return x.clamp(0, 1)


@register
class Deblur(Task):
    name = "deblur"
    help = "Remove spatial and/or temporal (frame-averaging) blur."
    example = "vidrestore deblur clip.mp4 --kernel gaussian:2 --temporal uniform:5"
    Options = DeblurOptions
    cli_options = (
        TaskOption("kernel", ("--kernel",),
                   "gaussian:SIGMA | uniform:SIZE | motion:LENGTH,ANGLE | PATH (.npy or grayscale image) | auto "
                   "(a Gaussian whose σ is estimated from the input; reported as kernel_estimated)."),
        TaskOption("temporal", ("--temporal",), "Frame-averaging blur: uniform:K | gaussian:SIGMA."),
    )
    baselines = ("input", "wiener", "richardson-lucy")

    @property
    def temporal_radius(self) -> int:
        temporal = self.options.temporal
        return len(ops.temporal_kernel(temporal)) // 2 if temporal else 0

    def operator(self, streams=None) -> ops.LinearOperator:
        return build_operator(self.options)

    def initial_estimate(self, y, operator):
        return deblur_initial_estimate(y, operator)

    def inspect_input(self, frames, sigma_y):
        if self.options.kernel != AUTO:
            return self.options, {}, []
        sigma = estimate_gaussian_blur(frames, sigma_y)
        low, high = AUTO_SIGMA_RANGE
        clamped = min(max(sigma if sigma is not None else low, low), high)
        kernel = f"gaussian:{clamped:.3g}"
        notes = [] if sigma is not None else [f"--kernel auto: too little detail to estimate a blur; using {kernel}"]
        return replace(self.options, kernel=kernel), {
            "kernel_estimated": kernel, "blur_sigma_estimated": None if sigma is None else round(sigma, 4)}, notes

    @classmethod
    def baseline_applies(cls, options: DeblurOptions, name: str, explicit: bool) -> bool:
        if name in ("wiener", "richardson-lucy") and not options.kernel:
            if explicit:
                raise UsageError(f"{name} needs a spatial --kernel (it cannot undo frame averaging alone)")
            return False
        return True

    def run_baseline(self, name, y, operator, truth):
        if name == "input":
            return y.clone()
        if name in ("wiener", "richardson-lucy"):
            kernel = ops.parse_kernel_spec(self.options.kernel).numpy()
            if name == "richardson-lucy":
                return baselines.richardson_lucy(y, kernel, RICHARDSON_LUCY_ITERATIONS)
            outs = [baselines.wiener_deconvolve(y, kernel, b) for b in WIENER_BALANCES]
            return max(outs, key=lambda o: M.psnr(quantize(o), truth))
        return super().run_baseline(name, y, operator, truth)
