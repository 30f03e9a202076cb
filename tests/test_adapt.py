"""--adapt: low-rank fine-tuning of the pixel prior on the input's own frames, cached; through the CLI."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from vidrestore import adapt as adapt_module
from vidrestore.adapt import folder_digest
from vidrestore.cli import app
from vidrestore.priors.loading import WEIGHTS_DIR
from vidrestore.priors.lora import add_low_rank, merge_low_rank

from helpers import read_clip, save_tiny_model, smooth_clip, write_clip

runner = CliRunner()
UNET = "unet/diffusion_pytorch_model.safetensors"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("adapt")
    write_clip(d / "in.mkv", smooth_clip(6, 16, 16))
    save_tiny_model(d / "tiny")
    stills = d / "stills"
    stills.mkdir()
    import cv2
    rng = np.random.default_rng(0)
    cv2.imwrite(str(stills / "a.png"), (rng.random((40, 48, 3)) * 255).astype(np.uint8))
    return d


def superres(data: Path, out: Path, *extra, model=None):
    args = ["superres", data / "in.mkv", "-x", 2, "-o", out, "--model", model or data / "tiny", "--steps", 2,
            "--device", "cpu", "--set", "runtime.threads=1", "--overwrite", *extra]
    return runner.invoke(app, [str(a) for a in args])


def metrics(out: Path) -> dict:
    return json.loads(out.with_name(out.name + ".metrics.json").read_text())


def test_adapt_trains_once_then_the_cache_answers(data, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = superres(data, tmp_path / "a.mkv", "--adapt", 3, "--adapt-cache", cache)
    assert first.exit_code == 0, first.output
    info = metrics(tmp_path / "a.mkv")["adapt"]
    assert info["steps"] == 3 and not info["cached"] and info["train_seconds"] > 0
    assert "adapt" in first.stdout and "3 steps in" in first.stdout  # the summary says how long it took
    entries = list(cache.iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("tiny+adapt-")
    assert metrics(tmp_path / "a.mkv")["model"] == entries[0].name
    meta = json.loads((entries[0] / "adapt.json").read_text())
    assert meta["frames"] == 6 and meta["stills"] == 0 and len(meta["losses"]) == 2
    adapted, base = load_file(entries[0] / UNET), load_file(data / "tiny" / UNET)
    assert adapted.keys() == base.keys() and any(not torch.equal(adapted[k], base[k].float()) for k in base)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(adapt_module, "_train", no_training)
    second = superres(data, tmp_path / "b.mkv", "--adapt", 3, "--adapt-cache", cache)
    assert second.exit_code == 0, second.output
    assert metrics(tmp_path / "b.mkv")["adapt"]["cached"] and "cached" in second.stdout
    assert torch.equal(read_clip(tmp_path / "a.mkv"), read_clip(tmp_path / "b.mkv"))
    assert list(cache.iterdir()) == entries


def test_adapt_images_change_the_adapted_model(data, tmp_path):
    cache = tmp_path / "cache"
    for name, extra in (("plain", []), ("stills", ["--adapt-images", data / "stills"])):
        result = superres(data, tmp_path / f"{name}.mkv", "--adapt", 2, "--adapt-cache", cache, "-q", *extra)
        assert result.exit_code == 0, result.output
    plain, stills = (Path(metrics(tmp_path / f"{n}.mkv")["adapt"]["model"]) for n in ("plain", "stills"))
    assert plain != stills  # the stills are part of the cache key
    assert json.loads((stills / "adapt.json").read_text())["stills"] == 1
    a, b = load_file(plain / UNET), load_file(stills / UNET)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # and of what was learned (same seed otherwise)


def test_adapt_never_changes_the_shipped_weights_and_caches_under_xdg(data, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    before = folder_digest(WEIGHTS_DIR)
    result = superres(data, tmp_path / "out.mkv", "--adapt", 1, "-q", "--set", "adapt.batch=1", model="default")
    assert result.exit_code == 0, result.output
    assert folder_digest(WEIGHTS_DIR) == before
    entry = Path(metrics(tmp_path / "out.mkv")["adapt"]["model"])
    assert entry.parent == tmp_path / "xdg" / "vidrestore" / "adapt" and entry.name.startswith("vr-pixel-small+adapt-")


def test_adapt_zero_is_the_run_without_it(data, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    plain = superres(data, tmp_path / "plain.mkv", "-q")
    zero = superres(data, tmp_path / "zero.mkv", "-q", "--adapt", 0)
    assert plain.exit_code == zero.exit_code == 0, plain.output + zero.output
    assert torch.equal(read_clip(tmp_path / "plain.mkv"), read_clip(tmp_path / "zero.mkv"))
    assert "adapt" not in metrics(tmp_path / "zero.mkv") and not (tmp_path / "xdg").exists()


@pytest.mark.parametrize("extra, code, text", [
    (["--adapt", 2, "--model", "none"], 2, "--adapt fine-tunes a pixel-space diffusion prior"),
    (["--adapt-images", "stills"], 2, "needs adapt.steps"),
    (["--adapt", -1], 2, "adapt.steps must be"),
    (["--adapt", 2, "--adapt-images", "missing"], 3, "--adapt-images needs a folder"),
])
def test_adapt_bad_input(data, tmp_path, extra, code, text):
    extra = [data / e if e in ("stills", "missing") else e for e in extra]
    args = ["superres", data / "in.mkv", "-x", 2, "-o", tmp_path / "o.mkv", *extra]
    if "--model" not in extra:
        args += ["--model", data / "tiny"]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], result.stderr
    assert not (tmp_path / "o.mkv").exists()


def test_merged_adapters_compute_what_the_adapters_computed():
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3, padding=1, stride=2), torch.nn.SiLU(),
                                torch.nn.Conv2d(5, 4, 1), torch.nn.Flatten(), torch.nn.Linear(64, 7))
    params = add_low_rank(model, 2, generator=gen)
    assert len(params) == 6 and all(p.requires_grad for p in params)
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".base." in n)
    x = torch.randn(2, 3, 8, 8, generator=gen)
    untouched = model(x)
    with torch.no_grad():
        for p in params:
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    adapted = model(x)
    assert not torch.allclose(adapted, untouched)
    merge_low_rank(model)
    assert all(type(m) in (torch.nn.Conv2d, torch.nn.Linear, torch.nn.SiLU, torch.nn.Flatten) for m in model)
    assert torch.allclose(model(x), adapted, atol=1e-5)
