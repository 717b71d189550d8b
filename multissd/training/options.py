"""The command line of a training run, derived from :class:`~multissd.training.config.TrainConfig`.

:data:`OPTIONS` names, for each setting of a run, the ``TrainConfig`` field it sets (``loss.x``: a
field of its :class:`~multissd.nn.LossConfig`), its flag and its help; ``python -m multissd.train``
builds its parser from it (:func:`add_options`), fills in what was not given from the recipe and the
dataclasses' defaults (:func:`config_from_options`), and checks what a resumed run may not change
(:func:`contradictions`) -- one table, so the three cannot drift apart. Every option's default is
``None`` ("not given"): the default a run gets is the recipe's, else the field's, and the help
text says which.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from multissd.errors import FieldError, InputError
from multissd.model import BOOK_INIT, DEFAULT_IMAGE_SIZE
from multissd.nn import AVERAGES, LossConfig
from multissd.registry import BACKEND_NAMES, DEVICES
from multissd.data.augment import AUGMENTATIONS
from multissd.trainer import OPTIMIZERS, PRECISIONS
from multissd.training.config import (ANCHOR_SIZES, DEFAULT_RECIPE, DEFAULT_STEPS, LR_SCHEDULES, MIN_EPOCHS, MODELS, PROFILES, RECIPES,
                                      RESUME_CHANGES, TrainConfig)
from multissd.data.datasets import data_kind

__all__ = ["Option", "OPTIONS", "FLAGS", "add_options", "config_from_options", "contradictions", "parse_prior_prob"]


def parse_prior_prob(text: str) -> float | str:
    """``--prior-prob``: a probability, or ``book`` for the book's initialisation."""
    if text == BOOK_INIT:
        return BOOK_INIT
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability in (0, 1) or {BOOK_INIT!r}; received {text!r}")


@dataclass(frozen=True)
class Option:
    """One option of ``python -m multissd.train``: the flag, the ``TrainConfig`` field it sets, its help."""

    flag: str
    field: str                      # a TrainConfig field, or "loss.<LossConfig field>"
    help: str                       # what it does; the default is appended from the recipe or the field
    type: Callable | None = None
    choices: tuple | None = None
    nargs: str | None = None
    metavar: str | None = None
    switch: bool = False            # a flag without a value (True when given)
    negatable: bool = False         # also --no-<flag>
    to_field: Callable = lambda value: value   # the option's value as the field holds it
    default_text: str | None = None  # what the default is, where the field's value (None) does not say
    none_text: str = "None"          # how the help shows a recipe's None

    @property
    def dest(self) -> str:
        """The attribute of the parsed arguments."""
        return self.flag[2:].replace("-", "_")

    @property
    def key(self) -> str:
        """The field's own name (without ``loss.``)."""
        return self.field.rpartition(".")[2]


def _loss_name(value: str) -> str:
    return value.replace("-", "_")


