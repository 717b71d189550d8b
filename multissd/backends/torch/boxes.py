"""PyTorch backend: :mod:`multissd.boxes` in PyTorch's idiom.

Same functions, same order as ``numpy/boxes.py`` (the reference) and ``paddle/boxes.py``. Matching (``multibox_target``) runs
over the whole batch at once; NMS is an exact greedy NMS computed from the IoU matrix, so results
are identical to the reference on every device.
"""
from __future__ import annotations

import numpy as np
import torch

from multissd.boxes import (BACKGROUND, BOOK_NMS_THRESHOLD, BOOK_OFFSETS, BOOK_POS_THRESHOLD, DETECTIONS_PER_IMAGE,
                            LESSON_GRIDS, LESSON_IOU_THRESHOLD, LESSON_RATIOS, LESSON_ZOOMS, NMS_THRESHOLD, NOT_DETECTED,
                            SCORE_THRESHOLD, TOPK_CANDIDATES, UNMATCHED, anchor_shapes, implements)


_DISCARDED = -1.0  # IoU written over a matched anchor's row / box's column in greedy matching
_FORCED = 1.99     # the lesson's overlap of an anchor that is some box's best
_NMS_BLOCK = 512   # boxes per block in NMS: bounds the IoU matrix held at once to _NMS_BLOCK x N


# --------------------------------------------------------------------------------------------
# Moving data in and out
# --------------------------------------------------------------------------------------------

@implements
def asarray(x, dtype=None):
    if isinstance(x, torch.Tensor):
        return x if dtype is None else x.to(_torch_dtype(dtype))
    array = np.asarray(x, dtype=None if dtype is None else np.dtype(dtype))
    return torch.from_numpy(np.array(array, copy=True))


def _torch_dtype(dtype):
    return torch.from_numpy(np.zeros(0, dtype=np.dtype(dtype))).dtype


@implements
def to_numpy(x):
    x = x.detach().cpu()
    if x.dtype == torch.bfloat16:  # NumPy has no bfloat16
        x = x.float()
    return x.numpy()


@implements
def on_host(x):
    # a subclass (a FakeTensor while torch.export or torch.compile traces the model) holds no numbers
    return x.device.type == "cpu" and type(x) in (torch.Tensor, torch.nn.Parameter)


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
    return torch.stack((cx, cy, w, h), dim=-1)


@implements
def box_center_to_corner(boxes):
    return _center_to_corner(boxes)


def _center_to_corner(boxes):
    cx, cy, w, h = boxes[..., 0], boxes[..., 1], boxes[..., 2], boxes[..., 3]
    x1 = cx - 0.5 * w
    y1 = cy - 0.5 * h
    x2 = cx + 0.5 * w
    y2 = cy + 0.5 * h
    return torch.stack((x1, y1, x2, y2), dim=-1)


@implements
def box_convert(boxes, in_fmt, out_fmt):
    if in_fmt == out_fmt:
        return boxes.clone()
    if in_fmt == "cxcywh":
        boxes = _center_to_corner(boxes)
    elif in_fmt == "xywh":
        boxes = torch.cat((boxes[..., :2], boxes[..., :2] + boxes[..., 2:]), dim=-1)
    # boxes are xyxy here
    if out_fmt == "cxcywh":
        return _corner_to_center(boxes)
    if out_fmt == "xywh":
        return torch.cat((boxes[..., :2], boxes[..., 2:] - boxes[..., :2]), dim=-1)
    return boxes


def _upcast(boxes):
    """float32/float64 stay; float16, bfloat16 and integers become float32 so areas cannot overflow."""
    return boxes if boxes.dtype in (torch.float32, torch.float64) else boxes.float()


@implements
def box_area(boxes):
    return _area(_upcast(boxes))


def _area(boxes):
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


