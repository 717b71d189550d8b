"""Pascal VOC: ``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/Main/<split>.txt``.

``root`` is a year's folder (``VOCdevkit/VOC2007``). The training split is ``train.txt`` (else
``trainval.txt``), the validation split ``val.txt`` (else ``test.txt``). VOC's pixel coordinates
start at 1: a box ``xmin..xmax`` covers pixels ``xmin-1 .. xmax`` in 0-based corner coordinates.
Objects marked ``difficult`` are kept but flagged, so that AP ignores them (as VOC does) and
training leaves them out.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from multissd.data.records import Problems, Record, read_pixels
from multissd.errors import InputError
from multissd.files import inside

SPLIT_FILES = {"train": ("train", "trainval"), "val": ("val", "test")}


def is_voc(root: Path) -> bool:
    return (root / "Annotations").is_dir() and (root / "ImageSets" / "Main").is_dir()


def image_ids(root: Path, split: str) -> tuple[Path, list[str]]:
    """The list file of ``split`` and the image ids it names; ``InputError`` naming the file and line
    for an id that would lead outside the folder (an absolute path, ``..``)."""
    for name in SPLIT_FILES[split]:
        path = root / "ImageSets" / "Main" / f"{name}.txt"
        if path.is_file():
            ids = []
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if line.strip():
                    ids.append(line.split()[0])
                    inside(root / "Annotations", f"{ids[-1]}.xml", f"{path}, line {number}: the image id",
                           within=f"{root}'s Annotations/ and JPEGImages/")
            return path, ids
    raise InputError(f"{root / 'ImageSets' / 'Main'} has no {' or '.join(n + '.txt' for n in SPLIT_FILES[split])} "
                     f"listing the {split} images")


def _number(node, tag: str, where: str) -> float:
    """The finite number in ``node``'s child ``<tag>``; ``InputError`` naming ``where`` otherwise (no
    such child, not a number, NaN, infinite, or too large to be finite such as ``1e400``)."""
    child = node.find(tag)
    if child is None or child.text is None:
        raise InputError(f"{where}: no <{tag}>")
    try:
        value = float(child.text)
    except ValueError:
        raise InputError(f"{where}: <{tag}> is {child.text!r}, not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{where}: <{tag}> is {child.text.strip()!r}, not a finite number")
    return value


def _image_size(root, path: Path) -> tuple[int, int]:
    """``(width, height)`` of an annotation's ``<size>``: whole numbers >= 1."""
    size = root.find("size")
    if size is None:
        raise InputError(f"{path}: no <size>")
    width, height = (_number(size, tag, f"{path} <size>") for tag in ("width", "height"))
    if not (width >= 1 and height >= 1 and width == int(width) and height == int(height)):
        raise InputError(f"{path} <size>: {width:g}x{height:g} is not an image size (whole numbers >= 1)")
    return int(width), int(height)


def read_annotation(path: Path, problems: Problems) -> tuple[list, tuple[int, int]] | None:
    """``([(name, box (4,) 0-based pixels, difficult)], (width, height))`` of one annotation file."""
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        problems.report(f"{path}: annotation file is missing")
        return None
    except ET.ParseError as error:
        problems.report(f"{path}: not valid XML ({error})")
        return None
    try:
        width, height = _image_size(tree.getroot(), path)
    except InputError as error:
        problems.report(str(error))
        return None
    root = tree.getroot()
    objects = []
    for index, node in enumerate(root.findall("object")):
        name = (node.findtext("name") or "").strip()
        where = f"{path}, object {index} ({name or 'no name'})"
        try:
            if not name:
                raise InputError(f"{where}: no <name>")
            box = node.find("bndbox")
            if box is None:
                raise InputError(f"{where}: no <bndbox>")
            xmin, ymin, xmax, ymax = (_number(box, tag, where) for tag in ("xmin", "ymin", "xmax", "ymax"))
            if not (xmin < xmax and ymin < ymax):
                raise InputError(f"{where}: box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) has a negative or zero size")
            if xmin < 1 or ymin < 1 or xmax > width or ymax > height:
                raise InputError(f"{where}: box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies outside the "
                                 f"{width}x{height} image")
        except InputError as error:
            problems.report(str(error))
            continue
        difficult = (node.findtext("difficult") or "0").strip() == "1"
        objects.append((name, np.array([xmin - 1, ymin - 1, xmax, ymax], np.float64), difficult))
    return objects, (width, height)


def read_voc(root, split: str, problems: Problems) -> list[Record]:
    """The records of ``split``; class names, not ids, in ``Record.classes``."""
    root = Path(root)
    list_file, ids = image_ids(root, split)
    records = []
    for image_id in ids:
        annotation = read_annotation(root / "Annotations" / f"{image_id}.xml", problems)
        if annotation is None:
            continue
        objects, (width, height) = annotation
        image_path = root / "JPEGImages" / f"{image_id}.jpg"
        pixels = read_pixels(image_path, problems, listed_in=list_file)
        if pixels is None:
            continue
        if pixels.shape[:2] != (height, width):
            problems.report(f"{image_path} is {pixels.shape[1]}x{pixels.shape[0]} but its annotation says "
                            f"{width}x{height}")
            continue
        records.append(Record(name=f"{image_id}.jpg", pixels=pixels,
                              boxes=np.array([o[1] for o in objects], np.float64).reshape(-1, 4),
                              classes=[o[0] for o in objects], ignore=np.array([o[2] for o in objects], bool)))
    return records
