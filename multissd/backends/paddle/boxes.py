"""PaddlePaddle backend: :mod:`multissd.boxes` in Paddle's idiom.

Same functions, same order as ``numpy/boxes.py`` (the reference) and ``torch/boxes.py``. Matching runs over the
whole batch at once; NMS is an exact greedy NMS computed from the IoU matrix. Paddle quirks are
handled here, each with a comment: its shapes are ``paddle.Size``, its ``nonzero`` returns ``(n, 1)``,
its default ``argsort`` is not stable, and its CPU ``sqrt`` is not correctly rounded.
"""
from __future__ import annotations

import warnings

import numpy as np

with warnings.catch_warnings():  # paddle warns at import about a C++ compiler cache (ccache) that multissd never needs
    warnings.filterwarnings("ignore", message="No ccache found")
    import paddle

from multissd.boxes import (BACKGROUND, BOOK_NMS_THRESHOLD, BOOK_OFFSETS, BOOK_POS_THRESHOLD, DETECTIONS_PER_IMAGE,
                            LESSON_GRIDS, LESSON_IOU_THRESHOLD, LESSON_RATIOS, LESSON_ZOOMS, NMS_THRESHOLD, NOT_DETECTED,
                            SCORE_THRESHOLD, TOPK_CANDIDATES, UNMATCHED, anchor_shapes, implements)


_DISCARDED = -1.0  # IoU written over a matched anchor's row / box's column in greedy matching
_FORCED = 1.99     # the lesson's overlap of an anchor that is some box's best


# --------------------------------------------------------------------------------------------
# Moving data in and out
# --------------------------------------------------------------------------------------------

@implements
def asarray(x, dtype=None):
    if isinstance(x, paddle.Tensor):
        return x if dtype is None else x.astype(str(np.dtype(dtype)))
    return paddle.to_tensor(np.asarray(x, dtype=None if dtype is None else np.dtype(dtype)))


@implements
def to_numpy(x):
    x = x.detach()
    if x.dtype == paddle.bfloat16:  # NumPy has no bfloat16
        x = x.astype("float32")
    return x.cpu().numpy()


@implements
def on_host(x):
    """Whether ``x`` is in CPU memory, where argument checks can read it without a device sync."""
    return x.place.is_cpu_place()


# --------------------------------------------------------------------------------------------
# Boxes
# --------------------------------------------------------------------------------------------

@implements
def box_corner_to_center(boxes):
    return _corner_to_center(boxes)


def _corner_to_center(boxes):
    x1, y1, x2, y2 = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    cx = (x1 + x2) / 2
    cy = (y1 + y2) / 2
    w = x2 - x1
    h = y2 - y1
    return paddle.stack((cx, cy, w, h), axis=-1)


@implements
def box_center_to_corner(boxes):
    return _center_to_corner(boxes)


def _center_to_corner(boxes):
    cx, cy, w, h = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    x1 = cx - 0.5 * w
    y1 = cy - 0.5 * h
    x2 = cx + 0.5 * w
    y2 = cy + 0.5 * h
    return paddle.stack((x1, y1, x2, y2), axis=-1)


@implements
def box_convert(boxes, in_fmt, out_fmt):
    if in_fmt == out_fmt:
        return boxes.clone()
    if in_fmt == "cxcywh":
        boxes = _center_to_corner(boxes)
    elif in_fmt == "xywh":
        boxes = paddle.concat((boxes[..., :2], boxes[..., :2] + boxes[..., 2:]), axis=-1)
    # boxes are xyxy here
    if out_fmt == "cxcywh":
        return _corner_to_center(boxes)
    if out_fmt == "xywh":
        return paddle.concat((boxes[..., :2], boxes[..., 2:] - boxes[..., :2]), axis=-1)
    return boxes


def _upcast(boxes):
    """float32/float64 stay; float16, bfloat16 and integers become float32 so areas cannot overflow."""
    return boxes if boxes.dtype in (paddle.float32, paddle.float64) else boxes.astype("float32")


@implements
def box_area(boxes):
    return _area(_upcast(boxes))


def _area(boxes):
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


