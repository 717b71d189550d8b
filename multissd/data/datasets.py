"""One entry point for every dataset multissd trains and evaluates on.

``load_splits(data)`` with ``data``:

- ``None`` or ``"bananas"``: the synthetic banana dataset (the book's task), generated once;
- ``"small-bananas"``: the same bananas 0.04-0.10 of the image side, generated once;
- ``"fruit"``: the synthetic three-class fruit dataset, generated once;
- a folder in the book's ``banana-detection`` layout (``bananas_train/``, ``bananas_val/``);
- a Pascal VOC year folder (``Annotations/``, ``JPEGImages/``, ``ImageSets/Main/``);
- a COCO folder (``annotations/instances_*.json`` and the image folders).

Every dataset comes back as ``(train, val)`` :class:`~multissd.data.folder.DetectionSplit` s with
the class names of the data, labels normalised to ``[0, 1]`` and padded with -1 rows, images of one
size (VOC and COCO images are resized to ``image_size``, 256 x 256 unless told).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from multissd.data.bananas import SYNTHETIC, bananas
from multissd.data.coco import annotation_file, is_coco, read_coco
from multissd.data.folder import SPLIT_FOLDERS, DetectionSplit, check_classes
from multissd.data.records import Problems, build_split
from multissd.data.voc import is_voc, read_voc
from multissd.errors import InputError
from multissd.model import DEFAULT_IMAGE_SIZE


def load_splits(data=None, data_dir=None, seed: int = 0, image_size=None, skip_bad: bool = False,
                progress=None) -> tuple[DetectionSplit, DetectionSplit]:
    """``(train, val)`` of the dataset ``data`` (see the module docstring), images ``image_size`` ``(H, W)``."""
    if data is None or data in SYNTHETIC:
        train, val = bananas(None, data_dir, seed=seed, progress=progress, kind=data or "bananas")
    else:
        root = Path(data)
        if not root.is_dir():
            raise InputError(f"Data folder not found: {root} (expected 'bananas', 'small-bananas', 'fruit', or a folder in the "
                             f"banana-detection, Pascal VOC or COCO layout)")
        problems = Problems(skip_bad)
        size = tuple(image_size) if image_size else DEFAULT_IMAGE_SIZE
        if (root / SPLIT_FOLDERS["train"]).is_dir():
            train, val = bananas(root)
        elif is_voc(root):
            records = {split: read_voc(root, split, problems) for split in ("train", "val")}
            names = sorted({c for rs in records.values() for r in rs for c in r.classes})
            train, val = (build_split(records[split], names, size) for split in ("train", "val"))
        elif is_coco(root):
            (train_records, names), (val_records, val_names) = (read_coco(root, split, problems)
                                                                for split in ("train", "val"))
            if val_names != names:
                raise InputError(f"{annotation_file(root, 'val')} has the categories {val_names} but "
                                 f"{annotation_file(root, 'train')} has {names}: both splits need the same classes")
            train, val = build_split(train_records, names, size), build_split(val_records, names, size)
        else:
            raise InputError(f"{root} is in none of the layouts multissd reads: banana-detection (bananas_train/, "
                             f"bananas_val/), Pascal VOC (Annotations/, JPEGImages/, ImageSets/Main/) or COCO "
                             f"(annotations/instances_*.json)")
        if problems.count and progress:
            progress(f"skipped {problems.count} malformed annotations in {root} (see the warnings)")
        for split, name in ((train, "train"), (val, "val")):
            if len(split) == 0:
                raise InputError(f"{root}: the {name} split has no usable images")
        check_classes(train.class_names, root)
    if image_size:
        train, val = resize_split(train, image_size), resize_split(val, image_size)
    return train, val


def data_kind(data) -> str:
    """``"photos"`` for a Pascal VOC or COCO folder, ``"book"`` for everything else (the synthetic
    sets, the book's banana-detection layout, a folder that is not there yet)."""
    if data is None or data in SYNTHETIC:
        return "book"
    root = Path(data)
    return "photos" if root.is_dir() and not (root / SPLIT_FOLDERS["train"]).is_dir() and (
        is_voc(root) or is_coco(root)) else "book"


def check_trainable(train: DetectionSplit, where) -> None:
    """``InputError`` naming ``where`` when the training split has no object to learn from: none at all,
    or every one marked ``difficult`` (VOC) or ``iscrowd`` (COCO), which training leaves out."""
    objects = train.labels[:, :, 0] >= 0                                        # (N, G)
    if not objects.any():
        raise InputError(f"{where}: the training split has no objects (every image is background); there is "
                         f"nothing to learn to detect")
    if not (objects & ~np.stack([train.ignored(i) for i in range(len(train))])).any():
        raise InputError(f"{where}: every object of the training split is marked difficult (VOC) or iscrowd "
                         f"(COCO), and training leaves those out: there is nothing to train on")


def resize_split(split: DetectionSplit, image_size) -> DetectionSplit:
    """``split`` with its images resized to ``image_size`` ``(H, W)`` (labels are normalised: unchanged)."""
    height, width = (int(v) for v in image_size)
    if split.images.shape[2:] == (height, width):
        return split
    images = np.stack([np.asarray(Image.fromarray(image.transpose(1, 2, 0)).resize((width, height), Image.BILINEAR))
                       .transpose(2, 0, 1) for image in split.images])
    return replace(split, images=images)
