"""PaddlePaddle: the model pieces and losses of :mod:`multissd.nn`, in Paddle's idiom.

Same functions, same order as ``numpy/nn.py`` and ``torch/nn.py``. Paddle quirks handled here:
batch norm's ``momentum`` is ``1 -`` torch's, its statistics are called ``_mean``/``_variance``
(mapped to the neutral ``running_mean``/``running_var``), and it updates the running variance with
the biased batch variance where torch uses the unbiased one (corrected in :class:`BatchNorm2D`).
"""
from __future__ import annotations

import sys
from collections import OrderedDict

import numpy as np
import paddle
from paddle import nn
from paddle.nn import functional as F
from paddle.nn.functional import batch_norm

from multissd.backends.paddle import boxes
from multissd.checks import device_values_wanted
from multissd.classifier import STD_CONV_DROPOUT, ClassifierMixin
from multissd.model import TinySSDMixin, TinySSDSpec, resolve_spec
from multissd.nn import BOOK_LOSS, implements

_BOOK_SPEC = TinySSDSpec()
# neutral name suffix -> paddle's
_PADDLE_NAMES = {"running_mean": "_mean", "running_var": "_variance"}


@implements
@paddle.jit.not_to_static
def concat(tensors, axis):  # not_to_static: paddle.jit would re-run the decorators of a transformed copy
    """Concatenate along ``axis`` (the mixin's adapter)."""
    return paddle.concat(tensors, axis=axis)


@implements
@paddle.jit.not_to_static
def reshape(x, shape):
    """Reshape (the mixin's adapter)."""
    return x.reshape(list(shape))


@implements
@paddle.jit.not_to_static
def on_device_of(x, reference):
    """``x`` where ``reference`` lives (the mixin's adapter): paddle places tensors on its current device."""
    return x


@implements
@paddle.jit.not_to_static
def dropout(p):
    """A dropout layer (the mixin's adapter; the lesson's ``drop``)."""
    return nn.Dropout(p)


@implements
@paddle.jit.not_to_static
def linear(in_features, out_features):
    """A linear layer ``(B, in) -> (B, out)`` (the classifiers' ``fc``; paddle stores its weight as
    ``(in, out)``, transposed by the weight functions below)."""
    return nn.Linear(in_features, out_features)


@implements
@paddle.jit.not_to_static
def sigmoid(x):
    """The logistic function (the mixins' adapter)."""
    return paddle.nn.functional.sigmoid(x)


@implements
@paddle.jit.not_to_static
def relu(x):
    """``max(x, 0)`` (the mixins' adapter)."""
    return F.relu(x)


@implements
@paddle.jit.not_to_static
def values_on_host(x):
    if not paddle.in_dynamic_mode():  # paddle.jit traces the model: x is a placeholder
        return None
    return x.numpy() if x.place.is_cpu_place() or device_values_wanted() else None


