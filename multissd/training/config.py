"""What a training run is: its configuration (saved as the run's ``config.json``) and the recipes
that set its defaults."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

from multissd.checks import whole_setting
from multissd.data.augment import AugmentConfig
from multissd.errors import FieldError, InputError
from multissd.model import BOOK_INIT, TinySSDSpec, check_prior_prob, image_size_pair
from multissd.nn import LossConfig
from multissd.registry import DEVICES, REGISTRY
from multissd.trainer import OPTIMIZERS, PRECISIONS

RECIPES = {
    # fastai's training (the lesson's course): AdamW with decoupled weight decay and the one-cycle
    # policy, small batches; with the SSD paper's hard negative mining (3:1), box weight 1, light
    # augmentation and RetinaNet's head prior. The default: the fewest steps to the banana detector.
    "fastai": dict(optimizer="adamw", lr=0.004, momentum=0.9, weight_decay=0.05, batch_size=16, lr_schedule="onecycle",
                   warmup=0.3, augment="light", neg_pos_ratio=3.0, box_weight=1.0, prior_prob=0.01, epochs=None),
    # The SSD paper's training (section 3, scaled to TinySSD): SGD with momentum 0.9, hard negative
    # mining at 3 negatives per positive, class and box terms summed over the kept anchors and divided
    # by the number of positives, box weight 1; with a cosine decay and light augmentation.
    # The heads start at RetinaNet's prior (every anchor an object with probability 0.01).
    "ssd": dict(optimizer="sgd", lr=0.002, momentum=0.9, weight_decay=5e-4, batch_size=32, lr_schedule="cosine",
                warmup=0.0, augment="light", neg_pos_ratio=3.0, box_weight=1.0, prior_prob=0.01, epochs=None),
    # The book's run: plain SGD at 0.2, every anchor in both terms' averages, box weight 1, fixed rate,
    # the book's initialisation of the heads (PyTorch's default, drawn by the spec) and its 20 epochs.
    "book": dict(optimizer="sgd", lr=0.2, momentum=0.0, weight_decay=5e-4, batch_size=32, lr_schedule="constant",
                 warmup=0.0, augment="none", neg_pos_ratio=None, box_weight=1.0, prior_prob=BOOK_INIT, epochs=20),
}
"""Training recipes (``python -m multissd.train --recipe``). ``fastai`` is the default: on the banana
data its run of 441 steps (7 epochs) reaches a validation mAP@0.5 near 0.95 in half the time
the ``ssd`` recipe's 12 epochs took; ``ssd`` is the SSD paper's SGD; ``book`` the book's own run,
which leaves the box regression almost untrained (its box term is a mean over all 4A offsets, of
which a few dozen belong to matched anchors) -- measured figures in ``docs/training.md``."""
DEFAULT_RECIPE = "fastai"
_SSD = RECIPES[DEFAULT_RECIPE]
LR_SCHEDULES = ("cosine", "constant", "onecycle")
MODELS = ("tinyssd", "lesson9", "ssd-photo")
"""``tinyssd``: the book's TinySSD; ``lesson9``: the fastai lesson's SSD (:meth:`TinySSDSpec.lesson9`);
``ssd-photo``: the wider SSD for photos (:meth:`TinySSDSpec.photo`)."""
ANCHOR_SIZES = ("book", "fit", "auto")
"""``--anchor-sizes``: the book's sizes and ratios, sizes and ratios fitted to the training boxes
(:mod:`multissd.anchor_fit`), or ``auto`` -- fitted when the book's leave more than 10% of the boxes
(30% of a class) without an anchor at IoU 0.5."""

DATA_KINDS = ("book", "photos")
"""What a run trains on: ``book`` -- the built-in synthetic sets and the book's banana-detection
layout; ``photos`` -- a Pascal VOC or COCO folder."""

DEFAULT_STEPS = {"book": 441, "photos": 4000}
"""The default length of a run in optimizer steps, per kind of data (``--epochs`` overrides it)."""
MIN_EPOCHS = {"book": 1, "photos": 30}
"""... and the fewest epochs it takes, per kind of data."""

PROFILES = {"book": {}, "photos": dict(augment="photo", anchor_sizes="auto", lr=0.003)}
"""The defaults a kind of data changes in the default recipe (an option given on the command line
still wins): photos get the SSD paper's whole augmentation and anchors fitted to their boxes when the
model's own leave too many uncovered."""


