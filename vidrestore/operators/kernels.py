"""Blur kernels (2-D spatial, 1-D temporal) and the CLI kernel specs.

All kernels are float64 CPU tensors normalised to sum 1.

Spatial specs (``--kernel``):  ``gaussian:SIGMA | uniform:SIZE | motion:LENGTH,ANGLE | PATH``
Temporal specs (``--temporal``): ``uniform:K | gaussian:SIGMA``
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from vidrestore.errors import InputError, UsageError

#: largest kernel side (pixels or frames) a spec may produce
MAX_KERNEL_SIZE = 257

KERNEL_FORMS = "gaussian:SIGMA, uniform:SIZE, motion:LENGTH,ANGLE, or a path to a .npy or image file"
TEMPORAL_FORMS = "uniform:K or gaussian:SIGMA"

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".exr"}


def _gaussian_1d(sigma: float, radius: int | None = None) -> torch.Tensor:
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma}")
    if sigma == 0:
        return torch.ones(1, dtype=torch.float64)
    if radius is None:
        radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return g / g.sum()


def gaussian_kernel(sigma: float, size: int | None = None) -> torch.Tensor:
    """Sampled 2-D Gaussian, side ``size`` (odd; default ``2·ceil(3σ) + 1``); σ = 0 gives a delta."""
    if size is not None and (size < 1 or size % 2 == 0):
        raise ValueError(f"gaussian kernel size must be a positive odd integer, got {size}")
    g = _gaussian_1d(float(sigma), None if size is None else size // 2)
    if size is not None and g.numel() != size:  # sigma == 0 with an explicit size
        g = torch.zeros(size, dtype=torch.float64)
        g[size // 2] = 1.0
    k = torch.outer(g, g)
    return k / k.sum()


def uniform_kernel(size: int) -> torch.Tensor:
    """``size × size`` box filter."""
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"uniform kernel size must be a positive integer, got {size}")
    size = int(size)
    return torch.full((size, size), 1.0 / (size * size), dtype=torch.float64)


def motion_kernel(length: float, angle_degrees: float = 0.0) -> torch.Tensor:
    """Linear motion blur: a line segment of ``length`` pixels through the centre.

    ``length`` counts pixels along the line (end pixel centres are
    ``length − 1`` apart; end pixels get about half weight). ``angle_degrees``
    is measured counter-clockwise from the +x axis (image rows grow downwards),
    as MATLAB's ``fspecial('motion')``. The segment is drawn
    anti-aliased (densely sampled points splatted bilinearly), the kernel is
    point-symmetric about its centre, odd-sized and normalised to sum 1.
    """
    length, angle = float(length), float(angle_degrees)
    if not math.isfinite(length) or length <= 0:
        raise ValueError(f"motion length must be a finite number > 0, got {length}")
    if not math.isfinite(angle):
        raise ValueError(f"motion angle must be finite, got {angle}")
    theta = math.radians(angle)
    half = (length - 1) / 2 if length >= 1 else 0.0  # pixel centres spanned: length pixels
    radius = math.ceil(half) + 1
    size = 2 * radius + 1
    n = max(2, int(math.ceil(8 * length)) + 1)
    t = torch.linspace(-half, half, n, dtype=torch.float64)
    xs = radius + t * math.cos(theta)
    ys = radius - t * math.sin(theta)
    k = torch.zeros(size, size, dtype=torch.float64)
    x0, y0 = torch.floor(xs), torch.floor(ys)
    fx, fy = xs - x0, ys - y0
    x0, y0 = x0.long(), y0.long()
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            k.index_put_((y0 + dy, x0 + dx), wy * wx, accumulate=True)
    k[k.abs() < 1e-12] = 0.0
    # symmetrise exactly (removes float noise) and trim empty borders symmetrically
    k = 0.5 * (k + torch.flip(k, dims=(0, 1)))
    while k.shape[0] > 1 and k[0].abs().sum() == 0 and k[-1].abs().sum() == 0:
        k = k[1:-1]
    while k.shape[1] > 1 and k[:, 0].abs().sum() == 0 and k[:, -1].abs().sum() == 0:
        k = k[:, 1:-1]
    return k / k.sum()


def _normalise(k: np.ndarray, path: str) -> torch.Tensor:
    k = np.asarray(k)
    if k.ndim == 3 and k.shape[2] == 1:
        k = k[:, :, 0]
    if k.ndim != 2 or k.size == 0:
        raise InputError(f"kernel file {path}: expected a 2-D array, got shape {k.shape}")
    if not (np.issubdtype(k.dtype, np.number) or k.dtype == np.bool_) or np.iscomplexobj(k):
        raise InputError(f"kernel file {path}: expected real numbers, got dtype {k.dtype}")
    k = k.astype(np.float64)
    if not np.isfinite(k).all():
        raise InputError(f"kernel file {path}: contains NaN or infinite values")
    if max(k.shape) > MAX_KERNEL_SIZE:
        raise InputError(f"kernel file {path}: kernel {k.shape[0]}x{k.shape[1]} is larger than "
                         f"{MAX_KERNEL_SIZE}x{MAX_KERNEL_SIZE}")
    total = k.sum()
    if not total > 0:
        raise InputError(f"kernel file {path}: kernel sums to {total:g}; it must sum to a positive number")
    return torch.from_numpy(k / total)


def load_kernel(path) -> torch.Tensor:
    """Load a 2-D kernel from ``.npy`` (never pickled objects) or a grayscale image.

    Colour images are converted to grayscale; the result is normalised to sum 1.
    Raises :class:`InputError` for a missing, unreadable or invalid file.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"kernel file {path}: not found")
    if not p.is_file():
        raise InputError(f"kernel file {path}: not a file")
    if p.suffix.lower() == ".npy":
        try:
            k = np.load(p, allow_pickle=False)
        except Exception as exc:  # ValueError (pickled / corrupt), OSError, EOFError, ...
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"kernel file {path}: not a valid .npy array ({msg})") from None
        return _normalise(k, str(path))
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"kernel file {path}: cannot read ({exc.strerror or exc})") from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise InputError(f"kernel file {path}: not a readable image or .npy file")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = img[:, :, :3]
        if img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return _normalise(img, str(path))


