"""The box contract: anchors, IoU, matching, offsets, NMS and detection, written down once.

Each function below states its arguments, shapes, dtypes and conventions, and names the rule that
checks its arguments (:mod:`multissd.checks`). Calling it dispatches to the backend that owns the
tensors it receives: ``multissd/backends/<name>/boxes.py`` for ``numpy``, ``torch`` and ``paddle``
implement the same functions, with the same names and in the same order, in their framework's
idiom (like the book's framework tabs); see :mod:`multissd.dispatch`.

Letters used in shapes, everywhere in multissd:

- ``B`` batch size (images)
- ``A`` anchors per image (all scales together)
- ``G`` ground-truth rows per image (objects plus padding rows)
- ``C`` classes *including* background (class 0 is background)
- ``K`` anchors per feature-map location, ``K = len(sizes) + len(ratios) - 1``
- ``H``, ``W`` height and width of a feature map
- ``N``, ``M`` numbers of boxes in a plain list of boxes

Conventions:

- Boxes are ``(xmin, ymin, xmax, ymax)`` ("corner", ``xyxy``) unless a name says otherwise;
  anchors and labels use coordinates normalised to ``[0, 1]`` of the image.
- Anchors are ordered by feature-map location, row-major (``y`` then ``x``), and within a location:
  every size with ``ratios[0]``, then ``sizes[0]`` with ``ratios[1:]`` (the book's order).
- Labels are ``(B, G, 5)`` rows ``[class, xmin, ymin, xmax, ymax]``; class ``-1`` (:data:`PADDING`)
  marks a padding row, which is never matched to an anchor.
- IoU of two boxes whose union has zero area is 0, never NaN.
- Thresholds: an anchor is labelled by threshold when its IoU is ``>= iou_threshold``; NMS
  suppresses a box whose IoU with a kept box is ``> iou_threshold`` (equal is kept); a detection is
  kept when its score is ``>= pos_threshold``.
- Ties are broken by the lower index everywhere (sorting by score is stable).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from multissd import checks
from multissd.dispatch import Contract
from multissd.types import ArrayLike, Device, Tensor

BOXES = Contract("boxes")
"""The box contract: every backend's ``boxes.py`` implements :data:`CONTRACT` in this order."""
implements = BOXES.implements

# ---------------------------------------------------------------------------------------------
# Sentinels and hyper-parameters
# ---------------------------------------------------------------------------------------------

BACKGROUND = 0    # class index of background in class_labels and cls_probs
UNMATCHED = -1    # anchors_bbox_map value of an anchor that has no ground-truth box
PADDING = -1      # class value of a padding row in labels
NOT_DETECTED = -1  # class_id of a background row in multibox_detection's output

BOOK_POS_THRESHOLD = 0.009999999  # the book's default pos_threshold in multibox_detection
BOOK_NMS_THRESHOLD = 0.5          # the book's default nms_threshold in multibox_detection (class-agnostic NMS)


@dataclass(frozen=True)
class OffsetCoding:
    """How box offsets are encoded against anchors (the book's ``offset_boxes``/``offset_inverse``).

    ``offset_xy = center_scale * (c_gt - c_anchor) / wh_anchor``;
    ``offset_wh = size_scale * log(eps + wh_gt / wh_anchor)``. The defaults are the book's (its
    ``10 *``, ``5 *`` and ``eps=1e-6``), i.e. variances 0.1 and 0.2 of the SSD paper. On decoding,
    ``offset_wh / size_scale`` is clamped at ``max_log_scale`` (``log(1000/16)``, as torchvision's
    ``BoxCoder``) before ``exp``, so a wild prediction gives a big box, never ``inf``.
    """

    center_scale: float = 10.0
    size_scale: float = 5.0
    eps: float = 1e-6
    max_log_scale: float = math.log(1000.0 / 16)


BOOK_OFFSETS = OffsetCoding()

BOX_FORMATS = ("xyxy", "xywh", "cxcywh")

SOFT_NMS_METHODS = ("linear", "gaussian")
"""How ``soft_nms`` decays a score by its box's IoU with a kept box (MMCV's ``soft_nms`` methods)."""

# The detection libraries' SSD post-processing (torchvision's ``SSD``): the defaults of
# multibox_detection_per_class, and what prediction and evaluation use.
SCORE_THRESHOLD = 0.01       # a detection scores strictly more
NMS_THRESHOLD = 0.45         # IoU above which NMS suppresses within a class
TOPK_CANDIDATES = 400        # candidates per class before NMS
DETECTIONS_PER_IMAGE = 200   # the most detections kept per image