OPTIONS = (
    Option("--backend", "backend", "framework to train with; numpy cannot train", choices=BACKEND_NAMES,
           default_text="the active backend: $MULTISSD_BACKEND, else the first installed of torch, paddle"),
    Option("--epochs", "epochs", "passes over the training set", type=int,
           none_text=f"as many as {DEFAULT_STEPS['book']} optimizer steps take (a VOC or COCO folder: "
                     f"{DEFAULT_STEPS['photos']}, at least {MIN_EPOCHS['photos']} epochs)"),
    Option("--batch-size", "batch_size", "images per step", type=int),
    Option("--recipe", "recipe", "the defaults of the options whose default is the recipe's: fastai = AdamW and the "
           "one-cycle policy in small batches (the fewest steps to a detector); ssd = the SSD paper's training (SGD "
           "with momentum, a cosine decay); book = the book's run (lr 0.2, momentum 0, constant rate, no "
           "augmentation, no mining, box weight 1, the book's head initialisation, 20 epochs)", choices=tuple(RECIPES)),
    Option("--optimizer", "optimizer", "sgd: SGD (the book's, the SSD paper's); adamw: Adam with decoupled weight "
           "decay (fastai's)", choices=OPTIMIZERS),
    Option("--lr", "lr", "learning rate (the peak of --lr-schedule)", type=float),
    Option("--lr-schedule", "lr_schedule", "cosine: decay the learning rate from --lr to 0 over the run (after "
           "--warmup); constant: the book's fixed learning rate; onecycle: fastai's fit_one_cycle (a rise from "
           "--lr/25 to --lr over --warmup of the steps, 0.25 if none, then a fall)", choices=LR_SCHEDULES),
    Option("--warmup", "warmup", "the share of the run's steps over which the learning rate rises to --lr",
           type=float),
    Option("--weight-decay", "weight_decay", "weight decay: SGD's L2 (the book's 5e-4), AdamW's decoupled", type=float),
    Option("--momentum", "momentum", "SGD's momentum (the SSD paper's 0.9; the book's plain SGD has 0); AdamW's beta1 "
           "(0: 0.9)", type=float),
    Option("--seed", "seed", "seed of the initial weights, the data order and the synthetic dataset", type=int),
    Option("--device", "device", "auto uses a GPU when the backend sees one; cuda and gpu are the same",
           choices=DEVICES),
    Option("--data", "data", "'bananas', 'small-bananas' or 'fruit' -- synthetic datasets, generated once -- or a folder: the book's "
           "banana-detection layout (bananas_train/, bananas_val/ with images/ and label.csv), Pascal VOC "
           "(Annotations/, JPEGImages/, ImageSets/Main/) or COCO (annotations/instances_*.json); the classes come "
           "from the data", default_text="bananas"),
    Option("--image-size", "image_size", "train at this size: one number (square) or HEIGHT WIDTH", type=int,
           nargs="+", metavar="PIXELS", default_text=f"the data's; VOC and COCO photos are resized to "
                                                    f"{DEFAULT_IMAGE_SIZE[0]} x {DEFAULT_IMAGE_SIZE[1]}"),
    Option("--augment", "augment", "box-aware augmentation of training images: light = horizontal flip and colour "
           "jitter; ssd = also SSD's random crop and zoom-out (the paper's recipe, for long runs: it cost a 12-epoch "
           "banana run 12 points); none = the book's plain images (also --no-augment)", choices=AUGMENTATIONS),
    Option("--max-zoom", "max_zoom", "the zoom-out limit of --augment ssd or photo: the image on a canvas up to this "
           "many times its size (1: no zoom-out)", type=float, default_text="ssd 2, photo 4"),
    Option("--anchor-sizes", "anchor_sizes", "book: the model's own anchor sizes and ratios; fit: sizes and ratios per "
           "feature map fitted to the training boxes (saved in the model's spec); auto: fitted when the model's own "
           "leave more than 10%% of the boxes, or 30%% of a class's, without an anchor at IoU 0.5 (the share is "
           "printed at the start of each run)", choices=ANCHOR_SIZES),
    Option("--init", "init", "start from the weights file of another run (every tensor whose name and shape match; "
           "the class heads are drawn afresh when the class count differs)", metavar="WEIGHTS"),
    Option("--skip-bad", "skip_bad", "skip malformed annotations with a warning instead of stopping with an error",
           switch=True),
    Option("--data-dir", "data_dir", "where the synthetic dataset is cached",
           default_text="$MULTISSD_DATA, else ~/.cache/multissd"),
    Option("--out", "out", "the run folder"),
    Option("--model", "model", "tinyssd: the book's TinySSD; lesson9: the fastai lesson 9's SSD on TinySSD's base "
           "network -- 4x4, 2x2, 1x1 grids of k = 9 anchors, tanh box decoding, its matching (IoU > 0.4), a sigmoid "
           "head trained with focal loss unless --cls-loss says otherwise (images of 128 pixels or more)",
           choices=MODELS),
    Option("--prior-prob", "prior_prob", "the class predictors' start (RetinaNet's initialisation): every anchor "
           "starts as an object with probability P, shared by the classes (a sigmoid head: each class at P); "
           f"{BOOK_INIT!r} gives the book's initialisation (PyTorch's default for the predictors too)",
           type=parse_prior_prob, metavar="P"),
    Option("--cls-loss", "loss.cls_loss", "class loss: cross-entropy (the book), softmax focal loss (the book's "
           "exercise), binary cross-entropy without a background column or its focal variant (the fastai lesson: "
           "the model gets a sigmoid head, which predict and evaluate read as such)",
           choices=("ce", "focal", "bce", "bce-focal"), to_field=_loss_name,
           default_text="ce, or bce-focal with --model lesson9"),
    Option("--box-loss", "loss.box_loss", "box loss: L1 (the book) or smooth L1 (the book's exercise)",
           choices=("l1", "smooth-l1"), to_field=_loss_name),
    Option("--sigma", "loss.sigma", "smooth-L1 sigma", type=float),
    Option("--neg-pos-ratio", "loss.neg_pos_ratio", "hard negative mining: background anchors kept per positive, "
           "both loss terms divided by the number of positives (none with the focal losses, which replace mining "
           "and divide by the positives as RetinaNet); 0 turns it off: every anchor counts and each term is a mean "
           "over anchors, as in the book", type=float, to_field=lambda ratio: None if ratio == 0 else ratio,
           none_text="0"),
    Option("--cls-weight", "loss.cls_weight", "weight of the class loss", type=float),
    Option("--box-weight", "loss.box_weight", "weight of the box loss (the book's and the SSD paper's alpha: 1)",
           type=float),
    Option("--loss-average", "loss.average", "without mining, how each loss term is averaged: over every anchor "
           "(anchors: the book's), divided by the positive anchors (positives: RetinaNet's), or auto: positives for "
           "the focal losses, anchors for the others", choices=AVERAGES),
    Option("--threads", "threads", "CPU threads for the framework", type=int, default_text="one per core"),
    Option("--precision", "precision", "the forward passes in fp32, or in bf16 (autocast: weights, losses and the "
           "optimiser stay float32), or auto: bf16 where the backend runs it faster (torch on a CPU with AVX-512 BF16 "
           "or AMX, or a GPU with bfloat16), else fp32; config.json records what auto chose", choices=PRECISIONS),
    Option("--compile", "compile", "torch only: torch.compile the model (no faster on a 2-core CPU, and the first "
           "step compiles for 10-70 s; see docs/performance.md)", switch=True, negatable=True),
    Option("--sync-bn", "sync_bn", "with several processes (torchrun, paddle.distributed.launch): batch norm "
           "statistics over the global batch, as one process would compute them (default: each process its own "
           "share)", switch=True),
)
"""Every option of ``python -m multissd.train`` that sets a field of the run's config, in the order
``--help`` lists them."""

