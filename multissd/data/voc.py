"""Pascal VOC annotations, in a VOC year folder or as a labelling tool writes them.

- A year folder (``VOCdevkit/VOC2007``): ``Annotations/*.xml``, ``JPEGImages/``,
  ``ImageSets/Main/<split>.txt``. The training split is ``train.txt`` (else ``trainval.txt``), the
  validation split ``val.txt`` (else ``test.txt``).
- A folder of VOC XML files as LabelImg and other labelling tools write them: the XML files in
  ``Annotations/``, ``annotations/``, ``annots/`` or the folder itself, each naming its image in
  ``<filename>`` (found beside it, in ``JPEGImages/``, ``images/`` or the folder; else the XML's own
  name with ``.jpg``, ``.jpeg`` or ``.png``). With no split files, one photo in five is set aside for
  validation, chosen by a hash of its name: the same photo always falls in the same split.

VOC's pixel coordinates start at 1: a box ``xmin..xmax`` covers pixels ``xmin-1 .. xmax`` in 0-based
corner coordinates (tools that write 0 for the first pixel are read the same way, the box clipped to
the image). Objects marked ``difficult`` are kept but flagged, so that AP ignores them (as VOC does)
and training leaves them out.
"""
from __future__ import annotations

import hashlib
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from multissd.data.records import Problems, Record, read_pixels
from multissd.errors import InputError
from multissd.files import inside

SPLIT_FILES = {"train": ("train", "trainval"), "val": ("val", "test")}


ANNOTATION_FOLDERS = ("Annotations", "annotations", "annots", ".")
IMAGE_FOLDERS = ("JPEGImages", "images", "Images", ".")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")
VAL_SHARE = 20  # percent of a split-less folder's photos set aside for validation


def is_year_folder(root: Path) -> bool:
    """A VOC year folder: ``Annotations/`` and ``ImageSets/Main/``."""
    return (root / "Annotations").is_dir() and (root / "ImageSets" / "Main").is_dir()


def annotation_folder(root: Path) -> Path | None:
    """Where a folder of VOC XML files keeps them (the first of :data:`ANNOTATION_FOLDERS` holding an
    XML file whose root is ``<annotation>``), or ``None``."""
    for name in ANNOTATION_FOLDERS:
        folder = root / name
        for xml in sorted(folder.glob("*.xml"))[:1] if folder.is_dir() else []:
            try:
                if ET.parse(xml).getroot().tag == "annotation":
                    return folder
            except ET.ParseError:
                continue
    return None


def is_voc(root: Path) -> bool:
    return is_year_folder(root) or annotation_folder(root) is not None


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


def _in_split(name: str, split: str) -> bool:
    """Whether the photo ``name`` of a split-less folder belongs to ``split`` (:data:`VAL_SHARE`)."""
    val = int(hashlib.sha1(name.encode()).hexdigest(), 16) % 100 < VAL_SHARE
    return val == (split == "val")


def _image_of(xml: Path, root: Path) -> Path:
    """The image a labelling tool's XML file names (see the module docstring)."""
    stated = ET.parse(xml).getroot().findtext("filename") if xml.is_file() else None
    for folder in (xml.parent, *(root / name for name in IMAGE_FOLDERS)):
        if stated and stated.strip():
            candidate = inside(folder, Path(stated.strip()).name, f"{xml}: <filename>")
            if candidate.is_file():
                return candidate
        for suffix in IMAGE_SUFFIXES:
            if (folder / f"{xml.stem}{suffix}").is_file():
                return folder / f"{xml.stem}{suffix}"
    return root / "JPEGImages" / f"{xml.stem}.jpg"  # reported as missing where it is read


def entries(root: Path, split: str) -> tuple[Path, list[tuple[str, Path, Path]]]:
    """``(where the split is listed, [(name, annotation file, image file)])`` of ``split``."""
    if is_year_folder(root):
        list_file, ids = image_ids(root, split)
        return list_file, [(f"{i}.jpg", root / "Annotations" / f"{i}.xml", root / "JPEGImages" / f"{i}.jpg")
                           for i in ids]
    folder = annotation_folder(root)
    if folder is None:
        raise InputError(f"{root} holds no VOC annotation files (*.xml with an <annotation> root)")
    chosen = [xml for xml in sorted(folder.glob("*.xml")) if _in_split(xml.stem, split)]
    return folder, [(_image_of(xml, root).name, xml, _image_of(xml, root)) for xml in chosen]


def read_voc(root, split: str, problems: Problems) -> list[Record]:
    """The records of ``split``; class names, not ids, in ``Record.classes``."""
    root = Path(root)
    list_file, listed = entries(root, split)
    records = []
    for name, annotation_file, image_path in listed:
        annotation = read_annotation(annotation_file, problems)
        if annotation is None:
            continue
        objects, (width, height) = annotation
        pixels = read_pixels(image_path, problems, listed_in=list_file)
        if pixels is None:
            continue
        if pixels.shape[:2] != (height, width):
            problems.report(f"{image_path} is {pixels.shape[1]}x{pixels.shape[0]} but its annotation says "
                            f"{width}x{height}")
            continue
        records.append(Record(name=name, pixels=pixels,
                              boxes=np.array([o[1] for o in objects], np.float64).reshape(-1, 4),
                              classes=[o[0] for o in objects], ignore=np.array([o[2] for o in objects], bool)))
    return records
