"""NumPy backend: the reference implementation of :mod:`multissd.boxes`.

It stands in for the book's MXNet ``np``/``npx`` tab and follows the book's code step by step
(loops over images and over ground-truth boxes included) so that it is easy to check by eye; the
torch and paddle backends are vectorised and tested against it. It has no autograd: it can run
models but not train them.
"""
from __future__ import annotations

import numpy as np

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
    return np.asarray(x, dtype=None if dtype is None else np.dtype(dtype))


@implements
def to_numpy(x):
    return np.asarray(x)


@implements
def on_host(x):
    """NumPy arrays are always in host memory (argument checks may read them)."""
    return True


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
    return np.stack((cx, cy, w, h), axis=-1)


@implements
def box_center_to_corner(boxes):
    return _center_to_corner(boxes)


def _center_to_corner(boxes):
    cx, cy, w, h = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    x1 = cx - 0.5 * w
    y1 = cy - 0.5 * h
    x2 = cx + 0.5 * w
    y2 = cy + 0.5 * h
    return np.stack((x1, y1, x2, y2), axis=-1)


@implements
def box_convert(boxes, in_fmt, out_fmt):
    if in_fmt == out_fmt:
        return boxes.copy()
    if in_fmt == "cxcywh":
        boxes = _center_to_corner(boxes)
    elif in_fmt == "xywh":
        boxes = np.concatenate((boxes[..., :2], boxes[..., :2] + boxes[..., 2:]), axis=-1)
    # boxes are xyxy here
    if out_fmt == "cxcywh":
        return _corner_to_center(boxes)
    if out_fmt == "xywh":
        return np.concatenate((boxes[..., :2], boxes[..., 2:] - boxes[..., :2]), axis=-1)
    return boxes


def _upcast(boxes):
    """float32/float64 stay; float16 and integers become float32 so areas cannot overflow."""
    return boxes if boxes.dtype in (np.float32, np.float64) else boxes.astype(np.float32)


@implements
def box_area(boxes):
    return _area(_upcast(boxes))


def _area(boxes):
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


@implements
def multibox_prior(data, sizes, ratios):
    in_height, in_width = (int(d) for d in data.shape[-2:])
    boxes_per_pixel = len(sizes) + len(ratios) - 1
    w, h = anchor_shapes(sizes, ratios, in_height, in_width)                    # (K,), (K,) float32
    # Offset 0.5 moves each centre to the middle of its pixel; steps normalise to [0, 1].
    steps_h, steps_w = 1.0 / in_height, 1.0 / in_width
    center_h = (np.arange(in_height, dtype=np.float32) + 0.5) * steps_h  # (H,)
    center_w = (np.arange(in_width, dtype=np.float32) + 0.5) * steps_w   # (W,)
    shift_y, shift_x = np.meshgrid(center_h, center_w, indexing="ij")    # (H, W) each
    shift_y, shift_x = shift_y.reshape(-1), shift_x.reshape(-1)          # (H*W,)
    anchor_manipulations = np.tile(np.stack((-w, -h, w, h)).T, (in_height * in_width, 1)) / 2  # (H*W*K, 4)
    out_grid = np.repeat(np.stack([shift_x, shift_y, shift_x, shift_y], axis=1),
                         boxes_per_pixel, axis=0)                                  # (H*W*K, 4)
    return (out_grid + anchor_manipulations)[None]                                 # (1, H*W*K, 4)


@implements
def box_iou(boxes1, boxes2):
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    if boxes1.dtype != boxes2.dtype:
        boxes1, boxes2 = boxes1.astype(np.float64), boxes2.astype(np.float64)
    return _pairwise_iou(boxes1, boxes2)


def _pairwise_iou(boxes1, boxes2):
    """IoU of ``(..., N, 4)`` and ``(..., M, 4)`` corner boxes -> ``(..., N, M)``; 0 where the union is 0."""
    areas1, areas2 = _area(boxes1), _area(boxes2)                                # (..., N), (..., M)
    inter_upperlefts = np.maximum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])   # (..., N, M, 2)
    inter_lowerrights = np.minimum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])  # (..., N, M, 2)
    inters = np.maximum(inter_lowerrights - inter_upperlefts, 0)                # (..., N, M, 2)
    inter_areas = inters[..., 0] * inters[..., 1]                               # (..., N, M)
    union_areas = areas1[..., :, None] + areas2[..., None, :] - inter_areas     # (..., N, M)
    nonempty = union_areas > 0
    return np.where(nonempty, inter_areas / np.where(nonempty, union_areas, 1), 0)