@paddle.jit.not_to_static  # traced as it runs by paddle.jit / paddle.onnx.export, not rewritten
@implements
def multibox_prior(data, sizes, ratios):
    in_height, in_width = (int(d) for d in data.shape[-2:])
    boxes_per_pixel = len(sizes) + len(ratios) - 1
    # K widths and heights from NumPy: paddle's CPU sqrt is not correctly rounded (multissd.boxes.anchor_shapes)
    w, h = (paddle.to_tensor(x) for x in anchor_shapes(sizes, ratios, in_height, in_width))  # (K,), (K,)
    # Offset 0.5 moves each centre to the middle of its pixel; steps normalise to [0, 1].
    steps_h, steps_w = 1.0 / in_height, 1.0 / in_width
    center_h = (paddle.arange(in_height, dtype="float32") + 0.5) * steps_h  # (H,)
    center_w = (paddle.arange(in_width, dtype="float32") + 0.5) * steps_w   # (W,)
    shift_y, shift_x = paddle.meshgrid(center_h, center_w)                   # (H, W) each, "ij"
    shift_y, shift_x = shift_y.reshape([-1]), shift_x.reshape([-1])         # (H*W,)
    anchor_manipulations = paddle.tile(paddle.stack((-w, -h, w, h)).T, [in_height * in_width, 1]) / 2  # (H*W*K, 4)
    # stack as concat and transpose: paddle2onnx reads a one-element stack's inputs as 0-d (a 1 x 1 map)
    out_grid = paddle.repeat_interleave(paddle.concat([shift_x, shift_y, shift_x, shift_y]).reshape([4, -1]).T,
                                        boxes_per_pixel, axis=0)              # (H*W*K, 4)
    return (out_grid + anchor_manipulations).unsqueeze(0)                    # (1, H*W*K, 4)


@implements
def box_iou(boxes1, boxes2):
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    if boxes1.dtype != boxes2.dtype:
        boxes1, boxes2 = boxes1.astype("float64"), boxes2.astype("float64")
    return _pairwise_iou(boxes1, boxes2)


def _pairwise_iou(boxes1, boxes2):
    """IoU of ``(..., N, 4)`` and ``(..., M, 4)`` corner boxes -> ``(..., N, M)``; 0 where the union is 0.

    Each coordinate is first copied into its own contiguous ``(..., N)`` / ``(..., M)`` vector, so
    that every broadcast below runs over a contiguous inner axis (a vectorised loop over the
    anchors when M is the anchors)."""
    areas1, areas2 = _area(boxes1), _area(boxes2)                                      # (..., N), (..., M)
    x1a, y1a, x2a, y2a = (c.unsqueeze(-1) for c in paddle.unbind(boxes1, axis=-1))    # (..., N, 1) each
    x1b, y1b, x2b, y2b = (c.unsqueeze(-2) for c in paddle.unbind(boxes2, axis=-1))    # (..., 1, M) each
    widths = (paddle.minimum(x2a, x2b) - paddle.maximum(x1a, x1b)).clip(min=0)         # (..., N, M)
    heights = (paddle.minimum(y2a, y2b) - paddle.maximum(y1a, y1b)).clip(min=0)        # (..., N, M)
    inter_areas = widths * heights                                                    # (..., N, M)
    return _over_union(inter_areas, areas1[..., :, None], areas2[..., None, :])


def _over_union(inter_areas, areas1, areas2):
    """``inter / (areas1 + areas2 - inter)``, 0 where that union is 0 (never NaN); ``areas1`` and
    ``areas2`` broadcast against ``inter_areas``. When every area of either side is positive, no
    union can be 0 and the guard (three more passes over the matrix) is skipped."""
    # areas1 is expanded to the matrix first: paddle's CPU add is several times slower when both
    # sides broadcast (measured 19 ms against 3 ms on a (32, 8, 5444) matrix); the same sum
    union_areas = areas1.expand(inter_areas.shape) + areas2 - inter_areas
    if bool((areas1 > 0).all()) or bool((areas2 > 0).all()):
        return inter_areas / union_areas
    nonempty = union_areas > 0
    return paddle.where(nonempty, inter_areas / paddle.where(nonempty, union_areas, 1.0), 0.0)


