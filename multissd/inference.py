"""Running a trained model on image files and on a dataset split: the library behind
``python -m multissd.predict`` and ``python -m multissd.evaluate``.

:func:`predict_images` resizes each image to the model's input size, runs the model (a weights file
on any backend, or an exported ``.onnx`` file on ONNX Runtime: :func:`multissd.engine.open_model`)
and decodes its output as the detection libraries do (``how="per-class"``) or as the book does
(``how="book"``). :func:`evaluate_weights` runs a model over a split and scores it with mAP
(:func:`multissd.detection.evaluate_split`).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from multissd.checks import setting_in_range, whole_setting
from multissd.boxes import (BOOK_NMS_THRESHOLD, DETECTIONS_PER_IMAGE, NMS_THRESHOLD, SCORE_THRESHOLD,
                            TOPK_CANDIDATES)
from multissd.data.datasets import load_splits
from multissd.data.images import read_image
from multissd.detection import evaluate_split
from multissd.engine import open_model
from multissd.errors import InputError
from multissd.model import DEFAULT_IMAGE_SIZE

__all__ = ["DEFAULT_THRESHOLD", "DEFAULT_MIN_DETECTIONS", "DECODINGS", "decode", "predict_images", "evaluate_weights",
           "drawing_names"]

DEFAULT_THRESHOLD = 0.9  # the book's display threshold
DEFAULT_MIN_DETECTIONS = 1
DECODINGS = ("per-class", "book")


def decode(box_ops, anchors, cls_probs, bbox_preds, nms_threshold, coding, how: str = "per-class") -> np.ndarray:
    """One image's detections as float32 ``(N, 6)`` rows ``[class_id, score, x1, y1, x2, y2]``
    (normalised), best first: ``how="per-class"`` -- :func:`multissd.multibox_detection_per_class`;
    ``"book"`` -- :func:`multissd.multibox_detection` (the rows with a class). ``box_ops`` is the
    backend's box module; ``anchors (1, A, 4)``, ``cls_probs (1, C, A)``, ``bbox_preds (1, 4A)``
    as NumPy."""
    inputs = box_ops.asarray(cls_probs), box_ops.asarray(bbox_preds), box_ops.asarray(anchors)
    if how == "book":
        rows = box_ops.to_numpy(box_ops.multibox_detection(*inputs, nms_threshold=nms_threshold, coding=coding)[0])
        return rows[rows[:, 0] >= 0].astype(np.float32)                          # (N, 6), by decreasing score
    found = box_ops.multibox_detection_per_class(*inputs, SCORE_THRESHOLD, nms_threshold, TOPK_CANDIDATES,
                                                 DETECTIONS_PER_IMAGE, coding)[0]
    boxes, scores, labels = (box_ops.to_numpy(found[key]) for key in ("boxes", "scores", "labels"))
    return np.concatenate([labels[:, None], scores[:, None], boxes], axis=1).astype(np.float32)  # (N, 6)


def predict_images(paths, weights, backend=None, threshold: float = DEFAULT_THRESHOLD, nms_threshold: float | None = None,
                   device: str = "auto", min_detections: int = 0, engine: str | None = None, how: str = "per-class",
                   precision: str = "fp32"):
    """Detections per image, best first, by the model in ``weights`` run on ``backend`` (a weights
    file) or by ONNX Runtime (``engine="onnxruntime"``, an ``.onnx`` file from :mod:`multissd.export`;
    decoded by the NumPy backend).

    ``how`` is :func:`decode`'s (``"per-class"`` or ``"book"``); ``nms_threshold`` defaults to 0.45
    per class, 0.5 for the book's; ``precision`` is the forward pass's (``"fp32"``, ``"bf16"`` or
    ``"auto"``, :func:`multissd.trainer.resolve_precision`). Returns ``(results, class_names)``; ``results`` holds one
    ``(path, original PIL image, rows)`` per image, ``rows`` float32 ``(N, 6)``
    ``[class_id, score, x1, y1, x2, y2]`` in pixels of the original image, sorted by score
    (descending). A row is kept when ``score >= threshold``, or when it is one of the image's
    ``min_detections`` best (so ``min_detections=1`` always shows the model's best guess).
    """
    min_detections = whole_setting(min_detections, "min_detections", 0)
    threshold = setting_in_range(threshold, "threshold", 0.0, 1.0)
    if how not in DECODINGS:
        raise InputError(f"Expected how to be one of {list(DECODINGS)}; received {how!r}")
    if nms_threshold is None:
        nms_threshold = BOOK_NMS_THRESHOLD if how == "book" else NMS_THRESHOLD
    nms_threshold = setting_in_range(nms_threshold, "nms_threshold", 0.0, 1.0)
    runner = open_model(weights, backend, engine, device, precision)
    adapter, box_ops, net, device = runner.adapter, runner.box_ops, runner.net, runner.device
    height, width = runner.settings.image_size or DEFAULT_IMAGE_SIZE
    results = []
    for path in map(Path, paths):
        image = read_image(path)
        pixels = np.asarray(image.resize((width, height), Image.BILINEAR), np.float32).transpose(2, 0, 1)[None]
        anchors, cls_probs, bbox_preds = adapter.predict(net, pixels, device, runner.precision)
        rows = decode(box_ops, anchors, cls_probs, bbox_preds, nms_threshold, net.spec.coding, how)
        keep = rows[:, 1] >= threshold
        keep[:min_detections] = True
        rows = rows[keep]
        rows[:, 2:] *= np.array([image.width, image.height, image.width, image.height], np.float32)
        results.append((path, image, rows))
    return results, runner.settings.class_names


def evaluate_weights(weights, data: str | None = None, data_dir: str | None = None, split: str = "val",
                     backend: str | None = None, engine: str | None = None, batch_size: int = 32,
                     device: str = "auto", skip_bad: bool = False, progress: Callable[[str], None] | None = None,
                     precision: str = "fp32") -> tuple[dict, list, int, str]:
    """Run the model in ``weights`` over a split and score it: ``(result, class_names, images,
    engine)`` -- ``result`` as :func:`multissd.metrics.mean_average_precision` gives it.

    ``data`` and ``data_dir`` default to the run's own (its ``config.json``), else the bananas;
    ``split`` is ``"val"`` or ``"train"``. ``ValueError`` when the model's classes do not fit the data.
    """
    batch_size = whole_setting(batch_size, "batch_size", 1)
    runner = open_model(weights, backend, engine, device, precision)  # before the data (a minute to draw)
    config, net = runner.settings.config, runner.net
    data = data if data is not None else config.get("data")
    data_dir = data_dir if data_dir is not None else config.get("data_dir")
    train, val = load_splits(data, data_dir, seed=config.get("seed", 0), image_size=runner.settings.image_size,
                             skip_bad=skip_bad, progress=progress)
    chosen = val if split == "val" else train
    class_names = runner.settings.class_names or chosen.class_names
    if net.spec.num_classes != len(chosen.class_names):
        raise InputError(f"{weights} detects {net.spec.num_classes} classes but the data has "
                         f"{len(chosen.class_names)} ({', '.join(chosen.class_names)})")
    result = evaluate_split(runner.adapter, net, chosen, runner.device, batch_size, runner.precision)
    return result, class_names, len(chosen), runner.engine


def drawing_names(paths) -> list[str]:
    """The file name of each image's drawing, ``<stem>_detections.png``, distinct for distinct images:
    images of one name in different folders (``d1/x.png``, ``d2/x.png``) or with different suffixes
    (``x.png``, ``x.jpg``) get the suffix and as many folders as tell them apart (``d1_x_png``,
    ``d2_x_png``; ``x_png``, ``x_jpg``). The same file named twice gets one name."""
    paths = [Path(p).resolve() for p in paths]

    def key(path: Path, depth: int) -> str:
        """The stem (depth 0), or the file name and its ``depth - 1`` nearest folders."""
        if depth == 0:
            return path.stem
        folders = list(path.parent.parts[1:])[len(path.parent.parts) - depth:] if depth > 1 else []
        return "_".join([*folders, path.name.replace(".", "_")])

    names = []
    for index, path in enumerate(paths):
        others = [other for other in paths if other != path]
        for depth in range(len(path.parts) + 1):
            if all(key(other, depth) != key(path, depth) for other in others):
                names.append(f"{key(path, depth)}_detections.png")
                break
        else:  # names that differ only where they are written the same ("x.png", "x_png")
            names.append(f"{key(path, 1)}_{index}_detections.png")
    return names
