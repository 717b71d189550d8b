"""Mean average precision the way the papers report it: COCO's mAP (as pycocotools computes it) and
the 11-point VOC2007 AP@0.5 of the SSD paper.

Pure NumPy and backend-independent. Inputs follow torchmetrics' ``MeanAveragePrecision``: one dict per
image, ``preds[i] = {"boxes": (N, 4), "scores": (N,), "labels": (N,)}`` and
``targets[i] = {"boxes": (M, 4), "labels": (M,)}`` with optional ``"iscrowd"`` (M,) (a COCO crowd
region: a detection inside it is ignored, and it may absorb several), ``"difficult"`` (M,) (a VOC
difficult object: excluded from AP; for the COCO figures it is treated as a crowd region, which is
what converting VOC to COCO with ``iscrowd = difficult`` gives) and ``"area"`` (M,) (the annotation's
area, used for the small/medium/large ranges; default: the box's width x height).

The COCO evaluation follows ``pycocotools.cocoeval.COCOeval`` step by step (the greedy matching by
descending score per image and class, the ignore rules, the area ranges with inclusive bounds, 100
detections per image and class, the 101-point interpolated precision), vectorised over images,
classes and IoU thresholds; the tests hold it to pycocotools within 1e-6. Areas are in the units of
the boxes: the ranges (32**2, 96**2) assume pixels.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from multissd.errors import InputError, InputTypeError
from multissd.registry import to_host

__all__ = ["COCO_IOU_THRESHOLDS", "RECALL_THRESHOLDS", "MAX_DETECTIONS", "AREA_RANGES",
           "mean_average_precision"]

# Exactly as pycocotools builds them (np.linspace), so that 0.5 and 0.75 compare equal.
COCO_IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
MAX_DETECTIONS = (1, 10, 100)
AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
               "large": (96.0 ** 2, 1e5 ** 2)}
UNMATCHED = -1  # sentinel of a detection matched to no ground-truth box
_NO_VALUE = -1.0  # pycocotools' "not defined" (no ground truth in that class/area)


def _array(d: dict, key: str, where: str, dtype, shape_tail=(), required=True, n=None):
    if key not in d:
        if required:
            raise InputError(f"{where} has no {key!r}; expected a dict with 'boxes', 'labels'"
                             + (" and 'scores'" if where.startswith("preds") else ""))
        return None
    value = np.asarray(to_host(d[key]))  # torch and paddle tensors too
    if value.size == 0:
        value = value.reshape((0, *shape_tail))
    if value.ndim != 1 + len(shape_tail) or value.shape[1:] != tuple(shape_tail):
        expected = "(N, 4)" if shape_tail else "(N,)"
        raise InputError(f"{where}[{key!r}] must have shape {expected}; received shape {list(value.shape)}")
    if n is not None and len(value) != n:
        raise InputError(f"{where}[{key!r}] has {len(value)} entries but {where}['boxes'] has {n}")
    if dtype is np.int64 and value.size and not np.issubdtype(value.dtype, np.integer):
        if not np.issubdtype(value.dtype, np.floating) or not np.all(value == np.round(value)):
            raise InputTypeError(f"{where}[{key!r}] must hold integer class ids; received {value.dtype}")
    value = value.astype(dtype)
    if dtype is np.float64 and not np.isfinite(value).all():
        i = int(np.argmin(np.isfinite(value).reshape(len(value), -1).all(axis=1)))
        raise InputError(f"{where}[{key!r}] has a non-finite value (nan or inf) at index {i}")
    return value


def _to_xywh(boxes: np.ndarray, box_format: str, where: str) -> np.ndarray:
    """float64 ``(N, 4)`` boxes in ``box_format`` -> COCO's ``(x, y, w, h)``, as pycocotools receives them."""
    if box_format == "xyxy":
        x1, y1, x2, y2 = boxes.T
        boxes = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
    elif box_format == "cxcywh":
        cx, cy, w, h = boxes.T
        boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    if len(boxes) and ((boxes[:, 2] < 0) | (boxes[:, 3] < 0)).any():
        i = int(np.argmax((boxes[:, 2] < 0) | (boxes[:, 3] < 0)))
        raise InputError(f"{where}['boxes'] has a box of negative width or height at index {i}; "
                         f"expected {box_format} boxes with xmax >= xmin and ymax >= ymin")
    return boxes


