"""Image files as RGB pixels, whatever their bit depth."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from multissd.errors import InputError

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")


def rgb_pixels(image: Image.Image) -> np.ndarray:
    """uint8 ``(H, W, 3)`` of an opened PIL image. 16-bit (and 32-bit integer) grey images are scaled
    to 0..255: PIL's own ``convert("RGB")`` clips their values at 255, which turns a 16-bit photo
    white. 16-bit colour PNGs arrive from PIL as 8-bit RGB already."""
    if image.mode in _SIXTEEN_BIT or image.mode == "I":
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode in _SIXTEEN_BIT or values.max(initial=0) <= 65535 else values.max()
        grey = np.clip(np.round(values / top * 255), 0, 255).astype(np.uint8)   # (H, W)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def rgb_image(image: Image.Image) -> Image.Image:
    """The PIL image as 8-bit RGB (see :func:`rgb_pixels`)."""
    return image.convert("RGB") if image.mode not in _SIXTEEN_BIT + ("I",) else Image.fromarray(rgb_pixels(image))


def read_image(path: Path) -> Image.Image:
    """The image file at ``path`` in 8-bit RGB; ``ValueError`` naming the path if it is missing or
    unreadable."""
    try:
        with Image.open(path) as image:
            return rgb_image(image)
    except FileNotFoundError:
        raise InputError(f"Image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise InputError(f"Cannot read image {path}: {error}") from None