@implements
def assign_anchor_to_bbox(ground_truth, anchors, device=None, iou_threshold=0.5):
    return _assign(_pairwise_iou(anchors, ground_truth.astype(anchors.dtype)), iou_threshold)


def _unmatched(jaccard):
    """Every anchor of an IoU matrix ``(A, G)`` unmatched: int64 ``(A,)`` of :data:`UNMATCHED`, and
    whether there is anything to match (at least one anchor and one box)."""
    num_anchors, num_gt_boxes = jaccard.shape
    return np.full((num_anchors,), UNMATCHED, dtype=np.int64), num_anchors > 0 and num_gt_boxes > 0


def _assign(jaccard, iou_threshold):
    """The book's matching on one image's IoU matrix ``(A, G)`` -> int64 ``(A,)``."""
    anchors_bbox_map, any_pairs = _unmatched(jaccard)
    if not any_pairs:
        return anchors_bbox_map
    num_anchors, num_gt_boxes = jaccard.shape
    # Every anchor whose best IoU reaches the threshold takes that box.
    max_ious, indices = jaccard.max(axis=1), jaccard.argmax(axis=1)              # (A,), (A,)
    above = max_ious >= iou_threshold
    anchors_bbox_map[above] = indices[above]
    # Then each box takes the anchor of the largest remaining IoU (argmax: first in row-major order).
    jaccard = jaccard.copy()
    for _ in range(min(num_anchors, num_gt_boxes)):
        anc_idx, box_idx = divmod(int(np.argmax(jaccard)), num_gt_boxes)
        anchors_bbox_map[anc_idx] = box_idx
        jaccard[:, box_idx] = _DISCARDED
        jaccard[anc_idx, :] = _DISCARDED
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
    offset_wh = coding.size_scale * np.log(coding.eps + c_assigned_bb[..., 2:] / c_anc[..., 2:])
    return np.concatenate([offset_xy, offset_wh], axis=-1)


@implements
def multibox_target(anchors, labels, iou_threshold=0.5, coding=BOOK_OFFSETS, matching="book"):
    num_anchors, batch_size = int(anchors.shape[-2]), int(labels.shape[0])
    anchors = anchors.reshape(num_anchors, 4)
    dtype = labels.dtype if labels.dtype in (np.float32, np.float64) else np.float32
    batch_offset, batch_mask, batch_class_labels = [], [], []
    for i in range(batch_size):
        label = labels[i][labels[i, :, 0] >= 0].astype(dtype)        # (G_i, 5) objects only
        assign = _assign if matching == "book" else _assign_lesson
        anchors_bbox_map = assign(_pairwise_iou(anchors.astype(dtype), label[:, 1:]), iou_threshold)
        matched = anchors_bbox_map >= 0                                 # (A,)
        bbox_mask = np.repeat(matched.astype(dtype)[:, None], 4, axis=1)  # (A, 4)
        class_labels = np.full((num_anchors,), BACKGROUND, dtype=np.int64)
        assigned_bb = np.zeros((num_anchors, 4), dtype=dtype)
        bb_idx = anchors_bbox_map[matched]
        class_labels[matched] = label[bb_idx, 0].astype(np.int64) + 1
        assigned_bb[matched] = label[bb_idx, 1:]
        offset = _encode(anchors.astype(dtype), assigned_bb, coding) * bbox_mask   # (A, 4)
        batch_offset.append(offset.reshape(-1))
        batch_mask.append(bbox_mask.reshape(-1))
        batch_class_labels.append(class_labels)
    if batch_size == 0:
        empty = np.zeros((0, 4 * num_anchors), dtype=dtype)
        return empty, empty.copy(), np.zeros((0, num_anchors), dtype=np.int64)
    return np.stack(batch_offset), np.stack(batch_mask), np.stack(batch_class_labels)


@implements
def offset_inverse(anchors, offset_preds, coding=BOOK_OFFSETS):
    return _decode(anchors, offset_preds, coding)


