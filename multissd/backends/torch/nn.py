"""PyTorch: the model pieces and losses of :mod:`multissd.nn`, in PyTorch's idiom.

Same functions, same order as ``numpy/nn.py`` and ``paddle/nn.py``. The layers are the book's
(``nn.Conv2d``, ``nn.BatchNorm2d``, ...); ``TinySSD`` is a native ``torch.nn.Module`` whose
structure comes from :class:`multissd.TinySSDSpec` via :class:`multissd.model.TinySSDMixin`.
"""
from __future__ import annotations

import sys
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from multissd.backends.torch import boxes
from multissd.checks import device_values_wanted
from multissd.classifier import STD_CONV_DROPOUT, ClassifierMixin
from multissd.model import TinySSDMixin, TinySSDSpec, resolve_spec
from multissd.nn import BOOK_LOSS, implements

_BOOK_SPEC = TinySSDSpec()


@implements
def concat(tensors, axis):
    """Concatenate along ``axis`` (the mixin's adapter)."""
    return torch.cat(tensors, dim=axis)


@implements
def reshape(x, shape):
    """Reshape (the mixin's adapter)."""
    return x.reshape(shape)


@implements
def on_device_of(x, reference):
    """``x`` on the device of ``reference`` (the mixin's adapter)."""
    return x.to(reference.device)


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
    return torch.sigmoid(x)


@implements
def relu(x):
    """``max(x, 0)`` (the mixins' adapter)."""
    return torch.relu(x)


@implements
def values_on_host(x):
    if boxes.on_host(x):
        return x.detach().numpy()
    return x.detach().cpu().numpy() if device_values_wanted() and type(x) is torch.Tensor else None


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
    return torch.flatten(pred.permute(0, 2, 3, 1), start_dim=1)  # (B, ch, H, W) -> (B, H*W*ch)


@implements
def concat_preds(preds):
    return torch.cat([flatten_pred(p) for p in preds], dim=1)


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
    return nn.AdaptiveMaxPool2d((1, 1))


@implements
def blk_forward(X, blk, size, ratio, cls_predictor, bbox_predictor):
    Y = blk(X)
    anchors = boxes.multibox_prior(Y, sizes=size, ratios=ratio)
    return (Y, anchors, cls_predictor(Y), bbox_predictor(Y))


@implements
class TinySSD(TinySSDMixin, nn.Module):
    _nn = sys.modules[__name__]

    def __init__(self, num_classes=1, spec=None, seed=0):
        nn.Module.__init__(self)
        self._build(resolve_spec(num_classes, spec), seed)


@implements
def adaptive_max_pool(size):
    return nn.AdaptiveMaxPool2d((size, size))


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
class Classifier(ClassifierMixin, nn.Module):
    _nn = sys.modules[__name__]

    def __init__(self, spec, seed=0):
        nn.Module.__init__(self)
        self._build(spec, seed)


# --------------------------------------------------------------------------------------------
# Weights by neutral name (torch's names are the neutral ones; num_batches_tracked is not kept)
# --------------------------------------------------------------------------------------------

@implements
def get_weights(net):
    state = net.state_dict()
    return OrderedDict((name, state[name].detach().cpu().numpy().copy()) for name in net.spec.parameters())


@implements
def set_weights(net, weights):
    state = net.state_dict()
    with torch.no_grad():
        for name, value in weights.items():
            state[name].copy_(torch.from_numpy(np.array(value, dtype=np.float32)))


# --------------------------------------------------------------------------------------------
# Losses and metrics
# --------------------------------------------------------------------------------------------

def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else total / max(1, loss.numel())  # empty mean is 0, not NaN


def _ce(logits, labels):
    """``(..., C), (...) -> (...)``: log-sum-exp minus the label's logit."""
    top = logits.detach().amax(dim=-1, keepdim=True)                           # (..., 1)
    lse = top.squeeze(-1) + torch.log(torch.exp(logits - top).sum(dim=-1))     # (...)
    return lse - torch.gather(logits, -1, labels.long().unsqueeze(-1)).squeeze(-1)


