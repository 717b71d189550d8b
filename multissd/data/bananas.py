"""The synthetic datasets (bananas, small bananas, fruit): generated once into a cache folder, or the book's folder.

``bananas(data=None)`` returns the train and validation splits in memory. With ``data`` a path,
that folder (the book's ``banana-detection`` layout) is read; without, the synthetic dataset is
generated into ``$MULTISSD_DATA`` or ``~/.cache/multissd`` (or ``data_dir``) the first time, in
parallel, and read from there afterwards. ``kind="fruit"`` does the same for the three-class fruit
dataset (:mod:`multissd.data.fruit`), written in the same layout with its ``classes.txt``, and
``kind="small-bananas"`` for bananas 0.04-0.10 of the image side (the book's exercise on objects
much smaller than the image).
"""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from multissd.data import fruit
from multissd.data.folder import CLASSES_FILE, DetectionSplit, folder_class_names, read_split, write_split
from multissd.data.synthetic import IMAGE_SIZE, MAX_SIDE, MIN_SIDE, SMALL_SIDES, banana_rng, render_banana
from multissd.errors import InputError
from multissd.files import write_text

DATA_ENV_VAR = "MULTISSD_DATA"
SYNTHETIC_VERSION = 2
SPLIT_SIZES = {"train": 1000, "val": 100}
_DONE_MARKER = "COMPLETE"
SYNTHETIC = {  # kind -> (folder name prefix, version, class names)
    "bananas": ("banana-detection-synthetic", SYNTHETIC_VERSION, ("banana",)),
    "fruit": ("fruit-detection-synthetic", 1, fruit.CLASS_NAMES),
    "small-bananas": ("small-banana-detection-synthetic", 1, ("banana",)),
}


def cache_dir(data_dir=None) -> Path:
    """Where generated datasets live: ``data_dir``, else ``$MULTISSD_DATA``, else ``~/.cache/multissd``."""
    if data_dir is not None:
        return Path(data_dir)
    if os.environ.get(DATA_ENV_VAR):
        return Path(os.environ[DATA_ENV_VAR])
    return Path.home() / ".cache" / "multissd"


def _synthetic(kind: str) -> tuple[str, int, tuple]:
    """``SYNTHETIC[kind]``, or a ``ValueError`` naming the kinds there are."""
    if kind not in SYNTHETIC:
        raise InputError(f"Unknown synthetic dataset {kind!r}; expected one of {', '.join(SYNTHETIC)}")
    return SYNTHETIC[kind]


def _render(kind: str, seed: int, split: str, index: int, image_size: int):
    """One image of a synthetic dataset: ``(uint8 (H, W, 3), boxes (n, 4) pixels, classes (n,))``."""
    if kind == "fruit":
        return fruit.render_fruit(fruit.fruit_rng(seed, split, index), image_size)
    sides = SMALL_SIDES if kind == "small-bananas" else (MIN_SIDE, MAX_SIDE)
    image, box = render_banana(banana_rng(seed, split, index), image_size, sides)
    return image, [box], [0]


def _render_range(args):
    kind, seed, split, start, stop, image_size = args
    return [_render(kind, seed, split, i, image_size) for i in range(start, stop)]


def generate_bananas(folder, seed: int = 0, sizes=None, workers: int | None = None, progress=None,
                     image_size: int = IMAGE_SIZE, kind: str = "bananas") -> Path:
    """Draw a synthetic dataset (``kind`` ``"bananas"``, ``"small-bananas"`` or ``"fruit"``) into ``folder`` in the book's
    layout; returns ``folder``.

    ``sizes`` maps split to image count (default 1000 train, 100 val); images are ``image_size``
    pixels square (256, the book's; tests use smaller ones). Each split is written into a
    temporary folder and renamed, and a marker file is written last, so an interrupted run leaves
    no dataset that looks complete.
    """
    _, version, class_names = _synthetic(kind)
    folder = Path(folder)
    sizes = dict(SPLIT_SIZES if sizes is None else sizes)
    workers = workers or min(4, os.cpu_count() or 1)
    (folder / _DONE_MARKER).unlink(missing_ok=True)
    for split, count in sizes.items():
        chunks = [(kind, seed, split, start, min(start + 50, count), image_size) for start in range(0, count, 50)]
        if workers > 1 and count > 50:
            with ProcessPoolExecutor(workers) as pool:
                results = list(pool.map(_render_range, chunks))
        else:
            results = [_render_range(chunk) for chunk in chunks]
        drawn = [item for chunk in results for item in chunk]
        write_split(folder, split, [image for image, _, _ in drawn], [boxes for _, boxes, _ in drawn],
                    [classes for _, _, classes in drawn])
        if progress:
            progress(f"generated {count} {split} images in {folder}")
    if kind != "bananas":
        write_text(folder / CLASSES_FILE, "\n".join(class_names) + "\n")
    write_text(folder / _DONE_MARKER, f"multissd synthetic {kind} v{version}, seed {seed}, {sizes}\n")
    return folder


def synthetic_bananas_dir(data_dir=None, seed: int = 0, sizes=None, progress=None, kind: str = "bananas") -> Path:
    """The folder of the synthetic dataset ``kind`` for ``seed``, generated first if it is not there yet."""
    prefix, version, _ = _synthetic(kind)
    sizes = dict(SPLIT_SIZES if sizes is None else sizes)
    suffix = "" if sizes == SPLIT_SIZES else "-" + "-".join(f"{k}{v}" for k, v in sizes.items())
    folder = cache_dir(data_dir) / f"{prefix}-v{version}-seed{seed}{suffix}"
    if not (folder / _DONE_MARKER).is_file():
        generate_bananas(folder, seed=seed, sizes=sizes, progress=progress, kind=kind)
    return folder


def bananas(data=None, data_dir=None, seed: int = 0, sizes=None, progress=None,
            kind: str = "bananas") -> tuple[DetectionSplit, DetectionSplit]:
    """``(train, val)`` splits: from the folder ``data`` (book layout), or the synthetic dataset ``kind``."""
    folder = Path(data) if data is not None else synthetic_bananas_dir(data_dir, seed, sizes, progress, kind)
    class_names = folder_class_names(folder)  # from both splits: the same classes in each
    return read_split(folder, "train", class_names), read_split(folder, "val", class_names)