class BatchNorm2D(nn.BatchNorm2D):
    """``paddle.nn.BatchNorm2D`` with torch's conventions: ``momentum`` as torch's, and the running
    variance updated with the unbiased batch variance (paddle uses the biased one).

    ``forward(x, shift)`` normalises ``x + shift`` for a ``(C,)`` ``shift`` (the bias of the
    convolution before it) without adding ``shift`` to the ``(B, C, H, W)`` activations when
    training: batch statistics cancel a per-channel constant, so the output is the same, the
    running mean gets ``shift`` added as it would have (torch's update of the mean of
    ``x + shift``), and ``shift``'s gradient is its exact value, zero, through a ``(C,)`` product.
    Eager paddle adds a bias as a separate broadcast and reduces its gradient back over
    ``(B, H, W)``: a quarter of the TinySSD training step on a CPU, which this path takes away.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__(num_features, momentum=1 - momentum, epsilon=eps)
        self._torch_momentum = momentum

    def forward(self, x, shift=None):
        if not self.training:
            if shift is not None:
                x = x + shift.reshape([1, -1, 1, 1])
            return batch_norm(x, self._mean, self._variance, weight=self.weight, bias=self.bias,
                              training=False, epsilon=self._epsilon)
        previous = self._variance.clone()
        # The shift enters through batch norm's (C,) bias times zero: its exact gradient.
        bias = self.bias if shift is None else self.bias + 0.0 * shift
        out = batch_norm(x, self._mean, self._variance, weight=self.weight, bias=bias, training=True,
                         momentum=self._momentum, epsilon=self._epsilon)
        n = x.shape[0] * x.shape[2] * x.shape[3]
        with paddle.no_grad():
            m = self._torch_momentum
            if shift is not None:  # the running mean of x + shift, as torch's update gives it
                self._mean.set_value(self._mean + m * shift)
            if n > 1:
                biased = (self._variance - (1 - m) * previous) / m  # recovered from paddle's update
                self._variance.set_value((1 - m) * previous + m * biased * (n / (n - 1)))
        return out


class BatchNorm1D(BatchNorm2D):
    """Batch norm over the features of ``(B, F)`` with torch's conventions (the lesson's
    ``BatchNorm1d``): :class:`BatchNorm2D` on ``(B, F, 1, 1)``, so its momentum and unbiased running
    variance are the same code."""

    def forward(self, x, shift=None):
        return super().forward(x.reshape([x.shape[0], -1, 1, 1]), shift).reshape([x.shape[0], -1])


class ConvNormSequential(nn.Sequential):
    """``nn.Sequential`` whose ``Conv2D`` followed by :class:`BatchNorm2D` hands the convolution's
    bias to the batch norm as its ``shift`` instead of adding it (same layers, names and weights)."""

    def forward(self, x):
        layers = list(self._sub_layers.values())
        i = 0
        while i < len(layers):
            layer = layers[i]
            following = layers[i + 1] if i + 1 < len(layers) else None
            if (type(following) is BatchNorm2D and isinstance(layer, nn.Conv2D) and layer.bias is not None
                    and layer._padding_mode == "zeros"):
                x = following(F.conv2d(x, layer.weight, None, stride=layer._stride, padding=layer._padding,
                                       dilation=layer._dilation, groups=layer._groups,
                                       data_format=layer._data_format), shift=layer.bias)
                i += 2
            else:
                x = layer(x)
                i += 1
        return x


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------

@implements
def cls_predictor(num_inputs, num_anchors, num_classes):
    return nn.Conv2D(num_inputs, num_anchors * (num_classes + 1), kernel_size=3, padding=1)


@implements
def bbox_predictor(num_inputs, num_anchors):
    return nn.Conv2D(num_inputs, num_anchors * 4, kernel_size=3, padding=1)


@paddle.jit.not_to_static  # traced as it runs by paddle.jit / paddle.onnx.export, not rewritten
@implements
def flatten_pred(pred):
    return paddle.flatten(pred.transpose([0, 2, 3, 1]), start_axis=1)  # (B, ch, H, W) -> (B, H*W*ch)


@paddle.jit.not_to_static  # traced as it runs by paddle.jit / paddle.onnx.export, not rewritten
@implements
def concat_preds(preds):
    return paddle.concat([flatten_pred(p) for p in preds], axis=1)


@implements
def down_sample_blk(in_channels, out_channels, spec=None):
    spec = spec or _BOOK_SPEC
    blk = []
    for _ in range(2):
        blk.append(nn.Conv2D(in_channels, out_channels, kernel_size=3, padding=1))
        blk.append(BatchNorm2D(out_channels, eps=spec.bn_eps, momentum=spec.bn_momentum))
        blk.append(nn.ReLU())
        in_channels = out_channels
    blk.append(nn.MaxPool2D(2))
    return ConvNormSequential(*blk)


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
    return nn.AdaptiveMaxPool2D((1, 1))


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
    return nn.AdaptiveMaxPool2D((size, size))


@implements
def std_conv(in_channels, out_channels, stride, spec=None):
    spec = spec or _BOOK_SPEC
    return nn.Sequential(nn.Conv2D(in_channels, out_channels, kernel_size=3, padding=1, stride=stride), nn.ReLU(),
                         BatchNorm2D(out_channels, eps=spec.bn_eps, momentum=spec.bn_momentum),
                         nn.Dropout(STD_CONV_DROPOUT))


@implements
def lesson_head(in_features, hidden, out_features, p, spec=None):
    spec = spec or _BOOK_SPEC
    return nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Dropout(p), nn.Linear(in_features, hidden), nn.ReLU(),
                         BatchNorm1D(hidden, eps=spec.bn_eps, momentum=spec.bn_momentum), nn.Dropout(p),
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

def _paddle_name(name: str) -> str:
    owner, _, leaf = name.rpartition(".")
    return f"{owner}.{_PADDLE_NAMES.get(leaf, leaf)}"


@implements
def get_weights(net):
    state = net.state_dict()
    return OrderedDict((name, _from_paddle(state[_paddle_name(name)].numpy(), kind))
                       for name, (_, kind) in net.spec.parameters().items())


@implements
def set_weights(net, weights):
    state, kinds = net.state_dict(), {name: kind for name, (_, kind) in net.spec.parameters().items()}
    for name, value in weights.items():
        state[_paddle_name(name)].set_value(_from_paddle(np.array(value, dtype=np.float32), kinds[name]))


def _from_paddle(array, kind):
    """A linear layer's weight is ``(in, out)`` in paddle, ``(out, in)`` by neutral name (and back)."""
    return np.ascontiguousarray(array.T) if kind == "linear.weight" else array.copy()


