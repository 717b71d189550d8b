"""The fastai lesson 9's models before its full SSD, on TinySSD's base network: the largest object of
an image (a class and a box from one head), a multi-label classifier (a sigmoid per class), and the
SSD head on a 4 x 4 grid of anchors (``k`` per cell).

Described once as data (:class:`ClassifierSpec`) and built natively by every backend
(``multissd.Classifier``), like :class:`multissd.TinySSDSpec`. The lesson put these heads on a
pretrained ResNet-34, whose last map is 7 x 7 for its 224 x 224 images; nothing can be downloaded
here, so the base network is TinySSD's, trained from scratch, and the heads that read a 7 x 7 map
get the base network's map max-pooled to ``pool_size x pool_size`` (7: the lesson's). The heads:

- ``head="pool"`` (largest, multilabel): a global max pool, dropout and one linear layer ``fc``;
- ``head="lesson"`` (largest, multilabel): the lesson's ``head_reg4`` -- the 7 x 7 map flattened,
  ReLU, dropout, a linear layer of ``hidden`` (256), ReLU, batch norm, dropout, a linear layer;
- ``task="grid"``: the lesson's ``SSD_Head`` -- ReLU and dropout on the 7 x 7 map, a stride-1 and a
  stride-2 ``StdConv`` (3 x 3 convolution, ReLU, batch norm, dropout 0.1) to a 4 x 4 map, then its
  ``OutConv``: a class and a box convolution, the class biases starting at ``cls_bias`` (-3).

Parameter names are neutral (``blk_0.*`` as TinySSD's base network; linear weights ``(out, in)``;
the lesson's layer positions inside its ``nn.Sequential`` blocks).
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import asdict, dataclass

import numpy as np

from multissd import checks
from multissd.errors import InputError
from multissd.model import MAX_IMAGE_SIDE, TinySSDSpec, init_weights

TASKS = ("largest", "multilabel", "grid")
HEADS = ("pool", "lesson")
STD_CONV_DROPOUT = 0.1
"""The dropout inside the lesson's ``StdConv`` (``nn.Dropout(0.1)`` after its batch norm)."""
GRID_SIDE = 4
"""The grid task's cells per side: a 7 x 7 map, a stride-1 then a stride-2 convolution -> 4 x 4."""


