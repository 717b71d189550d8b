"""multissd: the book's single shot multibox detection (SSD), on NumPy, PyTorch and PaddlePaddle.

Choose a backend with :func:`use_backend` (or ``MULTISSD_BACKEND``); every function below works on
the tensors of any backend and dispatches on their type. ``import multissd`` imports neither torch
nor paddle: a backend's framework is imported on first use.
"""
from multissd.backends import BackendNotAvailableError, available_backends
from multissd.config import get_backend, use_backend
from multissd.contract import (BACKGROUND, BOOK_OFFSETS, BOOK_POS_THRESHOLD, BOX_FORMATS,
                               NOT_DETECTED, PADDING, UNMATCHED, OffsetCoding, asarray,
                               assign_anchor_to_bbox, box_area, box_center_to_corner, box_convert,
                               box_corner_to_center, box_iou, multibox_detection, multibox_prior,
                               multibox_target, nms, offset_boxes, offset_inverse, to_numpy)

__version__ = "0.1.0"

__all__ = [
    "use_backend", "get_backend", "available_backends", "BackendNotAvailableError",
    "asarray", "to_numpy",
    "box_corner_to_center", "box_center_to_corner", "box_convert", "box_area", "multibox_prior",
    "box_iou", "assign_anchor_to_bbox", "offset_boxes", "multibox_target", "offset_inverse", "nms",
    "multibox_detection",
    "OffsetCoding", "BOOK_OFFSETS", "BOOK_POS_THRESHOLD", "BOX_FORMATS",
    "BACKGROUND", "UNMATCHED", "PADDING", "NOT_DETECTED",
]