def _decode(anchors, offset_preds, coding):
    if coding is None:  # decoded already (the lesson's actn_to_bb)
        return offset_preds
    anc = _corner_to_center(anchors)
    pred_bbox_xy = (offset_preds[..., :2] * anc[..., 2:] / coding.center_scale) + anc[..., :2]
    log_scale = np.minimum(offset_preds[..., 2:] / coding.size_scale, coding.max_log_scale)
    pred_bbox_wh = np.exp(log_scale) * anc[..., 2:]
    return _center_to_corner(np.concatenate((pred_bbox_xy, pred_bbox_wh), axis=-1))


@implements
def nms(boxes, scores, iou_threshold):
    return _nms(_upcast(boxes), scores, iou_threshold)


def _nms(boxes, scores, iou_threshold):
    order = np.argsort(-scores, kind="stable")  # decreasing score, ties: lower index first
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        if order.size == 1:
            break
        iou = _pairwise_iou(boxes[i][None], boxes[order[1:]])[0]       # (len(order) - 1,)
        order = order[1:][iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


@implements
def soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, min_score=1e-3, method="linear"):
    boxes = _upcast(boxes)
    current = scores.astype(np.float64 if scores.dtype == np.float64 else np.float32)  # decayed scores, (N,)
    alive = current >= min_score                                                # (N,) not kept, not dropped
    keep, kept_scores = [], []
    while alive.any():
        i = int(np.argmax(np.where(alive, current, -np.inf)))                  # best alive box; ties: lower index
        keep.append(i)
        kept_scores.append(current[i])
        alive[i] = False
        iou = _pairwise_iou(boxes[i][None], boxes)[0]                          # (N,)
        if method == "linear":
            decay = np.where(iou >= iou_threshold, 1 - iou, 1)
        else:
            decay = np.exp(-(iou * iou) / sigma)
        current = np.where(alive, current * decay.astype(current.dtype), current)
        alive &= current >= min_score
    return np.asarray(keep, dtype=np.int64), np.asarray(kept_scores, dtype=scores.dtype)


@implements
def multibox_detection(cls_probs, offset_preds, anchors, nms_threshold=BOOK_NMS_THRESHOLD,
                       pos_threshold=BOOK_POS_THRESHOLD, coding=BOOK_OFFSETS):
    batch_size, _, num_anchors = (int(d) for d in cls_probs.shape)
    dtype, cls_probs, offset_preds = cls_probs.dtype, _upcast(cls_probs), _upcast(offset_preds)  # float16: in float32
    anchors = anchors.reshape(num_anchors, 4).astype(cls_probs.dtype)
    out = []
    for i in range(batch_size):
        cls_prob, offset_pred = cls_probs[i], offset_preds[i].reshape(-1, 4)
        conf, class_id = cls_prob[1:].max(axis=0), cls_prob[1:].argmax(axis=0)  # (A,), (A,)
        predicted_bb = _decode(anchors, offset_pred, coding)                    # (A, 4)
        candidates = np.flatnonzero(conf >= pos_threshold)
        keep = candidates[_nms(predicted_bb[candidates], conf[candidates], nms_threshold)]
        non_keep = np.setdiff1d(np.arange(num_anchors), keep)                   # ascending
        order = np.concatenate((keep, non_keep))
        out_class = np.full((num_anchors,), NOT_DETECTED, dtype=conf.dtype)
        out_class[:keep.size] = class_id[keep]
        out_conf = conf[order]
        below = out_conf < pos_threshold
        out_conf[below] = 1 - out_conf[below]
        out.append(np.concatenate((out_class[:, None], out_conf[:, None], predicted_bb[order]), axis=1))
    if batch_size == 0:
        return np.zeros((0, num_anchors, 6), dtype=dtype)
    return np.stack(out).astype(dtype)


@implements
def batched_nms(boxes, scores, idxs, iou_threshold):
    return _batched_nms(_upcast(boxes), scores, idxs, iou_threshold)


def _batched_nms(boxes, scores, idxs, iou_threshold):
    keep = [np.flatnonzero(idxs == c)[_nms(boxes[idxs == c], scores[idxs == c], iou_threshold)]
            for c in np.unique(idxs)]                                           # one NMS per class
    keep = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    return keep[np.lexsort((keep, -scores[keep]))]  # decreasing score, ties: lower index first