def _iou_with_anchors(boxes, anchors):
    """IoU of ``(B, G, 4)`` boxes with ``(A, 4)`` anchors -> ``(B, G, A)``, the same numbers as
    :func:`_pairwise_iou` with fewer passes over the ``(B, G, A)`` matrix.

    Anchors on a grid repeat their x-intervals and y-intervals (5444 TinySSD anchors have 244 of
    each): the overlap widths and heights are computed on those distinct intervals, ``(B, G, U)``,
    and gathered to every anchor. Paddle's CPU elementwise kernels pay per element, so this halves
    ``multibox_target``'s time; the arithmetic (and so every IoU, to the bit) is unchanged.
    """
    x_spans, x_of = paddle.unique(anchors[:, 0::2], axis=0, return_inverse=True)   # (Ux, 2), (A,)
    y_spans, y_of = paddle.unique(anchors[:, 1::2], axis=0, return_inverse=True)   # (Uy, 2), (A,)
    x1, y1, x2, y2 = (boxes[..., i:i + 1] for i in range(4))                           # (B, G, 1) each
    widths = (paddle.minimum(x2, x_spans[:, 1]) - paddle.maximum(x1, x_spans[:, 0])).clip(min=0)   # (B, G, Ux)
    heights = (paddle.minimum(y2, y_spans[:, 1]) - paddle.maximum(y1, y_spans[:, 0])).clip(min=0)  # (B, G, Uy)
    inter_areas = (paddle.index_select(widths, x_of.reshape([-1]), axis=2)
                   * paddle.index_select(heights, y_of.reshape([-1]), axis=2))           # (B, G, A)
    return _over_union(inter_areas, _area(boxes)[..., None], _area(anchors))          # (B, G, 1), (A,)


@implements
@paddle.no_grad()  # indices and targets: read the inputs, never differentiate them
def assign_anchor_to_bbox(ground_truth, anchors, device=None, iou_threshold=0.5):
    jaccard = _pairwise_iou(ground_truth.astype(anchors.dtype), anchors)[None]       # (1, G, A)
    is_object = paddle.ones([1, jaccard.shape[1]], dtype="bool")                 # (1, G)
    return _assign(jaccard, is_object, iou_threshold)[0]


def _assign(jaccard, is_object, iou_threshold):
    """The book's matching for a batch of IoU matrices ``(B, G, A)`` (box-major: the anchors are the
    contiguous axis) -> int64 ``(B, A)``; ``jaccard`` itself is not modified.

    ``is_object`` ``(B, G)`` is False for padding rows, which are never matched. The book's greedy
    loop (take the largest IoU, discard its row and column, repeat) is computed in rounds: each
    round matches, in every image at once, all pairs that are the largest entry of both their row
    and their column among what is left (ties: lower index) -- the same pairs, in effect, that the
    greedy loop would pick, since greedy takes such a pair before anything that could block it.
    A box's best free anchor is the first maximum of its row over the anchors not yet taken; after
    the first round only the rows of the boxes still free are searched again.
    """
    batch_size, num_gt, num_anchors = (int(d) for d in jaccard.shape)
    anchors_bbox_map = paddle.full([batch_size, num_anchors], UNMATCHED, dtype="int64")
    if num_anchors == 0 or num_gt == 0 or not bool(is_object.any()):
        return anchors_bbox_map
    if not bool(is_object.all()):
        jaccard = paddle.where(is_object[:, :, None], jaccard, _DISCARDED)      # padding rows: (B, G, A), a copy
    # Every anchor whose best IoU reaches the threshold takes that box (ties: lower box); amax runs
    # vectorised, and the box is then looked up for those few anchors only.
    positive = paddle.nonzero(jaccard.amax(axis=1) >= iou_threshold)             # (p, 2): image, anchor
    if positive.shape[0]:  # paddle refuses to assign through empty indices
        image, anchor = positive[:, 0], positive[:, 1]
        anchors_bbox_map[image, anchor] = jaccard[image, :, anchor].argmax(axis=1)  # (p, G) -> (p,)
    # Then greedy one-to-one matching, in rounds.
    best_iou, best_anchor = jaccard.amax(axis=2), jaccard.argmax(axis=2)        # (B, G); ties: lower anchor
    box_ids = paddle.arange(num_gt, dtype="int64")[None]                         # (1, G)
    box_free = is_object.clone()                                                 # (B, G)
    anchor_taken = paddle.zeros([batch_size, num_anchors], dtype="bool")
    for _ in range(min(num_gt, num_anchors)):
        # column g: every free box's IoU with box g's best anchor -> the best box of that anchor
        at_best = paddle.take_along_axis(jaccard, best_anchor[:, None, :].expand([batch_size, num_gt, num_gt]),
                                         axis=2)                                  # (B, G, G)
        at_best = paddle.where(box_free[:, :, None], at_best, _DISCARDED)
        # box g is matched now when its best anchor is free and the best box of that anchor is g
        matched = box_free & (best_iou > _DISCARDED) & (at_best.argmax(axis=1) == box_ids)  # (B, G)
        pairs = paddle.nonzero(matched)                                          # (n, 2): image, box
        if pairs.shape[0] == 0:  # every anchor is taken
            break
        image, box = pairs[:, 0], pairs[:, 1]
        anchor = best_anchor[image, box]
        anchors_bbox_map[image, anchor] = box
        anchor_taken[image, anchor] = True
        box_free = box_free & ~matched
        pairs = paddle.nonzero(box_free)                                         # (m, 2): boxes left
        if pairs.shape[0] == 0:
            break
        image, box = pairs[:, 0], pairs[:, 1]
        rows = paddle.where(anchor_taken[image], paddle.full([], _DISCARDED, jaccard.dtype),
                            jaccard[image, box])                                 # (m, A)
        best_iou[image, box], best_anchor[image, box] = rows.amax(axis=1), rows.argmax(axis=1)  # (m,), (m,)
    return anchors_bbox_map


