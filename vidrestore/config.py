"""Run configuration: frozen dataclasses resolved from defaults ⊕ preset ⊕ --set ⊕ CLI flags.

Presets are YAML files with the same nested keys as `RunConfig` (for
example `sampler: {steps: 10}`); they are found by name in
`vidrestore/presets/` or by path. `--set sampler.eta=0.2` overrides one key.
The resolved config round-trips through JSON (`to_dict` / `from_dict`).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from vidrestore.errors import UsageError
from vidrestore.tasks import Degradation, get_task

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
CHOICES = {  # keys whose values come from a fixed set (a task's own keys are checked by its options)
    "sampler.noise": ("independent", "shared", "warped"),
    "runtime.dtype": ("auto", "fp32", "fp16", "bf16"),
    "guidance.sampling": ("bilinear", "bicubic"),
    "latent.init": ("inversion", "noised", "noise"),
    "latent.vae_tiling": ("auto", "off"),
}
TIMESTEPS = 1000  # the training timesteps of every supported prior (DDPM, SD, SDXL)
#: every numeric config key's range, checked in one place (`validate`): key -> (min, max, min excluded);
#: None = unbounded. A task's own options are checked by its `Degradation.validate`.
RANGES: dict[str, tuple[float | None, float | None, bool]] = {
    "sampler.steps": (1, TIMESTEPS, False),
    "sampler.eta": (0.0, 1.0, False),
    "sampler.cg_iterations": (1, 1000, False),   # 0 would skip data consistency: the output ignores the input
    "sampler.gamma": (0.0, None, False),
    "sampler.noise_weight": (0.0, None, False),
    "sampler.noisy_gamma": (0.0, None, False),
    "sampler.start_t": (1, TIMESTEPS, False),    # 1000 = from pure noise; below: from the noised estimate
    "sampler.average": (1, None, False),
    "sampler.warp_correlation": (0.0, 1.0, False),
    "latent.inversion_t": (0, TIMESTEPS, False),
    "latent.lpf_scale": (0.0, None, False),
    "latent.guidance_scale": (0.0, None, False),
    "guidance.equivariance": (0.0, 2.0, False),  # a gradient step of λ/L: stable below 2
    "guidance.flow_updates": (0, None, False),
    "guidance.flow_blur": (0.0, None, False),
    "guidance.reliability": (0.0, None, False),
    "classical.smoothness": (0.0, None, False),
    "classical.iterations": (1, None, False),
    "runtime.seed": (0, 2**63 - 1, False),
    "runtime.chunk": (1, None, False),
    "runtime.overlap": (0, None, False),         # more than chunk - 1 is clamped (and said so)
    "runtime.tile": (16, None, False),           # None = automatic
    "runtime.micro_batch": (1, None, False),
    "runtime.workers": (0, None, False),
    "runtime.threads": (1, None, False),
    "runtime.retries": (0, None, False),
    "io.crf": (0, 51, False),
    "io.fps": (0.0, 1000.0, True),
    "adapt.steps": (0, 1_000_000, False),
    "adapt.rank": (1, 256, False),
    "adapt.lr": (0.0, 1.0, True),
    "adapt.batch": (1, None, False),
    "adapt.crop": (8, None, False),
    "adapt.max_zoom": (1.0, 64.0, False),
}


@dataclass(frozen=True)
class SamplerConfig:
    steps: int = 20
    eta: float = 0.15
    cg_iterations: int = 5
    gamma: float = 0.0             # DDS proximal weight (σ_y > 0: at least 1, and noise_weight · σ_y² / σ_t²)
    noise_weight: float = 0.0      # σ_y > 0: scale of a data-consistency weight σ_y² / σ_t² that follows ᾱ_t
                                   # (0: DDS's constant γ = 1, measured best for deblur; denoise presets: 64)
    noisy_gamma: float = 1.0       # σ_y > 0: the least γ (DDS's 1, measured best for deblur); superres: 0, as its
                                   # A averages s² pixels and γ = 1 would all but ignore y (see presets/superres.yaml)
    noise: str = "shared"          # independent | shared | warped (moves with the optical flow)
    start_t: int = 1000            # < 1000: start from the noised initial estimate at this timestep
    average: int = 1               # average this many samples (higher PSNR, N× the time)
    warp_correlation: float = 1.0  # warped noise: correlation of a frame's noise with its predecessor's along the
                                   # flow (1 = fully warped; below 1 the rest is fresh noise, still N(0, 1) white)


@dataclass(frozen=True)
class LatentConfig:
    """Latent priors (Stable Diffusion / SDXL) and the VISION-XL sampler; ignored by pixel priors."""

    init: str = "inversion"        # inversion (batch-consistent, VISION-XL) | noised | noise
    inversion_t: int = 300         # inversion / noised: only the schedule's timesteps <= this are sampled
    lpf_scale: float = 2.0         # scheduled low-pass σ = √(lpf_scale (1 − ᾱ_t)) before re-encoding; 0 = off
    prompt: str = ""               # text conditioning (computed once)
    negative_prompt: str = ""
    guidance_scale: float = 1.0    # classifier-free guidance; 1 = off (one UNet pass per frame)
    vae: str | None = None         # another VAE folder / hub id (e.g. an fp16-safe SDXL VAE)
    vae_tiling: str = "auto"       # auto: VAE tiles for frames larger than its sample_size (or --tile) | off


@dataclass(frozen=True)
class GuidanceConfig:
    equivariance: float = 0.0      # equivariance self-guidance weight λ (0 = off; 0 < λ < 2, 1 = a full 1/L step)
    sampling: str = "bilinear"     # how the guidance warps read between pixels: bilinear | bicubic
    flow_updates: int = 0          # re-measure the guidance's flow this many times on the guided estimate (evenly
                                   # over the steps); warped noise keeps the flow of the initial estimate
    flow_blur: float = 0.0         # Gaussian σ, in input pixels, on the frames before their flow is measured
                                   # (guidance and warped noise): an upsampled input aliases, and aliasing does not
                                   # move with the scene (superres: σ × scale output pixels)
    reliability: float = 0.0       # > 0: weight each pixel's pull by exp(-e² / (2 s²)), e the flow's forward-backward
                                   # error and s this many input pixels (temporal/confidence.py); 0: the binary
                                   # occlusion mask alone


@dataclass(frozen=True)
class ClassicalConfig:
    smoothness: float = 0.002
    iterations: int = 30


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"
    dtype: str = "auto"             # the prior's compute dtype (runtime.resolve_dtype)
    seed: int = 0
    chunk: int = 16                # frames restored together (one CG system)
    overlap: int | None = None     # frames shared by consecutive chunks, cross-faded; None: chunk // 4, at most 4
    tile: int | None = None        # spatial tile for the denoiser; None = automatic
    micro_batch: int = 8           # frames per network call
    resume: bool = True            # continue an interrupted run from <output>.partial/
    workers: int = 0               # > 0: windows solved by this many local worker processes (0: in process)
    ray: str | None = None         # local | auto | a cluster address: windows solved by Ray actors
    retries: int = 3               # times a window is re-run after its worker died, before giving up
    threads: int | None = None     # CPU threads per process solving windows (None: all cores, cores/N per worker);
                                   # float sums depend on it, so equal threads give bit-equal frames everywhere


@dataclass(frozen=True)
class OutputConfig:
    crf: int = 18
    audio: bool = True
    fps: float = 25.0              # frame rate assumed for frame-folder input
    overwrite: bool = False
    strict: bool = False           # errors ffmpeg reports while decoding the input are fatal (else a warning)


@dataclass(frozen=True)
class AdaptConfig:
    """--adapt: fine-tune a copy of the pixel prior on the input's own frames first (vidrestore.adapt)."""

    steps: int = 0                 # optimiser steps; 0 = off (the prior as shipped)
    images: str | None = None      # a folder of the user's stills of the same scene or subject, mixed in
    cache: str | None = None       # where adapted models are kept (None: $XDG_CACHE_HOME/vidrestore/adapt)
    rank: int = 8                  # of the low-rank adapters on every convolution and linear layer
    lr: float = 5e-4
    batch: int = 8                 # crops per step
    crop: int = 64                 # crop side in pixels (smaller frames: their size, a multiple of the UNet's)
    max_zoom: float = 2.0          # crops are zoomed out by a log-uniform factor in [1, max_zoom]


