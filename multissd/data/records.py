"""What the dataset readers share: one image's record, reporting bad annotations, building a split.

Readers of other layouts (:mod:`multissd.data.voc`, :mod:`multissd.data.coco`) produce
:class:`Record` s with class *names*; :func:`build_split` numbers the classes, resizes the images to
the training size and pads the labels into a :class:`~multissd.data.folder.DetectionSplit`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from multissd.data.folder import PADDING, DetectionSplit
from multissd.data.images import open_rgb
from multissd.errors import InputError


@dataclass
class Record:
    """One image: uint8 ``pixels`` ``(H, W, 3)``; ``boxes`` float64 ``(n, 4)`` corner pixels;
    ``classes`` the ``n`` class names (or ids); ``ignore`` bool ``(n,)`` (crowd / difficult)."""

    name: str
    pixels: np.ndarray
    boxes: np.ndarray
    classes: list
    ignore: np.ndarray


class Problems:
    """Malformed annotations: an error naming the file and object, or with ``skip_bad`` a warning
    (the object or image is skipped) -- never silently. ``count`` says how many were skipped."""

    def __init__(self, skip_bad: bool):
        self.skip_bad, self.count = skip_bad, 0

    def report(self, message: str) -> None:
        if not self.skip_bad:
            raise InputError(f"{message} (--skip-bad skips such annotations with a warning)")
        self.count += 1
        warnings.warn(f"skipped: {message}", stacklevel=2)


def read_pixels(path: Path, problems: Problems, listed_in=None) -> np.ndarray | None:
    """uint8 ``(H, W, 3)`` of an image file, or ``None`` (reported) when it is missing, unreadable
    or too large (:func:`multissd.data.images.open_rgb`)."""
    try:
        return np.asarray(open_rgb(path))
    except FileNotFoundError:
        problems.report(f"image {path} does not exist" + (f" (listed in {listed_in})" if listed_in else ""))
    except InputError as error:
        problems.report(str(error))
    return None


def build_split(records: list[Record], class_names: list[str], image_size: tuple[int, int]) -> DetectionSplit:
    """Images resized to ``image_size`` ``(H, W)``; labels ``(N, G, 5)`` normalised, padded with -1 rows."""
    index = {name: i for i, name in enumerate(class_names)}
    height, width = image_size
    max_objects = max([len(r.boxes) for r in records] + [1])
    images = np.zeros((len(records), 3, height, width), np.uint8)
    labels = np.full((len(records), max_objects, 5), PADDING, np.float32)
    ignore = np.zeros((len(records), max_objects), bool)
    for i, record in enumerate(records):
        h, w = record.pixels.shape[:2]
        pixels = record.pixels
        if (h, w) != (height, width):
            pixels = np.asarray(Image.fromarray(pixels).resize((width, height), Image.BILINEAR))
        images[i] = pixels.transpose(2, 0, 1)
        n = len(record.boxes)
        labels[i, :n, 0] = [index[c] for c in record.classes]
        labels[i, :n, 1:] = record.boxes / np.array([w, h, w, h], np.float64)
        ignore[i, :n] = record.ignore
    return DetectionSplit(images, labels, [r.name for r in records], list(class_names),
                          ignore if ignore.any() else None)