@implements
def offset_boxes(anchors, assigned_bb, coding=BOOK_OFFSETS):
    return _encode(anchors, assigned_bb, coding)


def _encode(anchors, assigned_bb, coding):
    if coding is None:  # the lesson's targets: the boxes themselves
        return assigned_bb
    c_anc = _corner_to_center(anchors)                # (..., 4)
    c_assigned_bb = _corner_to_center(assigned_bb)    # (..., 4)
    offset_xy = coding.center_scale * (c_assigned_bb[..., :2] - c_anc[..., :2]) / c_anc[..., 2:]
    offset_wh = coding.size_scale * paddle.log(coding.eps + c_assigned_bb[..., 2:] / c_anc[..., 2:])
    return paddle.concat([offset_xy, offset_wh], axis=-1)


@implements
@paddle.no_grad()  # indices and targets: read the inputs, never differentiate them
def multibox_target(anchors, labels, iou_threshold=0.5, coding=BOOK_OFFSETS, matching="book"):
    num_anchors, (batch_size, num_rows) = int(anchors.shape[-2]), (int(d) for d in labels.shape[:2])
    dtype = labels.dtype if labels.dtype in (paddle.float32, paddle.float64) else paddle.float32
    labels, anchors = labels.astype(dtype), anchors.reshape([num_anchors, 4]).astype(dtype)
    if num_rows == 0:  # no objects anywhere: one padding row keeps the gathers below well-defined
        labels = paddle.full([batch_size, 1, 5], -1.0, dtype=dtype)
    is_object = labels[:, :, 0] >= 0                                             # (B, G)
    jaccard = _iou_with_anchors(labels[:, :, 1:], anchors)                      # (B, G, A)
    assign = _assign if matching == "book" else _assign_lesson
    anchors_bbox_map = assign(jaccard, is_object, iou_threshold)                 # (B, A)
    matched = anchors_bbox_map >= 0                                              # (B, A)
    bbox_mask = matched.astype(dtype)[:, :, None].expand([batch_size, num_anchors, 4])  # (B, A, 4)
    pairs = paddle.nonzero(matched)                                              # (M, 2): matched pairs only
    image, anchor = pairs[:, 0], pairs[:, 1]
    rows = labels[image, anchors_bbox_map[image, anchor]]                        # (M, 5)
    class_labels = paddle.full([batch_size, num_anchors], BACKGROUND, dtype="int64")
    offset = paddle.zeros([batch_size, num_anchors, 4], dtype=dtype)
    if int(pairs.shape[0]):
        class_labels[image, anchor] = rows[:, 0].astype("int64") + 1             # (B, A)
        offset[image, anchor] = _encode(anchors[anchor], rows[:, 1:], coding)    # (B, A, 4), 0 where unmatched
    return (offset.reshape([batch_size, 4 * num_anchors]), bbox_mask.reshape([batch_size, 4 * num_anchors]),
            class_labels)