@implements
def multibox_prior(data, sizes, ratios):
    in_height, in_width = (int(d) for d in data.shape[-2:])
    device, boxes_per_pixel = data.device, len(sizes) + len(ratios) - 1
    # K widths and heights from NumPy: torch's CPU sqrt is not correctly rounded (multissd.boxes.anchor_shapes)
    w, h = (torch.from_numpy(x).to(device) for x in anchor_shapes(sizes, ratios, in_height, in_width))  # (K,)
    # Offset 0.5 moves each centre to the middle of its pixel; steps normalise to [0, 1].
    steps_h, steps_w = 1.0 / in_height, 1.0 / in_width
    center_h = (torch.arange(in_height, dtype=torch.float32, device=device) + 0.5) * steps_h  # (H,)
    center_w = (torch.arange(in_width, dtype=torch.float32, device=device) + 0.5) * steps_w   # (W,)
    shift_y, shift_x = torch.meshgrid(center_h, center_w, indexing="ij")   # (H, W) each
    shift_y, shift_x = shift_y.reshape(-1), shift_x.reshape(-1)           # (H*W,)
    anchor_manipulations = torch.stack((-w, -h, w, h)).T.repeat(in_height * in_width, 1) / 2  # (H*W*K, 4)
    out_grid = torch.stack([shift_x, shift_y, shift_x, shift_y],
                           dim=1).repeat_interleave(boxes_per_pixel, dim=0)        # (H*W*K, 4)
    return (out_grid + anchor_manipulations).unsqueeze(0)                          # (1, H*W*K, 4)


@implements
def box_iou(boxes1, boxes2):
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    if boxes1.dtype != boxes2.dtype:
        boxes1, boxes2 = boxes1.double(), boxes2.double()
    return _pairwise_iou(boxes1, boxes2)


def _pairwise_iou(boxes1, boxes2):
    """IoU of ``(..., N, 4)`` and ``(..., M, 4)`` corner boxes -> ``(..., N, M)``; 0 where the union is 0.

    Boxes that track gradients get :func:`_differentiable_iou` (the same operations, out of place)."""
    if torch.is_grad_enabled() and (boxes1.requires_grad or boxes2.requires_grad):
        return _differentiable_iou(boxes1, boxes2)
    iou, areas1, areas2 = _ratio_iou(boxes1, boxes2)
    if bool((areas1 > 0).all()) or bool((areas2 > 0).all()):  # then no union is 0 (anchors, most boxes)
        return iou
    return torch.nan_to_num_(iou, nan=0.0)  # 0/0 only where both boxes are empty: IoU 0


def _ratio_iou(boxes1, boxes2):
    """``inter / union`` for ``(..., N, 4)`` and ``(..., M, 4)`` boxes -> ``((..., N, M), areas1, areas2)``,
    NaN (0/0) where both boxes are empty. Each coordinate is first copied into its own contiguous
    ``(..., N)`` / ``(..., M)`` vector, so that every broadcast below runs over a contiguous inner
    axis (vectorised; a strided ``[..., k]`` view there is several times slower), and the
    (..., N, M) intermediates are updated in place where they can be."""
    areas1, areas2 = _area(boxes1), _area(boxes2)                                      # (..., N), (..., M)
    x1a, y1a, x2a, y2a = (c.contiguous()[..., :, None] for c in boxes1.unbind(-1))    # (..., N, 1) each
    x1b, y1b, x2b, y2b = (c.contiguous()[..., None, :] for c in boxes2.unbind(-1))    # (..., 1, M) each
    inter = torch.minimum(x2a, x2b)                                                    # (..., N, M)
    other = torch.maximum(x1a, x1b)
    inter.sub_(other).clamp_(min=0)                                                    # widths
    heights = torch.minimum(y2a, y2b, out=other)
    heights.sub_(torch.maximum(y1a, y1b)).clamp_(min=0)
    inter.mul_(heights)                                                                # intersection areas
    union = torch.add(areas1[..., :, None], areas2[..., None, :], out=heights)        # (..., N, M), reuses it
    union.sub_(inter)
    return inter.div_(union), areas1, areas2


