"""The model-and-loss contract: the second half of the book's chapter, written down once.

Like :mod:`multissd.boxes` for the box functions: each function of the model's pieces (the book's
names: ``cls_predictor``, ``down_sample_blk``, ``TinySSD``, ...), of the weights by neutral name, and of
the losses and metrics is stated here with shapes and dtypes, and every backend's
``multissd/backends/<name>/nn.py`` implements the same functions in the same order. Functions that
build layers (no tensor argument) use the active backend; the others dispatch on the type of the
tensors they receive. Letters as in :mod:`multissd.boxes`; also ``Q = num_classes`` (objects,
without background), so ``C = Q + 1``. The model itself is described once, as data, in
:mod:`multissd.model`.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
import numpy as np

from multissd import checks
from multissd.classifier import ClassifierSpec
from multissd.dispatch import Contract
from multissd.errors import FieldError, InputError
from multissd.model import TinySSDSpec
from multissd.types import Layer, Tensor

REDUCTIONS = ("none", "mean", "sum")
CLS_LOSSES = ("ce", "focal", "bce", "bce_focal")
BOX_LOSSES = ("l1", "smooth_l1")
HEADS = ("softmax", "sigmoid")
"""How a model's class logits are read: a softmax over the ``C`` columns (class 0 background, the
book's), or a sigmoid per object column with no background column (the fastai lesson's BCE: an anchor
is background when no class's sigmoid reaches 0.5)."""
SIGMOID_LOSSES = ("bce", "bce_focal")
FOCAL_LOSSES = ("focal", "bce_focal")
AVERAGES = ("auto", "anchors", "positives")
"""How :func:`calc_loss` averages its terms without mining: over every anchor (the book's), per
positive anchor (RetinaNet's), or ``auto`` -- per positive for the focal losses, else over anchors."""


