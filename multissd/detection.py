"""From a model's outputs to detections and their scores: what training's validation, ``predict``
and ``evaluate`` share.

Model outputs come as a backend trainer's ``predict`` returns them (:mod:`multissd.trainer`), in NumPy:
``anchors (1, A, 4)``, ``cls_probs (B, C, A)`` and ``bbox_preds (B, 4A)``. Detections are
post-processed per class as the detection libraries do (:func:`multissd.multibox_detection_per_class`
with :mod:`multissd.boxes`' ``SCORE_THRESHOLD``, ``NMS_THRESHOLD``, ``TOPK_CANDIDATES``,
``DETECTIONS_PER_IMAGE``) and scored with :func:`multissd.metrics.mean_average_precision`, boxes
in pixels; :func:`report` and :func:`to_json` give the figures as ``python -m multissd.evaluate``
prints and saves them.
"""
from __future__ import annotations

import numpy as np

from multissd.backends.numpy import boxes as ref
from multissd.backends.numpy import nn as ref_nn
from multissd.boxes import BOOK_OFFSETS, DETECTIONS_PER_IMAGE, NMS_THRESHOLD, SCORE_THRESHOLD, TOPK_CANDIDATES
from multissd.metrics import mean_average_precision


def class_name(class_names, class_id: int) -> str:
    """The name of ``class_id`` (0-based object class) in ``class_names``, else ``"class N"``."""
    if class_names and 0 <= class_id < len(class_names):
        return class_names[class_id]
    return f"class {class_id}"


def batch_detections(anchors, cls_probs, bbox_preds, image_size, coding=BOOK_OFFSETS) -> list[dict]:
    """Per-class detections of one batch of model outputs, boxes in pixels of ``image_size``
    ``(H, W)``: one ``{"boxes" (N, 4), "scores" (N,), "labels" (N,)}`` per image, the input
    :func:`mean_average_precision` takes. ``coding``: the model's (``net.spec.coding``)."""
    height, width = image_size
    scale = np.array([width, height, width, height], np.float64)
    return [{"boxes": image["boxes"].astype(np.float64) * scale, "scores": image["scores"], "labels": image["labels"]}
            for image in ref.multibox_detection_per_class(cls_probs, bbox_preds, anchors, SCORE_THRESHOLD,
                                                          NMS_THRESHOLD, TOPK_CANDIDATES, DETECTIONS_PER_IMAGE, coding)]


def split_targets(split) -> list[dict]:
    """The ground truth of ``split`` for :func:`mean_average_precision`, boxes in pixels: per image
    ``{"boxes" (M, 4), "labels" (M,), "iscrowd" (M,)}`` (crowd regions and VOC difficult objects
    flagged, so that they are ignored)."""
    height, width = split.images.shape[2:]
    scale = np.array([width, height, width, height], np.float64)
    targets = []
    for i in range(len(split)):
        label = split.labels[i]
        real = label[:, 0] >= 0
        targets.append({"boxes": label[real, 1:].astype(np.float64) * scale, "labels": label[real, 0].astype(np.int64),
                        "iscrowd": split.ignored(i)[real].astype(np.int64)})
    return targets


def _batches(split, batch_size: int):
    """``(images float32 (b, 3, H, W), labels (b, G, 5))`` of ``split`` in order."""
    for start in range(0, len(split), batch_size):
        yield split.images[start:start + batch_size].astype(np.float32), split.labels[start:start + batch_size]


def split_detections(adapter, net, split, device, batch_size: int = 32,
                     precision: str = "fp32") -> tuple[list[dict], list[dict]]:
    """Run ``net`` over ``split`` (forward passes at ``precision``) and post-process per class:
    ``(preds, targets)`` for :func:`mean_average_precision` (see :func:`batch_detections` and
    :func:`split_targets`)."""
    preds = []
    for images, _ in _batches(split, batch_size):
        outputs = adapter.predict(net, images, device, precision)
        preds.extend(batch_detections(*outputs, images.shape[2:], net.spec.coding))
    return preds, split_targets(split)


def evaluate_split(adapter, net, split, device, batch_size: int = 32, precision: str = "fp32") -> dict:
    """:func:`mean_average_precision` of ``net`` on ``split`` (see :func:`split_detections`)."""
    return mean_average_precision(*split_detections(adapter, net, split, device, batch_size, precision))


def top1_hits(anchors, cls_probs, bbox_preds, labels, coding=BOOK_OFFSETS) -> np.ndarray:
    """Per image: does the highest-scoring non-background anchor's box overlap a true box at IoU >= 0.5?

    The top detection of ``multibox_detection`` is that box (NMS always keeps the best-scoring box).
    ``labels`` ``(B, G, 5)``; returns bool ``(B,)``.
    """
    conf = cls_probs[:, 1:].max(axis=1)                                          # (B, A)
    best = conf.argmax(axis=1)                                                   # (B,)
    offsets = bbox_preds.reshape(len(best), -1, 4)[np.arange(len(best)), best]  # (B, 4)
    with np.errstate(over="ignore", invalid="ignore"):  # a diverging model's huge offsets decode to inf: a miss
        boxes = offsets if coding is None else ref.offset_inverse(anchors[0, best], offsets, coding)  # (B, 4)
    hits = []
    for box, label in zip(boxes, labels):
        truth = label[label[:, 0] >= 0, 1:]
        hits.append(truth.size > 0 and bool(np.isfinite(box).all()) and box[2] >= box[0] and box[3] >= box[1]
                    and ref.box_iou(box[None].astype(np.float32), truth.astype(np.float32)).max() >= 0.5)
    return np.asarray(hits)