def _differentiable_iou(boxes1, boxes2):
    """:func:`_pairwise_iou` for boxes that track gradients: the same IEEE operations in the same order
    (so the same values), none of them in place, so that autograd can differentiate them."""
    areas1, areas2 = _area(boxes1), _area(boxes2)                                      # (..., N), (..., M)
    x1a, y1a, x2a, y2a = (c[..., :, None] for c in boxes1.unbind(-1))                 # (..., N, 1) each
    x1b, y1b, x2b, y2b = (c[..., None, :] for c in boxes2.unbind(-1))                 # (..., 1, M) each
    widths = (torch.minimum(x2a, x2b) - torch.maximum(x1a, x1b)).clamp(min=0)          # (..., N, M)
    heights = (torch.minimum(y2a, y2b) - torch.maximum(y1a, y1b)).clamp(min=0)         # (..., N, M)
    inter = widths * heights
    union = (areas1[..., :, None] + areas2[..., None, :]) - inter
    nonempty = union > 0
    return torch.where(nonempty, inter / torch.where(nonempty, union, 1.0), 0.0)


@implements
@torch.no_grad()  # indices and targets: read the inputs, never differentiate them
def assign_anchor_to_bbox(ground_truth, anchors, device=None, iou_threshold=0.5):
    jaccard = _pairwise_iou(ground_truth.to(anchors.dtype), anchors)[None]       # (1, G, A)
    is_object = torch.ones(jaccard.shape[:2], dtype=torch.bool, device=anchors.device)  # (1, G)
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
    batch_size, num_gt, num_anchors = jaccard.shape
    device = jaccard.device
    anchors_bbox_map = torch.full((batch_size, num_anchors), UNMATCHED, dtype=torch.long, device=device)
    if num_anchors == 0 or num_gt == 0 or not is_object.any():
        return anchors_bbox_map
    if not is_object.all():
        jaccard = jaccard.masked_fill(~is_object[:, :, None], _DISCARDED)       # padding rows: (B, G, A), a copy
    # Every anchor whose best IoU reaches the threshold takes that box (ties: lower box); amax runs
    # vectorised, and the box is then looked up for those few anchors only.
    image, anchor = (jaccard.amax(dim=1) >= iou_threshold).nonzero(as_tuple=True)  # (p,), (p,)
    anchors_bbox_map[image, anchor] = jaccard[image, :, anchor].argmax(dim=1)    # (p, G) -> (p,)
    # Then greedy one-to-one matching, in rounds.
    best_iou, best_anchor = jaccard.max(dim=2)                                   # (B, G); ties: lower anchor
    box_ids = torch.arange(num_gt, device=device)[None]                          # (1, G)
    box_free = is_object.clone()                                                 # (B, G)
    anchor_taken = torch.zeros((batch_size, num_anchors), dtype=torch.bool, device=device)
    for _ in range(min(num_gt, num_anchors)):
        # column g: every free box's IoU with box g's best anchor -> the best box of that anchor
        at_best = torch.gather(jaccard, 2, best_anchor[:, None, :].expand(-1, num_gt, -1))  # (B, G, G)
        at_best.masked_fill_(~box_free[:, :, None], _DISCARDED)
        # box g is matched now when its best anchor is free and the best box of that anchor is g
        matched = box_free & (best_iou > _DISCARDED) & (at_best.argmax(dim=1) == box_ids)  # (B, G)
        image, box = matched.nonzero(as_tuple=True)                              # (n,), (n,)
        if len(image) == 0:  # every anchor is taken
            break
        anchor = best_anchor[image, box]
        anchors_bbox_map[image, anchor] = box
        anchor_taken[image, anchor] = True
        box_free &= ~matched
        image, box = box_free.nonzero(as_tuple=True)                             # (m,), (m,): boxes left
        if len(image) == 0:
            break
        rows = jaccard[image, box].masked_fill_(anchor_taken[image], _DISCARDED)  # (m, A)
        best_iou[image, box], best_anchor[image, box] = rows.max(dim=1)          # (m,), (m,)
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
    offset_wh = coding.size_scale * torch.log(coding.eps + c_assigned_bb[..., 2:] / c_anc[..., 2:])
    return torch.cat([offset_xy, offset_wh], dim=-1)