@implements
def offset_inverse(anchors, offset_preds, coding=BOOK_OFFSETS):
    return _decode(anchors, offset_preds, coding)


def _decode(anchors, offset_preds, coding):
    if coding is None:  # decoded already (the lesson's actn_to_bb)
        return offset_preds
    anc = _corner_to_center(anchors)
    pred_bbox_xy = (offset_preds[..., :2] * anc[..., 2:] / coding.center_scale) + anc[..., :2]
    log_scale = (offset_preds[..., 2:] / coding.size_scale).clip(max=coding.max_log_scale)
    pred_bbox_wh = paddle.exp(log_scale) * anc[..., 2:]
    return _center_to_corner(paddle.concat((pred_bbox_xy, pred_bbox_wh), axis=-1))


@implements
@paddle.no_grad()  # indices and targets: read the inputs, never differentiate them
def nms(boxes, scores, iou_threshold):
    return _nms(_upcast(boxes), scores, iou_threshold)


def _nms(boxes, scores, iou_threshold, groups=None):
    """Greedy NMS -> int64 indices of the kept boxes by decreasing score (ties: lower index), with
    suppression only inside a group when ``groups`` (N,) is given. Paddle's own C++ kernel
    (``paddle.vision.ops.nms`` on boxes already in score order) does the greedy pass: the same
    kept set as the NumPy reference, tested on ties of scores and of IoUs."""
    if boxes.shape[0] == 0:
        return paddle.zeros([0], dtype="int64")
    order = paddle.argsort(scores, descending=True, stable=True)  # paddle's default sort is unstable
    sorted_boxes = paddle.gather(boxes, order)                                    # (N, 4) by score
    if groups is None:
        return paddle.gather(order, paddle.vision.ops.nms(sorted_boxes, iou_threshold))
    sorted_groups = paddle.gather(groups, order)                                  # (N,)
    kept = []
    for group in paddle.unique(sorted_groups).tolist():
        members = paddle.nonzero(sorted_groups == group).reshape([-1])  # positions in score order, rising
        kept.append(paddle.gather(members, paddle.vision.ops.nms(paddle.gather(sorted_boxes, members),
                                                                 iou_threshold)))
    return paddle.gather(order, paddle.sort(paddle.concat(kept)))  # back to score order over all groups


@implements
@paddle.no_grad()  # an order and decayed scores: read the inputs, never differentiate them
def soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, min_score=1e-3, method="linear"):
    boxes = _upcast(boxes)
    current = scores.astype("float64" if scores.dtype == paddle.float64 else "float32")  # decayed scores, (N,)
    alive = current >= min_score                                                # (N,) not kept, not dropped
    keep, kept_scores = [], []
    while bool(alive.any()):
        i = int(paddle.argmax(paddle.where(alive, current, paddle.full_like(current, -np.inf))))  # ties: lower index
        keep.append(i)
        kept_scores.append(current[i])
        alive[i] = False
        iou = _pairwise_iou(boxes[i][None], boxes)[0].astype(current.dtype)    # (N,)
        if method == "linear":
            decay = paddle.where(iou >= iou_threshold, 1 - iou, paddle.ones_like(iou))
        else:
            decay = paddle.exp(-(iou * iou) / sigma)
        current = paddle.where(alive, current * decay, current)
        alive = alive & (current >= min_score)
    kept = paddle.stack(kept_scores) if kept_scores else current[:0]
    return paddle.to_tensor(keep, dtype="int64").reshape([-1]), kept.astype(scores.dtype)