# --------------------------------------------------------------------------------------------
# Losses and metrics
# --------------------------------------------------------------------------------------------

def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else total / max(1, loss.numel().item())  # empty mean is 0, not NaN


def _ce(logits, labels):
    """``(..., C), (...) -> (...)``: log-sum-exp minus the label's logit (paddle's log_softmax
    saturates at -64 on CPU, so it is not used)."""
    top = logits.detach().amax(axis=-1, keepdim=True)                          # (..., 1)
    lse = top.squeeze(-1) + paddle.log(paddle.exp(logits - top).sum(axis=-1))  # (...)
    return lse - paddle.take_along_axis(logits, labels.astype("int64").unsqueeze(-1), axis=-1).squeeze(-1)


def _focal(logits, labels, alpha, gamma):
    ce = _ce(logits, labels)
    if gamma == 0:
        return alpha * ce
    return alpha * (1 - paddle.exp(-ce)) ** gamma * ce


def _binary_focal(logits, labels, alpha, gamma):
    """``(..., C), (...) -> (..., C - 1)``: sigmoid BCE on the object columns, optionally focal."""
    x = logits[..., 1:]                                                          # (..., Q)
    classes = paddle.arange(1, x.shape[-1] + 1, dtype="int64")                   # (Q,)
    t = (labels.astype("int64").unsqueeze(-1) == classes).astype(x.dtype)        # (..., Q) one-hot
    loss = x.clip(min=0) - x * t + paddle.log1p(paddle.exp(-x.abs()))
    if gamma != 0:
        p = paddle.nn.functional.sigmoid(x)
        loss = loss * (1 - (p * t + (1 - p) * (1 - t))) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


def _smooth_l1(x, sigma):
    diff = x.abs()
    return paddle.where(diff < 1 / sigma ** 2, 0.5 * (sigma * diff) ** 2, diff - 0.5 / sigma ** 2)


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
    box = diff.abs() if config.box_loss == "l1" else _smooth_l1(diff, config.sigma)
    positive = cls_labels > 0                                                    # (B, A)
    num_pos = positive.astype("int64").sum(axis=1)                               # (B,)
    if config.neg_pos_ratio is None and config.per_positive:  # RetinaNet: sums over the positives
        norm = num_pos.clip(min=1).astype(cls.dtype)
        cls, box = cls.sum(axis=1) / norm, box.sum(axis=1) / norm
    elif config.neg_pos_ratio is None:  # the book: average over every anchor
        cls, box = cls.mean(axis=1), box.mean(axis=1)
    else:  # hard negative mining
        num_neg = paddle.minimum(paddle.floor(num_pos.astype("float64") * config.neg_pos_ratio).astype("int64"),
                                 positive.shape[1] - num_pos)
        neg_loss = paddle.where(positive, paddle.full_like(cls, -np.inf), cls.detach())  # (B, A)
        order = paddle.argsort(neg_loss, axis=1, descending=True, stable=True)
        rank = paddle.argsort(order, axis=1, stable=True)                        # rank of each anchor
        selected = positive | (rank < num_neg.unsqueeze(1))
        norm = num_pos.clip(min=1).astype(cls.dtype)
        cls = paddle.where(selected, cls, paddle.zeros_like(cls)).sum(axis=1) / norm
        box = box.sum(axis=1) / norm
    return (config.cls_weight * cls + config.box_weight * box).astype(cls_preds.dtype)


@implements
def class_probabilities(cls_preds, head="softmax"):
    if head == "softmax":
        return paddle.nn.functional.softmax(cls_preds, axis=-1)
    objects = paddle.nn.functional.sigmoid(cls_preds[..., 1:])                   # (B, A, Q)
    return paddle.concat([1 - objects.amax(axis=-1, keepdim=True), objects], axis=-1)


@implements
def cls_eval(cls_preds, cls_labels, head="softmax"):
    cls_preds = cls_preds.detach()
    if head == "softmax":
        predicted = cls_preds.argmax(axis=-1)
    else:  # background unless some object column's sigmoid reaches 0.5, i.e. its logit reaches 0
        objects = cls_preds[..., 1:]
        predicted = paddle.where(objects.amax(axis=-1) >= 0, objects.argmax(axis=-1) + 1,
                                 paddle.zeros_like(objects.argmax(axis=-1)))
    return float((predicted.astype(cls_labels.dtype) == cls_labels).astype("float32").sum())


@implements
def bbox_eval(bbox_preds, bbox_labels, bbox_masks):
    return float((paddle.abs((bbox_labels - bbox_preds.detach()) * bbox_masks)).sum())