@implements
@torch.no_grad()  # indices and targets: read the inputs, never differentiate them
def multibox_target(anchors, labels, iou_threshold=0.5, coding=BOOK_OFFSETS, matching="book"):
    num_anchors, (batch_size, num_rows) = int(anchors.shape[-2]), (int(d) for d in labels.shape[:2])
    dtype = labels.dtype if labels.dtype in (torch.float32, torch.float64) else torch.float32
    labels, anchors = labels.to(dtype), anchors.reshape(num_anchors, 4).to(dtype)
    if num_rows == 0:  # no objects anywhere: one padding row keeps the gathers below well-defined
        labels = torch.full((batch_size, 1, 5), -1.0, dtype=dtype, device=labels.device)
    is_object = labels[:, :, 0] >= 0                                             # (B, G)
    jaccard = _pairwise_iou(labels[:, :, 1:], anchors)                           # (B, G, A)
    assign = _assign if matching == "book" else _assign_lesson
    anchors_bbox_map = assign(jaccard, is_object, iou_threshold)                 # (B, A)
    matched = anchors_bbox_map >= 0                                              # (B, A)
    bbox_mask = matched.to(dtype)[:, :, None].expand(-1, -1, 4)                  # (B, A, 4)
    image, anchor = matched.nonzero(as_tuple=True)                               # (M,), (M,): matched pairs only
    rows = labels[image, anchors_bbox_map[image, anchor]]                        # (M, 5)
    class_labels = torch.full((batch_size, num_anchors), BACKGROUND, dtype=torch.long, device=labels.device)
    class_labels[image, anchor] = rows[:, 0].long() + 1                          # (B, A)
    offset = torch.zeros((batch_size, num_anchors, 4), dtype=dtype, device=labels.device)
    offset[image, anchor] = _encode(anchors[anchor], rows[:, 1:], coding)        # (B, A, 4), 0 where unmatched
    return offset.reshape(batch_size, 4 * num_anchors), bbox_mask.reshape(batch_size, 4 * num_anchors), class_labels


@implements
def offset_inverse(anchors, offset_preds, coding=BOOK_OFFSETS):
    return _decode(anchors, offset_preds, coding)


def _decode(anchors, offset_preds, coding):
    if coding is None:  # decoded already (the lesson's actn_to_bb)
        return offset_preds
    anc = _corner_to_center(anchors)
    pred_bbox_xy = (offset_preds[..., :2] * anc[..., 2:] / coding.center_scale) + anc[..., :2]
    log_scale = (offset_preds[..., 2:] / coding.size_scale).clamp(max=coding.max_log_scale)
    pred_bbox_wh = torch.exp(log_scale) * anc[..., 2:]
    return _center_to_corner(torch.cat((pred_bbox_xy, pred_bbox_wh), dim=-1))


@implements
@torch.no_grad()  # indices and targets: read the inputs, never differentiate them
def nms(boxes, scores, iou_threshold):
    return _nms(_upcast(boxes), scores, iou_threshold)


def _nms(boxes, scores, iou_threshold, groups=None):
    order = torch.sort(scores, descending=True, stable=True).indices  # ties: lower index first
    return order[_greedy_keep(boxes[order], iou_threshold, None if groups is None else groups[order])]


