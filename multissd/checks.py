"""Argument rules of the contracts: one place for the rules and the error messages.

Each contract function of :mod:`multissd.boxes` and :mod:`multissd.nn` names its rule here (the
``*_args`` functions, called with the call's arguments by keyword); the contract's ``implements``
runs it once per call, before the backend's code (see :mod:`multissd.dispatch`). A rule raises
``ValueError`` (bad shape or value) or ``TypeError`` (bad type) with a message naming the argument,
what was received and what was expected, and may return normalised arguments (a threshold as a
``float``, anchor sizes as a list of floats).

Shapes are read directly. Values (finite coordinates, ordered corners, integer classes) are read on
the host (:func:`host_values`): for NumPy arrays and tensors in CPU memory always; for a tensor on an
accelerator only when ``MULTISSD_CHECK_DEVICE_VALUES=1`` -- otherwise reading them would copy the
tensor to the host and wait for the device, a sync in the middle of every training step.
"""
from __future__ import annotations

import numbers
import os

import numpy as np

from multissd.errors import FieldError, InputError, InputTypeError
from multissd.registry import on_host, to_host

DEVICE_VALUES_ENV = "MULTISSD_CHECK_DEVICE_VALUES"
"""Set to 1 to check the values of tensors on an accelerator too (a debug switch: it syncs with the device)."""