@dataclass(frozen=True)
class RunConfig:
    task: str = "superres"
    input: str = ""
    output: str = ""
    preset: str = ""
    model: str = "default"
    reference: str | None = None
    metrics: str | None = None
    quiet: bool = False
    degradation: Degradation = field(default_factory=Degradation)  # the task's own options (see __post_init__)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    classical: ClassicalConfig = field(default_factory=ClassicalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    io: OutputConfig = field(default_factory=OutputConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)

    def __post_init__(self):
        options = get_task(self.task).Options
        if type(self.degradation) is not options:  # e.g. RunConfig(task="deblur"): that task's defaults
            base = {f.name: getattr(self.degradation, f.name) for f in fields(Degradation)}
            object.__setattr__(self, "degradation", options(**base))

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        task = data.get("task", cls.task) if isinstance(data, dict) else cls.task
        if not isinstance(task, str):
            raise UsageError(f"task: expected a task name, got {task!r}")
        return _build(cls, data, "", {"degradation": get_task(task).Options})


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if value is None and (hint is type(None) or type(None) in args):
        return None
    if set(args) - {type(None)} == {float, str}:  # a number or a word (degradation.sigma_y: auto | VALUE)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value  # the word is checked where the key is validated
        raise UsageError(f"{key}: expected a number or a word, got {value!r}")
    if origin in (Union, UnionType):  # Optional[X], or X | Y: the first type that takes the value
        options = [a for a in args if a is not type(None)]
        if len(options) > 1:
            if type(value) in options:
                return value
            for option in options:
                try:
                    return _coerce(value, option, key)
                except UsageError:
                    continue
            raise UsageError(f"{key}: expected {' or '.join(getattr(o, '__name__', str(o)) for o in options)}, "
                             f"got {value!r}")
        hint = options[0]
        origin, args = get_origin(hint), get_args(hint)
    if origin is tuple:
        items = value if isinstance(value, (list, tuple)) else [value]
        return tuple(_coerce(v, args[0], key) for v in items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise UsageError(f"{key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (isinstance(value, float) and not value.is_integer()):  # 2.5, nan, inf
            raise UsageError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if isinstance(value, bool):  # YAML 1.1 reads a bare on / off (yes / no) as a boolean: the word was meant
            return "on" if value else "off"
        return str(value)
    raise UsageError(f"{key}: unsupported value {value!r}")


def _build(cls, data: dict, prefix: str, classes: dict[str, type] | None = None):
    """`cls` from a nested dict; `classes` replaces the declared dataclass of some fields (a task's options)."""
    if not isinstance(data, dict):
        raise UsageError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise UsageError(f"unknown config key {prefix}{unknown[0]} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        hint = (classes or {}).get(f.name, hints[f.name])
        if dataclasses.is_dataclass(hint):
            kwargs[f.name] = _build(hint, data[f.name], f"{prefix}{f.name}.")
        else:
            kwargs[f.name] = _coerce(data[f.name], hint, prefix + f.name)
    return cls(**kwargs)


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _set_dotted(data: dict, dotted: str, value: Any) -> dict:
    keys = dotted.split(".")
    nested: Any = value
    for key in reversed(keys):
        nested = {key: nested}
    return _merge(data, nested)


def preset_path(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UsageError(f"preset file not found: {name_or_path}")
        return path
    candidate = PRESETS_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise UsageError(f"unknown preset {name_or_path!r} (available: {', '.join(available_presets())})")
    return candidate


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name_or_path: str) -> dict:
    path = preset_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"malformed preset {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise UsageError(f"malformed preset {path}: expected a mapping of keys")
    return data


def parse_set(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. sampler.steps=10")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def resolve_config(task: str, preset: str | None = None, sets: list[str] | tuple[str, ...] = (),
                   flags: dict[str, Any] | None = None) -> RunConfig:
    """Defaults ⊕ preset (default: the task's own) ⊕ --set ⊕ explicit CLI flags (dotted keys; None = not given)."""
    get_task(task)  # an unknown name is a usage error
    preset = preset or task
    if preset == task and task not in available_presets():
        preset = ""  # a task that ships no preset of its own runs on the defaults
    data = _merge(RunConfig(task=task).to_dict(), load_preset(preset) if preset else {})
    data["task"] = task
    data["preset"] = preset
    for item in sets:
        key, value = parse_set(item)
        data = _set_dotted(data, key, value)
    for key, value in (flags or {}).items():
        if value is not None:
            data = _set_dotted(data, key, value)
    return validate(RunConfig.from_dict(data))


def _get(cfg: RunConfig, dotted: str) -> Any:
    value: Any = cfg
    for key in dotted.split("."):
        value = getattr(value, key)
    return value


def _check_range(key: str, value: Any) -> None:
    low, high, low_open = RANGES[key]
    if value is None:  # an optional key not given: automatic (tile, overlap, threads)
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{key} must be a finite number, got {value}")
    if (low is not None and (value < low or (low_open and value == low))) or (high is not None and value > high):
        if low is not None and high is not None:
            bounds = f"in {'(' if low_open else '['}{low}, {high}]"
        elif low_open:
            bounds = f"greater than {low}"
        else:
            bounds = f"at least {low}" if low is not None else f"at most {high}"
        raise UsageError(f"{key} must be {bounds}, got {value}")


def validate(cfg: RunConfig) -> RunConfig:
    """UsageError (one line naming the key) for a value no run can use; the task checks its own options."""
    for key, choices in CHOICES.items():
        if _get(cfg, key) not in choices:
            raise UsageError(f"{key}: {_get(cfg, key)!r} is not one of {', '.join(choices)}")
    for key in RANGES:
        _check_range(key, _get(cfg, key))
    if cfg.adapt.images and cfg.adapt.steps == 0:
        raise UsageError("adapt.images (--adapt-images) needs adapt.steps (--adapt STEPS) above 0")
    cfg.degradation.validate()
    return cfg


def default_preset(task: str, model: str | None) -> str | None:
    """The preset a task uses when none is given: `<task>-sdxl` / `<task>-sd` for a latent model
    (the VISION-XL defaults), the task's `evaluate_preset` where its own preset runs no model
    (interpolate's diffusion variant), else None (the task's own)."""
    from vidrestore.errors import VidrestoreError
    from vidrestore.priors import model_kind  # the model's kind needs its config files, read only when asked

    if model in (None, "default", "none"):
        return None
    try:
        kind = model_kind(model)
    except VidrestoreError:
        return None  # restore reports the model problem
    candidates = {"sdxl": [f"{task}-sdxl", f"{task}-sd"], "sd": [f"{task}-sd"]}.get(kind, [])
    # a model asked for where the task's own preset has none means the task's diffusion preset
    candidates.append(get_task(task).evaluate_preset or task)
    return next((name for name in candidates if name in available_presets()), None)