def _greedy_keep(sorted_boxes, iou_threshold, groups=None):
    """Greedy NMS over boxes sorted by decreasing score -> int64 indices of the kept ones.

    Box i is kept iff no kept box j < i (of the same group, when ``groups`` (N,) is given)
    overlaps it by more than the threshold. Within a block the mask is the fixed point of that rule,
    reached by iterating from "not suppressed by earlier blocks"; every iteration fixes at least the
    next box, and a fixed point is the unique answer.
    """
    num_boxes = sorted_boxes.shape[0]
    keep = torch.zeros(num_boxes, dtype=torch.bool, device=sorted_boxes.device)
    for start in range(0, num_boxes, _NMS_BLOCK):
        block = sorted_boxes[start:start + _NMS_BLOCK]                            # (n, 4)
        kept_before = sorted_boxes[:start][keep[:start]]                          # (k, 4)
        suppressed = _overlaps(kept_before, block, iou_threshold)                 # (k, n)
        overlaps = _overlaps(block, block, iou_threshold).triu_(1)                # (n, n): j < i only
        if groups is not None:  # suppression within a group only
            block_groups = groups[start:start + _NMS_BLOCK]                       # (n,)
            suppressed &= groups[:start][keep[:start]][:, None] == block_groups[None, :]
            overlaps &= block_groups[:, None] == block_groups[None, :]
        free = ~suppressed.any(dim=0)                                             # (n,)
        if block.device.type == "cpu":
            block_keep = _greedy_sweep(overlaps, free)
        else:  # on an accelerator: whole-block passes, no host round trip per box
            block_keep = free
            while True:
                new_keep = free & ~(overlaps & block_keep[:, None]).any(dim=0)
                if torch.equal(new_keep, block_keep):
                    break
                block_keep = new_keep
        keep[start:start + block.shape[0]] = block_keep
    return torch.nonzero(keep).reshape(-1)


def _overlaps(boxes1, boxes2, iou_threshold):
    """``IoU > iou_threshold`` for ``(N, 4)`` and ``(M, 4)`` boxes -> bool ``(N, M)``, without the
    IoU's NaN-to-0 pass: where both boxes are empty the IoU is 0/0 = NaN, and ``NaN > t`` is False
    exactly as ``0 > t`` is for the thresholds in [0, 1] that the contract allows."""
    return _ratio_iou(boxes1, boxes2)[0] > iou_threshold


def _greedy_sweep(overlaps, free):
    """The greedy pass over one block on the CPU: ``keep[i]`` = ``free[i]`` and no kept ``j < i``
    with ``overlaps[j, i]`` (``(n, n)`` bool, upper triangular). One row operation per kept box,
    in NumPy on the tensors' shared memory: the same answer as the fixed point, without its
    whole-block passes (a chain of suppressions can take one pass per box)."""
    over = overlaps.numpy()                                                       # (n, n)
    keep = free.numpy().copy()                                                    # (n,)
    for i in range(keep.shape[0]):
        if keep[i]:
            keep[i + 1:] &= ~over[i, i + 1:]
    return torch.from_numpy(keep)


@implements
@torch.no_grad()  # an order and decayed scores: read the inputs, never differentiate them
def soft_nms(boxes, scores, iou_threshold=0.3, sigma=0.5, min_score=1e-3, method="linear"):
    boxes = _upcast(boxes)
    current = scores.clone() if scores.dtype == torch.float64 else scores.float()  # decayed scores, (N,)
    alive = current >= min_score                                                # (N,) not kept, not dropped
    keep, kept_scores = [], []
    while bool(alive.any()):
        i = int(torch.argmax(torch.where(alive, current, -torch.inf)))          # best alive box; ties: lower index
        keep.append(i)
        kept_scores.append(current[i])
        alive[i] = False
        iou = _pairwise_iou(boxes[i][None], boxes)[0].to(current.dtype)        # (N,)
        if method == "linear":
            decay = torch.where(iou >= iou_threshold, 1 - iou, torch.ones_like(iou))
        else:
            decay = torch.exp(-(iou * iou) / sigma)
        current = torch.where(alive, current * decay, current)
        alive &= current >= min_score
    keep = torch.tensor(keep, dtype=torch.int64, device=scores.device)
    kept = torch.stack(kept_scores) if kept_scores else current[:0]
    return keep, kept.to(scores.dtype)


