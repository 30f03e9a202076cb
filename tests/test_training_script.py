"""scripts/train_prior.py: a tiny run exports diffusers weights that vidrestore loads, and a later run continues them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidrestore.priors import load_prior

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
TINY = ["--channels", "16,32", "--batch", "2", "--crop", "16", "--warmup", "1", "--threads", "1",
        "--no-debian-photos"]  # the Debian photographs are tested with a fake apt-get in test_debian_photos.py


def train(*args: str) -> None:
    subprocess.run([sys.executable, "train_prior.py", *TINY, *args], cwd=SCRIPTS, check=True,
                   capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def first_export(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    train("--work", str(root / "work"), "--steps", "2", "--export", str(root / "first"))
    return root / "first"


def test_export_is_a_loadable_fp32_diffusers_folder(first_export):
    meta = json.loads((first_export / "training.json").read_text())
    assert meta["steps"] == 2 and meta["held_out"] and not set(meta["held_out"]) & set(meta["training_images"])
    prior = load_prior(str(first_export), torch.device("cpu"))
    x = torch.zeros(1, 3, 16, 16)
    eps, x0 = prior.tweedie(x, 10)
    assert eps.shape == x0.shape == x.shape and eps.dtype == torch.float32


def test_init_from_continues_step_count_and_phases(first_export, tmp_path):
    train("--work", str(tmp_path / "work"), "--init-from", str(first_export), "--steps", "3", "--lr", "1e-4",
          "--bf16", "--export", str(tmp_path / "second"))
    meta = json.loads((tmp_path / "second" / "training.json").read_text())
    assert meta["steps"] == 3  # 2 carried over + 1 new step
    assert [p["from_step"] for p in meta["phases"]] == [0, 2]
    assert meta["phases"][1]["lr"] == 1e-4 and meta["phases"][1]["bf16"] is True
    assert (meta["phases"][1]["batch"], meta["phases"][1]["crop"]) == (2, 16)  # a phase may change them


@pytest.mark.parametrize("old_layers, new_layers, channels", [(1, 2, (16, 32)), (1, 3, (16, 32, 48)), (2, 3, (16, 32))])
def test_grow_depth_computes_the_same_function(old_layers, new_layers, channels):
    sys.path.insert(0, str(SCRIPTS))
    try:
        from train_prior import build_unet, grow_depth
    finally:
        sys.path.remove(str(SCRIPTS))
    gen = torch.Generator().manual_seed(0)
    shallow, deep = build_unet(channels, old_layers), build_unet(channels, new_layers)
    with torch.no_grad():
        for p in shallow.parameters():  # diffusers' default init leaves some layers zero: randomise all
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    deep.load_state_dict(grow_depth(shallow.state_dict(), old_layers, deep))
    assert sum(p.numel() for p in deep.parameters()) > sum(p.numel() for p in shallow.parameters())
    x, t = torch.randn(2, 3, 32, 32, generator=gen), torch.tensor([5, 700])
    with torch.no_grad():
        torch.testing.assert_close(deep(x, t).sample, shallow(x, t).sample, rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def deep_export(first_export, tmp_path_factory) -> Path:
    """The 1-layer first export grown to 2 layers per block, exported in fp16."""
    root = tmp_path_factory.mktemp("deep")
    train("--work", str(root / "work"), "--init-from", str(first_export), "--layers-per-block", "2",
          "--steps", "3", "--export", str(root / "deep"), "--export-dtype", "fp16")
    return root / "deep"


def test_init_from_grows_depth_and_exports_fp16(deep_export):
    config = json.loads((deep_export / "unet" / "config.json").read_text())
    meta = json.loads((deep_export / "training.json").read_text())
    assert config["layers_per_block"] == 2 and meta["dtype"] == "fp16" and meta["steps"] == 3
    from safetensors.torch import load_file
    stored = load_file(deep_export / "unet" / "diffusion_pytorch_model.safetensors")
    assert {v.dtype for v in stored.values()} == {torch.float16}
    prior = load_prior(str(deep_export), torch.device("cpu"))  # fp16 on disk, fp32 on CPU
    eps, _ = prior.tweedie(torch.zeros(1, 3, 16, 16), 10)
    assert eps.dtype == torch.float32 and torch.isfinite(eps).all()


def test_init_from_refuses_to_shrink(deep_export, tmp_path):
    result = subprocess.run([sys.executable, "train_prior.py", *TINY, "--work", str(tmp_path / "work"),
                             "--init-from", str(deep_export), "--steps", "4"], cwd=SCRIPTS, capture_output=True,
                            text=True, check=False)
    assert result.returncode != 0 and "cannot shrink" in result.stderr