def _focal(logits, labels, alpha, gamma):
    ce = _ce(logits, labels)
    if gamma == 0:
        return alpha * ce
    return alpha * (1 - torch.exp(-ce)) ** gamma * ce


def _binary_focal(logits, labels, alpha, gamma):
    """``(..., C), (...) -> (..., C - 1)``: sigmoid BCE on the object columns, optionally focal."""
    x = logits[..., 1:]                                                          # (..., Q)
    classes = torch.arange(1, x.shape[-1] + 1, device=x.device)                  # (Q,)
    t = (labels.long().unsqueeze(-1) == classes).to(x.dtype)                     # (..., Q) one-hot
    loss = x.clamp(min=0) - x * t + torch.log1p(torch.exp(-x.abs()))
    if gamma != 0:
        p = torch.sigmoid(x)
        loss = loss * (1 - (p * t + (1 - p) * (1 - t))) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


def _smooth_l1(x, sigma):
    diff = x.abs()
    return torch.where(diff < 1 / sigma ** 2, 0.5 * (sigma * diff) ** 2, diff - 0.5 / sigma ** 2)


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
        cls = _binary_focal(cls_preds, cls_labels, alpha, gamma).sum(dim=-1)    # (B, A)
    diff = bbox_preds * bbox_masks - bbox_labels * bbox_masks                    # (B, 4A)
    box = diff.abs() if config.box_loss == "l1" else _smooth_l1(diff, config.sigma)
    positive = cls_labels > 0                                                    # (B, A)
    num_pos = positive.sum(dim=1)                                                # (B,)
    if config.neg_pos_ratio is None and config.per_positive:  # RetinaNet: sums over the positives
        norm = num_pos.clamp(min=1).to(cls.dtype)
        cls, box = cls.sum(dim=1) / norm, box.sum(dim=1) / norm
    elif config.neg_pos_ratio is None:  # the book: average over every anchor
        cls, box = cls.mean(dim=1), box.mean(dim=1)
    else:  # hard negative mining
        num_neg = torch.minimum(torch.floor(num_pos * config.neg_pos_ratio).long(), positive.shape[1] - num_pos)
        neg_loss = torch.where(positive, -torch.inf, cls.detach())               # (B, A)
        order = torch.sort(neg_loss, dim=1, descending=True, stable=True).indices
        rank = torch.argsort(order, dim=1)                                       # rank of each anchor
        selected = positive | (rank < num_neg[:, None])
        norm = num_pos.clamp(min=1).to(cls.dtype)
        cls = torch.where(selected, cls, 0.0).sum(dim=1) / norm
        box = box.sum(dim=1) / norm
    return (config.cls_weight * cls + config.box_weight * box).to(cls_preds.dtype)


@implements
def class_probabilities(cls_preds, head="softmax"):
    if head == "softmax":
        return torch.softmax(cls_preds, dim=-1)
    objects = torch.sigmoid(cls_preds[..., 1:])                                  # (B, A, Q)
    return torch.cat([1 - objects.amax(dim=-1, keepdim=True), objects], dim=-1)


@implements
def cls_eval(cls_preds, cls_labels, head="softmax"):
    cls_preds = cls_preds.detach()
    if head == "softmax":
        predicted = cls_preds.argmax(dim=-1)
    else:  # background unless some object column's sigmoid reaches 0.5, i.e. its logit reaches 0
        objects = cls_preds[..., 1:]
        predicted = torch.where(objects.amax(dim=-1) >= 0, objects.argmax(dim=-1) + 1, 0)
    return float((predicted.type(cls_labels.dtype) == cls_labels).sum())


@implements
def bbox_eval(bbox_preds, bbox_labels, bbox_masks):
    return float((torch.abs((bbox_labels - bbox_preds.detach()) * bbox_masks)).sum())