def _number(text: str, spec: str, forms: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"invalid kernel spec {spec!r}: {text!r} is not a number; expected {forms}") from None
    if not math.isfinite(value):
        raise UsageError(f"invalid kernel spec {spec!r}: {text!r} is not finite; expected {forms}")
    return value


def _integer(text: str, spec: str, forms: str) -> int:
    value = _number(text, spec, forms)
    if value != int(value):
        raise UsageError(f"invalid kernel spec {spec!r}: {text!r} is not an integer; expected {forms}")
    return int(value)


def _split(spec: str) -> tuple[str, list[str]]:
    name, _, args = spec.partition(":")
    return name.strip().lower(), [a.strip() for a in args.split(",")] if args.strip() else []


def _bad(spec: str, problem: str, forms: str) -> UsageError:
    return UsageError(f"invalid kernel spec {spec!r}: {problem}; expected {forms}")


def parse_kernel_spec(spec: str) -> torch.Tensor:
    """Parse ``gaussian:SIGMA | uniform:SIZE | motion:LENGTH,ANGLE | PATH`` into a 2-D kernel.

    Malformed specs raise :class:`UsageError`; a missing or invalid kernel file
    raises :class:`InputError`.
    """
    if not isinstance(spec, (str, os.PathLike)):
        raise _bad(str(spec), "not a string", KERNEL_FORMS)
    text = os.fspath(spec).strip()
    if not text:
        raise _bad(text, "empty", KERNEL_FORMS)
    name, args = _split(text)
    forms = KERNEL_FORMS
    if name == "gaussian" and ":" in text:
        if len(args) != 1:
            raise _bad(text, "gaussian takes one value, SIGMA", forms)
        sigma = _number(args[0], text, forms)
        if sigma <= 0:
            raise _bad(text, "SIGMA must be > 0", forms)
        if 2 * math.ceil(3 * sigma) + 1 > MAX_KERNEL_SIZE:
            raise _bad(text, f"SIGMA must be at most {(MAX_KERNEL_SIZE - 1) // 6}", forms)
        return gaussian_kernel(sigma)
    if name == "uniform" and ":" in text:
        if len(args) != 1:
            raise _bad(text, "uniform takes one value, SIZE", forms)
        size = _integer(args[0], text, forms)
        if not 1 <= size <= MAX_KERNEL_SIZE:
            raise _bad(text, f"SIZE must be an integer from 1 to {MAX_KERNEL_SIZE}", forms)
        return uniform_kernel(size)
    if name == "motion" and ":" in text:
        if len(args) != 2:
            raise _bad(text, "motion takes two values, LENGTH,ANGLE", forms)
        length = _number(args[0], text, forms)
        angle = _number(args[1], text, forms)
        if not 0 < length <= MAX_KERNEL_SIZE - 2:
            raise _bad(text, f"LENGTH must be > 0 and at most {MAX_KERNEL_SIZE - 2}", forms)
        return motion_kernel(length, angle)
    # a path?
    p = Path(text)
    if p.exists():
        return load_kernel(p)
    looks_like_path = (
        p.suffix.lower() in _IMAGE_SUFFIXES | {".npy"}
        or "/" in text
        or "\\" in text
        or (len(name) == 1 and ":" in text)  # Windows drive letter
    )
    if looks_like_path:
        raise InputError(f"kernel file {text}: not found")
    if name in ("gaussian", "uniform", "motion"):
        raise _bad(text, f"{name} needs a value", forms)
    raise _bad(text, "unknown kernel type and no such file", forms)


