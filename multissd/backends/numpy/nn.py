"""NumPy: the model pieces and losses of :mod:`multissd.nn`, forward passes only.

Same functions, same order as ``torch/nn.py`` and ``paddle/nn.py``. The layers come from
:mod:`multissd.backends.numpy.layers`; the NumPy backend runs models (inference, and batch norm's
training-mode forward) and computes losses, but cannot train (``train.py``: ``CAN_TRAIN = False``).
"""
from __future__ import annotations

import sys
from collections import OrderedDict

import numpy as np

from multissd.backends.numpy import boxes
from multissd.backends.numpy import layers as nn
from multissd.classifier import STD_CONV_DROPOUT, ClassifierMixin
from multissd.model import TinySSDMixin, TinySSDSpec, resolve_spec
from multissd.nn import BOOK_LOSS, implements

_BOOK_SPEC = TinySSDSpec()


@implements
def concat(tensors, axis):
    """Concatenate along ``axis`` (the mixin's adapter)."""
    return np.concatenate(tensors, axis=axis)


@implements
def reshape(x, shape):
    """Reshape (the mixin's adapter)."""
    return x.reshape(shape)


@implements
def on_device_of(x, reference):
    """``x`` where ``reference`` lives (the mixin's adapter): NumPy has one place."""
    return x


@implements
def dropout(p):
    """A dropout layer (the mixin's adapter; the lesson's ``drop``)."""
    return nn.Dropout(p)


@implements
def linear(in_features, out_features):
    """A linear layer ``(B, in) -> (B, out)`` (the classifiers' ``fc``)."""
    return nn.Linear(in_features, out_features)


@implements
def sigmoid(x):
    """The logistic function (the mixins' adapter)."""
    return 1 / (1 + np.exp(-x))


@implements
def relu(x):
    """``max(x, 0)`` (the mixins' adapter)."""
    return np.maximum(x, 0)


@implements
def values_on_host(x):
    return np.asarray(x)


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------

@implements
def cls_predictor(num_inputs, num_anchors, num_classes):
    return nn.Conv2d(num_inputs, num_anchors * (num_classes + 1), kernel_size=3, padding=1)


@implements
def bbox_predictor(num_inputs, num_anchors):
    return nn.Conv2d(num_inputs, num_anchors * 4, kernel_size=3, padding=1)


@implements
def flatten_pred(pred):
    return pred.transpose(0, 2, 3, 1).reshape(pred.shape[0], -1)  # (B, ch, H, W) -> (B, H*W*ch)


@implements
def concat_preds(preds):
    return np.concatenate([flatten_pred(p) for p in preds], axis=1)


@implements
def down_sample_blk(in_channels, out_channels, spec=None):
    spec = spec or _BOOK_SPEC
    blk = []
    for _ in range(2):
        blk.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        blk.append(nn.BatchNorm2d(out_channels, eps=spec.bn_eps, momentum=spec.bn_momentum))
        blk.append(nn.ReLU())
        in_channels = out_channels
    blk.append(nn.MaxPool2d(2))
    return nn.Sequential(*blk)


@implements
def base_net(spec=None):
    spec = spec or _BOOK_SPEC
    return nn.Sequential(*[down_sample_blk(c_in, c_out, spec) for c_in, c_out in spec.block_layout(0)[1]])


@implements
def get_blk(i, spec=None):
    spec = spec or _BOOK_SPEC
    layout = spec.block_layout(i)
    if layout[0] == "base":
        return base_net(spec)
    if layout[0] == "down":
        return down_sample_blk(layout[1], layout[2], spec)
    return nn.AdaptiveMaxPool2d()


@implements
def blk_forward(X, blk, size, ratio, cls_predictor, bbox_predictor):
    Y = blk(X)
    anchors = boxes.multibox_prior(Y, sizes=size, ratios=ratio)
    return (Y, anchors, cls_predictor(Y), bbox_predictor(Y))


@implements
class TinySSD(TinySSDMixin, nn.Layer):
    _nn = sys.modules[__name__]

    def __init__(self, num_classes=1, spec=None, seed=0):
        nn.Layer.__init__(self)
        self._build(resolve_spec(num_classes, spec), seed)


@implements
def adaptive_max_pool(size):
    return nn.AdaptiveMaxPool2d(size)


@implements
def std_conv(in_channels, out_channels, stride, spec=None):
    spec = spec or _BOOK_SPEC
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, stride=stride), nn.ReLU(),
                         nn.BatchNorm2d(out_channels, eps=spec.bn_eps, momentum=spec.bn_momentum),
                         nn.Dropout(STD_CONV_DROPOUT))


@implements
def lesson_head(in_features, hidden, out_features, p, spec=None):
    spec = spec or _BOOK_SPEC
    return nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Dropout(p), nn.Linear(in_features, hidden), nn.ReLU(),
                         nn.BatchNorm1d(hidden, eps=spec.bn_eps, momentum=spec.bn_momentum), nn.Dropout(p),
                         nn.Linear(hidden, out_features))


@implements
class Classifier(ClassifierMixin, nn.Layer):
    _nn = sys.modules[__name__]

    def __init__(self, spec, seed=0):
        nn.Layer.__init__(self)
        self._build(spec, seed)


# --------------------------------------------------------------------------------------------
# Weights by neutral name
# --------------------------------------------------------------------------------------------

@implements
def get_weights(net):
    arrays = dict(net.named_arrays())
    return OrderedDict((name, arrays[name].copy()) for name in net.spec.parameters())


@implements
def set_weights(net, weights):
    for name, value in weights.items():
        net.set_array(name, value)