FLAGS = {option.key: option.flag for option in OPTIONS}
"""The option of each config field (its own name, ``lr`` -> ``--lr``), for messages."""


def _field_default(option: Option):
    """The dataclass default of ``option``'s field (``TrainConfig``'s, or ``LossConfig``'s for ``loss.x``)."""
    if option.field.startswith("loss."):
        return getattr(LossConfig(), option.key)
    return next(f.default for f in fields(TrainConfig) if f.name == option.field)


def _show(option: Option, value) -> str:
    if value is None:
        return option.none_text
    if option.field.startswith("loss.") and isinstance(value, str):
        value = value.replace("_", "-")
    return f"{value:g}" if isinstance(value, float) else str(value)


def default_help(option: Option) -> str:
    """``option``'s help with its default: the recipes' values, or the field's."""
    if option.key in RECIPES["ssd"]:
        values = ", ".join(f"--recipe {name}: {_show(option, recipe[option.key])}" for name, recipe in RECIPES.items())
        return f"{option.help} (default from the recipe -- {values})"
    if option.default_text is not None:
        return f"{option.help} (default: {option.default_text})"
    if option.switch:
        return option.help
    return f"{option.help} (default {_show(option, _field_default(option))})"


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add :data:`OPTIONS` to ``parser``, each with the default ``None`` (not given)."""
    for option in OPTIONS:
        if option.switch:
            action = argparse.BooleanOptionalAction if option.negatable else "store_const"
            kwargs = dict(action=action) if option.negatable else dict(action=action, const=True)
            parser.add_argument(option.flag, default=None, help=default_help(option), **kwargs)
            continue
        kwargs = {key: getattr(option, key) for key in ("type", "nargs", "metavar") if getattr(option, key) is not None}
        if option.choices is not None:
            kwargs["choices"] = list(option.choices)
        parser.add_argument(option.flag, default=None, help=default_help(option), **kwargs)
        if option.flag == "--augment":
            parser.add_argument("--no-augment", dest="augment", action="store_const", const="none",
                                help="the same as --augment none")


def given(args: argparse.Namespace) -> dict[str, object]:
    """The options given on the command line (``dest -> value``), those not given left out."""
    return {option.dest: getattr(args, option.dest) for option in OPTIONS if getattr(args, option.dest) is not None}


def config_from_options(values: dict[str, object], backend: str, resuming: bool = False) -> TrainConfig:
    """The :class:`TrainConfig` that the given options ``values`` (``dest -> value``) ask for on
    ``backend``: each setting not given takes the recipe's value, else the field's default; a
    resumed run (``resuming``) keeps its own epochs. The losses' defaults follow the model: the
    lesson's SSD trains with ``bce-focal``, and a focal loss replaces mining."""
    values = dict(values)
    recipe = values.get("recipe") or TrainConfig.recipe
    if recipe == DEFAULT_RECIPE:  # the defaults of the data's kind: photos get their own (PROFILES)
        for key, value in PROFILES[data_kind(values.get("data"))].items():
            values.setdefault(key, value)
    if values.get("image_size") is not None:
        size = values["image_size"]
        if len(size) > 2:
            raise FieldError("image_size", f"{{name}} takes one size (square) or two (HEIGHT WIDTH); received {size}")
        values["image_size"] = [size[0], size[-1]]
    values.setdefault("cls_loss", "bce-focal" if values.get("model") == "lesson9" else "ce")
    if values["cls_loss"] in ("focal", "bce-focal"):
        values.setdefault("neg_pos_ratio", 0.0)  # focal loss replaces mining (an explicit --neg-pos-ratio still wins)
    if resuming:
        values.setdefault("epochs", None)  # None: the run's own total
    for key, value in RECIPES[recipe].items():
        values.setdefault(key, value)
    top, loss = {"backend": backend, "recipe": recipe}, {}
    for option in OPTIONS:
        if option.dest in values and option.dest != "backend":
            value = option.to_field(values[option.dest])
            (loss if option.field.startswith("loss.") else top)[option.key] = value
    if "neg_pos_ratio" in loss and loss["neg_pos_ratio"] is not None and loss["neg_pos_ratio"] < 0:
        raise FieldError("neg_pos_ratio", f"{{name}} must be positive, or 0 to turn mining off; received "
                                          f"{loss['neg_pos_ratio']}")
    return TrainConfig(**top, loss=asdict(LossConfig(**loss)))


def contradictions(values: dict[str, object], wanted: TrainConfig, saved: dict, run: str) -> None:
    """``ValueError`` when an option given with ``--resume`` (in ``values``) contradicts the saved run
    ``saved`` (its ``config.json``): a resumed run keeps its settings, but :data:`RESUME_CHANGES`."""
    mine_all, theirs_all = asdict(wanted), asdict(TrainConfig.from_saved(saved))
    for option in OPTIONS:
        if option.dest not in values or option.key in RESUME_CHANGES or option.key == "out":
            continue
        mine = mine_all["loss"] if option.field.startswith("loss.") else mine_all
        theirs = theirs_all.get("loss", {}) if option.field.startswith("loss.") else theirs_all
        key = option.key
        if mine[key] != theirs[key] and not _same_path(key, mine[key], theirs[key]):
            raise InputError(f"{option.flag} {mine[key]!r} contradicts the run {run}, trained with {theirs[key]!r}: a "
                             f"resumed run keeps its settings (it may change only "
                             f"{', '.join(FLAGS[name] for name in RESUME_CHANGES)})")


def _same_path(key: str, a, b) -> bool:
    return key in ("data", "data_dir") and a is not None and b is not None and Path(a).resolve() == Path(b).resolve()
