"""The TinySSD model described once: as plain data (:class:`TinySSDSpec`), its initial weights drawn
with NumPy (:func:`init_weights`), and its forward pass over scales (:class:`TinySSDMixin`).

Every backend builds its native model from a :class:`TinySSDSpec` (``multissd.TinySSD``), so the
layers, channel counts, anchors and -- importantly -- parameter names are the same everywhere: a
weights file matches by name, never by position. The defaults are the book's TinySSD. Each
backend's ``TinySSD`` is ``class TinySSD(TinySSDMixin, <framework base class>)`` (einops' pattern):
the framework supplies layers and tensors through the backend's ``nn`` module, the mixin the
structure.

Parameter names follow the book's attribute names (``blk_i``, ``cls_i``, ``bbox_i``) and the
positions of layers inside its ``nn.Sequential`` blocks, with batch-norm statistics called
``running_mean``/``running_var`` on every backend.
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import asdict, dataclass

import numpy as np

from multissd import checks
from multissd.boxes import BOOK_OFFSETS
from multissd.errors import FieldError, InputError, InputTypeError

DEFAULT_IMAGE_SIZE = (256, 256)
"""``(H, W)`` of the images the book's TinySSD takes (its banana images' size): what training resizes
VOC and COCO photos to, the synthetic datasets are drawn at, and prediction and export use for a
model whose run does not say."""

MAX_IMAGE_SIDE = 2048
"""The largest image side (pixels) a model is built, trained, exported or run at: TinySSD's first
activations alone take ``B x 16 x H/2 x W/2`` floats (2 GB for one 2048 x 2048 image's batch of 32),
so a larger size is a typo, refused before anything is allocated."""

MAX_CLASSES = 1000
"""The most object classes a model has: its class predictions take ``B x A x (classes + 1)`` floats
(700 MB for a batch of 32 at 256 x 256 with 1000 classes); more is refused before anything is
allocated (a ``classes.txt`` of 100000 lines is a mistake)."""

BOOK_INIT = "book"
"""The ``prior_prob`` of the book's head initialisation: PyTorch's default for the class and box
predictors, as the book's TinySSD gets it (the spec, the run's config and ``--prior-prob`` all take
this one name)."""

BOOK_SIZES = ((0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961))
BOOK_RATIOS = ((1.0, 2.0, 0.5),) * 5

def check_prior_prob(prior_prob) -> float | str:
    """``prior_prob`` as a spec or a run's config holds it: a probability in ``(0, 1)`` (a float), or
    :data:`BOOK_INIT`; ``ValueError`` naming ``prior_prob`` otherwise (0 included: it would start
    every anchor as background with certainty)."""
    if prior_prob == BOOK_INIT:
        return BOOK_INIT
    if isinstance(prior_prob, bool) or not isinstance(prior_prob, (int, float)) or not 0 < prior_prob < 1:
        raise FieldError("prior_prob", f"Expected {{name}} in (0, 1), the initial probability that an anchor is an "
                                       f"object, or {BOOK_INIT!r} for the book's initialisation; received "
                                       f"{prior_prob!r}")
    return float(prior_prob)


def image_size_pair(size, what: str, smallest: int = 1) -> tuple[int, int]:
    """``(H, W)`` from ``size`` -- one whole number (a square) or two -- each side in
    ``[smallest, MAX_IMAGE_SIDE]``; ``InputError`` starting with ``what`` (the option, field or file
    that gave it) otherwise. Checked before anything of that size is allocated."""
    sides = [size] if isinstance(size, (int, float)) and not isinstance(size, bool) else list(size)
    if not 1 <= len(sides) <= 2 or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v)
                                       for v in sides):
        raise InputError(f"{what}: expected one size (square) or two (HEIGHT, WIDTH) in whole pixels; received "
                         f"{size!r}")
    height, width = int(sides[0]), int(sides[-1])
    if min(height, width) < smallest:
        raise InputError(f"{what}: images of {width}x{height} are too small for TinySSD, which halves them "
                         f"{smallest.bit_length() - 1} times; it needs at least {smallest} x {smallest} pixels")
    if max(height, width) > MAX_IMAGE_SIDE:
        raise InputError(f"{what}: images of {width}x{height} are larger than the {MAX_IMAGE_SIDE} pixels a side "
                         f"multissd builds a model for (MAX_IMAGE_SIDE); resize them, or give a smaller size")
    return height, width


# Layer positions inside a down-sample block: [conv, bn, relu, conv, bn, relu, maxpool]
_CONV_BN_POSITIONS = ((0, 1), (3, 4))


@dataclass(frozen=True)
class TinySSDSpec:
    """A TinySSD: a base network of down-sample blocks, more down-sample blocks, a global max pool,
    and a class and a box predictor (3x3 convolutions) on the output of each of those stages.

    Attributes:
        num_classes: object classes, background excluded (the book's ``num_classes=1``).
        in_channels: image channels.
        base_channels: output channels of the base network's down-sample blocks (each halves H, W).
        block_channels: output channels of the down-sample blocks after the base network.
        sizes, ratios: anchor sizes and ratios per scale; there is one scale per stage:
            base network, each of ``block_channels``, the global max pool.
        bn_eps: batch-norm epsilon.
        bn_momentum: batch-norm momentum in torch's convention (new = (1 - m) * old + m * batch).
        prior_prob: the initial probability that an anchor is an object (of any class), shared
            equally among the classes (RetinaNet's head initialisation, see :func:`init_weights`); in
            ``(0, 1)``, for any number of classes; :data:`BOOK_INIT` (``"book"``) for PyTorch's default
            initialisation (the book's; ``None``, as files written before said it, means the same).
            For a sigmoid head it is each class column's initial sigmoid (RetinaNet's ``pi``).
        head: ``"softmax"`` (the book's) or ``"sigmoid"`` (the fastai lesson's BCE: one sigmoid per
            class, the background column kept but unused), how the class logits are read
            (:func:`multissd.class_probabilities`); saved with the weights, so prediction decodes a
            model the way it was trained.
        anchors: ``"book"`` -- :func:`multissd.multibox_prior` with ``sizes`` and ``ratios`` on each
            predicted stage, offsets coded as the book's ``offset_boxes``, the book's matching at IoU
            0.5; ``"lesson"`` -- the fastai lesson's: :func:`multissd.grid_anchors` with ``zooms`` and
            ``grid_ratios`` on each predicted stage (one grid cell per feature-map pixel, so square
            images), boxes read through ``tanh`` (:func:`multissd.actn_to_bb`, inside the forward
            pass: the model returns boxes, not offsets), its matching at IoU above 0.4.
        zooms, grid_ratios: the lesson's anchor zooms and ``(height, width)`` ratio pairs.
        predicted_scales: how many of the last stages carry predictors (0: every stage, the book's).
        dropout: dropout after every stage (the lesson's ``drop``; 0, none, by default).
    """

    num_classes: int = 1
    in_channels: int = 3
    base_channels: tuple[int, ...] = (16, 32, 64)
    block_channels: tuple[int, ...] = (128, 128, 128)
    sizes: tuple[tuple[float, ...], ...] = BOOK_SIZES
    ratios: tuple[tuple[float, ...], ...] = BOOK_RATIOS
    bn_eps: float = 1e-5
    bn_momentum: float = 0.1
    prior_prob: float | str = 0.01
    head: str = "softmax"
    anchors: str = "book"
    zooms: tuple[float, ...] = (0.75, 1.0, 1.3)
    grid_ratios: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.0, 0.5), (0.5, 1.0))
    predicted_scales: int = 0
    dropout: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "base_channels", tuple(int(c) for c in self.base_channels))
        object.__setattr__(self, "block_channels", tuple(int(c) for c in self.block_channels))
        object.__setattr__(self, "sizes", tuple(tuple(float(s) for s in ss) for ss in self.sizes))
        object.__setattr__(self, "ratios", tuple(tuple(float(r) for r in rr) for rr in self.ratios))
        object.__setattr__(self, "zooms", tuple(float(z) for z in self.zooms))
        object.__setattr__(self, "grid_ratios", tuple(tuple(float(r) for r in rr) for rr in self.grid_ratios))
        for name in ("num_classes", "in_channels"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"Expected {name} to be an integer >= 1; received {name}={value!r}")
        if self.num_classes > MAX_CLASSES:
            raise InputError(f"Expected num_classes <= {MAX_CLASSES} (MAX_CLASSES); received {self.num_classes}")
        if not self.base_channels or any(c < 1 for c in self.base_channels + self.block_channels):
            raise InputError(f"Expected channel counts >= 1 and at least one base block; received "
                             f"base_channels={self.base_channels}, block_channels={self.block_channels}")
        scales = self.num_scales
        if len(self.sizes) != scales or len(self.ratios) != scales:
            raise InputError(
                f"This TinySSD has {scales} scales (base network, {len(self.block_channels)} down-sample "
                f"blocks, global max pool), so it needs {scales} lists of sizes and of ratios; received "
                f"{len(self.sizes)} size lists and {len(self.ratios)} ratio lists")
        for i, (ss, rr) in enumerate(zip(self.sizes, self.ratios)):
            if not ss or not rr or any(not (math.isfinite(v) and v > 0) for v in ss + rr):
                raise InputError(f"Scale {i}: expected non-empty sizes and ratios, all > 0; received "
                                 f"sizes={list(ss)}, ratios={list(rr)}")
        object.__setattr__(self, "prior_prob", check_prior_prob(BOOK_INIT if self.prior_prob is None else self.prior_prob))
        if self.head not in ("softmax", "sigmoid"):
            raise InputError(f"Expected head to be 'softmax' or 'sigmoid'; received head={self.head!r}")
        self._check_lesson_fields()
        if not (0 < self.bn_momentum < 1) or not self.bn_eps > 0:
            raise InputError(f"Expected 0 < bn_momentum < 1 and bn_eps > 0; received "
                             f"bn_momentum={self.bn_momentum}, bn_eps={self.bn_eps}")

    def _check_lesson_fields(self) -> None:
        if self.anchors not in ("book", "lesson"):
            raise InputError(f"Expected anchors to be 'book' or 'lesson'; received anchors={self.anchors!r}")
        if not self.zooms or not self.grid_ratios or any(not (math.isfinite(v) and v > 0) for v in self.zooms) or any(
                len(r) != 2 or not all(math.isfinite(v) and v > 0 for v in r) for r in self.grid_ratios):
            raise InputError(f"Expected zooms > 0 and (height, width) grid_ratios > 0; received zooms={self.zooms}, "
                             f"grid_ratios={self.grid_ratios}")
        if isinstance(self.predicted_scales, bool) or not 0 <= self.predicted_scales <= self.num_scales:
            raise InputError(f"Expected predicted_scales in [0, {self.num_scales}]; received {self.predicted_scales!r}")
        if not 0 <= self.dropout < 1:
            raise InputError(f"Expected dropout in [0, 1); received dropout={self.dropout!r}")

    @classmethod
    def lesson9(cls, num_classes: int = 1, head: str = "sigmoid", **changes) -> "TinySSDSpec":
        """The fastai lesson 9's SSD on TinySSD's base network: down-sampling blocks to 4 x 4, 2 x 2
        and 1 x 1 maps (at 256 x 256) with predictors on those three, the lesson's ``k = 9`` anchors
        per cell (zooms 0.75, 1, 1.3 x ratios (1, 1), (1, .5), (.5, 1)), tanh decoding, its matching;
        a sigmoid head (its BCE / focal loss) by default. ``changes`` override fields (``dropout=0.4``:
        the lesson's)."""
        fields = dict(num_classes=num_classes, block_channels=(128, 128, 128, 128), sizes=((1.0,),) * 6,
                      ratios=((1.0,),) * 6, anchors="lesson", predicted_scales=3, head=head)
        return cls(**{**fields, **changes})

    @classmethod
    def photo(cls, num_classes: int = 1, **changes) -> "TinySSDSpec":
        """The SSD for photos (``--model ssd-photo``): TinySSD twice as wide (a base network of 32, 64
        and 128 channels, down-sampling blocks of 256) with one more scale -- six feature maps, 64 x 64
        to 1 x 1 at 512 x 512 -- and batch norm after every convolution, as ScratchDet trains SSD from
        scratch; anchor sizes spread from 0.1 to 0.9 of the image like the book's (``--anchor-sizes``
        fits them to the data). ``changes`` override fields."""
        scales = 6
        steps = [0.1 + 0.8 * i / (scales - 1) for i in range(scales + 1)]
        sizes = tuple((round(steps[i], 3), round((steps[i] * steps[i + 1]) ** 0.5, 3)) for i in range(scales))
        fields = dict(num_classes=num_classes, base_channels=(32, 64, 128), block_channels=(256, 256, 256, 256),
                      sizes=sizes, ratios=((1.0, 2.0, 0.5),) * scales)
        return cls(**{**fields, **changes})

    # ---- derived facts ------------------------------------------------------------------------

    def predicted(self, i: int) -> bool:
        """Whether stage ``i`` carries predictors."""
        return not self.predicted_scales or i >= self.num_scales - self.predicted_scales

    @property
    def coding(self):
        """How box predictions are coded: the book's offsets, or ``None`` -- boxes (the lesson's)."""
        return BOOK_OFFSETS if self.anchors == "book" else None

    def target_options(self) -> dict:
        """The keyword arguments of :func:`multissd.multibox_target` for this model."""
        if self.anchors == "book":
            return dict(iou_threshold=0.5, coding=self.coding, matching="book")
        return dict(iou_threshold=0.4, coding=None, matching="lesson")

    @property
    def num_scales(self) -> int:
        """Stages with predictors: the base network, each extra block, the global max pool."""
        return len(self.block_channels) + 2

    def num_anchors(self, i: int) -> int:
        """Anchors per location at scale ``i``: ``len(sizes[i]) + len(ratios[i]) - 1`` (the book's),
        or ``len(zooms) * len(grid_ratios)`` (the lesson's ``k``)."""
        if self.anchors == "lesson":
            return len(self.zooms) * len(self.grid_ratios)
        return len(self.sizes[i]) + len(self.ratios[i]) - 1

    def scale_channels(self, i: int) -> int:
        """Channels of the feature map that scale ``i``'s predictors see."""
        return ([self.base_channels[-1]] + list(self.block_channels) + [self.block_channels[-1]])[i]

    def block_layout(self, i: int) -> tuple:
        """Stage ``i`` as data: ``("base", ((in, out), ...))``, ``("down", in, out)`` or ``("global_max_pool",)``."""
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < self.num_scales:
            raise InputError(f"Expected a stage index in [0, {self.num_scales}); received i={i!r}")
        if i == 0:
            chans = (self.in_channels,) + self.base_channels
            return ("base", tuple(zip(chans[:-1], chans[1:])))
        if i < self.num_scales - 1:
            chans = (self.base_channels[-1],) + self.block_channels
            return ("down", chans[i - 1], chans[i])
        return ("global_max_pool",)

    def feature_map_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(H, W)`` of each scale's feature map for an input of ``height x width``."""
        out = []
        for _ in self.base_channels:
            height, width = height // 2, width // 2
        out.append((height, width))
        for _ in self.block_channels:
            height, width = height // 2, width // 2
            out.append((height, width))
        out.append((1, 1))
        return out

    @property
    def min_image_size(self) -> int:
        """The smallest image side this model takes: every down-sampling stage halves H and W, and the
        last one needs a feature map of at least 1 x 1 (64 for the book's TinySSD)."""
        return 2 ** (len(self.base_channels) + len(self.block_channels))

    def total_anchors(self, height: int = 256, width: int = 256) -> int:
        """``A`` for an input of ``height x width`` (5444 for the book's 256 x 256)."""
        return sum(h * w * self.num_anchors(i) for i, (h, w) in enumerate(self.feature_map_sizes(height, width))
                   if self.predicted(i))

    # ---- parameters ---------------------------------------------------------------------------

    def parameters(self) -> "OrderedDict[str, tuple[tuple[int, ...], str]]":
        """Every parameter and buffer: neutral name -> (shape, kind), in registration order.

        Kinds: ``conv.weight`` (out, in, 3, 3), ``conv.bias``, ``bn.weight``, ``bn.bias``,
        ``bn.running_mean``, ``bn.running_var`` (channels,).
        """
        params: OrderedDict = OrderedDict()

        def conv(prefix, c_in, c_out):
            params[f"{prefix}.weight"] = ((c_out, c_in, 3, 3), "conv.weight")
            params[f"{prefix}.bias"] = ((c_out,), "conv.bias")

        def down(prefix, c_in, c_out):
            for (conv_pos, bn_pos), c_from in zip(_CONV_BN_POSITIONS, (c_in, c_out)):
                conv(f"{prefix}.{conv_pos}", c_from, c_out)
                for part in ("weight", "bias", "running_mean", "running_var"):
                    params[f"{prefix}.{bn_pos}.{part}"] = ((c_out,), f"bn.{part}")

        for i in range(self.num_scales):
            layout = self.block_layout(i)
            if layout[0] == "base":
                for j, (c_in, c_out) in enumerate(layout[1]):
                    down(f"blk_{i}.{j}", c_in, c_out)
            elif layout[0] == "down":
                down(f"blk_{i}", layout[1], layout[2])
            if self.predicted(i):
                channels, anchors = self.scale_channels(i), self.num_anchors(i)
                conv(f"cls_{i}", channels, anchors * (self.num_classes + 1))
                conv(f"bbox_{i}", channels, anchors * 4)
        return params

    def check_weights(self, weights, source: str = "weights") -> None:
        """``ValueError`` naming the first parameter (in the spec's order) that ``weights`` (name ->
        array) lacks or holds with another shape, or the first name it has that the spec has not."""
        expected = self.parameters()
        for name, (shape, _) in expected.items():
            if name not in weights:
                raise InputError(f"{source} has no parameter {name!r} (shape {list(shape)}), which the model needs")
            got = tuple(int(d) for d in np.shape(weights[name]))
            if got != shape:
                raise InputError(f"Parameter {name!r}: {source} has shape {list(got)}, the model expects {list(shape)}")
        unexpected = [name for name in weights if name not in expected]
        if unexpected:
            raise InputError(f"{source} has parameter {unexpected[0]!r}, which the model does not have "
                             f"({len(unexpected)} unexpected in all)")

    # ---- serialisation ------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "TinySSDSpec":
        data = json.loads(text)
        if not isinstance(data, dict) or set(data) - {f for f in cls.__dataclass_fields__}:
            raise InputError(f"Not a TinySSD spec: {text[:200]!r}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items()})


def _prior_biases(biases: np.ndarray, spec: TinySSDSpec) -> None:
    """Set the class biases ``(K, C)`` of one predictor in place: a softmax head's background bias
    ``log(Q (1 - p) / p)`` (an anchor is an object with probability ``p``, shared by the ``Q``
    classes); a sigmoid head's object biases ``log(p / (1 - p))`` (each class column starts at
    sigmoid ``p``; the unused background column stays 0)."""
    p = spec.prior_prob
    if spec.head == "sigmoid":
        biases[:, 1:] = math.log(p / (1 - p))
    else:
        biases[:, 0] = math.log(spec.num_classes * (1 - p) / p)


def init_weights(spec: TinySSDSpec, seed: int = 0) -> "OrderedDict[str, np.ndarray]":
    """Initial weights for ``spec``, drawn with NumPy from ``seed`` (float32 arrays by neutral name).

    Convolutions use PyTorch's default (Kaiming-uniform with ``a = sqrt(5)``: weights and biases
    uniform in ``+-1/sqrt(fan_in)``); batch norm starts at weight 1, bias 0, mean 0, variance 1.
    With ``spec.prior_prob`` set (the default, 0.01), the class and box predictors are initialised
    as RetinaNet's heads (Lin et al., 2017): weights ``N(0, 0.01)``, box biases 0 (boxes start at
    their anchors), and class biases such that every anchor starts as an object with probability
    ``prior_prob``, shared equally by the ``Q`` classes (background bias ``log(Q (1 - p) / p)``, the
    others 0: for one class, class probability ``p``) -- so training does not first spend its steps
    unlearning 50% object scores on thousands of background anchors. This works for any number of
    classes. A sigmoid head starts each class column at sigmoid ``prior_prob`` instead (RetinaNet's
    ``log(p / (1 - p))``, where the lesson used -3 or -4). ``prior_prob=BOOK_INIT`` keeps PyTorch's default
    for them too (the book's initialisation). Every backend loads these arrays, so all start from identical weights.
    """
    rng = np.random.default_rng(seed)
    weights: OrderedDict = OrderedDict()
    bounds: dict[str, float] = {}
    for name, (shape, kind) in spec.parameters().items():
        head = name.startswith(("cls_", "bbox_")) and spec.prior_prob != BOOK_INIT
        if kind == "conv.weight":
            fan_in = shape[1] * shape[2] * shape[3]
            bound = 1.0 / math.sqrt(fan_in)
            bounds[name.rsplit(".", 1)[0]] = bound
            value = rng.normal(0, 0.01, size=shape) if head else rng.uniform(-bound, bound, size=shape)
        elif kind == "conv.bias":
            bound = bounds[name.rsplit(".", 1)[0]]
            value = rng.uniform(-bound, bound, size=shape)
            if head:  # boxes start at their anchors; anchors start as objects with probability prior_prob
                value = np.zeros(shape)
                if name.startswith("cls_"):
                    _prior_biases(value.reshape(-1, spec.num_classes + 1), spec)
        elif kind in ("bn.weight", "bn.running_var"):
            value = np.ones(shape)
        else:
            value = np.zeros(shape)
        weights[name] = value.astype(np.float32)
    return weights


# ---------------------------------------------------------------------------------------------
# The forward pass, written once (each backend's TinySSD mixes it into its framework's model class)
# ---------------------------------------------------------------------------------------------

def resolve_spec(num_classes=1, spec=None) -> TinySSDSpec:
    """The spec to build: ``spec`` if given, else the book's TinySSD with ``num_classes``."""
    if spec is None:
        return TinySSDSpec(num_classes=num_classes)
    if not isinstance(spec, TinySSDSpec):
        raise InputTypeError(f"Expected spec to be a multissd.TinySSDSpec; received {type(spec).__name__}")
    return spec


class TinySSDMixin:
    """Structure and forward pass of TinySSD; ``_nn`` is the backend's ``nn`` module, which supplies
    the layers (``get_blk``, ``cls_predictor``, ...) and the adapters ``concat`` and ``reshape``."""

    _nn = None

    def _build(self, spec: TinySSDSpec, seed: int) -> None:
        nn = self._nn
        self.spec = spec
        self.num_classes = spec.num_classes
        for i in range(spec.num_scales):
            setattr(self, f"blk_{i}", nn.get_blk(i, spec))
            if spec.dropout:
                setattr(self, f"drop_{i}", nn.dropout(spec.dropout))
            if spec.predicted(i):
                channels, anchors = spec.scale_channels(i), spec.num_anchors(i)
                setattr(self, f"cls_{i}", nn.cls_predictor(channels, anchors, spec.num_classes))
                setattr(self, f"bbox_{i}", nn.bbox_predictor(channels, anchors))
        nn.set_weights(self, init_weights(spec, seed))

    def forward(self, X):
        """``X`` float32 ``(B, in_channels, H, W)`` -> ``(anchors (1, A, 4), cls_preds (B, A, C),
        bbox_preds (B, 4A))``; for the lesson's anchors ``bbox_preds`` are corner boxes
        (``actn_to_bb``), not offsets. The input is checked once, here, for every backend
        (:func:`multissd.checks.image_batch`)."""
        nn, spec = self._nn, self.spec
        checks.image_batch(X, nn.values_on_host(X), spec.in_channels, spec.min_image_size, MAX_IMAGE_SIDE,
                           square=spec.anchors == "lesson")
        anchors, cells, cls_preds, bbox_preds = [], [], [], []
        for i in range(spec.num_scales):
            X = getattr(self, f"blk_{i}")(X)
            if spec.dropout:
                X = getattr(self, f"drop_{i}")(X)
            if not spec.predicted(i):
                continue
            if spec.anchors == "book":
                anchors.append(nn.boxes.multibox_prior(X, sizes=spec.sizes[i], ratios=spec.ratios[i]))  # (1, a, 4)
            else:
                corners, _, grid_sizes = nn.boxes.grid_anchors((int(X.shape[-1]),), spec.zooms, spec.grid_ratios)
                anchors.append(nn.on_device_of(corners[None], X))                 # (1, a, 4)
                cells.append(nn.on_device_of(grid_sizes, X))                      # (a, 1)
            cls_preds.append(getattr(self, f"cls_{i}")(X))
            bbox_preds.append(getattr(self, f"bbox_{i}")(X))
        anchors = nn.concat(anchors, axis=1)                                      # (1, A, 4)
        cls_preds = nn.concat_preds(cls_preds)                                    # (B, A * C)
        cls_preds = nn.reshape(cls_preds, (cls_preds.shape[0], -1, self.num_classes + 1))  # (B, A, C)
        bbox_preds = nn.concat_preds(bbox_preds)                                  # (B, 4A)
        if spec.anchors == "lesson":  # the lesson's tweak 1: activations read through tanh, as boxes
            batch = bbox_preds.shape[0]
            boxes = nn.boxes.actn_to_bb(nn.reshape(bbox_preds, (batch, -1, 4)), anchors[0], nn.concat(cells, axis=0))
            bbox_preds = nn.reshape(boxes, (batch, -1))                           # (B, A, 4) -> (B, 4A)
        return anchors, cls_preds, bbox_preds