@implements
@paddle.no_grad()  # indices and targets: read the inputs, never differentiate them
def multibox_detection(cls_probs, offset_preds, anchors, nms_threshold=BOOK_NMS_THRESHOLD,
                       pos_threshold=BOOK_POS_THRESHOLD, coding=BOOK_OFFSETS):
    batch_size, _, num_anchors = (int(d) for d in cls_probs.shape)
    dtype = cls_probs.dtype
    cls_probs, offset_preds = _upcast(cls_probs), _upcast(offset_preds)  # float16: in float32 (no CPU kernels)
    anchors = anchors.reshape([num_anchors, 4]).astype(cls_probs.dtype)
    conf, class_id = cls_probs[:, 1:].amax(axis=1), cls_probs[:, 1:].argmax(axis=1)   # (B, A)
    predicted_bb = _decode(anchors, offset_preds.reshape([batch_size, num_anchors, 4]), coding)  # (B, A, 4)
    all_idx = paddle.arange(num_anchors, dtype="int64")
    out = []
    for i in range(batch_size):
        candidates = paddle.nonzero(conf[i] >= pos_threshold).reshape([-1])
        keep = paddle.gather(candidates, _nms(paddle.gather(predicted_bb[i], candidates),
                                              paddle.gather(conf[i], candidates), nms_threshold))
        num_kept = int(keep.shape[0])
        is_kept = paddle.zeros([num_anchors], dtype="int32")  # paddle's scatter has no bool kernel
        if num_kept:
            is_kept = paddle.scatter(is_kept, keep, paddle.ones([num_kept], dtype="int32"))
        is_kept = is_kept.astype("bool")
        order = paddle.concat((keep, paddle.masked_select(all_idx, ~is_kept)))
        out_class = paddle.concat((paddle.gather(class_id[i], keep).astype(conf.dtype),
                                   paddle.full([num_anchors - num_kept], NOT_DETECTED, dtype=conf.dtype)))
        out_conf = paddle.gather(conf[i], order)
        out_conf = paddle.where(out_conf < pos_threshold, 1 - out_conf, out_conf)
        out.append(paddle.concat((out_class[:, None], out_conf[:, None],
                                  paddle.gather(predicted_bb[i], order)), axis=1))
    if batch_size == 0:
        return paddle.zeros([0, num_anchors, 6], dtype=dtype)
    return paddle.stack(out).astype(dtype)


@implements
@paddle.no_grad()  # indices and targets: read the inputs, never differentiate them
def batched_nms(boxes, scores, idxs, iou_threshold):
    return _nms(_upcast(boxes), scores, iou_threshold, idxs.astype("int64"))  # suppression within a class only


@implements
@paddle.no_grad()  # indices and targets: read the inputs, never differentiate them
def multibox_detection_per_class(cls_probs, offset_preds, anchors, score_threshold=SCORE_THRESHOLD,
                                 nms_threshold=NMS_THRESHOLD, topk_candidates=TOPK_CANDIDATES,
                                 detections_per_image=DETECTIONS_PER_IMAGE, coding=BOOK_OFFSETS):
    batch_size, num_classes, num_anchors = (int(d) for d in cls_probs.shape)
    dtype, cls_probs, offset_preds = cls_probs.dtype, _upcast(cls_probs), _upcast(offset_preds)  # float16: in float32
    anchors = anchors.reshape([num_anchors, 4]).astype(cls_probs.dtype)
    boxes = _decode(anchors, offset_preds.reshape([batch_size, num_anchors, 4]), coding).clip(0, 1)  # (B, A, 4)
    object_probs = cls_probs[:, 1:]                                               # (B, C-1, A)
    order = paddle.argsort(object_probs, axis=2, descending=True, stable=True)[:, :, :topk_candidates]  # (B, C-1, k)
    top_scores = paddle.take_along_axis(object_probs, order, axis=2)
    classes = paddle.arange(num_classes - 1, dtype="int64")[:, None].expand(order.shape[1:])  # (C-1, k)
    out = []
    for i in range(batch_size):
        passed = top_scores[i] > score_threshold                                  # (C-1, k), class-major below
        anchor_ids = paddle.masked_select(order[i], passed)
        labels, scores = paddle.masked_select(classes, passed), paddle.masked_select(top_scores[i], passed)
        candidates = paddle.gather(boxes[i], anchor_ids)                          # (n, 4)
        keep = _nms(candidates, scores, nms_threshold, labels)[:detections_per_image]
        out.append({"boxes": paddle.gather(candidates, keep).astype(dtype),
                    "scores": paddle.gather(scores, keep).astype(dtype), "labels": paddle.gather(labels, keep)})
    return out


# --------------------------------------------------------------------------------------------
# The fastai lesson 9's pieces
# --------------------------------------------------------------------------------------------

