"""Anchors fitted to a dataset's boxes, and how well a model's anchors cover them.

The book's TinySSD has anchors of 0.2 to 0.96 of the image: on the banana data every box has one at
IoU 0.5, but on photos of small things (BCCD's platelets are about 0.07 of the image) no anchor
overlaps a box enough for matching to label it, and the model never learns the class. SSD picks
its scales by hand; YOLOv2 fits its anchor shapes to the training boxes (k-means, IoU distance).
multissd keeps TinySSD's layout -- per feature map two sizes and three ratios, ``K = 4`` anchors a
cell -- and fits the numbers:

- the sizes: the smallest scale's first size is a low quantile of the boxes' sizes (``sqrt(w h)``,
  normalised to the square image the model sees), the largest scale's a high one, the scales in
  between geometric, as the book's are linear; each scale's second size ``sqrt(s_i s_{i+1})``, as
  the book's;
- the ratios: per scale, the median aspect ratio of the boxes nearest that scale's size, and the
  quartiles of the log ratio (three ratios, the median first).

:func:`coverage` says, per class, which share of the training boxes has an anchor at IoU >= 0.5 --
the boxes that matching can label by threshold (every box still gets its best anchor forced, but
one anchor of IoU 0.2 teaches little). Training prints it at the start of each run and fits the
anchors of a photo folder when the book's leave more than 10% of the boxes (30% of a class)
uncovered.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from multissd.backends.numpy import boxes as ref
from multissd.errors import InputError

__all__ = ["fit_anchors", "coverage", "box_shapes", "needs_fitting", "MIN_COVERED", "MIN_CLASS_COVERED"]

MIN_COVERED = 0.9        # the book's anchors are kept when they cover at least 90% of the boxes ...
MIN_CLASS_COVERED = 0.7  # ... and 70% of every class's
_LOW, _HIGH = 0.02, 0.98  # the quantiles of the box sizes the smallest and largest scales take


def box_shapes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The objects of ``labels`` ``(N, G, 5)`` (normalised corners, class ``-1`` for padding):
    ``(wh float64 (n, 2), classes int (n,))``."""
    rows = labels.reshape(-1, 5)
    rows = rows[rows[:, 0] >= 0]
    wh = np.stack([rows[:, 3] - rows[:, 1], rows[:, 4] - rows[:, 2]], axis=1).astype(np.float64)
    return np.maximum(wh, 1e-6), rows[:, 0].astype(int)


def fit_anchors(labels: np.ndarray, num_scales: int) -> tuple[tuple[tuple[float, ...], ...],
                                                                tuple[tuple[float, ...], ...]]:
    """``(sizes, ratios)`` for a model of ``num_scales`` scales fitted to the training labels
    ``(N, G, 5)`` (see the module docstring): each scale two sizes and three ratios, rounded to
    three decimals."""
    wh, _ = box_shapes(labels)
    if len(wh) == 0:
        raise InputError("The training data has no boxes to fit anchors to")
    scale = np.sqrt(wh[:, 0] * wh[:, 1])                                           # (n,)
    aspect = np.log(wh[:, 0] / wh[:, 1])                                           # (n,) log(w / h)
    low, high = np.quantile(scale, [_LOW, _HIGH])
    high = max(high, low * 1.05)
    steps = np.arange(num_scales + 1) / max(num_scales - 1, 1)
    levels = low * (high / low) ** steps                                           # (S + 1,) geometric
    sizes, ratios = [], []
    for i in range(num_scales):
        sizes.append((round(float(levels[i]), 3), round(float(np.sqrt(levels[i] * levels[i + 1])), 3)))
        nearest = np.abs(np.log(scale) - np.log(levels[i])) <= np.log(high / low) / max(num_scales - 1, 1)
        chosen = aspect[nearest] if nearest.sum() >= 3 else aspect
        q25, q50, q75 = np.quantile(chosen, [0.25, 0.5, 0.75])
        spread = max(q75 - q25, np.log(1.5))  # at least 1.5x apart, so the three ratios differ
        ratios.append(tuple(round(float(np.exp(v)), 3) for v in (q50, q50 + spread, q50 - spread)))
    return tuple(sizes), tuple(ratios)


def coverage(spec, labels: np.ndarray, image_size: tuple[int, int], class_names) -> dict[str, float]:
    """Per class name (and ``"all"``), the share of the boxes of ``labels`` ``(N, G, 5)`` that have
    an anchor of ``spec`` (a :class:`~multissd.TinySSDSpec`) at IoU >= 0.5 for images of
    ``image_size`` ``(H, W)``."""
    anchors = _anchors(spec, image_size)                                           # (A, 4)
    covered = np.zeros(0, bool)
    classes = np.zeros(0, int)
    for label in labels:
        objects = label[label[:, 0] >= 0]
        if len(objects):
            best = ref.box_iou(objects[:, 1:].astype(np.float32), anchors).max(axis=1)  # (g,)
            covered = np.concatenate([covered, best >= 0.5])
            classes = np.concatenate([classes, objects[:, 0].astype(int)])
    shares = {"all": float(covered.mean()) if len(covered) else 1.0}
    for index, name in enumerate(class_names):
        mine = covered[classes == index]
        shares[str(name)] = float(mine.mean()) if len(mine) else 1.0
    return shares


def needs_fitting(shares: dict[str, float]) -> bool:
    """Whether anchors whose coverage is ``shares`` leave too many boxes without an anchor at IoU 0.5:
    more than 10% of all, or 30% of a class."""
    return shares["all"] < MIN_COVERED or min(shares.values()) < MIN_CLASS_COVERED


def _anchors(spec, image_size) -> np.ndarray:
    """Every anchor of ``spec`` for images of ``image_size``, float32 ``(A, 4)``."""
    height, width = image_size
    found = []
    for i, (h, w) in enumerate(spec.feature_map_sizes(height, width)):
        if spec.predicted(i):
            data = np.zeros((1, 1, h, w), np.float32)
            found.append(ref.multibox_prior(data, sizes=spec.sizes[i], ratios=spec.ratios[i])[0])
    return np.concatenate(found)


def fitted_spec(spec, labels: np.ndarray):
    """``spec`` with its sizes and ratios fitted to ``labels`` (:func:`fit_anchors`)."""
    sizes, ratios = fit_anchors(labels, spec.num_scales)
    return dataclasses.replace(spec, sizes=sizes, ratios=ratios)
