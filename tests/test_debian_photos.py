"""scripts/debian_photos.py: the curated list, and fetching it with stand-ins for apt-get and dpkg-deb (no network)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers import load_script

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
FREE = {"GPL-2+", "LGPL-2.1+", "CC0-1.0", "CC-BY-4.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0"}

# `apt-get download PKG` writes PKG_<version>_all.deb: here a text file listing the paths the package holds
FAKE_APT = """#!/bin/sh
echo "$@" >> "$FAKE_LOG"
[ "$1" = download ] || exit 2
if [ ! -f "$FAKE_DEBS/$2.list" ]; then echo "E: Unable to locate package $2" >&2; exit 100; fi
cp "$FAKE_DEBS/$2.list" "./$2_1.0-1_all.deb"
"""
# `dpkg-deb --field DEB Version` and `dpkg-deb -x DEB DIR` (every listed path becomes a copy of one small image)
FAKE_DPKG_DEB = """#!/bin/sh
case "$1" in
  --field) basename "$2" | cut -d_ -f2 ;;
  -x) while read -r f; do mkdir -p "$3/$(dirname "$f")"; cp "$FAKE_IMAGE" "$3/$f"; done < "$2" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture(scope="module")
def dp():
    return load_script("debian_photos")


@pytest.fixture
def fake_apt(dp, tmp_path, monkeypatch) -> Path:
    """apt-get and dpkg-deb stand-ins first on PATH; every curated package exists and holds its curated files."""
    bin_dir, debs = tmp_path / "bin", tmp_path / "fake-debs"
    bin_dir.mkdir()
    debs.mkdir()
    for name, text in (("apt-get", FAKE_APT), ("dpkg-deb", FAKE_DPKG_DEB)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    for package, entry in dp.PHOTOS.items():
        (debs / f"{package}.list").write_text("".join(p.path + "\n" for p in entry.photos))
    gray = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))  # 64 wide, 48 high, one channel
    cv2.imwrite(str(tmp_path / "photo.png"), gray)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DEBS", str(debs))
    monkeypatch.setenv("FAKE_IMAGE", str(tmp_path / "photo.png"))
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "apt.log"))
    return tmp_path


def test_curated_list_is_well_formed(dp):
    names = [dp.photo_name(package, p) for package, entry in dp.PHOTOS.items() for p in entry.photos]
    assert len(names) == len(set(names)) == 47
    for package, entry in dp.PHOTOS.items():
        paths = [p.path for p in entry.photos]
        assert entry.version and len(paths) == len(set(paths))
        for photo in entry.photos:
            assert photo.licence in FREE and photo.author.strip(), photo
            assert not photo.path.startswith("/") and photo.path.endswith((".jpg", ".png")), photo


def test_model_card_lists_every_training_image_with_its_licence(dp):
    stills = load_script("stills")
    card = (Path(__file__).resolve().parents[1] / "docs" / "model-card.md").read_text()
    section = card[card.index("## Training images"):card.index("## Architecture and training")]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    for name in stills.SKIMAGE_TRAIN + stills.SKLEARN_TRAIN:
        row = next(r for r in rows if f"`{name}`" in r)
        assert all(cell.strip() for cell in row.strip("|").split("|")), row  # source, licence and kind given
    for package, entry in dp.PHOTOS.items():
        for photo in entry.photos:
            row = next(r for r in rows if f"`{dp.photo_name(package, photo)}`" in r)
            assert f"| {package} " in row and f"| {photo.licence} |" in row and f"`{photo.path}`" in row


def test_fetch_unpacks_once_and_then_needs_no_apt(dp, fake_apt, monkeypatch):
    monkeypatch.chdir(fake_apt)
    cache = Path("cache")  # relative: the tools run in another folder
    roots = dp.fetch(cache)
    assert set(roots) == set(dp.PHOTOS)
    assert all((roots[pkg] / p.path).is_file() for pkg, entry in dp.PHOTOS.items() for p in entry.photos)
    assert dp.installed_versions(roots) == {pkg: "1.0-1" for pkg in dp.PHOTOS}
    log = (fake_apt / "apt.log").read_text().splitlines()
    assert sorted(log) == sorted(f"download {pkg}" for pkg in dp.PHOTOS)

    monkeypatch.setenv("PATH", str(fake_apt / "empty"))  # no apt-get, no dpkg-deb: the cache must do
    images, versions = dp.training_photos(cache, max_side=32)
    assert (fake_apt / "apt.log").read_text().splitlines() == log
    assert len(images) == 47 and versions == {pkg: "1.0-1" for pkg in dp.PHOTOS}
    first = next(iter(images.values()))
    assert first.shape == (24, 32, 3) and first.dtype == np.float32  # gray to RGB, longer side 64 -> 32
    assert 0.0 <= first.min() and first.max() <= 1.0 and np.array_equal(first[..., 0], first[..., 2])