class _Flat:
    """Every image's boxes concatenated: ``image`` (N,), ``boxes`` xywh (N, 4) float64, ``labels`` (N,)."""

    def __init__(self, items, kind: str, box_format: str):
        images, boxes, labels, scores, crowd, difficult, area = [], [], [], [], [], [], []
        for i, item in enumerate(items):
            where = f"{kind}[{i}]"
            if not isinstance(item, dict):
                raise InputTypeError(f"{where} must be a dict of arrays; received {type(item).__name__}")
            b = _to_xywh(_array(item, "boxes", where, np.float64, (4,)), box_format, where)
            n = len(b)
            labels.append(_array(item, "labels", where, np.int64, n=n))
            if kind == "preds":
                scores.append(_array(item, "scores", where, np.float64, n=n))
            else:
                c = _array(item, "iscrowd", where, np.int64, required=False, n=n)
                d = _array(item, "difficult", where, np.int64, required=False, n=n)
                a = _array(item, "area", where, np.float64, required=False, n=n)
                crowd.append(np.zeros(n, bool) if c is None else c != 0)
                difficult.append(np.zeros(n, bool) if d is None else d != 0)
                area.append(b[:, 2] * b[:, 3] if a is None else a)
            boxes.append(b)
            images.append(np.full(n, i, np.int64))
        cat = (lambda parts, tail=(): np.concatenate(parts) if parts else np.zeros((0, *tail)))
        self.image = cat(images).astype(np.int64)
        self.boxes = cat(boxes, (4,)).reshape(-1, 4)
        self.labels = cat(labels).astype(np.int64)
        if kind == "preds":
            self.scores = cat(scores)
            self.area = self.boxes[:, 2] * self.boxes[:, 3]
        else:
            self.difficult = cat(difficult).astype(bool)
            self.crowd = cat(crowd).astype(bool) | self.difficult
            self.area = cat(area)

    def take(self, order):
        for name in ("image", "boxes", "labels", "scores", "crowd", "difficult", "area"):
            if hasattr(self, name):
                setattr(self, name, getattr(self, name)[order])


