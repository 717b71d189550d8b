"""Image files as RGB pixels, whatever their bit depth -- and never more pixels than a photo has.

Every image multissd reads (training data of any layout, ``predict``'s inputs) is opened by
:func:`open_rgb`: its size is checked against :data:`MAX_IMAGE_PIXELS` from the file's header,
before a pixel is decoded (a 48 KB PNG can claim 20000 x 20000 pixels, 1.2 GB decoded), and it is
converted to 8-bit RGB with its values scaled where Pillow's own conversion would clip them.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from multissd.errors import InputError

__all__ = ["MAX_IMAGE_PIXELS", "open_rgb", "read_image", "rgb_image", "rgb_pixels"]

MAX_IMAGE_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
"""The most pixels an image file may have: 178,956,970 (Pillow's decompression-bomb limit; a
13000 x 13000 photo). Larger files are refused before they are decoded."""

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
_WIDE = _SIXTEEN_BIT + ("I", "F")  # modes whose values PIL's convert("RGB") clips at 255


def _grey_to_uint8(image: Image.Image) -> np.ndarray:
    """uint8 ``(H, W)`` of a grey image of 16 or 32 bits, or of floats: 16-bit values scaled from
    0..65535; 32-bit integers from 0..65535 (or their maximum when larger); floats from 0..1 when
    none exceeds 1 (a float TIFF of intensities), else from 0..255 (or their maximum when larger).
    NaN is black."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    largest = values.max(initial=0)
    if image.mode == "F":
        top = 1.0 if largest <= 1 else max(255.0, largest)
    else:
        top = 65535.0 if image.mode in _SIXTEEN_BIT or largest <= 65535 else largest
    return np.clip(np.round(values / top * 255), 0, 255).astype(np.uint8)


def rgb_pixels(image: Image.Image) -> np.ndarray:
    """uint8 ``(H, W, 3)`` of an opened PIL image. 16-bit, 32-bit and float grey images are scaled to
    0..255 (:func:`_grey_to_uint8`): PIL's own ``convert("RGB")`` clips their values at 255, which
    turns a 16-bit photo white and a float one in 0..1 black. 16-bit colour PNGs arrive from PIL as
    8-bit RGB already."""
    if image.mode in _WIDE:
        return np.repeat(_grey_to_uint8(image)[:, :, None], 3, axis=2)
    return np.asarray(image.convert("RGB"))


def rgb_image(image: Image.Image) -> Image.Image:
    """The PIL image as 8-bit RGB (see :func:`rgb_pixels`)."""
    return image.convert("RGB") if image.mode not in _WIDE else Image.fromarray(rgb_pixels(image))


def open_rgb(path: Path) -> Image.Image:
    """The image file ``path`` as an 8-bit RGB PIL image. ``FileNotFoundError`` when it is missing
    (callers say where it was listed); ``InputError`` naming the path when it cannot be decoded or has
    more than :data:`MAX_IMAGE_PIXELS` pixels (checked from its header, before decoding). A file cut
    short at its end (a JPEG missing its last bytes, common in photo collections) is read as far as it
    goes, with a warning that names it."""
    try:
        return _open_rgb(path)
    except InputError as error:
        if "truncated" not in str(error):
            raise
    warnings.warn(f"image {path} is truncated: read as far as it goes", stacklevel=2)
    ImageFile.LOAD_TRUNCATED_IMAGES, previous = True, ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        return _open_rgb(path)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InputError(f"image {path} is {width}x{height}: {width * height:,} pixels, more than the "
                                 f"{MAX_IMAGE_PIXELS:,} pixels multissd opens (Pillow's decompression-bomb limit); "
                                 f"resize it first")
            return rgb_image(image)
    except FileNotFoundError:
        raise
    except Image.DecompressionBombError as error:
        raise InputError(f"image {path} has more than the {MAX_IMAGE_PIXELS:,} pixels multissd opens (Pillow's "
                         f"decompression-bomb limit: {error})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"Cannot read image {path}: cannot be decoded as an image ({error})") from None


def read_image(path: Path) -> Image.Image:
    """The image file at ``path`` in 8-bit RGB (:func:`open_rgb`); ``ValueError`` naming the path if it
    is missing, unreadable or too large."""
    try:
        return open_rgb(path)
    except FileNotFoundError:
        raise InputError(f"Image not found: {path}") from None