def setting_in_range(value, field: str, low: float, high: float) -> float:
    """A setting that is a number in ``[low, high]`` (NaN refused), as a float; ``FieldError`` naming
    ``field`` (its option on a command line) otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
        raise FieldError(field, f"{{name}} must be a number in [{low:g}, {high:g}]; received {value!r}")
    return float(value)


def whole_setting(value, field: str, low: int) -> int:
    """A setting that is a whole number ``>= low``; ``FieldError`` naming ``field`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise FieldError(field, f"{{name}} must be a whole number >= {low}; received {value!r}")
    return int(value)


def device_values_wanted() -> bool:
    """Whether :data:`DEVICE_VALUES_ENV` asks to check the values of tensors on an accelerator too
    (read at call time)."""
    return os.environ.get(DEVICE_VALUES_ENV, "").strip() in ("1", "true", "yes")


def host_values(x) -> np.ndarray | None:
    """``x``'s numbers as NumPy for a value check, or ``None`` when ``x`` lives on an accelerator and
    :data:`DEVICE_VALUES_ENV` is not set."""
    if isinstance(x, np.ndarray):
        return x
    if on_host(x) or device_values_wanted():
        return to_host(x)
    return None


def is_known(dim) -> bool:
    """Whether a dimension is known: paddle's static graph (``paddle.jit``, ``paddle.onnx.export``)
    writes -1 for one it infers only at run time, an exporter's trace may hold a symbolic one."""
    return isinstance(dim, int) and dim >= 0


def shape_of(x, name: str) -> tuple[int, ...]:
    """The shape of a tensor of any backend as a tuple of ints; a symbolic dimension (a dynamic batch
    while an exporter traces the model) is kept as it is, so reading the shape does not fix it."""
    shape = getattr(x, "shape", None)
    if shape is None:
        raise InputTypeError(f"Expected {name} to be a tensor (numpy, torch or paddle); received {type(x).__name__}")
    return tuple(int(d) if isinstance(d, (int, np.integer)) else d for d in shape)


def _fmt(row) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in np.ravel(row)) + "]"


def box_shape(boxes, name: str, ndim: int | None = 2) -> tuple[int, ...]:
    """Check that ``boxes`` has a trailing dimension of 4 (and ``ndim`` dimensions when given)."""
    shape = shape_of(boxes, name)
    if not shape or shape[-1] != 4 or (ndim is not None and len(shape) != ndim):
        expected = "[N, 4]" if ndim == 2 else "[..., 4]"
        raise InputError(
            f"Expected {name} of shape {expected} (xmin, ymin, xmax, ymax); received shape {list(shape)}")
    return shape


def box_values(boxes, name: str) -> None:
    """Check that corner boxes ``(..., 4)`` are finite with ``xmin <= xmax`` and ``ymin <= ymax``."""
    host = host_values(boxes)
    if host is None or host.size == 0:
        return
    host = host.reshape(-1, 4)
    finite = np.isfinite(host).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        raise InputError(
            f"{name} contains a non-finite coordinate (nan or inf) in the box at index {i}: "
            f"{_fmt(host[i])}; expected finite (xmin, ymin, xmax, ymax)")
    inverted = (host[:, 2] < host[:, 0]) | (host[:, 3] < host[:, 1])
    if inverted.any():
        i = int(np.argmax(inverted))
        raise InputError(
            f"{name} has a box with xmax < xmin or ymax < ymin at index {i}: {_fmt(host[i])}; "
            f"expected (xmin, ymin, xmax, ymax) with xmin <= xmax and ymin <= ymax")


def positive_size_boxes(boxes, name: str) -> None:
    """Check that corner boxes ``(..., 4)`` are finite with positive width and height."""
    host = host_values(boxes)
    if host is None:
        return
    host = host.reshape(-1, 4)
    bad = ~np.isfinite(host).all(axis=1) | ~(host[:, 2] > host[:, 0]) | ~(host[:, 3] > host[:, 1])
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"{name} must have finite coordinates and positive width and height; the box at index {i} "
            f"is {_fmt(host[i])}")


def target_labels(labels) -> tuple[int, int]:
    """Check target labels ``(B, G, 5)``; returns ``(B, G)``.

    Padding rows (class -1) may hold anything; object rows need an integer class >= 0 and a finite
    box of positive width and height.
    """
    shape = shape_of(labels, "labels")
    if len(shape) != 3 or shape[-1] != 5:
        raise InputError(
            "Expected target labels of shape [B, G, 5] with rows [class, xmin, ymin, xmax, ymax] "
            f"(class -1 for padding); received shape {list(shape)}")
    host = host_values(labels)
    if host is None or host.size == 0:
        return shape[0], shape[1]
    cls = host[..., 0]
    finite_cls = np.isfinite(cls)
    bad_cls = ~finite_cls | (np.where(finite_cls, cls, 0) != np.round(np.where(finite_cls, cls, 0))) | (cls < -1)
    if bad_cls.any():
        b, g = np.argwhere(bad_cls)[0]
        raise InputError(
            f"labels[{b}, {g}] has class {cls[b, g]!r}; expected an integer class >= 0, or -1 for a "
            f"padding row")
    objects = cls >= 0
    box = host[..., 1:]
    bad = objects & (~np.isfinite(box).all(-1) | ~(box[..., 2] > box[..., 0]) | ~(box[..., 3] > box[..., 1]))
    if bad.any():
        b, g = np.argwhere(bad)[0]
        raise InputError(
            f"All bounding boxes should have positive height and width. Found invalid box "
            f"{_fmt(box[b, g])} for target at index {b} (row {g} of labels)")
    return shape[0], shape[1]


def anchor_boxes(anchors, name: str = "anchors") -> int:
    """Check anchors ``(1, A, 4)`` or ``(A, 4)`` with positive sizes; returns ``A``."""
    shape = shape_of(anchors, name)
    if not (len(shape) == 2 or (len(shape) == 3 and shape[0] == 1)) or shape[-1] != 4:
        raise InputError(f"Expected {name} of shape [1, A, 4] or [A, 4]; received shape {list(shape)}")
    positive_size_boxes(anchors, name)
    return shape[-2]


def threshold(value, name: str, low: float = 0.0, high: float = 1.0) -> float:
    """Check a real-valued threshold in ``[low, high]``; returns it as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"Expected {name} to be a float in [{low}, {high}]; received {value!r}")
    value = float(value)
    if not low <= value <= high:
        raise InputError(f"Expected {name} in [{low}, {high}]; received {name}={value!r}")
    return value


def box_format(fmt, name: str, formats) -> str:
    """Check a box format string against ``formats``."""
    if fmt not in formats:
        raise InputError(f"Unknown box format. Expected {name} to be one of {list(formats)}; received {fmt!r}")
    return fmt


def _positive_floats(values, name: str) -> list[float]:
    try:
        out = [float(v) for v in np.ravel(np.asarray(values, dtype=np.float64))]
    except (TypeError, ValueError):
        raise InputTypeError(f"Expected {name} to be a sequence of floats; received {values!r}") from None
    if not out or not all(np.isfinite(v) and v > 0 for v in out):
        raise InputError(f"Expected {name} to be a non-empty sequence of finite floats > 0; received {values!r}")
    return out


def dtype_name(x) -> str:
    """The dtype of a tensor of any backend as NumPy names it (``"int64"``, ``"float32"``, ...)."""
    return str(x.dtype).rsplit(".", 1)[-1]


def image_batch(X, values, channels: int, smallest: int, largest: int, square: bool = False) -> None:
    """The rule of a model's forward input, the same on every backend: float32 images ``(B, channels,
    H, W)`` with ``B >= 1`` and each side in ``[smallest, largest]`` (equal sides when ``square``),
    finite (``values``: ``X``'s numbers as the backend's ``nn.values_on_host`` reads them, ``None``
    where they cannot be read). ``ValueError``/``TypeError`` saying what was expected otherwise --
    before a framework raises its own error, or returns outputs of the wrong size. While an exporter
    traces the model, a symbolic dimension and the values are left alone."""
    if not hasattr(X, "dtype"):
        raise InputTypeError(f"Expected images as a tensor of the model's backend (float32, (B, {channels}, H, W)); "
                             f"received {type(X).__name__}")
    shape = shape_of(X, "images")
    if len(shape) != 4 or (is_known(shape[1]) and shape[1] != channels):
        raise InputError(f"Expected images of shape (B, {channels}, H, W) (a batch of {channels}-channel images); "
                         f"received shape {list(shape)}")
    if dtype_name(X) != "float32":
        raise InputTypeError(f"Expected float32 images (pixel values 0..255 as float32); received {dtype_name(X)}: "
                             f"convert them first")
    if is_known(shape[0]) and shape[0] == 0:
        raise InputError(f"Expected at least one image; received an empty batch, shape {list(shape)}")
    height, width = shape[2:]
    if is_known(height) and is_known(width):
        if min(height, width) < smallest or max(height, width) > largest:
            raise InputError(f"Expected images of {smallest} to {largest} pixels a side (the model halves them "
                             f"{smallest.bit_length() - 1} times); received {width}x{height}")
        if square and height != width:
            raise InputError(f"Expected square images (this model's anchor grid has one cell per feature-map "
                             f"pixel); received {width}x{height}")
    if values is not None and not np.isfinite(values).all():
        raise InputError(f"Expected finite pixel values; the images hold {int((~np.isfinite(values)).sum())} NaN or "
                         f"infinite values")


def count(value, name: str) -> int:
    """Check a count (an int >= 1); returns it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"Expected {name} to be an int >= 1; received {value!r}")
    if value < 1:
        raise InputError(f"Expected {name} >= 1; received {name}={value!r}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Rules of the box contract (multissd.boxes), one per function, called with its arguments by keyword
# ---------------------------------------------------------------------------------------------

def boxes_args(boxes):
    """``box_corner_to_center``, ``box_center_to_corner``: boxes ``(..., 4)``."""
    box_shape(boxes, "boxes", ndim=None)


def box_area_args(boxes):
    """``box_area``: boxes ``(N, 4)``."""
    box_shape(boxes, "boxes")


def prior_args(data, sizes, ratios) -> dict:
    """``multibox_prior``: a feature map ``(..., H, W)``; sizes and ratios as lists of floats > 0."""
    shape = shape_of(data, "data")
    if len(shape) < 2 or shape[-1] < 1 or shape[-2] < 1:
        raise InputError(
            f"Expected data whose last two dimensions are a feature map (H, W) >= 1, e.g. [B, C, H, W]; "
            f"received shape {list(shape)}")
    return {"sizes": _positive_floats(sizes, "sizes"), "ratios": _positive_floats(ratios, "ratios")}


def box_iou_args(boxes1, boxes2):
    """``box_iou``: two lists of corner boxes ``(N, 4)``, ``(M, 4)``."""
    for name, boxes in (("boxes1", boxes1), ("boxes2", boxes2)):
        box_shape(boxes, name)
        box_values(boxes, name)


def assign_args(ground_truth, anchors, iou_threshold, **_) -> dict:
    """``assign_anchor_to_bbox``: corner boxes ``(G, 4)`` and ``(A, 4)``, a threshold in [0, 1]."""
    for name, boxes in (("ground_truth", ground_truth), ("anchors", anchors)):
        box_shape(boxes, name)
    for name, boxes in (("ground_truth", ground_truth), ("anchors", anchors)):
        box_values(boxes, name)
    return {"iou_threshold": threshold(iou_threshold, "iou_threshold")}


def offset_boxes_args(anchors, assigned_bb, **_):
    """``offset_boxes``: anchors ``(..., 4)`` of positive size, boxes ``(..., 4)``."""
    box_shape(anchors, "anchors", ndim=None)
    box_shape(assigned_bb, "assigned_bb", ndim=None)
    positive_size_boxes(anchors, "anchors")


def target_args(anchors, labels, iou_threshold, matching="book", **_) -> dict:
    """``multibox_target``: anchors ``(1, A, 4)`` or ``(A, 4)``, labels ``(B, G, 5)``, a threshold,
    a matching rule (``"book"`` or ``"lesson"``)."""
    anchor_boxes(anchors)
    target_labels(labels)
    if matching not in ("book", "lesson"):
        raise InputError(f"Expected matching to be 'book' or 'lesson'; received matching={matching!r}")
    return {"iou_threshold": threshold(iou_threshold, "iou_threshold")}


def offset_inverse_args(anchors, offset_preds, **_):
    """``offset_inverse``: anchors and offsets ``(..., 4)``."""
    box_shape(anchors, "anchors", ndim=None)
    box_shape(offset_preds, "offset_preds", ndim=None)


def nms_args(boxes, scores, iou_threshold) -> dict:
    """``nms``: corner boxes ``(N, 4)``, finite scores ``(N,)``, a threshold in [0, 1]."""
    n = box_shape(boxes, "boxes")[0]
    sshape = shape_of(scores, "scores")
    if len(sshape) != 1:
        raise InputError(f"Expected scores of shape [N]; received shape {list(sshape)}")
    if sshape[0] != n:
        raise InputError(f"Expected one score per box: boxes has {n} rows but scores has {sshape[0]}")
    box_values(boxes, "boxes")
    host = host_values(scores)
    if host is not None and not np.isfinite(host).all():
        i = int(np.argmin(np.isfinite(host)))
        raise InputError(f"scores contains a non-finite value {float(host[i])} at index {i}; expected finite scores")
    return {"iou_threshold": threshold(iou_threshold, "iou_threshold")}


def _finite_number(value, name: str, low: float, strict: bool) -> float:
    """A finite real ``> low`` (``strict``) or ``>= low`` as a float; ``TypeError``/``ValueError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"Expected {name} to be a number; received {value!r}")
    value = float(value)
    if not np.isfinite(value) or (value <= low if strict else value < low):
        raise InputError(f"Expected {name} to be a finite number {'>' if strict else '>='} {low:g}; received "
                         f"{name}={value!r}")
    return value


def soft_nms_args(boxes, scores, iou_threshold, sigma, min_score, method, methods) -> dict:
    """``soft_nms``: the inputs of ``nms``, ``sigma > 0``, ``min_score >= 0``, a method of ``methods``."""
    checked = nms_args(boxes, scores, iou_threshold)
    if method not in methods:
        raise InputError(f"Expected method to be one of {list(methods)}; received {method!r}")
    return {**checked, "sigma": _finite_number(sigma, "sigma", 0.0, strict=True),
            "min_score": _finite_number(min_score, "min_score", 0.0, strict=False)}


def _detection_inputs(cls_probs, offset_preds, anchors_) -> None:
    """The model outputs of a detection call: ``(B, C, A)``, ``(B, 4A)``, anchors ``(1, A, 4)``, finite."""
    pshape = shape_of(cls_probs, "cls_probs")
    if len(pshape) != 3 or pshape[1] < 2:
        raise InputError(
            f"Expected cls_probs of shape [B, C, A] with C >= 2 (background + classes); received shape "
            f"{list(pshape)}")
    b, c, a = pshape
    oshape = shape_of(offset_preds, "offset_preds")
    if len(oshape) != 2 or oshape[1] != 4 * a:
        raise InputError(f"Expected offset_preds of shape [B, 4*A] = [{b}, {4 * a}]; received shape {list(oshape)}")
    if oshape[0] != b:
        raise InputError(f"Batch sizes differ: cls_probs has {b} images but offset_preds has {oshape[0]}")
    num_anchors = anchor_boxes(anchors_)
    if num_anchors != a:
        raise InputError(f"cls_probs has {a} anchors per image but anchors has {num_anchors}")
    for name, x in (("cls_probs", cls_probs), ("offset_preds", offset_preds)):
        host = host_values(x)
        if host is not None and not np.isfinite(host).all():
            idx = tuple(int(i) for i in np.argwhere(~np.isfinite(host))[0])
            raise InputError(f"{name} contains a non-finite value at index {list(idx)}; expected finite values")
        if name == "cls_probs" and host is not None and ((host < 0) | (host > 1)).any():
            idx = tuple(int(i) for i in np.argwhere((host < 0) | (host > 1))[0])
            raise InputError(f"cls_probs[{', '.join(map(str, idx))}] is {float(host[idx])!r}; expected probabilities "
                             f"in [0, 1] (apply softmax to the class logits first)")


def detection_args(cls_probs, offset_preds, anchors, nms_threshold, pos_threshold, **_) -> dict:
    """``multibox_detection``: model outputs and two thresholds in [0, 1]."""
    _detection_inputs(cls_probs, offset_preds, anchors)
    return {"nms_threshold": threshold(nms_threshold, "nms_threshold"),
            "pos_threshold": threshold(pos_threshold, "pos_threshold")}


def batched_nms_args(boxes, scores, idxs, iou_threshold) -> dict:
    """``batched_nms``: as :func:`nms_args`, and an integer class per box ``(N,)``."""
    normalised = nms_args(boxes, scores, iou_threshold)
    n = shape_of(boxes, "boxes")[0]
    ishape = shape_of(idxs, "idxs")
    if ishape != (n,):
        raise InputError(f"Expected idxs of shape [N] = [{n}], one class per box; received shape {list(ishape)}")
    if not dtype_name(idxs).startswith(("int", "uint")):
        raise InputTypeError(f"Expected idxs to hold integer classes; received dtype {dtype_name(idxs)}")
    return normalised


def per_class_detection_args(cls_probs, offset_preds, anchors, score_threshold, nms_threshold, topk_candidates,
                             detections_per_image, **_) -> dict:
    """``multibox_detection_per_class``: model outputs, two thresholds in [0, 1], two counts >= 1."""
    _detection_inputs(cls_probs, offset_preds, anchors)
    return {"score_threshold": threshold(score_threshold, "score_threshold"),
            "nms_threshold": threshold(nms_threshold, "nms_threshold"),
            "topk_candidates": count(topk_candidates, "topk_candidates"),
            "detections_per_image": count(detections_per_image, "detections_per_image")}


def grid_anchor_args(grids, zooms, ratios) -> dict:
    """``grid_anchors``: cells per side (ints >= 1), zooms (floats > 0), ``(height, width)`` pairs > 0."""
    if isinstance(grids, (int, np.integer)) or not len(grids) or any(
            isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1 for g in grids):
        raise InputError(f"Expected grids to be a non-empty sequence of ints >= 1 (cells per side); received {grids!r}")
    zooms = _positive_floats(zooms, "zooms")
    try:
        pairs = [(float(h), float(w)) for h, w in ratios]
    except (TypeError, ValueError):
        raise InputError(f"Expected ratios to be (height, width) pairs; received {ratios!r}") from None
    if not pairs or not all(np.isfinite(v) and v > 0 for pair in pairs for v in pair):
        raise InputError(f"Expected ratios to be a non-empty sequence of (height, width) pairs > 0; received {ratios!r}")
    return {"grids": [int(g) for g in grids], "zooms": zooms, "ratios": pairs}


def actn_to_bb_args(actn, anchors, grid_sizes):
    """``actn_to_bb``: activations ``(..., A, 4)``, anchors ``(A, 4)``, cell sizes ``(A, 1)``."""
    shape = box_shape(actn, "actn", ndim=None)
    num_anchors = box_shape(anchors, "anchors")[0]
    if len(shape) < 2 or (is_known(shape[-2]) and shape[-2] != num_anchors):
        raise InputError(f"Expected actn of shape [..., A, 4] with A = {num_anchors} (one row per anchor); received "
                         f"shape {list(shape)}")
    if shape_of(grid_sizes, "grid_sizes") != (num_anchors, 1):
        raise InputError(f"Expected grid_sizes of shape [A, 1] = [{num_anchors}, 1]; received shape "
                         f"{list(shape_of(grid_sizes, 'grid_sizes'))}")


# ---------------------------------------------------------------------------------------------
# Rules of the model-and-loss contract (multissd.nn)
# ---------------------------------------------------------------------------------------------

def class_labels(logits, labels, names: tuple[str, str] = ("logits", "labels")) -> None:
    """Labels ``(...)`` for logits ``(..., C)``: the same leading shape, integers in ``[0, C)``."""
    lshape, shape = shape_of(logits, names[0]), shape_of(labels, names[1])
    if not lshape or shape != lshape[:-1]:
        raise InputError(f"Expected {names[1]} of shape {list(lshape[:-1])} (one class per row of {names[0]} "
                         f"{list(lshape)}); received shape {list(shape)}")
    host = host_values(labels)
    if host is None or host.size == 0:
        return
    bad = (host < 0) | (host >= lshape[-1]) | (host != np.round(host))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"{names[1]}{list(where)} is {host[where]}; expected a class in [0, {lshape[-1]}) "
                         f"({lshape[-1]} columns of {names[0]}, 0 for background)")


def set_weights_args(net, weights):
    """``set_weights``: exactly the parameters of ``net``'s spec, with its shapes."""
    net.spec.check_weights(weights)


def loss_args(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks, **_):
    """``calc_loss``: ``(B, A, C)`` logits, ``(B, A)`` labels and three ``(B, 4A)`` box tensors."""
    pshape = shape_of(cls_preds, "cls_preds")
    if len(pshape) != 3 or pshape[2] < 2:
        raise InputError(f"Expected cls_preds of shape [B, A, C] with C >= 2; received shape {list(pshape)}")
    b, a, c = pshape
    if shape_of(cls_labels, "cls_labels") != (b, a):
        raise InputError(f"Expected cls_labels of shape [B, A] = [{b}, {a}]; received shape "
                         f"{list(shape_of(cls_labels, 'cls_labels'))}")
    for name, x in (("bbox_preds", bbox_preds), ("bbox_labels", bbox_labels), ("bbox_masks", bbox_masks)):
        if shape_of(x, name) != (b, 4 * a):
            raise InputError(f"Expected {name} of shape [B, 4*A] = [{b}, {4 * a}]; received shape "
                             f"{list(shape_of(x, name))}")
    class_labels(cls_preds, cls_labels, ("cls_preds", "cls_labels"))
