"""multissd: the book's single shot multibox detection (SSD), on NumPy, PyTorch and PaddlePaddle.

Choose a backend with :func:`use_backend` (or ``MULTISSD_BACKEND``); every function below works on
the tensors of any backend and dispatches on their type. ``import multissd`` imports neither torch
nor paddle: a backend's framework is imported on first use.
"""
from multissd.boxes import (BACKGROUND, BOOK_NMS_THRESHOLD, BOOK_OFFSETS, BOOK_POS_THRESHOLD, BOX_FORMATS, NOT_DETECTED,
                            PADDING, SOFT_NMS_METHODS, UNMATCHED, OffsetCoding, actn_to_bb, asarray,
                            assign_anchor_to_bbox, batched_nms, box_area, box_center_to_corner, box_convert,
                            box_corner_to_center, box_iou, grid_anchors, map_to_ground_truth, multibox_detection,
                            multibox_detection_per_class, multibox_prior, multibox_target, nms, offset_boxes,
                            offset_inverse, on_host, soft_nms, to_numpy)
from multissd.data import load_data_bananas
from multissd.errors import InputError, InputTypeError, MultissdError
from multissd.registry import BackendNotAvailableError, available_backends, get_backend, use_backend
from multissd.model import TinySSDSpec, init_weights
from multissd.classifier import ClassifierSpec
from multissd.nn import (BOOK_LOSS, Classifier, LossConfig, TinySSD, adaptive_max_pool, base_net, bbox_eval, bbox_predictor, binary_focal_loss,
                         blk_forward, calc_loss, class_probabilities, cls_eval, cls_predictor, concat_preds,
                         cross_entropy, down_sample_blk, flatten_pred, focal_loss, get_blk, get_weights, set_weights,
                         lesson_head, smooth_l1_loss, std_conv)
from multissd.weights import load_model, load_weights, save_weights

__version__ = "0.1.0"

__all__ = [
    "use_backend", "get_backend", "available_backends", "BackendNotAvailableError",
    "MultissdError", "InputError", "InputTypeError",
    "asarray", "to_numpy", "on_host",
    "box_corner_to_center", "box_center_to_corner", "box_convert", "box_area", "multibox_prior",
    "box_iou", "assign_anchor_to_bbox", "offset_boxes", "multibox_target", "offset_inverse", "nms",
    "soft_nms", "multibox_detection", "batched_nms", "multibox_detection_per_class", "grid_anchors", "actn_to_bb",
    "map_to_ground_truth",
    "SOFT_NMS_METHODS", "OffsetCoding", "BOOK_OFFSETS", "BOOK_POS_THRESHOLD", "BOOK_NMS_THRESHOLD", "BOX_FORMATS",
    "BACKGROUND", "UNMATCHED", "PADDING", "NOT_DETECTED",
    "cls_predictor", "bbox_predictor", "flatten_pred", "concat_preds", "down_sample_blk", "base_net",
    "get_blk", "blk_forward", "TinySSD", "TinySSDSpec", "adaptive_max_pool", "std_conv", "lesson_head", "Classifier", "ClassifierSpec", "init_weights", "get_weights", "set_weights",
    "save_weights", "load_weights", "load_model",
    "cross_entropy", "focal_loss", "binary_focal_loss", "smooth_l1_loss", "calc_loss", "class_probabilities",
    "cls_eval", "bbox_eval",
    "LossConfig", "BOOK_LOSS", "load_data_bananas",
]