def temporal_kernel(spec: str) -> torch.Tensor:
    """Parse ``uniform:K | gaussian:SIGMA`` into a normalised 1-D kernel of odd length.

    ``uniform:K`` averages K consecutive frames. For an even K the centred box
    of width K is used: K+1 taps with half weight on the two end frames.
    ``gaussian:SIGMA`` has radius ``ceil(3σ)`` (σ = 0 is not allowed).
    """
    forms = TEMPORAL_FORMS
    if not isinstance(spec, str):
        raise UsageError(f"invalid temporal kernel spec {spec!r}: not a string; expected {forms}")
    text = spec.strip()
    name, args = _split(text)
    if ":" not in text or name not in ("uniform", "gaussian"):
        raise UsageError(f"invalid temporal kernel spec {text!r}; expected {forms}")
    if len(args) != 1:
        raise UsageError(f"invalid temporal kernel spec {text!r}: {name} takes one value; expected {forms}")
    if name == "uniform":
        k = _integer(args[0], text, forms)
        if not 1 <= k <= MAX_KERNEL_SIZE - 1:
            raise UsageError(f"invalid temporal kernel spec {text!r}: K must be an integer from 1 to "
                             f"{MAX_KERNEL_SIZE - 1}; expected {forms}")
        if k % 2:
            return torch.full((k,), 1.0 / k, dtype=torch.float64)
        w = torch.ones(k + 1, dtype=torch.float64)
        w[0] = w[-1] = 0.5
        return w / k
    sigma = _number(args[0], text, forms)
    if sigma <= 0 or 2 * math.ceil(3 * sigma) + 1 > MAX_KERNEL_SIZE:
        raise UsageError(f"invalid temporal kernel spec {text!r}: SIGMA must be > 0 and at most "
                         f"{(MAX_KERNEL_SIZE - 1) // 6}; expected {forms}")
    return _gaussian_1d(sigma)