@implements
@torch.no_grad()  # indices and targets: read the inputs, never differentiate them
def multibox_detection(cls_probs, offset_preds, anchors, nms_threshold=BOOK_NMS_THRESHOLD,
                       pos_threshold=BOOK_POS_THRESHOLD, coding=BOOK_OFFSETS):
    batch_size, _, num_anchors = (int(d) for d in cls_probs.shape)
    device, dtype = cls_probs.device, cls_probs.dtype
    cls_probs, offset_preds = _upcast(cls_probs), _upcast(offset_preds)           # float16: computed in float32
    anchors = anchors.reshape(num_anchors, 4).to(cls_probs.dtype)
    conf, class_id = cls_probs[:, 1:].amax(dim=1), cls_probs[:, 1:].argmax(dim=1)   # (B, A)
    predicted_bb = _decode(anchors, offset_preds.reshape(batch_size, num_anchors, 4), coding)  # (B, A, 4)
    all_idx = torch.arange(num_anchors, device=device)
    out = []
    for i in range(batch_size):
        candidates = torch.nonzero(conf[i] >= pos_threshold).reshape(-1)
        keep = candidates[_nms(predicted_bb[i, candidates], conf[i, candidates], nms_threshold)]
        is_kept = torch.zeros(num_anchors, dtype=torch.bool, device=device)
        is_kept[keep] = True
        order = torch.cat((keep, all_idx[~is_kept]))
        out_class = torch.full((num_anchors,), NOT_DETECTED, dtype=conf.dtype, device=device)
        out_class[:keep.shape[0]] = class_id[i, keep].to(conf.dtype)
        out_conf = conf[i, order]
        out_conf = torch.where(out_conf < pos_threshold, 1 - out_conf, out_conf)
        out.append(torch.cat((out_class[:, None], out_conf[:, None], predicted_bb[i, order]), dim=1))
    if batch_size == 0:
        return torch.zeros((0, num_anchors, 6), dtype=dtype, device=device)
    return torch.stack(out).to(dtype)


@implements
@torch.no_grad()  # indices and targets: read the inputs, never differentiate them
def batched_nms(boxes, scores, idxs, iou_threshold):
    return _nms(_upcast(boxes), scores, iou_threshold, idxs)  # one pass, suppression within a class only


@implements
@torch.no_grad()  # indices and targets: read the inputs, never differentiate them
def multibox_detection_per_class(cls_probs, offset_preds, anchors, score_threshold=SCORE_THRESHOLD,
                                 nms_threshold=NMS_THRESHOLD, topk_candidates=TOPK_CANDIDATES,
                                 detections_per_image=DETECTIONS_PER_IMAGE, coding=BOOK_OFFSETS):
    batch_size, num_classes, num_anchors = (int(d) for d in cls_probs.shape)
    dtype, cls_probs, offset_preds = cls_probs.dtype, _upcast(cls_probs), _upcast(offset_preds)  # float16: in float32
    anchors = anchors.reshape(num_anchors, 4).to(cls_probs.dtype)
    boxes = _decode(anchors, offset_preds.reshape(batch_size, num_anchors, 4), coding).clamp(0, 1)  # (B, A, 4)
    ranked = torch.sort(cls_probs[:, 1:], dim=2, descending=True, stable=True)    # (B, C-1, A), ties: lower anchor
    top_scores = ranked.values[:, :, :topk_candidates]                            # (B, C-1, k)
    top_anchors = ranked.indices[:, :, :topk_candidates]
    classes = torch.arange(num_classes - 1, device=cls_probs.device)[:, None].expand(top_anchors.shape[1:])  # (C-1, k)
    out = []
    for i in range(batch_size):
        passed = top_scores[i] > score_threshold                                  # (C-1, k), class-major below
        anchor_ids, labels, scores = top_anchors[i][passed], classes[passed], top_scores[i][passed]
        candidates = boxes[i, anchor_ids]                                         # (n, 4)
        keep = _nms(candidates, scores, nms_threshold, labels)[:detections_per_image]
        out.append({"boxes": candidates[keep].to(dtype), "scores": scores[keep].to(dtype), "labels": labels[keep]})
    return out


