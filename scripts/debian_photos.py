"""Photographs from Debian's wallpaper packages, for training the embedded prior.

The packages are fetched with `apt-get download` and unpacked with `dpkg-deb -x`
into a cache folder: nothing is installed and no root is needed. Only the files
in `PHOTOS` are used: curated by hand once (Debian 12 "bookworm", December 2026)
from the packages' wallpapers, keeping photographs and leaving out renders,
gradients, logos, abstract art, motion-blurred shots and other resolutions of
the same picture. Each entry carries its licence as the package's
`usr/share/doc/<package>/copyright` states it (and the upstream one where the
wallpaper folder says otherwise) and its author, for the model card.

    python scripts/debian_photos.py          # fetch into the cache; print the photographs, licences, pixels
    python scripts/debian_photos.py --card   # and write that table into docs/model-card.md
    python scripts/debian_photos.py --pack runs/debian-photos   # downscaled copies: --debian-cache without apt
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

DEFAULT_CACHE = Path.home() / ".cache" / "vidrestore" / "debian"
MARKER = ".extracted-version"


class Photo(NamedTuple):
    path: str  # inside the package's data tree
    licence: str  # as the package's copyright file gives it
    author: str
    note: str = ""


class Package(NamedTuple):
    version: str  # the version curated; another version is used if its files are all there
    photos: tuple[Photo, ...]


MATE = "usr/share/backgrounds/mate/nature/"
LOMIRI = "usr/share/backgrounds/"
PLASMA = "usr/share/wallpapers/"
LXQT = "usr/share/lxqt/wallpapers/"
PLASMA_NOTE = "metadata.json says LGPLv3"
LXQT_NOTE = "wallpapers/License says CC-BY-SA-3.0"

PHOTOS: dict[str, Package] = {
    "mate-backgrounds": Package("1.26.0-1", (
        Photo(MATE + "Aqua.jpg", "GPL-2+", "Charles Barbin"),
        Photo(MATE + "Blinds.jpg", "GPL-2+", "Lennart Poettering, Andrea Cimitan"),
        Photo(MATE + "Dune.jpg", "GPL-2+", "Marco Cogoni, Hylke Bons"),
        Photo(MATE + "FreshFlower.jpg", "GPL-2+", "Jens Ansorg"),
        Photo(MATE + "Garden.jpg", "GPL-2+", "Charles Barbin"),
        Photo(MATE + "GreenMeadow.jpg", "GPL-2+", "Timothy Schellhase, Lapo Calamandrei"),
        Photo(MATE + "LadyBird.jpg", "GPL-2+", "Charles Barbin"),
        Photo(MATE + "RainDrops.jpg", "GPL-2+", "blackcombwhistler07"),
        Photo(MATE + "TwoWings.jpg", "GPL-2+", "Charles Barbin, Hylke Bons"),
        Photo(MATE + "Wood.jpg", "GPL-2+", "Jean-François Fortin Tam"),
        Photo(MATE + "YellowFlower.jpg", "GPL-2+", "Charles Barbin"),
    )),
    "lomiri-wallpapers-16.04": Package("20.04.0-2", (
        Photo(LOMIRI + "Bridge_by_Sander_Klootwijk.jpg", "CC-BY-SA-4.0", "Sander Klootwijk"),
        Photo(LOMIRI + "Dragonfly_by_Bolly.jpg", "CC-BY-SA-4.0", "Bolly"),
        Photo(LOMIRI + "Picture_0B_by_freespace.jpg", "CC-BY-4.0", "Trevor \"Freespace\""),
        Photo(LOMIRI + "Picture_1A_by_freespace.jpg", "CC-BY-4.0", "Trevor \"Freespace\""),
        Photo(LOMIRI + "Wine_by_Jakkub_Mede.jpg", "CC-BY-4.0", "Jakub Mede"),
        Photo(LOMIRI + "aitzgorri_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
        Photo(LOMIRI + "free_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0", "Peter Nerlich"),
        Photo(LOMIRI + "friends_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
        Photo(LOMIRI + "greentock_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0", "Peter Nerlich"),
        Photo(LOMIRI + "life_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
        Photo(LOMIRI + "picosdeeuropa_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
        Photo(LOMIRI + "seeding_by_Clements_Engelhardt.jpg", "CC0-1.0", "Clemens Engelhardt"),
        Photo(LOMIRI + "sunset_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
    )),
    "lomiri-wallpapers-20.04": Package("20.04.0-2", (
        Photo(LOMIRI + "Kleiber_by_Lukas_Baubkus.jpg", "CC-BY-SA-3.0", "Lukas Baubkus"),
    )),
    "plasma-workspace-wallpapers": Package("4:5.27.5-2", (
        Photo(PLASMA + "BytheWater/contents/images/2560x1600.jpg", "GPL-2+", "Maciej Wiklo", PLASMA_NOTE),
        Photo(PLASMA + "ColdRipple/contents/images/2560x1600.jpg", "GPL-2+", "Risto Saukonpää",
              PLASMA_NOTE + "; grayscale"),
        Photo(PLASMA + "ColorfulCups/contents/images/2560x1600.jpg", "GPL-2+", "Dmitri Popov", PLASMA_NOTE),
        Photo(PLASMA + "DarkestHour/contents/images/2560x1600.jpg", "GPL-2+", "Risto Saukonpää", PLASMA_NOTE),
        Photo(PLASMA + "EveningGlow/contents/images/2560x1600.jpg", "GPL-2+", "Ian Hex", PLASMA_NOTE),
        Photo(PLASMA + "FallenLeaf/contents/images/2560x1600.jpg", "GPL-2+", "Martin Klapetek", PLASMA_NOTE),
        Photo(PLASMA + "Grey/contents/images/2560x1600.jpg", "GPL-2+", "Sigi Sagi", PLASMA_NOTE + "; grayscale"),
        Photo(PLASMA + "Kite/contents/images/2560x1600.jpg", "GPL-2+", "Risto Saukonpää", PLASMA_NOTE),
        Photo(PLASMA + "OneStandsOut/contents/images/2560x1600.jpg", "GPL-2+", "Risto Saukonpää", PLASMA_NOTE),
        Photo(PLASMA + "Path/contents/images/2560x1600.jpg", "GPL-2+", "Risto Saukonpää", PLASMA_NOTE),
        Photo(PLASMA + "summer_1am/contents/images/2560x1600.jpg", "GPL-2+", "Risto Saukonpää", PLASMA_NOTE),
    )),
    "lxqt-themes": Package("1.2.0-1", (
        Photo(LXQT + "Butterfly-Kenneth-Wimer.jpg", "LGPL-2.1+", "Kenneth Wimer", LXQT_NOTE),
        Photo(LXQT + "Valendas.png", "LGPL-2.1+", "LXQt Project Team", LXQT_NOTE),
        Photo(LXQT + "after-the-rain.jpg", "LGPL-2.1+", "stefonarch", LXQT_NOTE),
        Photo(LXQT + "appleflower.png", "LGPL-2.1+", "stefonarch", LXQT_NOTE),
        Photo(LXQT + "beam.png", "LGPL-2.1+", "stefonarch", LXQT_NOTE),
        Photo(LXQT + "butterfly.png", "LGPL-2.1+", "stefonarch", LXQT_NOTE),
        Photo(LXQT + "cloud.png", "LGPL-2.1+", "LXQt Project Team", LXQT_NOTE),
        Photo(LXQT + "drop.png", "LGPL-2.1+", "stefonarch", LXQT_NOTE),
        Photo(LXQT + "flowers.png", "LGPL-2.1+", "stefonarch", LXQT_NOTE),
        Photo(LXQT + "fog.jpg", "LGPL-2.1+", "stefonarch", LXQT_NOTE),
        Photo(LXQT + "this-is-not-windows.jpg", "LGPL-2.1+", "stefonarch", LXQT_NOTE),
    )),
}


class DebianPhotosError(RuntimeError):
    """Fetching failed; the message is one line, fit for stderr."""


def photo_name(package: str, photo: Photo) -> str:
    """The name a photograph goes by in training.json and the model card: its file name, or for
    KDE's `<Name>/contents/images/<W>x<H>.jpg` layout the wallpaper's folder name."""
    parts = Path(photo.path).parts
    name = parts[parts.index("contents") - 1] if "contents" in parts else parts[-1]
    return f"debian:{package}/{name}"


def _run(args: list[str], cwd: Path) -> str:
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:  # e.g. the tool vanished between which() and run()
        raise DebianPhotosError(f"{args[0]} could not run: {exc}") from exc
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        raise DebianPhotosError(f"`{' '.join(args)}` failed: {lines[-1] if lines else f'exit {done.returncode}'}")
    return done.stdout


def _missing(root: Path, entry: Package) -> list[str]:
    return [p.path for p in entry.photos if not (root / p.path).is_file()]


def fetch(cache: Path = DEFAULT_CACHE, packages: dict[str, Package] | None = None) -> dict[str, Path]:
    """Download and unpack each package into `cache/<package>/` once; return package -> unpacked root.

    A package already unpacked with all its kept files is not fetched again (no network
    needed). Raises DebianPhotosError when apt-get or dpkg-deb is missing, a download
    fails, or a kept file is not in the package.
    """
    packages = PHOTOS if packages is None else packages
    cache = cache.resolve()  # the tools run inside cache/debs
    roots: dict[str, Path] = {}
    for package, entry in packages.items():
        root = cache / package
        if (root / MARKER).is_file() and not _missing(root, entry):
            roots[package] = root
            continue
        for tool in ("apt-get", "dpkg-deb"):
            if shutil.which(tool) is None:
                raise DebianPhotosError(f"{tool} not found: the Debian photographs need apt "
                                        "(Debian or Ubuntu); train without them with --no-debian-photos")
        debs = cache / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        for old in debs.glob(f"{package}_*.deb"):
            old.unlink()
        _run(["apt-get", "download", package], cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if len(found) != 1:
            raise DebianPhotosError(f"apt-get download {package} left {len(found)} .deb files in {debs}")
        version = _run(["dpkg-deb", "--field", str(found[0]), "Version"], cwd=debs).strip()
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(found[0]), str(root)], cwd=debs)
        missing = _missing(root, entry)
        if missing:
            raise DebianPhotosError(f"{package} {version} lacks {len(missing)} curated file(s), e.g. {missing[0]} "
                                    f"(curated from {entry.version})")
        (root / MARKER).write_text(version + "\n")
        roots[package] = root
    return roots


def installed_versions(roots: dict[str, Path]) -> dict[str, str]:
    return {package: (root / MARKER).read_text().strip() for package, root in roots.items()}


def downscaled(w: int, h: int, max_side: int) -> tuple[int, int]:
    """(width, height) with the longer side at most `max_side`, aspect kept."""
    scale = min(1.0, max_side / max(h, w))
    return round(w * scale), round(h * scale)


def load_photo(path: Path, max_side: int) -> np.ndarray:
    """float32 RGB in [0, 1], area-downscaled so the longer side is at most `max_side`
    (wallpapers are 2–20 MP; downscaling also averages away JPEG blocks and sensor noise)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grayscale -> 3 channels, alpha dropped (all opaque)
    if image is None:
        raise DebianPhotosError(f"cannot decode {path}")
    h, w = image.shape[:2]
    if max(h, w) > max_side:
        image = cv2.resize(image, downscaled(w, h, max_side), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)