# --------------------------------------------------------------------------------------------
# Losses and metrics (values only)
# --------------------------------------------------------------------------------------------

def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    total = loss.sum(dtype=loss.dtype)
    return total if reduction == "sum" else total / max(1, loss.size)  # empty mean is 0, not NaN


def _ce(logits, labels):
    """``(..., C), (...) -> (...)``: log-sum-exp minus the label's logit."""
    top = logits.max(axis=-1, keepdims=True)                                   # (..., 1)
    lse = top[..., 0] + np.log(np.exp(logits - top).sum(axis=-1))              # (...)
    return lse - np.take_along_axis(logits, labels.astype(np.int64)[..., None], axis=-1)[..., 0]


def _focal(logits, labels, alpha, gamma):
    ce = _ce(logits, labels)
    if gamma == 0:
        return alpha * ce
    return alpha * (1 - np.exp(-ce)) ** gamma * ce


def _binary_focal(logits, labels, alpha, gamma):
    """``(..., C), (...) -> (..., C - 1)``: sigmoid BCE on the object columns, optionally focal."""
    x = logits[..., 1:]                                                          # (..., Q)
    classes = np.arange(1, x.shape[-1] + 1)                                      # (Q,)
    t = (labels.astype(np.int64)[..., None] == classes).astype(x.dtype)          # (..., Q) one-hot
    loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    if gamma != 0:
        p = 1 / (1 + np.exp(-x))
        loss = loss * (1 - (p * t + (1 - p) * (1 - t))) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


def _smooth_l1(x, sigma):
    diff = np.abs(x)
    return np.where(diff < 1 / sigma ** 2, 0.5 * (sigma * diff) ** 2, diff - 0.5 / sigma ** 2)


@implements
def cross_entropy(logits, labels, reduction="mean"):
    return _reduce(_ce(logits, labels), reduction)


@implements
def focal_loss(logits, labels, alpha=0.25, gamma=2.0, reduction="mean"):
    return _reduce(_focal(logits, labels, alpha, gamma), reduction)


@implements
def binary_focal_loss(logits, labels, alpha=-1.0, gamma=0.0, reduction="mean"):
    return _reduce(_binary_focal(logits, labels, alpha, gamma), reduction)


@implements
def smooth_l1_loss(preds, targets, sigma=1.0, reduction="mean"):
    return _reduce(_smooth_l1(preds - targets, sigma), reduction)


@implements
def calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks, config=BOOK_LOSS):
    if config.cls_loss == "ce":
        cls = _ce(cls_preds, cls_labels)                                         # (B, A)
    elif config.cls_loss == "focal":
        cls = _focal(cls_preds, cls_labels, config.focal_alpha, config.focal_gamma)
    else:
        alpha, gamma = (-1.0, 0.0) if config.cls_loss == "bce" else (config.focal_alpha, config.focal_gamma)
        cls = _binary_focal(cls_preds, cls_labels, alpha, gamma).sum(axis=-1)   # (B, A)
    diff = bbox_preds * bbox_masks - bbox_labels * bbox_masks                    # (B, 4A)
    box = np.abs(diff) if config.box_loss == "l1" else _smooth_l1(diff, config.sigma)
    positive = cls_labels > 0                                                    # (B, A)
    num_pos = positive.sum(axis=1)                                               # (B,)
    if config.neg_pos_ratio is None and config.per_positive:  # RetinaNet: sums over the positives
        norm = np.maximum(num_pos, 1).astype(cls.dtype)
        cls, box = cls.sum(axis=1) / norm, box.sum(axis=1) / norm
    elif config.neg_pos_ratio is None:  # the book: average over every anchor
        cls, box = cls.mean(axis=1), box.mean(axis=1)
    else:  # hard negative mining
        num_neg = np.minimum(np.floor(num_pos * config.neg_pos_ratio).astype(np.int64), positive.shape[1] - num_pos)
        neg_loss = np.where(positive, -np.inf, cls)                              # (B, A)
        order = np.argsort(-neg_loss, axis=1, kind="stable")
        rank = np.argsort(order, axis=1, kind="stable")                          # rank of each anchor
        selected = positive | (rank < num_neg[:, None])
        norm = np.maximum(num_pos, 1).astype(cls.dtype)
        cls = np.where(selected, cls, 0).sum(axis=1) / norm
        box = box.sum(axis=1) / norm
    return (config.cls_weight * cls + config.box_weight * box).astype(cls_preds.dtype)


@implements
def class_probabilities(cls_preds, head="softmax"):
    if head == "softmax":
        exp = np.exp(cls_preds - cls_preds.max(axis=-1, keepdims=True))
        return exp / exp.sum(axis=-1, keepdims=True)
    objects = 1 / (1 + np.exp(-cls_preds[..., 1:]))                              # (B, A, Q)
    return np.concatenate([1 - objects.max(axis=-1, keepdims=True), objects], axis=-1)


@implements
def cls_eval(cls_preds, cls_labels, head="softmax"):
    if head == "softmax":
        predicted = cls_preds.argmax(axis=-1)
    else:  # background unless some object column's sigmoid reaches 0.5, i.e. its logit reaches 0
        objects = cls_preds[..., 1:]
        predicted = np.where(objects.max(axis=-1) >= 0, objects.argmax(axis=-1) + 1, 0)
    return float((predicted.astype(cls_labels.dtype) == cls_labels).sum())


@implements
def bbox_eval(bbox_preds, bbox_labels, bbox_masks):
    return float((np.abs((bbox_labels - bbox_preds) * bbox_masks)).sum())
