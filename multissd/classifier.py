"""The fastai lesson 9's first two models, on TinySSD's base network: the largest object of an image
(a class and a box from one head) and a multi-label classifier (a sigmoid per class).

Described once as data (:class:`ClassifierSpec`) and built natively by every backend
(``multissd.Classifier``), like :class:`multissd.TinySSDSpec`: the base network's blocks, a global
max pool, dropout and one linear layer ``fc``. The lesson put these heads on a pretrained ResNet-34;
nothing can be downloaded here, so the base network is TinySSD's, trained from scratch. Parameter
names are neutral (``blk_0.*`` as TinySSD's base network, ``fc.weight`` ``(out, in)``, ``fc.bias``).
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

TASKS = ("largest", "multilabel")


@dataclass(frozen=True)
class ClassifierSpec:
    """A classifier on TinySSD's base network.

    Attributes:
        task: ``"largest"`` -- the largest object: ``(cls_logits (B, Q), box (B, 4))``, the box a
            sigmoid of four outputs, normalised corners ``(xmin, ymin, xmax, ymax)`` (the lesson's
            ``F.sigmoid(bb) * 224``, in units of the image); ``"multilabel"`` -- ``(B, Q)`` logits,
            one sigmoid per class (present when above a threshold).
        num_classes: ``Q``, object classes (no background).
        in_channels, base_channels, bn_eps, bn_momentum: as :class:`multissd.TinySSDSpec`'s.
        dropout: dropout before the linear layer (the lesson's ``p``; 0 by default).
    """

    task: str = "largest"
    num_classes: int = 1
    in_channels: int = 3
    base_channels: tuple[int, ...] = (16, 32, 64)
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    dropout: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "base_channels", tuple(int(c) for c in self.base_channels))
        if self.task not in TASKS:
            raise InputError(f"Expected task to be one of {list(TASKS)}; received task={self.task!r}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise InputError(f"Expected num_classes to be an integer >= 1; received {self.num_classes!r}")
        if not 0 <= self.dropout < 1:
            raise InputError(f"Expected dropout in [0, 1); received dropout={self.dropout!r}")
        self.base_spec()  # validates the base network's fields

    def base_spec(self) -> TinySSDSpec:
        """A TinySSD whose base network (stage 0) is this classifier's."""
        return TinySSDSpec(in_channels=self.in_channels, base_channels=self.base_channels, bn_eps=self.bn_eps,
                           bn_momentum=self.bn_momentum)

    @property
    def outputs(self) -> int:
        """Outputs of ``fc``: 4 box coordinates and ``Q`` class logits, or ``Q`` logits."""
        return self.num_classes + (4 if self.task == "largest" else 0)

    def parameters(self) -> "OrderedDict[str, tuple[tuple[int, ...], str]]":
        """Every parameter and buffer: neutral name -> (shape, kind), in registration order."""
        base = self.base_spec().parameters()
        params = OrderedDict((name, value) for name, value in base.items() if name.startswith("blk_0."))
        params["fc.weight"] = ((self.outputs, self.base_channels[-1]), "linear.weight")
        params["fc.bias"] = ((self.outputs,), "linear.bias")
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
    """Initial weights, drawn with NumPy (PyTorch's defaults: the base network as TinySSD's, ``fc``
    uniform in ``+-1/sqrt(in)``), identical on every backend."""
    base = init_weights(spec.base_spec(), seed)
    weights = OrderedDict((name, value) for name, value in base.items() if name.startswith("blk_0."))
    rng = np.random.default_rng([seed, 9])
    bound = 1 / math.sqrt(spec.base_channels[-1])
    weights["fc.weight"] = rng.uniform(-bound, bound, (spec.outputs, spec.base_channels[-1])).astype(np.float32)
    weights["fc.bias"] = rng.uniform(-bound, bound, spec.outputs).astype(np.float32)
    return weights


class ClassifierMixin:
    """Structure and forward pass of the lesson's classifiers; ``_nn`` is the backend's ``nn`` module
    (``base_net``, ``get_blk``, ``dropout``, ``linear`` and the adapters ``reshape``, ``sigmoid``)."""

    _nn = None

    def _build(self, spec: ClassifierSpec, seed: int) -> None:
        nn = self._nn
        self.spec = spec
        self.blk_0 = nn.base_net(spec.base_spec())
        self.pool = nn.get_blk(spec.base_spec().num_scales - 1, spec.base_spec())   # global max pool
        if spec.dropout:
            self.drop = nn.dropout(spec.dropout)
        self.fc = nn.linear(spec.base_channels[-1], spec.outputs)
        nn.set_weights(self, classifier_weights(spec, seed))

    def forward(self, X):
        """``X`` ``(B, in_channels, H, W)`` -> ``(cls_logits (B, Q), box (B, 4))`` for the largest
        object, ``(B, Q)`` logits for the multi-label classifier."""
        nn, spec = self._nn, self.spec
        base = spec.base_spec()
        checks.image_batch(X, nn.values_on_host(X), spec.in_channels, 2 ** len(base.base_channels), MAX_IMAGE_SIDE)
        features = self.pool(self.blk_0(X))                                      # (B, ch, 1, 1)
        features = nn.reshape(features, (features.shape[0], -1))                 # (B, ch)
        if spec.dropout:
            features = self.drop(features)
        out = self.fc(features)                                                  # (B, outputs)
        if spec.task == "multilabel":
            return out
        return out[:, 4:], nn.sigmoid(out[:, :4])                                # (B, Q), (B, 4) in [0, 1]