def test_a_pack_trains_without_apt(dp, fake_apt, monkeypatch):
    dp.pack(dp.fetch(fake_apt / "cache"), fake_apt / "pack", max_side=32)
    monkeypatch.setenv("PATH", str(fake_apt / "empty"))
    images, versions = dp.training_photos(fake_apt / "pack", max_side=1024)
    assert len(images) == 47 and versions == {pkg: "1.0-1" for pkg in dp.PHOTOS}
    assert {im.shape for im in images.values()} == {(24, 32, 3)}


def test_fetch_errors_are_one_line(dp, fake_apt, monkeypatch):
    path = os.environ["PATH"]
    monkeypatch.setenv("PATH", str(fake_apt / "empty"))
    with pytest.raises(dp.DebianPhotosError, match="apt-get not found.*--no-debian-photos"):
        dp.fetch(fake_apt / "cache")
    monkeypatch.setenv("PATH", path)

    missing = {"no-such-wallpapers": dp.Package("1", (dp.Photo("a.jpg", "CC0-1.0", "x"),))}
    with pytest.raises(dp.DebianPhotosError, match="Unable to locate package no-such-wallpapers") as err:
        dp.fetch(fake_apt / "cache", missing)
    assert "\n" not in str(err.value)

    lacking = dp.Package("1.2.0-1", (*dp.PHOTOS["lxqt-themes"].photos, dp.Photo("usr/share/gone.jpg", "CC0-1.0", "x")))
    with pytest.raises(dp.DebianPhotosError, match="lxqt-themes 1.0-1 lacks 1 curated file.*usr/share/gone.jpg"):
        dp.fetch(fake_apt / "cache", {"lxqt-themes": lacking})


TINY = ["--channels", "16,32", "--batch", "2", "--crop", "16", "--warmup", "1", "--steps", "1"]


@pytest.fixture
def train(monkeypatch):
    """scripts/train_prior.py's main() in this process with the given options (spares a second torch import)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import train_prior

    def run(*args: str) -> None:
        threads = str(torch.get_num_threads())  # main() sets the thread count: keep this process's
        monkeypatch.setattr(sys, "argv", ["train_prior.py", *TINY, "--threads", threads, *args])
        train_prior.main()
    return run


def test_train_prior_trains_on_the_photos(dp, fake_apt, train):
    out = fake_apt / "export"
    train("--work", str(fake_apt / "work"), "--export", str(out), "--debian-cache", str(fake_apt / "cache"),
          "--photo-max-side", "32")
    meta = json.loads((out / "training.json").read_text())
    debian = [n for n in meta["training_images"] if n.startswith("debian:")]
    assert len(debian) == 47 and "astronaut" in meta["training_images"]
    assert "debian:plasma-workspace-wallpapers/Kite" in debian
    assert meta["debian_packages"] == {pkg: "1.0-1" for pkg in dp.PHOTOS}
    assert meta["phases"][-1]["debian_photos"] is True


def test_train_prior_without_apt_says_so_in_one_line(fake_apt, train, monkeypatch):
    monkeypatch.setenv("PATH", str(fake_apt / "empty"))
    with pytest.raises(SystemExit) as exit_:
        train("--work", str(fake_apt / "work"), "--debian-cache", str(fake_apt / "cache"))
    message = str(exit_.value.code)
    assert message.startswith("error: apt-get not found") and "\n" not in message
    assert not (fake_apt / "work").exists()  # failed before anything was written
    with pytest.raises(SystemExit) as exit_:
        train("--work", str(fake_apt / "work"), "--photo-max-side", "0")
    assert exit_.value.code == 2  # argparse: "argument --photo-max-side: must be at least 1, not 0"