def anchor_shapes(sizes, ratios, in_height: int, in_width: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``K`` widths and heights of the anchors of one location, in NumPy: float32 ``(K,)`` each.

    Every size with ``ratios[0]``, then ``sizes[0]`` with ``ratios[1:]``; width ``s * sqrt(r)``
    scaled by ``in_height / in_width`` (so a ratio-1 anchor is square in pixels), height
    ``s / sqrt(r)``. Every backend's :func:`multibox_prior` takes its anchor shapes from here: the
    CPU ``sqrt`` of torch 2.13 and paddle 3.3 is not correctly rounded (1 ulp off for about 18% and
    45% of random float32 ratios, measured), and anchors must be bit-identical on every backend
    because matching compares IoUs exactly.
    """
    size_array = np.asarray(sizes, dtype=np.float32)                             # (n,)
    sqrt_ratios = np.sqrt(np.asarray(ratios, dtype=np.float32))                  # (m,)
    widths = np.concatenate((size_array * sqrt_ratios[0], size_array[0] * sqrt_ratios[1:]))  # (K,)
    heights = np.concatenate((size_array / sqrt_ratios[0], size_array[0] / sqrt_ratios[1:]))  # (K,)
    return widths * in_height / in_width, heights


def _box_convert_args(boxes, in_fmt, out_fmt):
    """The argument rule of :func:`box_convert`: formats from :data:`BOX_FORMATS`, boxes ``(..., 4)``."""
    checks.box_format(in_fmt, "in_fmt", BOX_FORMATS)
    checks.box_format(out_fmt, "out_fmt", BOX_FORMATS)
    checks.box_shape(boxes, "boxes", ndim=None)


def _soft_nms_args(boxes, scores, iou_threshold, sigma, min_score, method):
    """The argument rule of :func:`soft_nms`: the inputs of :func:`nms`, ``sigma > 0``,
    ``min_score >= 0``, a method of :data:`SOFT_NMS_METHODS`."""
    return checks.soft_nms_args(boxes, scores, iou_threshold, sigma, min_score, method, SOFT_NMS_METHODS)


# ---------------------------------------------------------------------------------------------
# Moving data in and out
# ---------------------------------------------------------------------------------------------

@BOXES.on_active()
def asarray(x: ArrayLike, dtype: str | None = None) -> Tensor:
    """A tensor of the *active* backend holding the data of ``x``.

    Args:
        x: a NumPy array, nested list or scalar (any shape).
        dtype: optional dtype name such as ``"float32"`` or ``"int64"`` (or a NumPy dtype); by
            default the dtype of ``np.asarray(x)``.

    Returns:
        ``numpy.ndarray`` / ``torch.Tensor`` / ``paddle.Tensor`` of the same shape.
    """


@BOXES.on_tensors()
def to_numpy(x: Tensor) -> np.ndarray:
    """A ``numpy.ndarray`` with the data of ``x``, a tensor of any backend (same shape and dtype;
    torch/paddle tensors are detached and moved to the host)."""


@BOXES.on_tensors()
def on_host(x: Tensor) -> bool:
    """Whether the numbers of ``x``, a tensor of any backend, are in host (CPU) memory, where the
    argument checks can read them without copying from an accelerator and waiting for it."""


# ---------------------------------------------------------------------------------------------
# Boxes
# ---------------------------------------------------------------------------------------------

@BOXES.on_tensors(checks.boxes_args)
def box_corner_to_center(boxes: Tensor) -> Tensor:
    """Convert boxes from ``(xmin, ymin, xmax, ymax)`` to ``(cx, cy, w, h)``.

    Args:
        boxes: float tensor ``(..., 4)``, usually ``(N, 4)``.

    Returns:
        tensor of the same shape and dtype.
    """


@BOXES.on_tensors(checks.boxes_args)
def box_center_to_corner(boxes: Tensor) -> Tensor:
    """Convert boxes from ``(cx, cy, w, h)`` to ``(xmin, ymin, xmax, ymax)``.

    Args:
        boxes: float tensor ``(..., 4)``.

    Returns:
        tensor of the same shape and dtype.
    """


@BOXES.on_tensors(_box_convert_args)
def box_convert(boxes: Tensor, in_fmt: str, out_fmt: str) -> Tensor:
    """Convert boxes between the formats ``"xyxy"`` (corners), ``"xywh"`` (top-left corner, width,
    height) and ``"cxcywh"`` (centre, width, height).

    Args:
        boxes: float tensor ``(..., 4)`` in ``in_fmt``.
        in_fmt, out_fmt: one of :data:`BOX_FORMATS`; anything else raises ``ValueError``.

    Returns:
        tensor ``(..., 4)`` of the same dtype, in ``out_fmt``.
    """


@BOXES.on_tensors(checks.box_area_args)
def box_area(boxes: Tensor) -> Tensor:
    """Areas of ``(xmin, ymin, xmax, ymax)`` boxes.

    Args:
        boxes: tensor ``(N, 4)`` with ``xmin <= xmax`` and ``ymin <= ymax``.

    Returns:
        tensor ``(N,)``; float16/bfloat16/integer boxes give float32 areas (no overflow), float32 and
        float64 keep their dtype.
    """


@BOXES.on_tensors(checks.prior_args)
def multibox_prior(data: Tensor, sizes: Sequence[float], ratios: Sequence[float]) -> Tensor:
    """Anchor boxes centred on every pixel of a feature map (the book's ``multibox_prior``).

    Args:
        data: tensor whose last two dimensions are the feature map's ``(H, W)`` (e.g. ``(B, C, H, W)``);
            only its shape and its backend (and device) are used.
        sizes: ``n`` anchor scales in ``(0, 1]`` (sequence of floats).
        ratios: ``m`` width/height ratios ``> 0`` (sequence of floats).

    Returns:
        float32 tensor ``(1, H*W*K, 4)`` with ``K = n + m - 1``, normalised ``(xmin, ymin, xmax, ymax)``
        in the book's order (location row-major; per location ``sizes`` with ``ratios[0]``, then
        ``sizes[0]`` with ``ratios[1:]``). Widths are scaled by ``H / W`` so rectangular inputs get
        anchors of the intended shape in the image. Coordinates are not clipped to ``[0, 1]``.
    """


@BOXES.on_tensors(checks.box_iou_args)
def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection over union (Jaccard index).

    Args:
        boxes1: tensor ``(N, 4)``, ``(xmin, ymin, xmax, ymax)`` with ``xmin <= xmax``, ``ymin <= ymax``.
        boxes2: tensor ``(M, 4)``, same format and framework.

    Returns:
        tensor ``(N, M)``: float64 for float64 inputs, else float32 (float16 and integer boxes are
        upcast before computing areas). A pair whose union has zero area has IoU 0, never NaN.
        Empty inputs give ``(0, M)`` / ``(N, 0)``.
    """


@BOXES.on_tensors(checks.assign_args)
def assign_anchor_to_bbox(ground_truth: Tensor, anchors: Tensor, device: Device = None,
                          iou_threshold: float = 0.5) -> Tensor:
    """Match anchors to ground-truth boxes for one image (the book's ``assign_anchor_to_bbox``).

    First every anchor whose best IoU with a ground-truth box is ``>= iou_threshold`` takes that box
    (ties: lower box index). Then, greedily, the largest remaining entry of the IoU matrix (ties:
    lower anchor index, then lower box index) assigns its box to its anchor, and that anchor's row
    and box's column are discarded, until every box has an anchor. So each box gets at least one
    anchor, as in the book even when it overlaps no anchor at all (IoU 0: it then takes the first
    anchor not yet taken) -- unlike torchvision's ``SSDMatcher``. With fewer anchors than boxes,
    the boxes left over stay unmatched.

    Args:
        ground_truth: float tensor ``(G, 4)`` of boxes (no padding rows; ``G`` may be 0).
        anchors: float tensor ``(A, 4)``.
        device: ignored; accepted so the book's calls work (the result lives where ``anchors`` lives).
        iou_threshold: float.

    Returns:
        int64 tensor ``(A,)``: the index of the box assigned to each anchor, or :data:`UNMATCHED`.
    """


@BOXES.on_tensors(checks.offset_boxes_args)
def offset_boxes(anchors: Tensor, assigned_bb: Tensor, coding: OffsetCoding = BOOK_OFFSETS) -> Tensor:
    """Encode boxes as offsets from anchors (the book's ``offset_boxes``).

    Args:
        anchors: float tensor ``(..., 4)`` corner boxes with positive width and height (a zero-size
            anchor raises ``ValueError`` rather than giving ``inf``/NaN).
        assigned_bb: float tensor broadcastable to ``anchors``, corner boxes.
        coding: :class:`OffsetCoding` (scales and eps; the book's by default).

    Returns:
        tensor ``(..., 4)``: ``(dx, dy, dw, dh)`` as described in :class:`OffsetCoding`.
    """


@BOXES.on_tensors(checks.target_args)
def multibox_target(anchors: Tensor, labels: Tensor, iou_threshold: float = 0.5, coding: OffsetCoding = BOOK_OFFSETS,
                    matching: str = "book") -> tuple[Tensor, Tensor, Tensor]:
    """Label anchors with classes and box offsets from ground truth (the book's ``multibox_target``).

    Matching is :func:`assign_anchor_to_bbox` per image (``matching="book"``) or the fastai lesson's
    :func:`map_to_ground_truth` (``matching="lesson"``), over the non-padding rows of ``labels``
    only; it runs vectorised over the whole batch on torch and paddle. An image without objects
    (all rows padding, or ``G == 0``) gets all-background targets.

    Args:
        anchors: float tensor ``(1, A, 4)`` or ``(A, 4)``.
        labels: float tensor ``(B, G, 5)``, rows ``[class, xmin, ymin, xmax, ymax]``, class ``>= 0``
            an object class, :data:`PADDING` (-1) a padding row. Object boxes must be finite with
            positive width and height.
        iou_threshold: float, the matching threshold (0.5 in the book, 0.4 in the lesson).
        coding: :class:`OffsetCoding`, or ``None`` for the matched boxes themselves (the lesson's
            targets: its L1 loss compares decoded boxes, :func:`actn_to_bb`).
        matching: ``"book"`` or ``"lesson"`` (see :func:`map_to_ground_truth` for the difference).

    Returns:
        ``(bbox_offset, bbox_mask, class_labels)``:

        - ``bbox_offset``: ``(B, 4*A)`` offsets of the matched boxes, 0 for unmatched anchors;
        - ``bbox_mask``: ``(B, 4*A)`` 1 for the four coordinates of matched anchors, else 0;
        - ``class_labels``: int64 ``(B, A)``, object class + 1, :data:`BACKGROUND` (0) if unmatched.

        Float outputs have the dtype of ``labels`` (float32 in the book).
    """


@BOXES.on_tensors(checks.offset_inverse_args)
def offset_inverse(anchors: Tensor, offset_preds: Tensor, coding: OffsetCoding = BOOK_OFFSETS) -> Tensor:
    """Decode predicted offsets into corner boxes (the book's ``offset_inverse``).

    Args:
        anchors: float tensor ``(..., 4)``, corner boxes.
        offset_preds: float tensor broadcastable with ``anchors``, ``(dx, dy, dw, dh)``.
        coding: :class:`OffsetCoding`; ``dw/size_scale`` and ``dh/size_scale`` are clamped at
            ``coding.max_log_scale`` before ``exp``.

    Returns:
        tensor ``(..., 4)`` of corner boxes; finite for any finite input.
    """


@BOXES.on_tensors(checks.nms_args)
def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression (the book's ``nms``).

    Boxes are visited in order of decreasing score (a stable sort: equal scores keep the lower index
    first); a box is dropped when its IoU with an already kept box is ``> iou_threshold``.

    Args:
        boxes: float tensor ``(N, 4)``, corner boxes.
        scores: float tensor ``(N,)``, finite.
        iou_threshold: float in ``[0, 1]``.

    Returns:
        int64 tensor ``(n_kept,)``: indices of kept boxes, by decreasing score.
    """


@BOXES.on_tensors(_soft_nms_args)
def soft_nms(boxes: Tensor, scores: Tensor, iou_threshold: float = 0.3, sigma: float = 0.5, min_score: float = 1e-3,
             method: str = "linear") -> tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al., 2017; the decays of MMCV's ``soft_nms``): overlapping boxes lose
    score instead of being dropped.

    Repeatedly the box with the highest current score is kept (ties: the lower index) and every box
    not yet kept has its score multiplied by a decay of its IoU ``o`` with it -- ``"linear"``:
    ``1 - o`` when ``o >= iou_threshold``, else 1; ``"gaussian"``: ``exp(-o**2 / sigma)`` -- until no
    box scores at least ``min_score``. Boxes scoring below ``min_score`` are dropped, from the start
    (MMCV keeps the best box even then). ``method="linear"`` with a score that reaches 0 at IoU 1
    is what the paper calls linear; greedy :func:`nms` is the decay "0 when ``o > iou_threshold``".

    Args:
        boxes: float tensor ``(N, 4)``, corner boxes.
        scores: float tensor ``(N,)``, finite.
        iou_threshold: float in ``[0, 1]``, where the linear decay starts (MMCV's 0.3).
        sigma: float ``> 0``, the Gaussian decay's width (0.5).
        min_score: float ``>= 0``, the lowest score a box keeps (MMCV's 1e-3).
        method: ``"linear"`` or ``"gaussian"``.

    Returns:
        ``(keep, new_scores)``: int64 ``(K,)`` indices of the kept boxes in the order they were
        kept, and float ``(K,)`` their scores when they were kept (decayed; the scores' dtype).
    """


@BOXES.on_tensors(checks.detection_args)
def multibox_detection(cls_probs: Tensor, offset_preds: Tensor, anchors: Tensor, nms_threshold: float = BOOK_NMS_THRESHOLD,
                       pos_threshold: float = BOOK_POS_THRESHOLD, coding: OffsetCoding = BOOK_OFFSETS) -> Tensor:
    """Turn class probabilities and offsets into detections (the book's ``multibox_detection``).

    Per image: each anchor's best non-background class and its probability (``conf``), decoded
    boxes, class-agnostic :func:`nms` over the anchors with ``conf >= pos_threshold`` (a box below
    it can never suppress a detection, so it is left out of NMS).

    Args:
        cls_probs: float tensor ``(B, C, A)`` of class probabilities, class 0 background.
        offset_preds: float tensor ``(B, 4*A)``.
        anchors: float tensor ``(1, A, 4)`` or ``(A, 4)``.
        nms_threshold: float, IoU above which NMS suppresses.
        pos_threshold: float, the lowest score of a detection.
        coding: :class:`OffsetCoding`.

    Returns:
        tensor ``(B, A, 6)`` of rows ``[class_id, score, xmin, ymin, xmax, ymax]``. First come the
        detections (``class_id >= 0``, 0-based object class) by decreasing score, exactly the book's
        rows in the book's order; then the background rows (``class_id`` = :data:`NOT_DETECTED`)
        in increasing anchor order, whose ``score`` is ``conf`` for a box suppressed by NMS and
        ``1 - conf`` for a box below ``pos_threshold``, as in the book.
    """


@BOXES.on_tensors(checks.batched_nms_args)
def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Per-class non-maximum suppression (torchvision's ``batched_nms``): :func:`nms` within each
    class, boxes of different classes never suppress each other.

    Args:
        boxes: float tensor ``(N, 4)``, corner boxes.
        scores: float tensor ``(N,)``, finite.
        idxs: integer tensor ``(N,)``, the class (or any group) of each box.
        iou_threshold: float in ``[0, 1]``.

    Returns:
        int64 tensor ``(n_kept,)``: indices of kept boxes by decreasing score (equal scores: lower
        index first), over all classes.
    """


@BOXES.on_tensors(checks.per_class_detection_args)
def multibox_detection_per_class(cls_probs: Tensor, offset_preds: Tensor, anchors: Tensor,
                                 score_threshold: float = SCORE_THRESHOLD, nms_threshold: float = NMS_THRESHOLD,
                                 topk_candidates: int = TOPK_CANDIDATES,
                                 detections_per_image: int = DETECTIONS_PER_IMAGE,
                                 coding: OffsetCoding = BOOK_OFFSETS) -> list[dict[str, Tensor]]:
    """Detections as the detection libraries post-process SSD (torchvision's ``SSD`` defaults),
    beside the book's class-agnostic :func:`multibox_detection`.

    Per image: boxes decoded and clipped to the image (``[0, 1]``); for each object class, the anchors
    scoring ``> score_threshold``, at most ``topk_candidates`` of them by decreasing score; per-class
    NMS (:func:`batched_nms`) at ``nms_threshold``; the ``detections_per_image`` best kept.

    Args:
        cls_probs: float tensor ``(B, C, A)`` of class probabilities, class 0 background.
        offset_preds: float tensor ``(B, 4*A)``.
        anchors: float tensor ``(1, A, 4)`` or ``(A, 4)``.
        score_threshold: float in ``[0, 1]``; a detection scores strictly more.
        nms_threshold: float in ``[0, 1]``, IoU above which NMS suppresses within a class.
        topk_candidates: int >= 1, candidates per class before NMS.
        detections_per_image: int >= 1, the most detections returned per image.
        coding: :class:`OffsetCoding`.

    Returns:
        list of ``B`` dicts, one per image, with tensors ``boxes`` ``(N, 4)`` float (corner, normalised,
        clipped), ``scores`` ``(N,)`` float and ``labels`` ``(N,)`` int64 (0-based object class, as
        :func:`multibox_detection`'s ``class_id``), by decreasing score -- the per-image input that
        :func:`multissd.metrics.mean_average_precision` takes (after ``to_numpy``). Candidates are
        ordered class by class, then by decreasing score and increasing anchor; equal scores keep
        that order throughout.
    """


# ---------------------------------------------------------------------------------------------
# The fastai lesson 9's pieces (its anchor grid, tanh decoding and matching)
# ---------------------------------------------------------------------------------------------

LESSON_GRIDS = (4, 2, 1)
LESSON_ZOOMS = (0.75, 1.0, 1.3)
LESSON_RATIOS = ((1.0, 1.0), (1.0, 0.5), (0.5, 1.0))
LESSON_IOU_THRESHOLD = 0.4


@BOXES.on_active(checks.grid_anchor_args)
def grid_anchors(grids: Sequence[int] = LESSON_GRIDS, zooms: Sequence[float] = LESSON_ZOOMS,
                 ratios: Sequence[tuple[float, float]] = LESSON_RATIOS) -> tuple[Tensor, Tensor, Tensor]:
    """The fastai lesson's anchors: square grids of cells, ``K = len(zooms) * len(ratios)`` anchors
    per cell (a sibling of :func:`multibox_prior`), as tensors of the active backend.

    Args:
        grids: the cells per side of each grid (the lesson's ``anc_grids``: 4, 2, 1).
        zooms: anchor scales per cell (``anc_zooms``: 0.75, 1, 1.3).
        ratios: ``(height, width)`` factor pairs (``anc_ratios``: (1, 1), (1, .5), (.5, 1)); an
            anchor of zoom ``z`` and ratio ``(rh, rw)`` in a grid of ``g`` cells is ``z * rw / g``
            wide and ``z * rh / g`` high.

    Returns:
        ``(anchors, centres, grid_sizes)``: float32 ``(A, 4)`` corner boxes, ``(A, 4)`` the same
        as ``(cx, cy, w, h)``, and ``(A, 1)`` each anchor's cell size ``1 / g``, with
        ``A = sum(g * g) * K``: grid by grid, cells row-major (``y`` then ``x``), in each cell every
        zoom with every ratio (zoom-major), as the lesson's ``anchor_cnr``, ``anchors``, ``grid_sizes``.
    """


@BOXES.on_tensors(checks.actn_to_bb_args)
def actn_to_bb(actn: Tensor, anchors: Tensor, grid_sizes: Tensor) -> Tensor:
    """The lesson's "tweak 1": box activations read through ``tanh`` (``actn_to_bb``).

    A box's centre moves from its anchor's by ``tanh(a) / 2`` of a grid cell (at most half a cell)
    and its width and height are ``tanh(a) / 2 + 1`` times the anchor's (from half to one and a
    half), so no offset coding is needed and the loss can compare boxes directly.

    Args:
        actn: float ``(..., A, 4)`` activations, ``(x, y, w, h)`` order.
        anchors: float ``(A, 4)`` corner boxes. grid_sizes: float ``(A, 1)``
            (:func:`grid_anchors`).

    Returns:
        float ``(..., A, 4)`` corner boxes; differentiable.
    """


@BOXES.on_tensors(checks.assign_args)
def map_to_ground_truth(ground_truth: Tensor, anchors: Tensor,
                        iou_threshold: float = LESSON_IOU_THRESHOLD) -> Tensor:
    """The lesson's matching for one image (its ``map_to_ground_truth`` and ``pos = overlap > 0.4``).

    Each box first takes its best anchor (ties: lower anchor), which counts as an overlap of 1.99;
    when boxes share a best anchor, the later box overwrites the earlier one, which then has no
    anchor. Every other anchor takes its best box (ties: lower box) when their IoU is strictly above
    ``iou_threshold``. The book's :func:`assign_anchor_to_bbox` differs in three ways: it gives
    every box an anchor (greedy, one-to-one, by decreasing IoU, so a box never loses its only
    anchor), it labels by ``>=`` the threshold, and its threshold is 0.5.

    Args:
        ground_truth: float ``(G, 4)``; anchors: float ``(A, 4)``; iou_threshold: float.

    Returns:
        int64 ``(A,)``: the box of each anchor, or :data:`UNMATCHED`.
    """


CONTRACT = BOXES.names
"""The box contract, in order. Every backend's ``boxes.py`` defines exactly these functions, in this order."""
