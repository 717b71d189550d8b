"""What a training run is: its configuration (saved as the run's ``config.json``) and the recipes
that set its defaults."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from multissd.data.augment import AugmentConfig
from multissd.nn import LossConfig

DEFAULT_EPOCHS = 12
RECIPES = {
    # The SSD paper's training (section 3, scaled to TinySSD): SGD with momentum 0.9, hard negative
    # mining at 3 negatives per positive, class and box terms summed over the kept anchors and divided
    # by the number of positives, box weight 1; with a cosine decay and light augmentation.
    "ssd": dict(lr=0.002, momentum=0.9, lr_schedule="cosine", augment="light", neg_pos_ratio=3.0, box_weight=1.0),
    # The book's: plain SGD at 0.2, every anchor in both terms' averages, box weight 1, fixed rate.
    "book": dict(lr=0.2, momentum=0.0, lr_schedule="constant", augment="none", neg_pos_ratio=None, box_weight=1.0),
}
"""Training recipes (``python -m multissd.train --recipe``). ``ssd`` is the default: on the banana
data its 12-epoch run reaches a validation mAP@0.5 above 0.9, where the book's recipe left the box
regression almost untrained (its box term is a mean over all 4A offsets, of which a few dozen
belong to matched anchors) -- measured figures in ``docs/training.md``."""
DEFAULT_RECIPE = "ssd"
_SSD = RECIPES[DEFAULT_RECIPE]
LR_SCHEDULES = ("cosine", "constant")


@dataclass
class TrainConfig:
    """Everything needed to rebuild and re-run a training run (saved as the run's ``config.json``)."""

    backend: str = "torch"
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 32
    recipe: str = DEFAULT_RECIPE       # where the defaults of the fields below came from (RECIPES)
    lr: float = _SSD["lr"]
    lr_schedule: str = _SSD["lr_schedule"]
    weight_decay: float = 5e-4
    momentum: float = _SSD["momentum"]  # SGD momentum (the book: none; the SSD paper: 0.9)
    seed: int = 0
    device: str = "auto"
    data: str | None = None            # None/"bananas", "fruit" or a folder (banana-detection, VOC, COCO)
    data_dir: str | None = None
    augment: str = _SSD["augment"]     # "light" (flip, colour jitter), "ssd" (+ crop, zoom-out) or "none"
    skip_bad: bool = False
    out: str = "runs/tinyssd"
    loss: dict = field(default_factory=lambda: asdict(LossConfig(neg_pos_ratio=_SSD["neg_pos_ratio"],
                                                                 box_weight=_SSD["box_weight"])))
    threads: int | None = None
    compile: bool = False
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
        if self.recipe not in RECIPES:
            raise ValueError(f"Expected recipe to be one of {', '.join(RECIPES)}; received {self.recipe!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"Expected lr_schedule to be one of {', '.join(LR_SCHEDULES)}; "
                             f"received {self.lr_schedule!r}")

    @classmethod
    def from_saved(cls, saved: dict, **overrides) -> "TrainConfig":
        """The config of a saved ``config.json``, with ``overrides``. A config written before a field
        existed gets what that run used: the book's constant rate, no augmentation, plain SGD."""
        saved = {"lr_schedule": "constant", "augment": "none", "momentum": 0.0, "recipe": "book", **saved}
        return cls(**{**saved, **overrides})
