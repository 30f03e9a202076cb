"""Golden outputs: decoded frame hashes of every preset on a small clip with a fixed seed.

    python scripts/golden.py check            # compare with tests/golden/golden.json (exit 1 on a difference)
    python scripts/golden.py record           # rewrite tests/golden/golden.json (say why in the commit)

Each preset (and each variant in VARIANTS, for branches no preset takes) runs through the CLI on a tiny synthetic clip
(clean, or with seeded noise for the variants that name the `noisy` clip) with 2–3 sampling
steps: pixel presets with the embedded model, `-sd` / `-sdxl` presets with a
tiny randomly initialised latent pipeline built from configs (seeded, nothing
downloaded). The output is a folder of PNG frames (lossless), hashed after
decoding. `tests/test_golden.py` runs the check.

Float results depend on the CPU's vector unit (oneDNN picks kernels by it), so
the file records `torch.backends.cpu.get_cpu_capability()` (with "+bf16" where the CPU computes bf16 natively,
which `--dtype auto` then uses, and "+amx": the runs pin fp32, and superres+bf16 is checked only on such a CPU): hashes must match
exactly on a machine of the recorded capability; elsewhere the frames must
agree within one 8-bit level (they are stored beside the hashes).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from vidrestore.runtime import cpu_has_bf16

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
sys.path.insert(0, str(ROOT / "tests"))

#: task options per preset family; every run adds --seed 3 and a short schedule
TASK_ARGS = {
    "superres": ["-x", "2"],
    "inpaint": ["--box", "4,4,8,6"],
    "deblur": ["--kernel", "gaussian:1", "--temporal", "uniform:3"],
    "interpolate": ["-x", "2"],
    "denoise": ["--sigma", "0.05"],
    "edit": ["--prompt", "a cat", "--steps", "3"],  # --steps wins over SHORT's --set: 3 steps at strength 0.75
}
#: presets for a latent model whose name does not say which (a task's own preset, e.g. edit's SD 1.5)
LATENT_KIND = {"edit": "sd"}
#: tasks that also load a ControlNet (a tiny random one of the pipeline's kind)
CONTROLNET_TASKS = ("edit",)
#: schedule overrides that keep each run to 2–3 network evaluations per frame (latent: 7 steps over the
#: whole range, of which the three at t <= 300 are sampled)
#: pixel runs pin fp32: `--dtype auto` computes in bf16 only where the CPU has it natively, so the default's frames
#: depend on the machine; bf16 has its own run (superres+bf16), checked where the CPU computes bf16
SHORT = {"pixel": ["--set", "sampler.steps=2", "--dtype", "fp32"], "fast": ["--set", "sampler.steps=3", "--dtype", "fp32"],
         "latent": ["--set", "sampler.steps=7"]}
#: branches no preset takes by default, each as (preset, extra arguments)
VARIANTS = {
    "superres+warped": ("superres", ["--noise", "warped"]),
    "superres+none": ("superres", ["--model", "none"]),
    "superres+windows": ("superres", ["--chunk", "3", "--overlap", "1"]),
    "superres+bf16": ("superres", ["--dtype", "bf16"]),
    "inpaint+untrusted": ("inpaint", ["--set", "degradation.trust_propagated=false", "--noise", "independent"]),
    "deblur+sigma": ("deblur", ["--set", "degradation.sigma_y=0.02"]),
    "interpolate-diffusion+windows": ("interpolate-diffusion", ["--chunk", "3", "--overlap", "2", "-x", "4"]),
    "superres-sd+warped": ("superres-sd", ["--noise", "warped", "--set", "guidance.equivariance=0.5"]),
    "superres-sd+noised": ("superres-sd", ["--set", "latent.init=noised"]),
    "deblur-sd+noise": ("deblur-sd", ["--set", "latent.init=noise", "--set", "sampler.steps=3"]),
    # the noise level estimated from a noisy input (σ 0.05) and solved with (--sigma-y auto is the default)
    "denoise+auto": ("denoise", ["--sigma", "auto"], "noisy"),
    "deblur+auto": ("deblur", ["--sigma-y", "auto"], "noisy"),
    "superres+auto": ("superres", ["--sigma-y", "auto"], "noisy"),  # the weight that follows σ_y and 1/s²
}
#: runs checked only on a CPU of the recorded capability (bf16: elsewhere other kernels, or fp32)
NATIVE_BF16 = ("superres+bf16",)
#: standard deviation of the seeded Gaussian noise on the `noisy` clip
NOISY_SIGMA = 0.05


def runs() -> list[str]:
    from vidrestore.config import available_presets

    return [*available_presets(), *VARIANTS]


def clip(folder: Path) -> Path:
    from helpers import smooth_clip, write_clip

    return write_clip(folder / "clip.mkv", smooth_clip(frames=5, height=16, width=24, seed=1))


def noisy_clip(folder: Path) -> Path:
    from vidrestore.io import quantize

    from helpers import smooth_clip, write_clip

    # 32x40: frames of 16x24 are too small for the noise estimate (operators.noise.estimable)
    clean = smooth_clip(frames=5, height=32, width=40, seed=1)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(5))
    return write_clip(folder / "noisy.mkv", quantize(clean + NOISY_SIGMA * noise))


def latent_model(folder: Path, kind: str) -> Path:
    from latent_models import save_tiny_latent_pipeline

    path = folder / f"tiny-{kind}"
    if not path.exists():
        save_tiny_latent_pipeline(path, kind, vae_sample_size=64)
    return path


def controlnet(folder: Path, kind: str) -> Path:
    from latent_models import save_tiny_controlnet

    path = folder / f"tiny-controlnet-{kind}"
    if not path.exists():
        save_tiny_controlnet(path, kind)
    return path


def run_preset(name: str, folder: Path, source: Path) -> list[np.ndarray]:
    from typer.testing import CliRunner

    from vidrestore.cli import app
    from vidrestore.io import read_frames

    preset, extra, *clip_name = VARIANTS.get(name, (name, []))
    if clip_name == ["noisy"]:
        source = noisy_clip(folder)
    task = preset.split("-")[0]
    kind = LATENT_KIND.get(preset, preset.rsplit("-", 1)[-1])
    args = [task, str(source), "-o", str(folder / name), "--preset", preset, "--seed", "3", "--quiet",
            *TASK_ARGS[task]]
    if kind in ("sd", "sdxl"):
        args += ["--model", str(latent_model(folder, kind)), *SHORT["latent"]]
        if task in CONTROLNET_TASKS:
            args += ["--controlnet", str(controlnet(folder, kind))]
    else:
        args += SHORT["fast" if kind == "fast" else "pixel"]
    result = CliRunner().invoke(app, args + extra)  # later options win
    if result.exit_code != 0:
        raise RuntimeError(f"{name}: exit {result.exit_code}: {result.output}")
    return [f for batch in read_frames(folder / name, 64) for f in batch]


def cpu_capability() -> str:
    """oneDNN's kernel family, and whether bf16 is native and AMX present (they pick the kernels of bf16 runs)."""
    try:
        amx = "amx_tile" in Path("/proc/cpuinfo").read_text()
    except OSError:
        amx = False
    return torch.backends.cpu.get_cpu_capability() + ("+bf16" if cpu_has_bf16() else "") + ("+amx" if amx else "")