@dataclass(frozen=True)
class LossConfig:
    """How :func:`calc_loss` combines the class and box terms. The defaults are the book's.

    Attributes:
        cls_loss: ``"ce"`` cross-entropy over the ``C`` classes (the book); ``"focal"`` the book's
            exercise: ``-alpha * (1 - p_t)**gamma * log(p_t)`` over softmax classes; ``"bce"`` the
            fastai lesson's binary cross-entropy without a background column (background = all
            zeros), summed over the ``Q`` object columns; ``"bce_focal"`` its focal variant
            (``alpha_t * (1 - p_t)**gamma * bce``, ``alpha_t = alpha`` for 1-targets, ``1 - alpha``
            for 0-targets).
        box_loss: ``"l1"`` (the book) or ``"smooth_l1"`` with ``sigma`` (the book's exercise).
        sigma: smooth-L1 sharpness: quadratic for ``|x| < 1/sigma**2``.
        focal_alpha, focal_gamma: focal-loss parameters (0.25 and 2 in the exercise and the lesson).
        neg_pos_ratio: ``None`` -- every anchor counts and each term is averaged as ``average``
            says: over all anchors (the book), or, for the focal losses by default, summed over the
            anchors and divided by ``max(1, num_pos)``, as RetinaNet does (focal loss replaces mining). A number ``r`` --
            hard negative mining (the SSD paper, ``r = 3``): per image, the ``r * num_pos`` background
            anchors of highest class loss (ties: lower index) and all positives count, and both terms
            are summed and divided by ``max(1, num_pos)``; an image without objects then contributes
            0 (torchvision/MMDetection semantics).
        cls_weight, box_weight: weights of the two terms (the book's exercise); 1 and 1.
        average: without mining, how each term is averaged (:data:`AVERAGES`): ``"anchors"`` -- the
            mean over every anchor (the book's, and the solutions' focal + smooth-L1 run of exercise
            14.7.1); ``"positives"`` -- summed and divided by ``max(1, num_pos)`` (RetinaNet's);
            ``"auto"`` (the default) -- positives for the focal losses, anchors for the others. Mining
            always divides by the positives (the SSD paper's).
    """

    cls_loss: str = "ce"
    box_loss: str = "l1"
    sigma: float = 1.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    neg_pos_ratio: float | None = None
    cls_weight: float = 1.0
    box_weight: float = 1.0
    average: str = "auto"

    def __post_init__(self):
        if self.cls_loss not in CLS_LOSSES:
            raise FieldError("cls_loss", f"Invalid {{name}}. Expected one of {list(CLS_LOSSES)}; received {self.cls_loss!r}")
        if self.box_loss not in BOX_LOSSES:
            raise FieldError("box_loss", f"Invalid {{name}}. Expected one of {list(BOX_LOSSES)}; received {self.box_loss!r}")
        numbers = {"sigma": self.sigma, "focal_alpha": self.focal_alpha, "focal_gamma": self.focal_gamma,
                   "cls_weight": self.cls_weight, "box_weight": self.box_weight,
                   "neg_pos_ratio": 1.0 if self.neg_pos_ratio is None else self.neg_pos_ratio}
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise FieldError(name, f"Expected {{name}} to be a finite number; received {value!r}")
        if not self.sigma > 0:
            raise FieldError("sigma", f"Expected {{name}} > 0; received {self.sigma!r}")
        if not self.focal_gamma >= 0:
            raise FieldError("focal_gamma", f"Expected {{name}} >= 0; received {self.focal_gamma!r}")
        if self.neg_pos_ratio is not None and not self.neg_pos_ratio > 0:
            raise FieldError("neg_pos_ratio", f"Expected {{name}} > 0 or None; received {self.neg_pos_ratio!r}")
        for name in ("cls_weight", "box_weight"):
            if getattr(self, name) < 0:
                raise FieldError(name, f"Expected {{name}} >= 0 (a loss weight); received {getattr(self, name)!r}")
        if self.average not in AVERAGES:
            raise FieldError("average", f"Invalid {{name}}. Expected one of {list(AVERAGES)}; received {self.average!r}")
        if self.average == "anchors" and self.neg_pos_ratio is not None:
            raise FieldError("average", "{name} 'anchors' asks for the mean over every anchor, but hard negative mining "
                                        "(neg_pos_ratio) counts the mined anchors and divides by the positives; turn "
                                        "mining off (neg_pos_ratio None, --neg-pos-ratio 0) or average over positives")

    @property
    def per_positive(self) -> bool:
        """Without mining, whether the terms are divided by the positives (else averaged over the anchors)."""
        return self.average == "positives" or (self.average == "auto" and self.cls_loss in FOCAL_LOSSES)

    @property
    def head(self) -> str:
        """The head this loss trains (:data:`HEADS`): ``"sigmoid"`` for the BCE losses, else ``"softmax"``."""
        return "sigmoid" if self.cls_loss in SIGMOID_LOSSES else "softmax"


BOOK_LOSS = LossConfig()


def _reduction_args(reduction, **_):
    """The argument rule of the losses: ``ValueError`` (containing "Invalid") unless ``reduction``
    is one of :data:`REDUCTIONS`."""
    if reduction not in REDUCTIONS:
        raise InputError(f"Invalid reduction. Expected one of {list(REDUCTIONS)}; received reduction={reduction!r}")


def _class_loss_args(logits, labels, reduction, **_):
    """The argument rule of the class losses: a reduction, and a label in ``[0, C)`` for each row of
    logits (an index out of range wrapped around on NumPy and paddle and raised on torch)."""
    _reduction_args(reduction)
    checks.class_labels(logits, labels)


NN = Contract("nn")
"""The model-and-loss contract: every backend's ``nn.py`` implements :data:`CONTRACT` in this order."""
implements = NN.implements


# ---------------------------------------------------------------------------------------------
# Adapters: the framework pieces the model's structure (model.py, classifier.py) asks for
# ---------------------------------------------------------------------------------------------

@NN.declare
def concat(tensors: Sequence[Tensor], axis: int) -> Tensor:
    """The tensors joined along ``axis``."""


@NN.declare
def reshape(x: Tensor, shape: Sequence[int]) -> Tensor:
    """``x`` with the shape ``shape`` (one ``-1`` allowed)."""


@NN.declare
def on_device_of(x: Tensor, reference: Tensor) -> Tensor:
    """``x`` on the device where ``reference`` lives."""


@NN.declare
def dropout(p: float) -> Layer:
    """A dropout layer that zeroes each element with probability ``p`` while training (the lesson's ``drop``)."""