def training_photos(cache: Path = DEFAULT_CACHE, max_side: int = 1024) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All curated photographs by name, and the package versions they came from."""
    roots = fetch(cache)
    images = {photo_name(package, photo): load_photo(roots[package] / photo.path, max_side)
              for package, entry in PHOTOS.items() for photo in entry.photos}
    return images, installed_versions(roots)


def card_table(roots: dict[str, Path], max_side: int) -> tuple[str, str]:
    """The model card's table of photographs (Markdown) and a line on their count and pixels."""
    from vidrestore.report import markdown_table

    versions = installed_versions(roots)
    rows, native, used = [], 0, 0
    for package, entry in PHOTOS.items():
        for photo in entry.photos:
            h, w = cv2.imread(str(roots[package] / photo.path), cv2.IMREAD_UNCHANGED).shape[:2]
            native += h * w
            used += np.prod(downscaled(w, h, max_side))
            rows.append([f"`{photo_name(package, photo)}`", f"{package} {versions[package]}", f"`{photo.path}`",
                         photo.licence, photo.author, f"{w}×{h}", photo.note])
    header = ["name", "package", "file", "licence (copyright file)", "author", "pixels", "note"]
    summary = (f"{len(rows)} photographs from {len(PHOTOS)} packages: {native / 1e6:.1f} MP as packaged, "
               f"{used / 1e6:.1f} MP after area-downscaling to a longer side of {max_side} px (`--photo-max-side`).")
    return markdown_table(header, rows), summary