def frame_hash(frames: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(np.ascontiguousarray(frame).tobytes())
    return digest.hexdigest()


def compute(names: list[str] | None = None) -> dict[str, list[np.ndarray]]:
    names = names or runs()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = clip(folder)
        return {name: run_preset(name, folder, source) for name in names}


def compare(outputs: dict[str, list[np.ndarray]]) -> list[str]:
    """Problems, one line each (none = identical to the recorded outputs)."""
    recorded = json.loads((GOLDEN / "golden.json").read_text())
    same_cpu = recorded["cpu_capability"] == cpu_capability()
    frames = np.load(GOLDEN / "frames.npz", allow_pickle=False)
    problems = []
    for name, out in outputs.items():
        if name in NATIVE_BF16 and not same_cpu:
            continue  # bf16 kernels (AVX512-BF16, AMX) or fp32 here: their sums differ by more than a level
        if name not in recorded["hashes"]:
            problems.append(f"{name}: no recorded hash (record it, saying why)")
        elif frame_hash(out) != recorded["hashes"][name]:
            if same_cpu:
                problems.append(f"{name}: frames differ from the recorded ones")
                continue
            diff = np.abs(np.stack(out).astype(int) - frames[name].astype(int)).max()
            if diff > 1:
                problems.append(f"{name}: frames differ by up to {diff} levels (another CPU: at most 1 allowed)")
    return problems


def record(outputs: dict[str, list[np.ndarray]], merge: bool = False) -> None:
    """Write `outputs` as the recorded ones; `merge`: replace only these presets, keep the others' records."""
    GOLDEN.mkdir(parents=True, exist_ok=True)
    hashes = {name: frame_hash(out) for name, out in outputs.items()}
    frames = {name: np.stack(out) for name, out in outputs.items()}
    if merge and (GOLDEN / "golden.json").exists():
        recorded = json.loads((GOLDEN / "golden.json").read_text())
        if (recorded["cpu_capability"], recorded["torch"]) != (cpu_capability(), torch.__version__):
            raise SystemExit(f"the records come from {recorded['cpu_capability']} / torch {recorded['torch']}: "
                             "record every preset here instead of a subset")
        kept = recorded["hashes"]
        with np.load(GOLDEN / "frames.npz") as old:
            frames = {name: old[name] for name in kept if name not in outputs and name in old.files} | frames
        hashes = {name: h for name, h in kept.items() if name not in outputs and name in frames} | hashes
    data = {"cpu_capability": cpu_capability(), "torch": torch.__version__, "hashes": hashes}
    (GOLDEN / "golden.json").write_text(json.dumps(data, indent=2) + "\n")
    np.savez_compressed(GOLDEN / "frames.npz", **frames)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("check", "record"))
    parser.add_argument("presets", nargs="*", help="only these presets (default: all)")
    args = parser.parse_args()
    outputs = compute(args.presets or None)
    if args.action == "record":
        record(outputs, merge=bool(args.presets))  # a subset replaces only its own records
        print(f"recorded {len(outputs)} presets in {GOLDEN}")
        return 0
    problems = compare(outputs)
    for line in problems:
        print(line)
    print("golden outputs: " + ("identical" if not problems else f"{len(problems)} differ"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