def default_epochs(kind: str, images: int, batch_size: int) -> int:
    """The default number of epochs for ``images`` training images of the data kind ``kind`` in
    batches of ``batch_size``: enough for :data:`DEFAULT_STEPS` optimizer steps, and at least
    :data:`MIN_EPOCHS`."""
    steps_per_epoch = max(1, math.ceil(images / batch_size))
    return max(MIN_EPOCHS[kind], math.ceil(DEFAULT_STEPS[kind] / steps_per_epoch))


DEFAULT_EPOCHS = default_epochs("book", 1000, RECIPES[DEFAULT_RECIPE]["batch_size"])
"""The default epochs of the banana data (1000 images in the default recipe's batches)."""
RESUME_CHANGES = ("epochs", "threads", "device")
"""What a resumed run may change (recorded in its ``config.json``); everything else it keeps."""


@dataclass
class TrainConfig:
    """Everything needed to rebuild and re-run a training run (saved as the run's ``config.json``)."""

    backend: str = "torch"
    model: str = "tinyssd"             # MODELS: the book's TinySSD or the fastai lesson's SSD
    prior_prob: float | str = _SSD["prior_prob"]  # the heads' initial object probability, or BOOK_INIT (the book's)
    epochs: int | None = None          # None: from the data kind's step budget (DEFAULT_STEPS, MIN_EPOCHS)
    batch_size: int = _SSD["batch_size"]
    recipe: str = DEFAULT_RECIPE       # where the defaults of the fields below came from (RECIPES)
    lr: float = _SSD["lr"]
    lr_schedule: str = _SSD["lr_schedule"]
    warmup: float = _SSD["warmup"]     # the share of the steps the rate rises over (cosine: linearly; onecycle)
    weight_decay: float = _SSD["weight_decay"]
    momentum: float = _SSD["momentum"]  # SGD momentum (the book: none; the SSD paper: 0.9); AdamW's beta1 (0: 0.9)
    optimizer: str = _SSD["optimizer"]  # OPTIMIZERS: "sgd" (the book's, the SSD paper's) or "adamw" (fastai's)
    seed: int = 0
    device: str = "auto"
    data: str | None = None            # None/"bananas", "small-bananas", "fruit" or a folder (banana-detection, VOC, COCO)
    data_dir: str | None = None
    augment: str = _SSD["augment"]     # AUGMENTATIONS: "light", "ssd", "photo" or "none"
    max_zoom: float | None = None      # the zoom-out limit, None: the augmentation's own
    anchor_sizes: str = "book"         # ANCHOR_SIZES: the book's, fitted to the boxes, or fitted when needed
    init: str | None = None            # a weights file to start from (the tensors whose shapes match)
    skip_bad: bool = False
    out: str = "runs/tinyssd"
    loss: dict = field(default_factory=lambda: asdict(LossConfig(neg_pos_ratio=_SSD["neg_pos_ratio"],
                                                                 box_weight=_SSD["box_weight"])))
    threads: int | None = None
    compile: bool = False
    precision: str = "auto"            # PRECISIONS: the forward pass's; the run records what "auto" chose
    sync_bn: bool = False              # with several processes: batch norm over the global batch
    spec: dict | None = None           # filled in from the data (number of classes)
    class_names: list | None = None
    image_size: list | None = None     # [height, width] of the training images (None: the data's)

    def loss_config(self) -> LossConfig:
        return LossConfig(**self.loss)

    def __post_init__(self):
        if isinstance(self.augment, bool):  # a config.json written when augmentation was on/off: SSD's or none
            self.augment = "ssd" if self.augment else "none"
        AugmentConfig.named(self.augment)  # raises on an unknown name
        for name, allowed in (("recipe", RECIPES), ("lr_schedule", LR_SCHEDULES), ("backend", REGISTRY),
                              ("device", DEVICES), ("model", MODELS), ("precision", PRECISIONS),
                              ("anchor_sizes", ANCHOR_SIZES), ("optimizer", OPTIMIZERS)):
            if getattr(self, name) not in allowed:
                raise FieldError(name, f"Expected {{name}} to be one of {', '.join(allowed)}; received "
                                       f"{getattr(self, name)!r}")
        self._check_numbers()
        if self.max_zoom is not None and not (isinstance(self.max_zoom, (int, float)) and 1 <= self.max_zoom <= 16):
            raise FieldError("max_zoom", f"{{name}} must be a number from 1 (no zoom-out) to 16; received {self.max_zoom!r}")
        if self.init is not None and not isinstance(self.init, str):
            raise FieldError("init", f"{{name}} must be the path of a weights file; received {self.init!r}")
        self.prior_prob = check_prior_prob(self.prior_prob)
        self.loss_config()  # raises for a bad loss setting (nan weights, ...)
        if self.image_size is not None:
            self.image_size = [int(v) for v in self.image_size]
            self.check_image_size(self.image_size)

    def _check_numbers(self) -> None:
        """``ValueError`` naming the setting of a number out of its range."""
        for name, low, high, low_inclusive in (("lr", 0, math.inf, False), ("weight_decay", 0, math.inf, True),
                                               ("momentum", 0, 1, True), ("warmup", 0, 1, True)):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or not (low <= value if low_inclusive else low < value) or not value < high):
                bound = f"{'>=' if low_inclusive else '>'} {low:g}" + (f" and < {high:g}" if math.isfinite(high) else "")
                raise FieldError(name, f"{{name}} must be a finite number {bound}; received {value!r}")
        for name, value, allow_none in (("epochs", self.epochs, True), ("batch_size", self.batch_size, False),
                                        ("threads", self.threads, True)):
            if value is None and allow_none:
                continue
            whole_setting(value, name, 1)
        if whole_setting(self.seed, "seed", 0) >= 2 ** 63:
            raise FieldError("seed", f"{{name}} must be below 2**63 (the frameworks' seeds are 64-bit); received "
                                     f"{self.seed}")

    def model_spec(self, num_classes: int = 1) -> TinySSDSpec:
        """The run's model: its saved spec, else the book's TinySSD with ``num_classes`` and the head
        its class loss trains (softmax, or sigmoid for the BCE losses)."""
        if self.spec:
            return TinySSDSpec.from_json(json.dumps(self.spec))
        fields = dict(head=self.loss_config().head, prior_prob=self.prior_prob)
        if self.model == "lesson9":
            return TinySSDSpec.lesson9(num_classes, **fields)
        if self.model == "ssd-photo":
            return TinySSDSpec.photo(num_classes, **fields)
        return TinySSDSpec(num_classes=num_classes, **fields)

    def check_image_size(self, size, what: str | None = None) -> None:
        """``ValueError`` when images of ``size`` ``(H, W)`` are too small for the run's model or larger
        than :data:`~multissd.model.MAX_IMAGE_SIDE`, naming ``what`` (the data), or the ``image_size``
        setting when ``what`` is ``None``."""
        try:
            image_size_pair(list(size), "<image_size>", self.model_spec().min_image_size)
        except InputError as error:
            if what is None:
                raise FieldError.from_message("image_size", str(error), "<image_size>") from None
            raise InputError(str(error).replace("<image_size>", what) + " (train with --image-size)") from None

    @classmethod
    def from_saved(cls, saved: dict, **overrides) -> "TrainConfig":
        """The config of a saved ``config.json``, with ``overrides``. A config written before a field
        existed gets what that run used: the book's constant rate, no augmentation, plain SGD."""
        saved = {"lr_schedule": "constant", "augment": "none", "momentum": 0.0, "recipe": "book", "precision": "fp32",
                 "epochs": DEFAULT_EPOCHS, "optimizer": "sgd", **saved}
        if saved.get("prior_prob", None) is None:  # how the book's initialisation was written before BOOK_INIT
            saved["prior_prob"] = BOOK_INIT
        return cls(**{**saved, **overrides})

    def resumed(self, saved: dict) -> "TrainConfig":
        """The run saved as ``saved`` (its ``config.json``), with what a resumed run may change
        (:data:`RESUME_CHANGES`) taken from this config where it says something: ``epochs`` and
        ``threads`` when not ``None``, ``device`` when not ``"auto"``. Everything else -- backend,
        model, data, batch size, recipe, losses -- is the run's own."""
        changes = {"out": self.out}
        if self.epochs is not None:
            changes["epochs"] = self.epochs
        if self.threads is not None:
            changes["threads"] = self.threads
        if self.device != "auto":
            changes["device"] = self.device
        return TrainConfig.from_saved(saved, **changes)
