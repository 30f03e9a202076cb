"""The still images vidrestore may learn from and benchmark on.

Only images that ship inside PyPI packages are used: scikit-image's bundled
data images and scikit-learn's sample images. Three colour photographs are
held out: the prior never trains on them, and every evaluation and benchmark
clip is made from them.
"""
from __future__ import annotations

import numpy as np

HELD_OUT = ("chelsea", "coffee", "rocket")

# scikit-image loaders by name; grayscale textures are replicated to RGB.
SKIMAGE_TRAIN = (
    "astronaut", "immunohistochemistry", "hubble_deep_field", "retina", "colorwheel",
    "logo", "motorcycle_left", "motorcycle_right", "brick", "camera", "cell", "clock",
    "coins", "grass", "gravel", "moon", "page", "text", "microaneurysms", "checkerboard",
    "shepp_logan_phantom",
)
SKLEARN_TRAIN = ("china.jpg", "flower.jpg")


def _to_rgb_float(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    else:
        image = image.astype(np.float32)
        image = (image - image.min()) / max(float(image.max() - image.min()), 1e-8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:  # composite transparent pixels on white
        alpha = image[..., 3:4]
        image = image[..., :3] * alpha + (1.0 - alpha)
    return np.ascontiguousarray(image[..., :3])


def _skimage(name: str) -> np.ndarray:
    import skimage.data

    if name == "motorcycle_left":
        return skimage.data.stereo_motorcycle()[0]
    if name == "motorcycle_right":
        return skimage.data.stereo_motorcycle()[1]
    return getattr(skimage.data, name)()


def load_still(name: str) -> np.ndarray:
    """One still as float32 RGB in [0, 1], shape (H, W, 3)."""
    if name.endswith(".jpg"):
        from sklearn.datasets import load_sample_image

        return _to_rgb_float(load_sample_image(name))
    return _to_rgb_float(_skimage(name))


def training_stills() -> dict[str, np.ndarray]:
    names = [n for n in SKIMAGE_TRAIN + SKLEARN_TRAIN if n not in HELD_OUT]
    return {name: load_still(name) for name in names}


def held_out_stills() -> dict[str, np.ndarray]:
    return {name: load_still(name) for name in HELD_OUT}