def pack(roots: dict[str, Path], out: Path, max_side: int) -> None:
    """Write the kept photographs, already downscaled, into `out` in the cache's layout, so that
    `--debian-cache out` trains without apt or network (e.g. on a machine with no network: a few
    tens of MB travel instead of the packages' hundreds). JPEGs are re-encoded at quality 95, PNGs losslessly."""
    versions = installed_versions(roots)
    for package, entry in PHOTOS.items():
        for photo in entry.photos:
            image = load_photo(roots[package] / photo.path, max_side)
            bgr = cv2.cvtColor(np.round(image * 255.0).astype(np.uint8), cv2.COLOR_RGB2BGR)
            target = out / package / photo.path
            target.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(target), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95] if target.suffix == ".jpg" else [])
        (out / package / MARKER).write_text(versions[package] + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--max-side", type=int, default=1024, help="as train_prior.py's --photo-max-side")
    p.add_argument("--card", action="store_true", help="write the table into docs/model-card.md")
    p.add_argument("--pack", type=Path, default=None,
                   help="also write the kept photographs, downscaled to --max-side, into this folder "
                        "(a cache for train_prior.py --debian-cache that needs no apt)")
    args = p.parse_args()
    try:
        roots = fetch(args.cache)
    except DebianPhotosError as exc:
        raise SystemExit(f"error: {exc}") from None
    table, summary = card_table(roots, args.max_side)
    print(f"{table}\n\n{summary}")
    if args.pack is not None:
        pack(roots, args.pack, args.max_side)
        size = sum(f.stat().st_size for f in args.pack.rglob("*") if f.is_file())
        print(f"packed into {args.pack}: {size / 1e6:.1f} MB")
    if args.card:
        from benchlib import ROOT, write_section  # imported here: benchlib pulls in torch

        write_section("training-images-debian", f"{table}\n\n{summary} Written by "
                      "`python scripts/debian_photos.py --card`.", ROOT / "docs" / "model-card.md")


if __name__ == "__main__":
    main()
