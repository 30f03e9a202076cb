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
TINY = ["--channels", "16,32", "--batch", "2", "--crop", "16", "--warmup", "1", "--threads", "1"]


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