@dataclass(frozen=True)
class ClassifierSpec:
    """A classifier on TinySSD's base network.

    Attributes:
        task: ``"largest"`` -- the largest object: ``(cls_logits (B, Q), box (B, 4))``, the box a
            sigmoid of four outputs, normalised corners ``(xmin, ymin, xmax, ymax)`` (the lesson's
            ``F.sigmoid(bb) * 224``, in units of the image); ``"multilabel"`` -- ``(B, Q)`` logits,
            one sigmoid per class (present when above a threshold); ``"grid"`` -- the SSD head on a
            4 x 4 grid: ``(cls_logits (B, 16 k, Q + 1), activations (B, 16 k, 4))``, anchor
            ``i * k + j`` for cell ``i`` (row-major) and anchor kind ``j``, class column 0 the
            background (read the activations as boxes with :func:`multissd.actn_to_bb`).
        num_classes: ``Q``, object classes (no background).
        in_channels, base_channels, bn_eps, bn_momentum: as :class:`multissd.TinySSDSpec`'s.
        dropout: for ``head="pool"`` the dropout before ``fc``; for ``head="lesson"`` each of its
            two dropouts (the lesson's 0.5); for ``"grid"`` the dropout on the head's input (the
            lesson's 0.25). 0 by default.
        head: ``"pool"`` or ``"lesson"`` (:data:`HEADS`) for the two classifiers; the grid task's
            head is always the lesson's ``SSD_Head``.
        hidden: the lesson heads' width (256: the lesson's linear layer and convolutions).
        pool_size: the side the base network's map is max-pooled to for the lesson heads (7).
        k: anchors per grid cell (the grid task; the lesson's 1, later 9).
        cls_bias: the grid task's initial class biases (the lesson's -3: every class starts at
            sigmoid(-3) = 0.047).
    """

    task: str = "largest"
    num_classes: int = 1
    in_channels: int = 3
    base_channels: tuple[int, ...] = (16, 32, 64)
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    dropout: float = 0.0
    head: str = "pool"
    hidden: int = 256
    pool_size: int = 7
    k: int = 1
    cls_bias: float = -3.0

    def __post_init__(self):
        object.__setattr__(self, "base_channels", tuple(int(c) for c in self.base_channels))
        if self.task not in TASKS:
            raise InputError(f"Expected task to be one of {list(TASKS)}; received task={self.task!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise InputError(f"Expected num_classes to be an integer >= 1; received {self.num_classes!r}")
        if not 0 <= self.dropout < 1:
            raise InputError(f"Expected dropout in [0, 1); received dropout={self.dropout!r}")
        if self.head not in HEADS:
            raise InputError(f"Expected head to be one of {list(HEADS)}; received head={self.head!r}")
        for name in ("hidden", "pool_size", "k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"Expected {name} to be an integer >= 1; received {name}={value!r}")
        if self.task == "grid" and self.pool_size not in (7, 8):
            raise InputError(f"The grid task's stride-1 and stride-2 convolutions make a 4 x 4 grid from a 7 x 7 "
                             f"or 8 x 8 map; received pool_size={self.pool_size}")
        if isinstance(self.cls_bias, bool) or not isinstance(self.cls_bias, (int, float)) or not math.isfinite(
                self.cls_bias):
            raise InputError(f"Expected cls_bias to be a finite number; received cls_bias={self.cls_bias!r}")
        self.base_spec()  # validates the base network's fields

    def base_spec(self) -> TinySSDSpec:
        """A TinySSD whose base network (stage 0) is this classifier's."""
        return TinySSDSpec(in_channels=self.in_channels, base_channels=self.base_channels, bn_eps=self.bn_eps,
                           bn_momentum=self.bn_momentum)

    @property
    def outputs(self) -> int:
        """Outputs of the last linear layer: 4 box coordinates and ``Q`` class logits, or ``Q``
        logits (the grid task has none: its outputs are convolutions)."""
        return self.num_classes + (4 if self.task == "largest" else 0)

    @property
    def uses_pool(self) -> bool:
        """Whether the base network's map is max-pooled to ``pool_size`` (the lesson's heads)."""
        return self.task == "grid" or self.head == "lesson"

    def parameters(self) -> "OrderedDict[str, tuple[tuple[int, ...], str]]":
        """Every parameter and buffer: neutral name -> (shape, kind), in registration order.

        Kinds as :meth:`multissd.TinySSDSpec.parameters`', with ``conv.weight`` ``(out, in, 3, 3)``,
        ``linear.weight`` ``(out, in)``, ``linear.bias`` and ``bn.*`` ``(channels,)``.
        """
        base = self.base_spec().parameters()
        params = OrderedDict((name, value) for name, value in base.items() if name.startswith("blk_0."))
        channels = self.base_channels[-1]

        def layer(prefix, weight_shape, kind):
            params[f"{prefix}.weight"] = (weight_shape, f"{kind}.weight")
            params[f"{prefix}.bias"] = ((weight_shape[0],), f"{kind}.bias")

        def batch_norm(prefix, width):
            for part in ("weight", "bias", "running_mean", "running_var"):
                params[f"{prefix}.{part}"] = ((width,), f"bn.{part}")

        if self.task == "grid":                      # SSD_Head: sconv0 (stride 1), sconv2 (stride 2), OutConv
            for i, c_in in enumerate((channels, self.hidden)):
                layer(f"sconv_{i}.0", (self.hidden, c_in, 3, 3), "conv")       # StdConv: conv, ReLU, BN, dropout
                batch_norm(f"sconv_{i}.2", self.hidden)
            layer("cls", (self.k * (self.num_classes + 1), self.hidden, 3, 3), "conv")
            layer("bbox", (self.k * 4, self.hidden, 3, 3), "conv")
        elif self.head == "lesson":                  # head_reg4: Flatten, ReLU, Dropout, Linear, ReLU, BN, Dropout, Linear
            layer("head.3", (self.hidden, channels * self.pool_size ** 2), "linear")
            batch_norm("head.5", self.hidden)
            layer("head.7", (self.outputs, self.hidden), "linear")
        else:
            layer("fc", (self.outputs, channels), "linear")
        return params

    def check_weights(self, weights, source: str = "weights") -> None:
        """As :meth:`multissd.TinySSDSpec.check_weights`."""
        TinySSDSpec.check_weights(self, weights, source)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ClassifierSpec":
        data = json.loads(text)
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})