@paddle.jit.not_to_static  # traced as it runs by paddle.jit / paddle.onnx.export, not rewritten
@implements
def grid_anchors(grids=LESSON_GRIDS, zooms=LESSON_ZOOMS, ratios=LESSON_RATIOS):
    scales = [(zoom * rh, zoom * rw) for zoom in zooms for rh, rw in ratios]    # K (height, width) factors
    centres, cells = [], []
    for g in grids:
        steps = (paddle.arange(g, dtype="float32") + 0.5) / g                    # (g,) cell centres
        cy, cx = paddle.meshgrid(steps, steps)                                   # (g, g) each, row-major ("ij")
        xy = paddle.concat([cx.reshape([-1]), cy.reshape([-1])]).reshape([2, -1]).T   # (g*g, 2): see multibox_prior
        xy = paddle.repeat_interleave(xy, len(scales), axis=0)                   # (g*g*K, 2)
        wh = paddle.tile(paddle.to_tensor([[w / g, h / g] for h, w in scales], dtype="float32"), [g * g, 1])
        centres.append(paddle.concat([xy, wh], axis=1))                          # (g*g*K, 4)
        cells.append(paddle.full([g * g * len(scales), 1], 1 / g, dtype="float32"))
    centre = paddle.concat(centres)                                              # (A, 4) cx, cy, w, h
    return _center_to_corner(centre), centre, paddle.concat(cells)


@paddle.jit.not_to_static  # traced as it runs by paddle.jit / paddle.onnx.export, not rewritten
@implements
def actn_to_bb(actn, anchors, grid_sizes):
    actn_bbs = paddle.tanh(actn)                                                 # (..., A, 4)
    anc = _corner_to_center(anchors)                                             # (A, 4)
    actn_centers = actn_bbs[..., :2] / 2 * grid_sizes + anc[:, :2]               # (..., A, 2)
    actn_hw = (actn_bbs[..., 2:] / 2 + 1) * anc[:, 2:]                           # (..., A, 2)
    return _center_to_corner(paddle.concat([actn_centers, actn_hw], axis=-1))


@implements
@paddle.no_grad()  # indices: read the inputs, never differentiate them
def map_to_ground_truth(ground_truth, anchors, iou_threshold=LESSON_IOU_THRESHOLD):
    jaccard = _pairwise_iou(ground_truth.astype(anchors.dtype), anchors)[None]  # (1, G, A)
    is_object = paddle.ones([1, jaccard.shape[1]], dtype="bool")                 # (1, G)
    return _assign_lesson(jaccard, is_object, iou_threshold)[0]


def _assign_lesson(jaccard, is_object, iou_threshold):
    """The lesson's matching for a batch of IoU matrices ``(B, G, A)`` -> int64 ``(B, A)``: each box's
    best anchor is forced (a later box wins a shared anchor: a scatter keeping the largest box index),
    every other anchor takes its best box when their IoU is above the threshold."""
    batch_size, num_gt, num_anchors = (int(d) for d in jaccard.shape)
    anchors_bbox_map = paddle.full([batch_size, num_anchors], UNMATCHED, dtype="int64")
    if num_anchors == 0 or num_gt == 0 or not bool(is_object.any()):
        return anchors_bbox_map
    jaccard = paddle.where(is_object[:, :, None], jaccard, _DISCARDED)           # padding rows: (B, G, A)
    gt_overlap, gt_idx = jaccard.amax(axis=1), jaccard.argmax(axis=1)            # (B, A); ties: lower box
    prior_idx = jaccard.argmax(axis=2)                                           # (B, G); ties: lower anchor
    box_ids = paddle.where(is_object, paddle.arange(num_gt, dtype="int64")[None], paddle.full([], -1, "int64"))
    forced = paddle.put_along_axis(paddle.full([batch_size, num_anchors], -1, dtype="int64"), prior_idx, box_ids,
                                   axis=1, reduce="amax")                        # (B, A)
    gt_overlap = paddle.where(forced >= 0, paddle.full([], _FORCED, gt_overlap.dtype), gt_overlap)
    gt_idx = paddle.where(forced >= 0, forced, gt_idx)
    return paddle.where(gt_overlap > iou_threshold, gt_idx, anchors_bbox_map)
