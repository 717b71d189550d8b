"""The book's ``banana-detection`` folder layout: reading it (with clear errors) and writing it.

Layout (as in the book)::

    banana-detection/
        bananas_train/images/0.png, 1.png, ...    bananas_train/label.csv
        bananas_val/images/...                    bananas_val/label.csv

``label.csv`` has the header ``img_name,label,xmin,ymin,xmax,ymax`` and one row per object, the
box in pixels. An image may have several rows (several objects); every image must have at least
one row, and all images of a split the same size. An optional ``classes.txt`` beside the split
folders names the classes, one per line (label 0 is the first line); without it a one-class
dataset is ``banana``'s and others are named by their numbers.
"""
from __future__ import annotations

import csv
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from multissd.data.images import open_rgb
from multissd.errors import InputError
from multissd.files import errors_naming, inside
from multissd.model import MAX_CLASSES

COLUMNS = ("img_name", "label", "xmin", "ymin", "xmax", "ymax")
SPLIT_FOLDERS = {"train": "bananas_train", "val": "bananas_val"}
CLASSES_FILE = "classes.txt"
PADDING = -1.0


@dataclass
class DetectionSplit:
    """One split in memory.

    Attributes:
        images: uint8 ``(N, 3, H, W)``.
        labels: float32 ``(N, G, 5)`` rows ``[class, xmin, ymin, xmax, ymax]`` normalised to ``[0, 1]``
            (the book divides pixels by the image side), padded with rows of -1.
        names: the ``N`` image file names.
        class_names: the name of each class id.
        ignore: bool ``(N, G)``, objects to leave out of training and of AP (COCO crowd regions,
            VOC difficult objects), or ``None`` for none.
    """

    images: np.ndarray
    labels: np.ndarray
    names: list[str]
    class_names: list[str] = field(default_factory=lambda: ["banana"])
    ignore: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    def ignored(self, index: int) -> np.ndarray:
        """bool ``(G,)``: which label rows of image ``index`` are ignored objects."""
        if self.ignore is None:
            return np.zeros(self.labels.shape[1], bool)
        return self.ignore[index]

    def for_training(self) -> "DetectionSplit":
        """The split with ignored objects turned into padding rows (they are not trained on)."""
        if self.ignore is None or not self.ignore.any():
            return self
        labels = self.labels.copy()
        labels[self.ignore] = PADDING
        return replace(self, labels=labels, ignore=None)


def _fail(path, row, message):
    where = f"{path}, row {row}" if row is not None else str(path)
    raise InputError(f"{where}: {message}")


