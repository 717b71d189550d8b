"""COCO: ``annotations/instances_<name>.json`` with the images in ``<name>/`` (or ``images/``).

The training split is the ``instances_*train*.json`` file, the validation split the
``instances_*val*.json`` one. Classes are the file's categories in id order (numbered from 0);
``bbox`` is ``[x, y, width, height]`` in pixels. Crowd regions (``iscrowd: 1``) are kept but
flagged: training leaves them out and AP ignores detections inside them, as pycocotools does.
Images without annotations are kept (all background).

The file is checked against COCO's schema before anything is read from it: each field's presence
and type, by its path (``images[3].file_name``, ``annotations[7].bbox``), with the file named. A
malformed file or category or image stops the reader; a malformed annotation is reported the same
way, or skipped with a warning under ``--skip-bad``.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from multissd.data.records import Problems, Record, read_pixels
from multissd.errors import InputError
from multissd.files import inside


def annotation_file(root: Path, split: str) -> Path | None:
    folder = root / "annotations"
    if not folder.is_dir():
        return None
    matches = sorted(p for p in folder.glob("instances_*.json") if split in p.stem)
    return matches[0] if matches else None


def is_coco(root: Path) -> bool:
    return annotation_file(root, "train") is not None or annotation_file(root, "val") is not None


# ---- the schema --------------------------------------------------------------------------------

def _type_name(value) -> str:
    return "null" if value is None else {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), f"a {type(value).__name__}")


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Schema:
    """Reads fields of one COCO file, each by its path, failing with the file and the path."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, message: str):
        raise InputError(f"{self.path}, {where}: {message}")

    def objects(self, data: dict, key: str) -> list[dict]:
        """``data[key]``: a list of objects."""
        items = data.get(key)
        if not isinstance(items, list):
            raise InputError(f"{self.path}: {key!r} must be a list (COCO's instances format); found "
                             f"{_type_name(items)}")
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                self.fail(f"{key}[{index}]", f"expected an object; found {_type_name(item)} {item!r:.60}")
        return items

    def field(self, item: dict, where: str, key: str, check, expected: str, required: bool = True):
        """``item[key]`` when ``check`` accepts it (``None`` when absent and not ``required``)."""
        if key not in item:
            if required:
                self.fail(where, f"no {key!r}")
            return None
        if not check(item[key]):
            self.fail(f"{where}.{key}", f"expected {expected}; found {_type_name(item[key])} {item[key]!r:.60}")
        return item[key]


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not valid JSON ({error})") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be COCO's instances format") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the file holds {_type_name(data)}; expected an object with 'images', "
                         f"'annotations' and 'categories' (COCO's instances format)")
    return data


def _categories(schema: _Schema, data: dict) -> dict[int, str]:
    """The categories, ``id -> name`` in id order; ``InputError`` naming the file and the category for a
    missing or mistyped id or name, a repeated id or a repeated name."""
    categories, index_of_id, index_of_name = {}, {}, {}
    for index, category in enumerate(schema.objects(data, "categories")):
        where = f"categories[{index}]"
        cid = schema.field(category, where, "id", _is_id, "an integer")
        name = schema.field(category, where, "name", lambda v: isinstance(v, str) and v.strip(), "a non-empty string")
        if cid in index_of_id:
            schema.fail(f"{where}.id", f"{cid} is the id of categories[{index_of_id[cid]}] too")
        if name in index_of_name:
            schema.fail(f"{where}.name", f"{name!r} names categories[{index_of_name[name]}] too: two classes would "
                                         f"share a name")
        categories[cid], index_of_id[cid], index_of_name[name] = name, index, index
    return dict(sorted(categories.items()))


def _images(schema: _Schema, data: dict, folder: Path) -> list[tuple[dict, Path]]:
    """``(image, file)`` per entry of ``images``: an integer ``id`` (unique), a ``file_name`` inside
    ``folder``, and, when given, a whole positive ``width`` and ``height``."""
    found, seen = [], {}
    for index, image in enumerate(schema.objects(data, "images")):
        where = f"images[{index}]"
        image_id = schema.field(image, where, "id", _is_id, "an integer")
        if image_id in seen:
            schema.fail(f"{where}.id", f"{image_id} is the id of images[{seen[image_id]}] too")
        seen[image_id] = index
        name = schema.field(image, where, "file_name", lambda v: isinstance(v, str), "a string")
        file = inside(folder, name, f"{schema.path}, {where}.file_name", within=str(folder))
        for key in ("width", "height"):
            schema.field(image, where, key, lambda v: _is_number(v) and v >= 1 and v == int(v),
                         "a whole number >= 1", required=False)
        found.append((image, file))
    return found