@NN.declare
def linear(in_features: int, out_features: int) -> Layer:
    """A linear layer ``(B, in_features) -> (B, out_features)`` (the classifiers' ``fc``); its weight is
    stored ``(out_features, in_features)`` by neutral name, whatever the framework's own layout."""


@NN.declare
def sigmoid(x: Tensor) -> Tensor:
    """The logistic function, elementwise."""


@NN.declare
def relu(x: Tensor) -> Tensor:
    """``max(x, 0)``, elementwise (the lesson's ``F.relu``)."""


@NN.declare
def values_on_host(x: Tensor) -> "np.ndarray | None":
    """``x``'s numbers as NumPy when they can be read without a copy from an accelerator or a trace
    (the model's input check reads them), else ``None``: for a tensor on a GPU, or a placeholder
    while an exporter traces the model (``MULTISSD_CHECK_DEVICE_VALUES=1`` reads a GPU tensor too)."""


# ---------------------------------------------------------------------------------------------
# Layers (the book's names)
# ---------------------------------------------------------------------------------------------

@NN.on_active()
def cls_predictor(num_inputs: int, num_anchors: int, num_classes: int) -> Layer:
    """The class predictor of one scale: a 3x3 convolution, padding 1.

    ``(B, num_inputs, H, W) -> (B, num_anchors * (num_classes + 1), H, W)``: for each location, the
    scores of each of its anchors for background and each class.
    """


@NN.on_active()
def bbox_predictor(num_inputs: int, num_anchors: int) -> Layer:
    """The box predictor of one scale: ``(B, num_inputs, H, W) -> (B, num_anchors * 4, H, W)``."""


@NN.on_tensors()
def flatten_pred(pred: Tensor) -> Tensor:
    """``(B, ch, H, W) -> (B, H * W * ch)``, channels last so each location's predictions are contiguous."""


@NN.on_tensors()
def concat_preds(preds: Sequence[Tensor]) -> Tensor:
    """Flatten each scale's predictions and concatenate them: list of ``(B, ch_i, H_i, W_i)`` ->
    ``(B, sum_i H_i * W_i * ch_i)``."""


@NN.on_active()
def down_sample_blk(in_channels: int, out_channels: int, spec: TinySSDSpec | None = None) -> Layer:
    """Two ``[3x3 conv (padding 1), batch norm, ReLU]`` then a 2x2 max pool: halves H and W.

    ``(B, in_channels, H, W) -> (B, out_channels, H // 2, W // 2)``. ``spec`` (a
    :class:`multissd.TinySSDSpec`) supplies batch norm's eps and momentum; the book's by default.
    """


@NN.on_active()
def base_net(spec: TinySSDSpec | None = None) -> Layer:
    """The base network: down-sample blocks ``3 -> 16 -> 32 -> 64`` (``spec.base_channels``).

    ``(B, 3, H, W) -> (B, 64, H // 8, W // 8)``.
    """


@NN.on_active()
def get_blk(i: int, spec: TinySSDSpec | None = None) -> Layer:
    """Stage ``i`` of TinySSD: 0 the base network, then down-sample blocks (to 128 channels), and
    the last a global max pool to ``(B, 128, 1, 1)``."""


@NN.on_tensors()
def blk_forward(X: Tensor, blk: Layer, size: Sequence[float], ratio: Sequence[float], cls_predictor: Layer,
                bbox_predictor: Layer) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Run one stage: ``Y = blk(X)``, its anchors ``multibox_prior(Y, size, ratio)`` ``(1, H*W*K, 4)``,
    class predictions ``(B, K*C, H, W)`` and box predictions ``(B, K*4, H, W)``; returns
    ``(Y, anchors, cls_preds, bbox_preds)``."""


@NN.on_active()
def TinySSD(num_classes: int = 1, spec: TinySSDSpec | None = None, seed: int = 0) -> Layer:
    """The book's TinySSD as a native model of the active backend (``torch.nn.Module``,
    ``paddle.nn.Layer``, or a NumPy model with forward passes only).

    Args:
        num_classes: object classes without background (ignored when ``spec`` is given).
        spec: a :class:`multissd.TinySSDSpec`; by default the book's, with ``num_classes``.
        seed: the initial weights are drawn with NumPy from this seed
            (:func:`multissd.model.init_weights`), identically on every backend.

    Calling the model on ``X`` ``(B, 3, H, W)`` float32 returns ``(anchors, cls_preds, bbox_preds)``:
    ``(1, A, 4)``, ``(B, A, C)`` and ``(B, 4A)``; for the book's ``(32, 3, 256, 256)`` and one class:
    ``(1, 5444, 4)``, ``(32, 5444, 2)``, ``(32, 21776)``.
    """


@NN.on_active()
def adaptive_max_pool(size: int) -> Layer:
    """``(B, ch, H, W) -> (B, ch, size, size)``: cell ``(i, j)`` is the maximum over rows
    ``floor(i H / size) .. ceil((i + 1) H / size) - 1`` and the same columns (PyTorch's
    ``AdaptiveMaxPool2d``): the lesson's heads read the base network's map as a ResNet's 7 x 7."""