# --------------------------------------------------------------------------------------------
# The fastai lesson 9's pieces
# --------------------------------------------------------------------------------------------

@implements
def grid_anchors(grids=LESSON_GRIDS, zooms=LESSON_ZOOMS, ratios=LESSON_RATIOS):
    scales = [(zoom * rh, zoom * rw) for zoom in zooms for rh, rw in ratios]    # K (height, width) factors
    centres, cells = [], []
    for g in grids:
        steps = (torch.arange(g, dtype=torch.float32) + 0.5) / g                 # (g,) cell centres
        cy, cx = torch.meshgrid(steps, steps, indexing="ij")                     # (g, g) each, row-major
        xy = torch.stack([cx.reshape(-1), cy.reshape(-1)], dim=1).repeat_interleave(len(scales), dim=0)  # (g*g*K, 2)
        wh = torch.tensor([[w / g, h / g] for h, w in scales], dtype=torch.float32).repeat(g * g, 1)    # (g*g*K, 2)
        centres.append(torch.cat([xy, wh], dim=1))
        cells.append(torch.full((g * g * len(scales), 1), 1 / g, dtype=torch.float32))
    centre = torch.cat(centres)                                                  # (A, 4) cx, cy, w, h
    return _center_to_corner(centre), centre, torch.cat(cells)


@implements
def actn_to_bb(actn, anchors, grid_sizes):
    actn_bbs = torch.tanh(actn)                                                  # (..., A, 4)
    anc = _corner_to_center(anchors)                                             # (A, 4)
    actn_centers = actn_bbs[..., :2] / 2 * grid_sizes + anc[:, :2]               # (..., A, 2)
    actn_hw = (actn_bbs[..., 2:] / 2 + 1) * anc[:, 2:]                           # (..., A, 2)
    return _center_to_corner(torch.cat([actn_centers, actn_hw], dim=-1))


@implements
@torch.no_grad()  # indices: read the inputs, never differentiate them
def map_to_ground_truth(ground_truth, anchors, iou_threshold=LESSON_IOU_THRESHOLD):
    jaccard = _pairwise_iou(ground_truth.to(anchors.dtype), anchors)[None]      # (1, G, A)
    is_object = torch.ones(jaccard.shape[:2], dtype=torch.bool, device=anchors.device)  # (1, G)
    return _assign_lesson(jaccard, is_object, iou_threshold)[0]


def _assign_lesson(jaccard, is_object, iou_threshold):
    """The lesson's matching for a batch of IoU matrices ``(B, G, A)`` -> int64 ``(B, A)``: each box's
    best anchor is forced (a later box wins a shared anchor: a scatter keeping the largest box index),
    every other anchor takes its best box when their IoU is above the threshold."""
    batch_size, num_gt, num_anchors = jaccard.shape
    anchors_bbox_map = torch.full((batch_size, num_anchors), UNMATCHED, dtype=torch.long, device=jaccard.device)
    if num_anchors == 0 or num_gt == 0 or not is_object.any():
        return anchors_bbox_map
    jaccard = jaccard.masked_fill(~is_object[:, :, None], _DISCARDED)           # padding rows: (B, G, A)
    gt_overlap, gt_idx = jaccard.max(dim=1)                                      # (B, A); ties: lower box
    prior_idx = jaccard.argmax(dim=2)                                            # (B, G); ties: lower anchor
    box_ids = torch.arange(num_gt, device=jaccard.device).expand(batch_size, -1).masked_fill(~is_object, -1)
    forced = torch.full_like(anchors_bbox_map, -1).scatter_reduce(1, prior_idx, box_ids, "amax")  # (B, A)
    gt_overlap = torch.where(forced >= 0, _FORCED, gt_overlap)
    gt_idx = torch.where(forced >= 0, forced, gt_idx)
    return torch.where(gt_overlap > iou_threshold, gt_idx, anchors_bbox_map)