def _annotation(schema: _Schema, index: int, ann: dict, images: set, categories: dict, problems: Problems) -> bool:
    """Whether ``annotations[index]`` is well formed (a problem is reported: an error, or a warning
    and ``False`` under ``--skip-bad``): an ``image_id`` of ``images``, a ``category_id`` of the
    categories, a ``bbox`` of four finite numbers, ``iscrowd`` 0 or 1 when given."""
    where = f"{schema.path}, annotations[{index}]"
    problems_found = (
        ("image_id", not (_is_id(ann.get("image_id")) and ann["image_id"] in images),
         f"{ann.get('image_id')!r:.60} is not the id of an entry of 'images'"),
        ("category_id", not (_is_id(ann.get("category_id")) and ann["category_id"] in categories),
         f"unknown category {ann.get('category_id')!r:.60} (categories: {sorted(categories)})"),
        ("bbox", not (isinstance(ann.get("bbox"), list) and len(ann["bbox"]) == 4 and all(map(_is_number, ann["bbox"]))),
         f"{ann.get('bbox')!r:.60} is not [x, y, width, height] of finite numbers"),
        ("iscrowd", ann.get("iscrowd", 0) not in (0, 1) or isinstance(ann.get("iscrowd", 0), float),
         f"{ann.get('iscrowd')!r:.60} is not 0 or 1"))
    for key, bad, message in problems_found:
        if bad:
            problems.report(f"{where}.{key} (id {ann.get('id')!r:.30}): {message}")
            return False
    return True


def read_coco(root, split: str, problems: Problems) -> tuple[list[Record], list[str]]:
    """The records of ``split`` (class names in ``Record.classes``) and the class names in id order."""
    root = Path(root)
    path = annotation_file(root, split)
    if path is None:
        raise InputError(f"{root / 'annotations'} has no instances_*{split}*.json for the {split} split")
    schema = _Schema(path)
    data = _load(path)
    categories = _categories(schema, data)
    folder = root / path.stem.removeprefix("instances_")
    folder = folder if folder.is_dir() else root / "images"
    images = _images(schema, data, folder)
    objects: dict = {image["id"]: [] for image, _ in images}
    for index, ann in enumerate(schema.objects(data, "annotations")):
        if _annotation(schema, index, ann, set(objects), categories, problems):
            objects[ann["image_id"]].append((index, ann))
    records = [_record(path, image, file, objects[image["id"]], categories, problems) for image, file in images]
    return [r for r in records if r is not None], list(categories.values())


def _record(path: Path, image: dict, file: Path, objects: list, categories: dict, problems: Problems) -> Record | None:
    """One image's record, its boxes clipped to it; ``None`` when its file is unusable (reported)."""
    pixels = read_pixels(file, problems, listed_in=path)
    if pixels is None:
        return None
    height, width = pixels.shape[:2]
    stated = (image.get("height"), image.get("width"))
    if None not in stated and tuple(int(v) for v in stated) != (height, width):
        problems.report(f"{path}, image {image['file_name']!r}: the file {file} is {width}x{height} but the "
                        f"annotations say {stated[1]}x{stated[0]}")
        return None
    boxes, classes, ignore = [], [], []
    for index, ann in objects:
        x, y, w, h = (float(v) for v in ann["bbox"])
        where = f"{path}, annotations[{index}] (id {ann.get('id')!r:.30}, image {image['file_name']})"
        if w <= 0 or h <= 0:
            problems.report(f"{where}: bbox {ann['bbox']} has a negative or zero size")
            continue
        if x < 0 or y < 0 or x + w > width + 0.5 or y + h > height + 0.5:  # COCO rounds to 0.01 px
            problems.report(f"{where}: bbox {ann['bbox']} lies outside the {width}x{height} image")
            continue
        boxes.append([x, y, min(x + w, width), min(y + h, height)])
        classes.append(categories[ann["category_id"]])
        ignore.append(bool(ann.get("iscrowd", 0)))
    return Record(name=image["file_name"], pixels=pixels, boxes=np.array(boxes, np.float64).reshape(-1, 4),
                  classes=classes, ignore=np.array(ignore, bool))