def read_labels(csv_path: Path) -> dict[str, list[tuple[int, float, float, float, float]]]:
    """Rows of ``label.csv`` grouped by image name, in file order; errors name the file and row."""
    if not csv_path.is_file():
        raise InputError(f"Missing label file: {csv_path} (expected a CSV with columns {','.join(COLUMNS)})")
    objects: dict[str, list] = {}
    with open(csv_path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != COLUMNS:
            _fail(csv_path, 1, f"expected the header {','.join(COLUMNS)}; found {','.join(header or [])!r}")
        for row_number, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != len(COLUMNS):
                _fail(csv_path, row_number, f"expected {len(COLUMNS)} values, found {len(row)}: {row}")
            name = row[0].strip()
            inside(csv_path.parent / "images", name, f"{csv_path}, row {row_number}: img_name",
                   within="the split's images/ folder")
            try:
                number, xmin, ymin, xmax, ymax = (float(v) for v in row[1:])
            except ValueError:
                _fail(csv_path, row_number, f"label and box must be numbers; found {row[1:]}")
            if not (np.isfinite(number) and number >= 0 and number == int(number)):
                _fail(csv_path, row_number, f"label must be an integer >= 0; found {row[1]!r}")
            label = int(number)
            if not all(np.isfinite([xmin, ymin, xmax, ymax])) or not (xmin < xmax and ymin < ymax):
                _fail(csv_path, row_number, f"box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) of {name} must have "
                                            f"xmin < xmax and ymin < ymax")
            objects.setdefault(name, []).append((row_number, label, xmin, ymin, xmax, ymax))
    if not objects:
        _fail(csv_path, None, "has no rows")
    return objects


def check_classes(class_names: list[str], where) -> None:
    """``InputError`` naming ``where`` when the data names more classes than :data:`MAX_CLASSES`, or
    one name twice (a model would have two classes of one name)."""
    if len(class_names) > MAX_CLASSES:
        raise InputError(f"{where} names {len(class_names)} classes; multissd trains at most {MAX_CLASSES} "
                         f"(its class predictions take B x A x (classes + 1) numbers)")
    seen = set()
    for name in class_names:
        if name in seen:
            raise InputError(f"{where} names the class {name!r} twice: two classes of the model would share a name")
        seen.add(name)


def read_class_names(root: Path, labelled: dict[Path, dict]) -> list[str]:
    """The class names of a folder, the same for every split: its ``classes.txt``, else ``banana``
    (one class) or the numbers ``0 .. largest`` -- which must then all be used, so that a typo such
    as ``100000`` is reported with its row instead of making a model of 100001 classes.
    ``labelled`` maps each ``label.csv`` read to its rows (:func:`read_labels`)."""
    used = {}  # label -> (file, row) of its first use
    for csv_path, objects in labelled.items():
        for rows in objects.values():
            for row in rows:
                used.setdefault(row[1], (csv_path, row[0]))
    largest = max(used)
    path = root / CLASSES_FILE
    if path.is_file():
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        check_classes(names, path)
        if largest >= len(names):
            _fail(*used[largest], f"label {largest} is not a class of {path}, which names {len(names)} "
                                  f"(labels 0 to {len(names) - 1})")
        return names
    missing = sorted(set(range(largest + 1)) - set(used))
    if missing:
        _fail(*used[largest], f"label {largest}, but no row uses label {missing[0]}"
                              + (f" (nor {len(missing) - 1} other labels below {largest})" if len(missing) > 1 else "")
                              + f"; without a {CLASSES_FILE} the labels must be 0, 1, 2, ... with none left out "
                                f"(a typo?), or write {root / CLASSES_FILE} naming every class")
    return ["banana"] if largest == 0 else [str(i) for i in range(largest + 1)]


def folder_class_names(folder) -> list[str]:
    """The class names of a banana-detection folder, from both splits' ``label.csv`` (a class seen in
    one split only is still a class of the other)."""
    root = Path(folder)
    labelled = {path: read_labels(path) for path in (root / SPLIT_FOLDERS[s] / "label.csv" for s in SPLIT_FOLDERS)
                if path.is_file()}
    return read_class_names(root, labelled)


def read_split(folder, split: str, class_names: list[str] | None = None) -> DetectionSplit:
    """Read ``folder/bananas_<split>`` (``split`` is ``"train"`` or ``"val"``) into memory, with the
    folder's classes (:func:`folder_class_names`) unless ``class_names`` is given."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"Data folder not found: {root} (expected the book's banana-detection layout)")
    split_dir = root / SPLIT_FOLDERS[split]
    objects = read_labels(split_dir / "label.csv")
    if class_names is None:
        class_names = folder_class_names(root)
    images, labels, names = [], [], []
    max_objects = max(len(rows) for rows in objects.values())
    size = None
    for name, rows in objects.items():
        image_path = split_dir / "images" / name
        try:
            pixels = np.asarray(open_rgb(image_path))
        except FileNotFoundError:
            _fail(split_dir / "label.csv", rows[0][0], f"image {image_path} does not exist")
        height, width = pixels.shape[:2]
        if size is None:
            size = (height, width)
        elif (height, width) != size:
            _fail(image_path, None, f"is {width}x{height}, but the split's images are {size[1]}x{size[0]}")
        label = np.full((max_objects, 5), PADDING, np.float32)
        for j, (row_number, cls, xmin, ymin, xmax, ymax) in enumerate(rows):
            if xmin < 0 or ymin < 0 or xmax > width or ymax > height:
                _fail(split_dir / "label.csv", row_number,
                      f"box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies outside the {width}x{height} image {name}")
            label[j] = [cls, xmin / width, ymin / height, xmax / width, ymax / height]
        images.append(pixels.transpose(2, 0, 1))
        labels.append(label)
        names.append(name)
    return DetectionSplit(np.stack(images), np.stack(labels), names, class_names)


def write_split(folder, split: str, images, boxes, classes=None) -> None:
    """Write images (uint8 ``(H, W, 3)`` each) and their pixel boxes as ``folder/bananas_<split>``.

    The split is written into a temporary folder and renamed into place, so an interrupted write
    leaves nothing half-written behind.
    """
    root = Path(folder)
    final = root / SPLIT_FOLDERS[split]
    with errors_naming(final):
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(f".{final.name}.*"):  # left by a write that was killed
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        (staging / "images").mkdir()
        with open(staging / "label.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for i, (pixels, box) in enumerate(zip(images, boxes)):
                name = f"{i}.png"
                Image.fromarray(pixels).save(staging / "images" / name, compress_level=1)
                for j, one in enumerate(np.reshape(box, (-1, 4))):
                    cls = 0 if classes is None else int(np.ravel(classes[i])[j])
                    writer.writerow([name, cls, *(int(v) for v in one)])
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except OSError as error:
        with errors_naming(final):
            raise error
    finally:
        if staging.exists():
            shutil.rmtree(staging)