def _coco_iou(det: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' ``bbIou`` for pairs: xywh ``det`` (P, 4), ``gt`` (P, 4), ``crowd`` (P,) -> (P,) float64.

    Intersection over union, or over the detection's area for a crowd region; 0 when the boxes do
    not overlap with a positive width and height (so two zero-area boxes give 0, not NaN)."""
    w = np.minimum(det[:, 2] + det[:, 0], gt[:, 2] + gt[:, 0]) - np.maximum(det[:, 0], gt[:, 0])
    h = np.minimum(det[:, 3] + det[:, 1], gt[:, 3] + gt[:, 1]) - np.maximum(det[:, 1], gt[:, 1])
    overlap = (w > 0) & (h > 0)
    inter = np.where(overlap, w * h, 0.0)
    det_area = det[:, 2] * det[:, 3]
    union = np.where(crowd, det_area, det_area + gt[:, 2] * gt[:, 3] - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=overlap)


def _group_starts(keys: np.ndarray, groups: np.ndarray):
    """Start and count of each of ``groups`` (sorted unique keys) in the sorted array ``keys``."""
    start = np.searchsorted(keys, groups, side="left")
    return start, np.searchsorted(keys, groups, side="right") - start


def _match(iou, pair_start, d_start, d_count, g_start, g_count, gt_ignore, gt_crowd, thresholds, n_det, n_gt):
    """pycocotools' greedy matching, for every (image, class) group and IoU threshold at once.

    Detections of a group are taken in descending score; each takes, among the ground-truth boxes
    still free (crowd regions are never used up) with IoU >= threshold, the regular one of highest
    IoU, else the ignored one of highest IoU; ties go to the later box, as in pycocotools' loop.
    ``iou`` holds each group's (detections x boxes) block row-major from ``pair_start`` (groups,);
    only the first ``d_count`` (groups,) detections of a group take part. Returns ``matched`` (T, n_det) int64, the index of the matched box or :data:`UNMATCHED`.
    """
    T = len(thresholds)
    limit = np.minimum(thresholds, 1 - 1e-10)[:, None, None]  # (T, 1, 1), pycocotools' min([t, 1-1e-10])
    matched = np.full((T, n_det), UNMATCHED, np.int64)
    used = np.zeros((T, n_gt), bool)
    both = (d_count > 0) & (g_count > 0)
    for rank in range(int(d_count[both].max()) if both.any() else 0):
        active = np.flatnonzero(both & (d_count > rank))
        ng = g_count[active]
        width = int(ng.max())
        column = np.arange(width)
        valid = column[None, :] < ng[:, None]  # (A, G)
        gt_index = np.where(valid, g_start[active, None] + column, 0)  # (A, G)
        pair = np.where(valid, pair_start[active, None] + rank * ng[:, None] + column, 0)
        overlap = np.where(valid, iou[pair], -np.inf)  # (A, G)
        free = valid[None] & (~used[:, gt_index] | gt_crowd[gt_index][None])  # (T, A, G)
        candidate = free & (overlap[None] >= limit)
        ignored = gt_ignore[gt_index][None]
        regular = candidate & ~ignored
        pick = np.where(regular.any(axis=2, keepdims=True), regular, candidate & ignored)  # (T, A, G)
        score = np.where(pick, overlap[None], -np.inf)
        last_best = width - 1 - np.argmax(score[..., ::-1], axis=2)  # (T, A): the last of the highest
        found = pick.any(axis=2)
        det = d_start[active] + rank  # (A,)
        t_idx, a_idx = np.nonzero(found)
        chosen = gt_index[a_idx, last_best[t_idx, a_idx]]
        matched[t_idx, det[a_idx]] = chosen
        used[t_idx, chosen] = True
    return matched


def mean_average_precision(preds: Sequence[dict[str, np.ndarray]], targets: Sequence[dict[str, np.ndarray]],
                           iou_thresholds: Sequence[float] | None = None, box_format: str = "xyxy") -> dict:
    """COCO mAP (as pycocotools) and VOC2007 11-point AP@0.5 of detections against ground truth.

    Args:
        preds: list (one per image) of dicts with NumPy (or torch/paddle) ``boxes`` (N, 4) float,
            ``scores`` (N,) float and ``labels`` (N,) int.
        targets: list (same length) of dicts with ``boxes`` (M, 4) and ``labels`` (M,) int, optional
            ``iscrowd`` (M,), ``difficult`` (M,) and ``area`` (M,) (see the module docstring).
        iou_thresholds: IoU thresholds for the COCO figures (default COCO's 0.5:0.05:0.95).
        box_format: ``"xyxy"`` (default), ``"xywh"`` or ``"cxcywh"``.

    Returns:
        dict of floats: ``map`` (mAP@[.5:.95], 101-point interpolation, 100 detections per image and
        class), ``map_50``, ``map_75``, ``map_small``, ``map_medium``, ``map_large``, ``mar_1``,
        ``mar_10``, ``mar_100``, ``mar_small``, ``mar_medium``, ``mar_large``, ``voc07_map_50``; and
        ``classes`` (K,) int64 (every label seen in targets or preds, sorted), ``map_per_class``,
        ``map_50_per_class``, ``mar_100_per_class`` (K,) float64, ``voc07_ap_50_per_class`` (K,),
        ``precision`` (T, 101, K, 4, 3) and ``recall`` (T, K, 4, 3) as pycocotools' ``eval``
        (areas all/small/medium/large; max detections 1/10/100). As pycocotools, a figure without
        ground truth to measure it is -1 and is left out of the means.
    """
    thresholds = _check_inputs(preds, targets, iou_thresholds, box_format)
    evaluation = _evaluate(_Flat(preds, "preds", box_format), _Flat(targets, "targets", box_format), thresholds)
    precision, recall = _accumulate(evaluation)
    return _summarize(evaluation, precision, recall)


def _check_inputs(preds, targets, iou_thresholds, box_format) -> np.ndarray:
    """``TypeError``/``ValueError`` for malformed arguments; returns the IoU thresholds (T,) float64."""
    if not isinstance(preds, (list, tuple)) or not isinstance(targets, (list, tuple)):
        raise InputTypeError("preds and targets must be lists of dicts, one per image; received "
                        f"{type(preds).__name__} and {type(targets).__name__}")
    if len(preds) != len(targets):
        raise InputError(f"preds has {len(preds)} images but targets has {len(targets)}; expected one of each per image")
    if box_format not in ("xyxy", "xywh", "cxcywh"):
        raise InputError(f"box_format must be one of 'xyxy', 'xywh', 'cxcywh'; received {box_format!r}")
    thresholds = COCO_IOU_THRESHOLDS if iou_thresholds is None else np.asarray(iou_thresholds, np.float64).ravel()
    if thresholds.size == 0 or not np.all((thresholds >= 0) & (thresholds <= 1)):
        raise InputError(f"iou_thresholds must be a non-empty list of values in [0, 1]; received {iou_thresholds!r}")
    return thresholds


@dataclass
class _Evaluation:
    """What pycocotools' ``evaluate()`` leaves for ``accumulate()``: detections and boxes grouped by
    (image, class), their pairwise IoU, and per area range the matches at every IoU threshold."""

    det: _Flat                # detections, sorted by (image, class), descending score within a group
    gt: _Flat                 # boxes, sorted by (image, class)
    thresholds: np.ndarray    # (T,)
    classes: np.ndarray       # (K,) every label seen, sorted
    det_class: np.ndarray     # (n_det,) class index
    gt_class: np.ndarray      # (n_gt,) class index
    rank: np.ndarray          # (n_det,) rank of a detection in its (image, class) group
    by_class: np.ndarray      # detection indices in accumulation order, the 100 best per group only
    class_bounds: np.ndarray  # (K + 1,) where each class's run starts in by_class
    iou: np.ndarray           # (P,) IoU of each (detection, box) pair of a group, row-major per group
    boxes_per_det: np.ndarray  # (n_det,) pairs of each detection
    det_of_pair: np.ndarray   # (P,)
    gt_of_pair: np.ndarray    # (P,)
    matched: list             # per area range: (T, n_det) index of the matched box or UNMATCHED
    det_ignore: list          # per area range: (T, n_det) bool
    regular_gt: list          # per area range: (K,) boxes that count per class


def _evaluate(det: _Flat, gt: _Flat, thresholds: np.ndarray) -> _Evaluation:
    """pycocotools' ``evaluate()``: group by (image, class), the IoU of every pair in a group, and the
    greedy matching per area range and IoU threshold."""
    classes = np.union1d(det.labels, gt.labels).astype(np.int64)
    K = len(classes)
    # Group by (image, class): detections by descending score (stable), boxes in their given order.
    det_key = det.image * max(K, 1) + np.searchsorted(classes, det.labels)
    det.take(np.lexsort((np.arange(len(det_key)), -det.scores, det_key)))
    det_key = np.sort(det_key, kind="stable")
    gt_key = gt.image * max(K, 1) + np.searchsorted(classes, gt.labels)
    order = np.argsort(gt_key, kind="stable")
    gt.take(order)
    gt_key = gt_key[order]
    groups = np.union1d(det_key, gt_key)
    d_start, d_all = _group_starts(det_key, groups)
    g_start, g_count = _group_starts(gt_key, groups)
    rank = np.arange(len(det_key)) - np.repeat(d_start, d_all)  # rank of each detection in its group
    d_count = np.minimum(d_all, MAX_DETECTIONS[-1])  # pycocotools keeps the 100 best per image and class
    # IoU of every (detection, box) pair of a group, row-major per group: (sum of d x g,)
    pair_start = np.cumsum(d_all * g_count) - d_all * g_count  # (groups,)
    boxes_per_det = np.repeat(g_count, d_all)  # (n_det,)
    det_of_pair = np.repeat(np.arange(len(det_key)), boxes_per_det)
    gt_of_pair = np.repeat(np.repeat(g_start, d_all), boxes_per_det) + _ranks(boxes_per_det)
    iou = _coco_iou(det.boxes[det_of_pair], gt.boxes[gt_of_pair], gt.crowd[gt_of_pair])
    det_class, gt_class = np.searchsorted(classes, det.labels), np.searchsorted(classes, gt.labels)
    # Detections of each class in pycocotools' accumulation order: descending score, then image, then rank.
    by_class = np.lexsort((rank, det.image, -det.scores, det_class))
    by_class = by_class[rank[by_class] < MAX_DETECTIONS[-1]]
    evaluation = _Evaluation(det, gt, thresholds, classes, det_class, gt_class, rank, by_class,
                             np.searchsorted(det_class[by_class], np.arange(K + 1)), iou, boxes_per_det, det_of_pair,
                             gt_of_pair, [], [], [])
    for low, high in AREA_RANGES.values():
        gt_ignore = gt.crowd | (gt.area < low) | (gt.area > high)
        matched = _match(iou, pair_start, d_start, d_count, g_start, g_count, gt_ignore, gt.crowd, thresholds,
                         len(det_key), len(gt_key))
        outside = ((det.area < low) | (det.area > high))[None]  # (1, n_det)
        evaluation.matched.append(matched)
        evaluation.det_ignore.append(np.where(matched >= 0, np.append(gt_ignore, False)[matched], outside))
        evaluation.regular_gt.append(np.bincount(gt_class[~gt_ignore], minlength=K))
    return evaluation


def _accumulate(ev: _Evaluation) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' ``accumulate()``: ``precision`` (T, 101, K, 4, 3) at the recall thresholds and
    ``recall`` (T, K, 4, 3), per class, area range and detection limit (-1 where not defined)."""
    T, K = len(ev.thresholds), len(ev.classes)
    precision = np.full((T, len(RECALL_THRESHOLDS), K, len(AREA_RANGES), len(MAX_DETECTIONS)), _NO_VALUE)
    recall = np.full((T, K, len(AREA_RANGES), len(MAX_DETECTIONS)), _NO_VALUE)
    for a in range(len(AREA_RANGES)):
        for k in np.flatnonzero(ev.regular_gt[a]):
            members = ev.by_class[ev.class_bounds[k]:ev.class_bounds[k + 1]]
            for m, limit in enumerate(MAX_DETECTIONS):
                chosen = members[ev.rank[members] < limit]
                if not chosen.size:
                    recall[:, k, a, m] = precision[:, :, k, a, m] = 0.0
                    continue
                hit, skip = ev.matched[a][:, chosen] >= 0, ev.det_ignore[a][:, chosen]
                tp = np.cumsum(hit & ~skip, axis=1, dtype=np.float64)  # (T, n)
                fp = np.cumsum(~hit & ~skip, axis=1, dtype=np.float64)
                rc = tp / ev.regular_gt[a][k]
                pr = tp / (fp + tp + np.spacing(1))
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # precision envelope
                recall[:, k, a, m] = rc[:, -1]
                for t in range(T):  # precision at recall 0, 0.01, ..., 1 (0 beyond the highest recall)
                    at = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
                    precision[t, :, k, a, m] = np.where(at < len(chosen), pr[t, np.minimum(at, len(chosen) - 1)], 0.0)
    return precision, recall


def _mean(values: np.ndarray) -> float:
    """The mean of the defined values (> -1), or -1 when none is."""
    values = values[values > -1]
    return float(np.mean(values)) if values.size else _NO_VALUE


def _summarize(ev: _Evaluation, precision: np.ndarray, recall: np.ndarray) -> dict:
    """pycocotools' ``summarize()`` as a dict (see :func:`mean_average_precision`), with the VOC2007
    11-point AP@0.5 of the same detections."""
    where = np.flatnonzero(np.isclose(ev.thresholds, 0.5, rtol=0, atol=1e-12))
    at_50 = precision[where] if where.size else precision[:0]
    where = np.flatnonzero(np.isclose(ev.thresholds, 0.75, rtol=0, atol=1e-12))
    at_75 = precision[where] if where.size else precision[:0]
    last, K = len(MAX_DETECTIONS) - 1, len(ev.classes)
    result = {
        "map": _mean(precision[:, :, :, 0, last]), "map_50": _mean(at_50[:, :, :, 0, last]),
        "map_75": _mean(at_75[:, :, :, 0, last]), "map_small": _mean(precision[:, :, :, 1, last]),
        "map_medium": _mean(precision[:, :, :, 2, last]), "map_large": _mean(precision[:, :, :, 3, last]),
        "mar_1": _mean(recall[:, :, 0, 0]), "mar_10": _mean(recall[:, :, 0, 1]), "mar_100": _mean(recall[:, :, 0, last]),
        "mar_small": _mean(recall[:, :, 1, last]), "mar_medium": _mean(recall[:, :, 2, last]),
        "mar_large": _mean(recall[:, :, 3, last]),
    }
    # The VOC devkit: ordinary IoU for every box (crowd regions count as difficult), all detections.
    det, gt = ev.det, ev.gt
    plain = ev.iou.copy()
    crowd_pairs = np.flatnonzero(gt.crowd[ev.gt_of_pair])
    plain[crowd_pairs] = _coco_iou(det.boxes[ev.det_of_pair[crowd_pairs]], gt.boxes[ev.gt_of_pair[crowd_pairs]],
                                   np.zeros(len(crowd_pairs), bool))
    voc = _voc07(plain, ev.boxes_per_det, ev.gt_of_pair, ev.det_class, det.scores, ev.gt_class, gt.crowd, K)
    result.update(voc07_map_50=_mean(voc), classes=ev.classes,
                  map_per_class=np.array([_mean(precision[:, :, k, 0, last]) for k in range(K)]),
                  map_50_per_class=np.array([_mean(at_50[:, :, k, 0, last]) for k in range(K)]),
                  mar_100_per_class=np.array([_mean(recall[:, k, 0, last]) for k in range(K)]),
                  voc07_ap_50_per_class=voc, precision=precision, recall=recall, iou_thresholds=ev.thresholds)
    return result


def _ranks(counts: np.ndarray) -> np.ndarray:
    """``[0..c0-1, 0..c1-1, ...]`` for ``counts`` (n,) int -> (sum,) int64."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


def _voc07(iou, boxes_per_det, gt_of_pair, det_class, scores, gt_class, gt_ignore, K: int,
           iou_threshold: float = 0.5) -> np.ndarray:
    """The 11-point AP of the VOC2007 devkit per class, (K,) float64 (-1 for a class without ground truth).

    Detections of a class in descending score (stable) each take the box of highest IoU in their
    image (the first on ties). A hit (IoU > 0.5, strictly, as the devkit) on a box not yet found is a
    true positive, on a found one a false positive, on an ignored (difficult) one neither; anything
    else is a false positive. Precision is read at recall 0, 0.1, ..., 1. ``iou`` (P,) is laid out
    per detection, ``boxes_per_det`` (n_det,) entries each, against the boxes ``gt_of_pair`` (P,).
    IoU without the devkit's +1 pixel, so that normalised boxes work too."""
    n_det = len(boxes_per_det)
    best_box = np.full(n_det, -1, np.int64)
    best_iou = np.zeros(n_det)
    has = boxes_per_det > 0
    if has.any():
        starts = (np.cumsum(boxes_per_det) - boxes_per_det)[has]
        best_iou[has] = np.maximum.reduceat(iou, starts)
        position = np.where(iou == np.repeat(best_iou, boxes_per_det), np.arange(len(iou)), len(iou))
        best_box[has] = gt_of_pair[np.minimum.reduceat(position, starts)]
    hit = best_iou > iou_threshold
    box = np.where(hit, best_box, -1)
    result = np.full(K, _NO_VALUE)
    order = np.lexsort((np.arange(n_det), -scores, det_class))
    bounds = np.searchsorted(det_class[order], np.arange(K + 1))
    positives = np.bincount(gt_class[~gt_ignore], minlength=K)
    for k in range(K):
        if positives[k] == 0:
            continue
        dets = order[bounds[k]:bounds[k + 1]]
        ignored = hit[dets] & gt_ignore[np.maximum(box[dets], 0)]
        dets = dets[~ignored]
        first = np.zeros(len(dets), bool)  # the first (best-scored) hit on each box is the true positive
        hits = np.flatnonzero(hit[dets])
        _, first_of_box = np.unique(box[dets[hits]], return_index=True)
        first[hits[first_of_box]] = True
        tp = np.cumsum(first, dtype=np.float64)
        fp = np.cumsum(~first, dtype=np.float64)
        rec = tp / positives[k]
        prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        points = [prec[rec >= t].max() if np.any(rec >= t) else 0.0 for t in np.arange(0.0, 1.1, 0.1)]
        result[k] = float(np.sum(points) / 11.0)
    return result