def predicted_classes(cls_probs, head: str) -> np.ndarray:
    """Each anchor's predicted class from probabilities ``(B, C, A)`` -> int64 ``(B, A)``: the arg-max
    for a softmax head (the book's ``cls_eval``); for a sigmoid head background (0) unless an object
    column reaches 0.5, then the arg-max of the object columns (as :func:`multissd.cls_eval`)."""
    if head == "softmax":
        return cls_probs.argmax(axis=1)
    objects = cls_probs[:, 1:]                                                   # (B, Q, A)
    return np.where(objects.max(axis=1) >= 0.5, objects.argmax(axis=1) + 1, 0)


def validation_figures(adapter, net, split, device, batch_size: int = 32, precision: str = "fp32") -> dict:
    """Training's validation figures, from one forward pass per batch: the book's class error and
    bbox MAE on ``split``, the share of images whose top detection overlaps a true box at IoU >= 0.5
    (``val_top1_iou50``), and mAP@0.5 (COCO's AP at IoU 0.5 over per-class detections)."""
    totals = np.zeros(4)  # cls_correct, cls_count, bbox_abs, bbox_count
    hits, preds = [], []
    for images, labels in _batches(split, batch_size):
        anchors, cls_probs, bbox_preds = adapter.predict(net, images, device, precision)
        if not (np.isfinite(cls_probs).all() and np.isfinite(bbox_preds).all()):
            raise FloatingPointError("the model's outputs on validation images are not finite")
        bbox_labels, bbox_masks, cls_labels = ref.multibox_target(anchors, labels, **net.spec.target_options())
        totals += [float((predicted_classes(cls_probs, net.spec.head) == cls_labels).sum()), cls_labels.size,
                   ref_nn.bbox_eval(bbox_preds, bbox_labels, bbox_masks), bbox_labels.size]
        hits.extend(top1_hits(anchors, cls_probs, bbox_preds, labels, net.spec.coding))
        preds.extend(batch_detections(anchors, cls_probs, bbox_preds, images.shape[2:], net.spec.coding))
    val_map_50 = mean_average_precision(preds, split_targets(split))["map_50"]
    return dict(val_class_err=1 - totals[0] / totals[1], val_bbox_mae=totals[2] / totals[3],
                val_top1_iou50=float(np.mean(hits)) if hits else 0.0, val_map_50=val_map_50)


def top_detections(adapter, net, images, device, threshold: float = 0.5, most: int = 5,
                   precision: str = "fp32") -> list[np.ndarray]:
    """The book's ``multibox_detection`` (NMS 0.5) on ``images`` ``(B, 3, H, W)``: per image the top
    detection and any other scoring ``>= threshold``, at most ``most``, rows ``[class, score, x1, y1,
    x2, y2]`` in pixels (what training draws into ``predictions.png``)."""
    anchors, cls_probs, bbox_preds = adapter.predict(net, images, device, precision)
    output = adapter.detect(anchors, cls_probs, bbox_preds, 0.5, device, net.spec.coding)
    height, width = images.shape[2:]
    scale = np.array([width, height, width, height], np.float32)
    detections = []
    for rows in output:
        keep = rows[:, 0] >= 0
        keep[1:] &= rows[1:, 1] >= threshold  # rows come by decreasing score: the first is the top detection
        rows = rows[keep][:most]
        detections.append(np.concatenate([rows[:, :2], rows[:, 2:] * scale], axis=1) if len(rows) else rows)
    return detections


# ---------------------------------------------------------------------------------------------
# The figures as a report (python -m multissd.evaluate)
# ---------------------------------------------------------------------------------------------

SUMMARY_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100", "voc07_map_50")


def per_class(result: dict, class_names) -> dict[str, dict[str, float]]:
    """Per class name: ``ap``, ``ap50``, ``voc07_ap50``, ``ar100`` -- every class of the model, -1 for
    one that neither the ground truth nor the detections contain."""
    ids = sorted({int(c) for c in result["classes"]} | set(range(len(class_names or []))))
    index = {int(c): k for k, c in enumerate(result["classes"])}
    keys = {"ap": "map_per_class", "ap50": "map_50_per_class", "voc07_ap50": "voc07_ap_50_per_class",
            "ar100": "mar_100_per_class"}
    return {class_name(class_names, c): {name: float(result[key][index[c]]) if c in index else -1.0
                                         for name, key in keys.items()} for c in ids}


def report(result: dict, class_names) -> str:
    """The summary and per-class table as text."""
    lines = ["mAP@[.5:.95] {map:.4f}   AP50 {map_50:.4f}   AP75 {map_75:.4f}   VOC07 AP50 {voc07_map_50:.4f}".format(**result),
             "AP small {map_small:.4f}   medium {map_medium:.4f}   large {map_large:.4f}   AR@100 {mar_100:.4f}".format(
                 **result), "", f"{'class':<16}{'AP':>8}{'AP50':>8}{'VOC07 AP50':>12}"]
    for name, figures in per_class(result, class_names).items():
        lines.append(f"{name:<16}{figures['ap']:>8.4f}{figures['ap50']:>8.4f}{figures['voc07_ap50']:>12.4f}")
    lines.append("(-1: no ground truth to measure it)")
    return "\n".join(lines)


def to_json(result: dict, class_names) -> dict:
    """The figures of :func:`mean_average_precision` as plain JSON (per-class AP keyed by class name)."""
    return {**{key: float(result[key]) for key in SUMMARY_KEYS}, "per_class": per_class(result, class_names)}