@implements
def multibox_detection_per_class(cls_probs, offset_preds, anchors, score_threshold=SCORE_THRESHOLD,
                                 nms_threshold=NMS_THRESHOLD, topk_candidates=TOPK_CANDIDATES,
                                 detections_per_image=DETECTIONS_PER_IMAGE, coding=BOOK_OFFSETS):
    batch_size, num_classes, num_anchors = (int(d) for d in cls_probs.shape)
    dtype, cls_probs, offset_preds = cls_probs.dtype, _upcast(cls_probs), _upcast(offset_preds)  # float16: in float32
    anchors = anchors.reshape(num_anchors, 4).astype(cls_probs.dtype)
    out = []
    for i in range(batch_size):
        boxes = np.clip(_decode(anchors, offset_preds[i].reshape(-1, 4), coding), 0, 1)  # (A, 4)
        candidate_anchors, candidate_classes = [], []
        for c in range(num_classes - 1):
            score = cls_probs[i, c + 1]                                               # (A,)
            ranked = np.argsort(-score, kind="stable")[:topk_candidates]              # ties: lower anchor first
            ranked = ranked[score[ranked] > score_threshold]
            candidate_anchors.append(ranked)
            candidate_classes.append(np.full(ranked.size, c, dtype=np.int64))
        anchor_ids, labels = np.concatenate(candidate_anchors), np.concatenate(candidate_classes)
        scores = cls_probs[i, labels + 1, anchor_ids]                                 # (n,)
        keep = _batched_nms(boxes[anchor_ids], scores, labels, nms_threshold)[:detections_per_image]
        out.append({"boxes": boxes[anchor_ids[keep]].astype(dtype), "scores": scores[keep].astype(dtype),
                    "labels": labels[keep]})
    return out


# --------------------------------------------------------------------------------------------
# The fastai lesson 9's pieces
# --------------------------------------------------------------------------------------------

@implements
def grid_anchors(grids=LESSON_GRIDS, zooms=LESSON_ZOOMS, ratios=LESSON_RATIOS):
    scales = [(zoom * rh, zoom * rw) for zoom in zooms for rh, rw in ratios]    # K (height, width) factors
    centres, cells = [], []
    for g in grids:
        steps = (np.arange(g, dtype=np.float32) + 0.5) / g                       # (g,) cell centres
        cy, cx = np.meshgrid(steps, steps, indexing="ij")                        # (g, g) each, row-major
        xy = np.repeat(np.stack([cx.reshape(-1), cy.reshape(-1)], axis=1), len(scales), axis=0)  # (g*g*K, 2)
        wh = np.tile(np.array([[w / g, h / g] for h, w in scales], np.float32), (g * g, 1))      # (g*g*K, 2)
        centres.append(np.concatenate([xy, wh], axis=1))
        cells.append(np.full((g * g * len(scales), 1), 1 / g, np.float32))
    centre = np.concatenate(centres).astype(np.float32)                         # (A, 4) cx, cy, w, h
    return _center_to_corner(centre), centre, np.concatenate(cells)


@implements
def actn_to_bb(actn, anchors, grid_sizes):
    actn_bbs = np.tanh(actn)                                                     # (..., A, 4)
    anc = _corner_to_center(anchors)                                             # (A, 4)
    actn_centers = actn_bbs[..., :2] / 2 * grid_sizes + anc[:, :2]               # (..., A, 2)
    actn_hw = (actn_bbs[..., 2:] / 2 + 1) * anc[:, 2:]                           # (..., A, 2)
    return _center_to_corner(np.concatenate([actn_centers, actn_hw], axis=-1))


@implements
def map_to_ground_truth(ground_truth, anchors, iou_threshold=LESSON_IOU_THRESHOLD):
    return _assign_lesson(_pairwise_iou(anchors, ground_truth.astype(anchors.dtype)), iou_threshold)


def _assign_lesson(jaccard, iou_threshold):
    """The lesson's matching on one image's IoU matrix ``(A, G)`` -> int64 ``(A,)``, its code line by line."""
    anchors_bbox_map, any_pairs = _unmatched(jaccard)
    if not any_pairs:
        return anchors_bbox_map
    overlaps = jaccard.T                                                         # (G, A), as the lesson's
    prior_idx = overlaps.argmax(axis=1)                                          # (G,) each box's best anchor
    gt_overlap, gt_idx = overlaps.max(axis=0), overlaps.argmax(axis=0)           # (A,), (A,)
    gt_overlap[prior_idx] = _FORCED
    for i, o in enumerate(prior_idx):  # a later box overwrites an earlier one on a shared anchor
        gt_idx[o] = i
    positive = gt_overlap > iou_threshold
    anchors_bbox_map[positive] = gt_idx[positive]
    return anchors_bbox_map