def classifier_weights(spec: ClassifierSpec, seed: int = 0) -> "OrderedDict[str, np.ndarray]":
    """Initial weights, drawn with NumPy, identical on every backend: the base network as TinySSD's
    from ``seed``; the head's layers PyTorch's defaults (weights and biases uniform in
    ``+-1/sqrt(fan_in)``, batch norm at weight 1, bias 0, mean 0, variance 1), drawn in the spec's
    order; the grid task's class biases all ``cls_bias`` (the lesson's ``bias.data.zero_().add_(-3)``)."""
    base = init_weights(spec.base_spec(), seed)
    weights = OrderedDict((name, value) for name, value in base.items() if name.startswith("blk_0."))
    rng = np.random.default_rng([seed, 9])
    bound = 0.0
    for name, (shape, kind) in spec.parameters().items():
        if name in weights:
            continue
        if kind.endswith(".weight") and not kind.startswith("bn."):
            bound = 1 / math.sqrt(int(np.prod(shape[1:])))                    # fan_in: in x 3 x 3, or in
            value = rng.uniform(-bound, bound, shape)
        elif kind.endswith(".bias") and not kind.startswith("bn."):
            value = np.full(shape, spec.cls_bias) if name == "cls.bias" else rng.uniform(-bound, bound, shape)
        elif kind in ("bn.weight", "bn.running_var"):
            value = np.ones(shape)
        else:
            value = np.zeros(shape)
        weights[name] = value.astype(np.float32)
    return weights


class ClassifierMixin:
    """Structure and forward pass of the lesson's classifiers; ``_nn`` is the backend's ``nn`` module
    (``base_net``, ``get_blk``, ``dropout``, ``linear`` and the adapters ``reshape``, ``sigmoid``)."""

    _nn = None

    def _build(self, spec: ClassifierSpec, seed: int) -> None:
        nn = self._nn
        self.spec = spec
        base = spec.base_spec()
        channels = spec.base_channels[-1]
        self.blk_0 = nn.base_net(base)
        if spec.uses_pool:
            self.pool = nn.adaptive_max_pool(spec.pool_size)                      # the lesson's 7 x 7 map
        else:
            self.pool = nn.get_blk(base.num_scales - 1, base)                     # global max pool
        if spec.dropout and spec.head == "pool" or spec.task == "grid":
            self.drop = nn.dropout(spec.dropout)
        if spec.task == "grid":
            self.sconv_0 = nn.std_conv(channels, spec.hidden, 1, base)
            self.sconv_1 = nn.std_conv(spec.hidden, spec.hidden, 2, base)
            self.cls = nn.cls_predictor(spec.hidden, spec.k, spec.num_classes)
            self.bbox = nn.bbox_predictor(spec.hidden, spec.k)
        elif spec.head == "lesson":
            self.head = nn.lesson_head(channels * spec.pool_size ** 2, spec.hidden, spec.outputs, spec.dropout, base)
        else:
            self.fc = nn.linear(channels, spec.outputs)
        nn.set_weights(self, classifier_weights(spec, seed))

    def forward(self, X):
        """``X`` ``(B, in_channels, H, W)`` -> ``(cls_logits (B, Q), box (B, 4))`` for the largest
        object, ``(B, Q)`` logits for the multi-label classifier, ``(cls_logits (B, 16 k, Q + 1),
        activations (B, 16 k, 4))`` for the grid."""
        nn, spec = self._nn, self.spec
        base = spec.base_spec()
        checks.image_batch(X, nn.values_on_host(X), spec.in_channels, 2 ** len(base.base_channels), MAX_IMAGE_SIDE)
        features = self.pool(self.blk_0(X))                                      # (B, ch, 1, 1) or (B, ch, 7, 7)
        if spec.task == "grid":
            features = self.drop(nn.relu(features))                              # SSD_Head: drop(relu(x))
            features = self.sconv_1(self.sconv_0(features))                      # (B, hidden, 4, 4)
            batch = features.shape[0]
            cls_logits = nn.reshape(nn.flatten_pred(self.cls(features)), (batch, -1, spec.num_classes + 1))
            activations = nn.reshape(nn.flatten_pred(self.bbox(features)), (batch, -1, 4))
            return cls_logits, activations                                       # (B, 16k, Q + 1), (B, 16k, 4)
        if spec.head == "lesson":
            out = self.head(features)                                            # flattens (B, ch * 49) itself
        else:
            features = nn.reshape(features, (features.shape[0], -1))             # (B, ch)
            if spec.dropout:
                features = self.drop(features)
            out = self.fc(features)                                              # (B, outputs)
        if spec.task == "multilabel":
            return out
        return out[:, 4:], nn.sigmoid(out[:, :4])                                # (B, Q), (B, 4) in [0, 1]