@NN.on_active()
def std_conv(in_channels: int, out_channels: int, stride: int, spec: TinySSDSpec | None = None) -> Layer:
    """The lesson's ``StdConv``: a 3x3 convolution (padding 1, ``stride``), ReLU, batch norm, dropout
    0.1 (:data:`multissd.classifier.STD_CONV_DROPOUT`), as an ``nn.Sequential`` (the convolution is
    ``.0``, the batch norm ``.2``). ``(B, in, H, W) -> (B, out, ceil(H / stride), ceil(W / stride))``;
    ``spec`` supplies batch norm's eps and momentum."""


@NN.on_active()
def lesson_head(in_features: int, hidden: int, out_features: int, p: float,
                spec: TinySSDSpec | None = None) -> Layer:
    """The lesson's ``head_reg4``: ``Flatten, ReLU, Dropout(p), Linear(in, hidden), ReLU,
    BatchNorm1d(hidden), Dropout(p), Linear(hidden, out)`` as an ``nn.Sequential`` (linear layers
    ``.3`` and ``.7``, batch norm ``.5``). ``(B, ch, h, w) -> (B, out_features)`` with
    ``ch * h * w = in_features``."""


@NN.on_active()
def Classifier(spec: ClassifierSpec, seed: int = 0) -> Layer:
    """The fastai lesson's models before its full SSD, on TinySSD's base network, as a native model of
    the active backend: the largest object (a class and a box), a multi-label classifier, or the SSD
    head on a 4 x 4 grid, as :class:`multissd.classifier.ClassifierSpec` says.

    Args:
        spec: a :class:`multissd.classifier.ClassifierSpec`.
        seed: the initial weights are drawn with NumPy from this seed, identically on every backend.

    Calling the model on ``X`` ``(B, 3, H, W)`` float32 returns ``(cls_logits (B, Q), box (B, 4))``
    (task ``"largest"``, the box normalised corners in ``[0, 1]``), ``(B, Q)`` logits
    (``"multilabel"``), or ``(cls_logits (B, 16 k, Q + 1), activations (B, 16 k, 4))`` (``"grid"``).
    """


# ---------------------------------------------------------------------------------------------
# Weights by neutral name
# ---------------------------------------------------------------------------------------------

@NN.on_tensors()
def get_weights(net: Layer) -> dict[str, np.ndarray]:
    """Every parameter and batch-norm statistic of ``net`` as float32 NumPy arrays, by neutral name
    (:meth:`multissd.TinySSDSpec.parameters`), in the spec's order."""


@NN.on_tensors(checks.set_weights_args)
def set_weights(net: Layer, weights: dict[str, np.ndarray]) -> None:
    """Copy NumPy arrays into ``net`` by neutral name. ``weights`` must hold exactly the spec's names
    with the spec's shapes; otherwise ``ValueError`` naming the first mismatching parameter."""


# ---------------------------------------------------------------------------------------------
# Losses and metrics
# ---------------------------------------------------------------------------------------------

