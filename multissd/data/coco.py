"""COCO: ``annotations/instances_<name>.json`` with the images in ``<name>/`` (or ``images/``).

The training split is the ``instances_*train*.json`` file, the validation split the
``instances_*val*.json`` one. Classes are the file's categories in id order (numbered from 0);
``bbox`` is ``[x, y, width, height]`` in pixels. Crowd regions (``iscrowd: 1``) are kept but
flagged: training leaves them out and AP ignores detections inside them, as pycocotools does.
Images without annotations are kept (all background).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from multissd.data.records import Problems, Record, read_pixels
from multissd.errors import InputError


def annotation_file(root: Path, split: str) -> Path | None:
    folder = root / "annotations"
    if not folder.is_dir():
        return None
    matches = sorted(p for p in folder.glob("instances_*.json") if split in p.stem)
    return matches[0] if matches else None


def is_coco(root: Path) -> bool:
    return annotation_file(root, "train") is not None or annotation_file(root, "val") is not None


def read_coco(root, split: str, problems: Problems) -> tuple[list[Record], list[str]]:
    """The records of ``split`` (class names in ``Record.classes``) and the class names in id order."""
    root = Path(root)
    path = annotation_file(root, split)
    if path is None:
        raise InputError(f"{root / 'annotations'} has no instances_*{split}*.json for the {split} split")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise InputError(f"{path}: no {key!r} list (expected COCO's instances format)")
    categories = {c["id"]: c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])}
    folder = root / path.stem.removeprefix("instances_")
    folder = folder if folder.is_dir() else root / "images"
    objects: dict = {image["id"]: [] for image in data["images"]}
    for index, ann in enumerate(data["annotations"]):
        where = f"{path}, annotation {index} (id {ann.get('id')})"
        if ann.get("image_id") not in objects:
            problems.report(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
            continue
        if ann.get("category_id") not in categories:
            problems.report(f"{where}: unknown category_id {ann.get('category_id')!r} "
                            f"(categories: {sorted(categories)})")
            continue
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) for v in bbox)):
            problems.report(f"{where}: bbox {bbox!r} is not [x, y, width, height] of finite numbers")
            continue
        objects[ann["image_id"]].append((index, ann))
    records = []
    for image in data["images"]:
        image_path = folder / image["file_name"]
        pixels = read_pixels(image_path, problems, listed_in=path)
        if pixels is None:
            continue
        height, width = pixels.shape[:2]
        stated = (image.get("height"), image.get("width"))
        if None not in stated and tuple(int(v) for v in stated) != (height, width):
            problems.report(f"{path}, image {image['file_name']!r}: the file {image_path} is {width}x{height} but the "
                            f"annotations say {stated[1]}x{stated[0]}")
            continue
        boxes, classes, ignore = [], [], []
        for index, ann in objects[image["id"]]:
            x, y, w, h = (float(v) for v in ann["bbox"])
            where = f"{path}, annotation {index} (id {ann.get('id')}, image {image['file_name']})"
            if w <= 0 or h <= 0:
                problems.report(f"{where}: bbox {ann['bbox']} has a negative or zero size")
                continue
            if x < 0 or y < 0 or x + w > width + 0.5 or y + h > height + 0.5:  # COCO rounds to 0.01 px
                problems.report(f"{where}: bbox {ann['bbox']} lies outside the {width}x{height} image")
                continue
            boxes.append([x, y, min(x + w, width), min(y + h, height)])
            classes.append(categories[ann["category_id"]])
            ignore.append(bool(ann.get("iscrowd", 0)))
        records.append(Record(name=image["file_name"], pixels=pixels, boxes=np.array(boxes, np.float64).reshape(-1, 4),
                              classes=classes, ignore=np.array(ignore, bool)))
    return records, list(categories.values())
