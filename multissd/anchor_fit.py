"""Anchors fitted to a dataset's boxes, and how well a model's anchors cover them.

The book's TinySSD has anchors of 0.2 to 0.96 of the image: on the banana data every box has one at
IoU 0.5, but on photos of small things (BCCD's platelets are about 0.07 of the image) no anchor
overlaps a box enough for matching to label it, and the model never learns the class. SSD picks
its scales by hand; YOLOv2 fits its anchor shapes to the training boxes (k-means, IoU distance).
multissd keeps TinySSD's layout -- per feature map two sizes and three ratios, ``K = 4`` anchors a
cell -- and fits the numbers:

- each training box goes to the coarsest feature map whose cells are at most a third of the box's
  size (``sqrt(w h)``, normalised to the square image the model sees): an anchor centred in the
  nearest cell is then at most a sixth of the box off, and a box-shaped anchor there overlaps the box
  at IoU 0.53 or more; boxes smaller than three cells of the finest map go to the finest;
- a map's two sizes are the centres of its boxes' sizes split in two groups (k-means on the log
  size: a map that gets BCCD's red cells and its platelets anchors both), the larger group's first;
  its three ratios the median of the boxes' aspect ratios and the quartiles around it (the median
  first); a map no box went to takes sizes 1.6 times its finer neighbour's (or a coarser
  neighbour's / 1.6), as the book's grow.

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


def box_shapes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The objects of ``labels`` ``(N, G, 5)`` (normalised corners, class ``-1`` for padding):
    ``(wh float64 (n, 2), classes int (n,))``."""
    rows = labels.reshape(-1, 5)
    rows = rows[rows[:, 0] >= 0]
    wh = np.stack([rows[:, 3] - rows[:, 1], rows[:, 4] - rows[:, 2]], axis=1).astype(np.float64)
    return np.maximum(wh, 1e-6), rows[:, 0].astype(int)


def fit_anchors(labels: np.ndarray, spec, image_size: tuple[int, int]) -> tuple[tuple[tuple[float, ...], ...],
                                                                              tuple[tuple[float, ...], ...]]:
    """``(sizes, ratios)`` for ``spec``'s scales at ``image_size`` ``(H, W)``, fitted to the training
    labels ``(N, G, 5)`` (see the module docstring): each scale two sizes and three ratios, rounded to
    three decimals."""
    wh, _ = box_shapes(labels)
    if len(wh) == 0:
        raise InputError("The training data has no boxes to fit anchors to")
    scale = np.sqrt(wh[:, 0] * wh[:, 1])                                           # (n,)
    aspect = np.log(wh[:, 0] / wh[:, 1])                                           # (n,) log(w / h)
    cells = np.array([1.0 / max(h, w) for h, w in spec.feature_map_sizes(*image_size)])  # (S,) a cell's size
    fits = cells[None, :] <= scale[:, None] / 3                                    # (n, S)
    home = np.where(fits.any(axis=1), np.where(fits, np.arange(len(cells)), -1).max(axis=1), 0)  # (n,)
    sizes, ratios = [None] * len(cells), [None] * len(cells)
    for i in range(len(cells)):
        mine = home == i
        if mine.any():
            sizes[i] = _two_sizes(np.log(scale[mine]))
            q25, q50, q75 = np.quantile(aspect[mine], [0.25, 0.5, 0.75])
            spread = max(q75 - q50, q50 - q25, np.log(1.5))  # at least 1.5x apart, so the three differ
            ratios[i] = tuple(np.exp([q50, q50 + spread, q50 - spread]))
    _fill_empty_scales(sizes, ratios)
    return (tuple(tuple(round(float(v), 3) for v in pair) for pair in sizes),
            tuple(tuple(round(float(v), 3) for v in rr) for rr in ratios))


def _two_sizes(log_sizes: np.ndarray, iterations: int = 25) -> tuple[float, float]:
    """Two anchor sizes for boxes of ``log_sizes`` (natural log): the centres of a 1-D k-means in two
    groups, the more populous group's first; at least 1.15x apart."""
    centres = np.quantile(log_sizes, [0.2, 0.8])
    for _ in range(iterations):
        nearer_second = np.abs(log_sizes - centres[1]) < np.abs(log_sizes - centres[0])   # (m,)
        for k, members in enumerate((~nearer_second, nearer_second)):
            if members.any():
                centres[k] = log_sizes[members].mean()
    counts = [int((~nearer_second).sum()), int(nearer_second.sum())]
    first, second = (0, 1) if counts[0] >= counts[1] else (1, 0)
    big, small = np.exp(centres[first]), np.exp(centres[second])
    if abs(np.log(big / small)) < np.log(1.15):
        small = big * 1.15
    return float(big), float(small)


def _fill_empty_scales(sizes: list, ratios: list, growth: float = 1.6) -> None:
    """Give the scales no box went to sizes that grow ``growth`` times a scale from their nearest
    fitted neighbours, and their ratios; in place."""
    fitted = [i for i, pair in enumerate(sizes) if pair is not None]
    for i in range(len(sizes)):
        if sizes[i] is None:
            near = min(fitted, key=lambda j: (abs(j - i), -j))
            factor = growth ** (i - near)
            sizes[i] = tuple(min(v * factor, 1.0) for v in sizes[near])
            ratios[i] = ratios[near]


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


def fitted_spec(spec, labels: np.ndarray, image_size: tuple[int, int]):
    """``spec`` with its sizes and ratios fitted to ``labels`` at ``image_size`` (:func:`fit_anchors`)."""
    sizes, ratios = fit_anchors(labels, spec, image_size)
    return dataclasses.replace(spec, sizes=sizes, ratios=ratios)