@NN.on_tensors(_class_loss_args)
def cross_entropy(logits: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy from a log-sum-exp (finite for logits of any size).

    Args:
        logits: float ``(..., C)``. labels: int64 ``(...)`` in ``[0, C)``.
        reduction: ``"none"`` (shape ``(...)``), ``"mean"`` (0.0 for empty input) or ``"sum"``.
    """


@NN.on_tensors(_class_loss_args)
def focal_loss(logits: Tensor, labels: Tensor, alpha: float = 0.25, gamma: float = 2.0,
               reduction: str = "mean") -> Tensor:
    """Softmax focal loss ``-alpha * (1 - p_t)**gamma * log(p_t)`` (the book's exercise), shapes as
    :func:`cross_entropy`; ``alpha=1, gamma=0`` is cross-entropy."""


@NN.on_tensors(_class_loss_args)
def binary_focal_loss(logits: Tensor, labels: Tensor, alpha: float = -1.0, gamma: float = 0.0,
                      reduction: str = "mean") -> Tensor:
    """Binary cross-entropy without a background column (the fastai lesson), optionally focal.

    Args:
        logits: float ``(..., C)`` with column 0 for background, which is dropped: the loss is over
            the ``Q = C - 1`` object columns, each a sigmoid against the one-hot target (a
            background label is all zeros).
        labels: int64 ``(...)`` in ``[0, C)``.
        alpha: weight of 1-targets (``1 - alpha`` for 0-targets); ``-1`` for none.
        gamma: focusing exponent; ``alpha=-1, gamma=0`` is plain BCE.
        reduction: over the ``(..., Q)`` elements: ``"none"`` keeps them, ``"mean"``, ``"sum"``.
    """


@NN.on_tensors(_reduction_args)
def smooth_l1_loss(preds: Tensor, targets: Tensor, sigma: float = 1.0, reduction: str = "mean") -> Tensor:
    """The book's smooth L1: ``(sigma x)**2 / 2`` if ``|x| < 1/sigma**2``, else ``|x| - 0.5/sigma**2``,
    ``x = preds - targets`` elementwise; ``reduction`` as :func:`cross_entropy`."""


@NN.on_tensors(checks.loss_args)
def calc_loss(cls_preds: Tensor, cls_labels: Tensor, bbox_preds: Tensor, bbox_labels: Tensor, bbox_masks: Tensor,
              config: LossConfig = BOOK_LOSS) -> Tensor:
    """The multibox loss per image (the book's ``calc_loss`` with its exercises, see :class:`LossConfig`).

    Args:
        cls_preds: float ``(B, A, C)`` class logits. cls_labels: int64 ``(B, A)``.
        bbox_preds, bbox_labels, bbox_masks: float ``(B, 4A)``.
        config: :class:`LossConfig`.

    Returns:
        float ``(B,)``: ``cls_weight * cls + box_weight * box`` per image (train on its mean). With no
        positive anchor the box term is exactly 0.
    """


def _head_args(head, **_):
    """The argument rule of the functions that read class logits: a head of :data:`HEADS`."""
    if head not in HEADS:
        raise InputError(f"Expected head to be one of {list(HEADS)}; received head={head!r}")


@NN.on_tensors(_head_args)
def class_probabilities(cls_preds: Tensor, head: str = "softmax") -> Tensor:
    """Class probabilities from class logits, as the model's head reads them.

    Args:
        cls_preds: float ``(B, A, C)`` logits, column 0 for background.
        head: ``"softmax"`` -- a softmax over the ``C`` columns (the book's); ``"sigmoid"`` -- each
            object column's sigmoid, and for column 0 ``1 - max`` of them (the background column of a
            sigmoid model is never trained; this makes the arg-max background exactly when no class's
            sigmoid exceeds 0.5).

    Returns:
        float ``(B, A, C)`` in ``[0, 1]`` (``multibox_detection`` takes its transpose ``(B, C, A)``).
    """


@NN.on_tensors(_head_args)
def cls_eval(cls_preds: Tensor, cls_labels: Tensor, head: str = "softmax") -> float:
    """Number of anchors whose predicted class equals the label, as a Python float (the book's).

    The predicted class is the arg-max of the logits ``(B, A, C)`` for a softmax head (the book's);
    for a sigmoid head it is background (0) when no object column's sigmoid reaches 0.5, else the
    arg-max of the object columns.
    """


@NN.on_tensors()
def bbox_eval(bbox_preds: Tensor, bbox_labels: Tensor, bbox_masks: Tensor) -> float:
    """Sum of ``|bbox_labels - bbox_preds|`` over matched anchors, as a Python float (the book's)."""


CONTRACT = NN.names
"""The model-and-loss contract, in order. Every backend's ``nn.py`` defines exactly these, in this order."""
NN_CONTRACT = CONTRACT  # its name before every contract's list was called CONTRACT
