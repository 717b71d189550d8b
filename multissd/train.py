"""``python -m multissd.train``: train the book's TinySSD on the banana dataset.

    python -m multissd.train --backend torch            # about 13 minutes on a 2-core CPU
    python -m multissd.train --backend paddle --epochs 20 --out runs/paddle20
    python -m multissd.train --resume runs/tinyssd      # continue an interrupted run
    torchrun --nproc_per_node 2 -m multissd.train --backend torch --sync-bn   # data parallel, 2 processes
    python -m paddle.distributed.launch --nproc_per_node 2 $(which multissd-train) --backend paddle --sync-bn

The book's model, data, batch (32), weight decay (5e-4), cross-entropy and L1 losses; trained by
default with the SSD paper's recipe (--recipe ssd: SGD with momentum 0.9 at lr 0.002, hard negative
mining 3:1, a cosine decay, flips and colour jitter), which makes the default 12-epoch run (12-16
minutes on a 2-core CPU with torch, depending on the machine) a detector with a validation mAP@0.5
above 0.9. --recipe book gives the book's own hyper-parameters (plain SGD at lr
0.2, every anchor in the loss, a fixed rate, no augmentation). Options given beside a recipe
override it. The run folder gets weights.safetensors, config.json, metrics.csv, curves.png,
predictions.png and checkpoint.safetensors.
"""
from __future__ import annotations

import argparse
import copy
import sys
from dataclasses import asdict
from pathlib import Path

from multissd import cli
from multissd.backends import _registry
from multissd.config import get_backend
from multissd.data.augment import AUGMENTATIONS
from multissd.nn import LossConfig
from multissd.training import (CHECKPOINT, DEFAULT_EPOCHS, DEFAULT_RECIPE, LR_SCHEDULES, RECIPES, NonFiniteLoss,
                               StopRequested, TrainConfig, train)
from multissd.training.checkpoint import saved_config
from multissd.training.config import MODELS


def parser() -> argparse.ArgumentParser:
    p = cli.new_parser("python -m multissd.train", __doc__)
    cli.add_backend(p, "framework to train with (default: $MULTISSD_BACKEND, else the first installed of torch, "
                       "paddle); numpy cannot train")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"passes over the training set (default {DEFAULT_EPOCHS}: 12-16 minutes on a 2-core CPU "
                        f"with torch, depending on the machine; --recipe book: the book's 20)")
    p.add_argument("--batch-size", type=int, default=32, help="images per step (default 32, the book's)")
    p.add_argument("--recipe", choices=list(RECIPES), default=DEFAULT_RECIPE,
                   help="the defaults of --lr, --momentum, --lr-schedule, --augment, --neg-pos-ratio, "
                        "--box-weight, --prior-prob and --epochs: ssd = the SSD paper's training (default; see each "
                        "option), book = the book's run (lr 0.2, momentum 0, constant rate, no augmentation, no "
                        "mining, box weight 1, the book's head initialisation, 20 epochs)")
    p.add_argument("--lr", type=float, default=None,
                   help=f"SGD learning rate (default {RECIPES['ssd']['lr']:g}; the book's is 0.2)")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=None,
                   help="cosine: decay the learning rate from --lr to 0 over the run (default); constant: the "
                        "book's fixed learning rate")
    p.add_argument("--weight-decay", type=float, default=5e-4, help="SGD weight decay (default 5e-4, the book's)")
    p.add_argument("--momentum", type=float, default=None,
                   help=f"SGD momentum (default {RECIPES['ssd']['momentum']:g}, the SSD paper's; the book's plain "
                        f"SGD has 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights, the data order and the "
                                                      "synthetic dataset (default 0)")
    cli.add_device(p, "auto uses a GPU when the backend sees one (default auto); cuda and gpu are the same")
    p.add_argument("--data", default=None,
                   help="'bananas' (default) or 'fruit' -- synthetic datasets, generated once -- or a folder: the "
                        "book's banana-detection layout (bananas_train/, bananas_val/ with images/ and label.csv), "
                        "Pascal VOC (Annotations/, JPEGImages/, ImageSets/Main/) or COCO "
                        "(annotations/instances_*.json); the classes come from the data")
    p.add_argument("--image-size", type=int, nargs="+", default=None, metavar="PIXELS",
                   help="train at this size: one number (square) or HEIGHT WIDTH (default: the data's; VOC and COCO "
                        "images are resized to 256)")
    p.add_argument("--augment", choices=AUGMENTATIONS, default=None,
                   help="box-aware augmentation of training images: light = horizontal flip and colour jitter "
                        "(default); ssd = also SSD's random crop and zoom-out (the paper's recipe, for long runs: "
                        "it cost a 12-epoch banana run 12 points); none = the book's plain images")
    p.add_argument("--no-augment", dest="augment", action="store_const", const="none",
                   help="the same as --augment none")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip malformed annotations with a warning instead of stopping with an error")
    p.add_argument("--data-dir", default=None, help="where the synthetic dataset is cached (default $MULTISSD_DATA, "
                                                    "else ~/.cache/multissd)")
    p.add_argument("--out", default="runs/tinyssd", help="the run folder (default runs/tinyssd)")
    p.add_argument("--model", choices=list(MODELS), default="tinyssd",
                   help="tinyssd: the book's TinySSD (default); lesson9: the fastai lesson 9's SSD on TinySSD's base "
                        "network -- 4x4, 2x2, 1x1 grids of k = 9 anchors, tanh box decoding, its matching (IoU > 0.4), a "
                        "sigmoid head trained with focal loss unless --cls-loss says otherwise (images of 128 pixels "
                        "or more)")
    p.add_argument("--prior-prob", type=float, default=None, metavar="P",
                   help="the class predictors' start (RetinaNet's initialisation): every anchor starts as an object "
                        "with probability P, shared by the classes (a sigmoid head: each class at P); default 0.01 "
                        "(--recipe book: 0); 0 gives the book's initialisation (PyTorch's default for the predictors "
                        "too)")
    p.add_argument("--cls-loss", choices=["ce", "focal", "bce", "bce-focal"], default=None,
                   help="class loss: cross-entropy (the book), softmax focal loss (the book's exercise), binary "
                        "cross-entropy without a background column or its focal variant (the fastai lesson: the model "
                        "gets a sigmoid head, which predict and evaluate read as such); default ce, bce-focal with "
                        "--model lesson9")
    p.add_argument("--box-loss", choices=["l1", "smooth-l1"], default="l1",
                   help="box loss: L1 (the book) or smooth L1 (the book's exercise)")
    p.add_argument("--sigma", type=float, default=1.0, help="smooth-L1 sigma (default 1)")
    p.add_argument("--neg-pos-ratio", type=float, default=None,
                   help=f"hard negative mining: background anchors kept per positive, both loss terms divided by "
                        f"the number of positives (default {RECIPES['ssd']['neg_pos_ratio']:g}, the SSD paper's; none "
                        f"with the focal losses, which replace mining and divide by the positives as RetinaNet); "
                        f"0 turns it off: every anchor counts and each term is a mean over anchors, as in the book")
    p.add_argument("--cls-weight", type=float, default=1.0, help="weight of the class loss (default 1)")
    p.add_argument("--box-weight", type=float, default=None,
                   help="weight of the box loss (default 1, the book's and the SSD paper's alpha)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the framework (default: one per core)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False,
                   help="torch only: torch.compile the model (default off: no faster on a 2-core CPU, and the first "
                        "step compiles for 10-70 s; see docs/performance.md)")
    p.add_argument("--sync-bn", action="store_true",
                   help="with several processes (torchrun, paddle.distributed.launch): batch norm statistics over the "
                        "global batch, as one process would compute them (default: each process its own share)")
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue the run in this folder from its last checkpoint with its config.json "
                        "(--epochs, if given, sets the new total)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch only)")
    return p


def config_from_args(args) -> TrainConfig:
    """The :class:`TrainConfig` the options ask for (a recipe's values where an option is not given);
    ``ValueError`` naming the option that is out of range."""
    if args.cls_loss is None:
        args.cls_loss = "bce-focal" if args.model == "lesson9" else "ce"
    if args.cls_loss in ("focal", "bce-focal") and args.neg_pos_ratio is None:
        args.neg_pos_ratio = 0.0  # focal loss replaces mining (an explicit --neg-pos-ratio still wins)
    for name, value in RECIPES[args.recipe].items():  # options not given take the recipe's value
        if getattr(args, name) is None and not (name == "epochs" and args.resume):  # a resumed run keeps its own
            setattr(args, name, value)
    if args.neg_pos_ratio is not None and args.neg_pos_ratio < 0:
        raise ValueError(f"--neg-pos-ratio must be positive, or 0 to turn mining off; received {args.neg_pos_ratio}")
    loss = LossConfig(cls_loss=args.cls_loss.replace("-", "_"), box_loss=args.box_loss.replace("-", "_"),
                      sigma=args.sigma, neg_pos_ratio=args.neg_pos_ratio or None, cls_weight=args.cls_weight,
                      box_weight=args.box_weight)
    if args.image_size and len(args.image_size) > 2:
        raise ValueError(f"--image-size takes one size (square) or two (HEIGHT WIDTH); received {args.image_size}")
    backend = args.backend or get_backend()
    _registry.load(backend)  # a missing framework fails here, naming its pip extra
    return TrainConfig(backend=backend, model=args.model, prior_prob=args.prior_prob or None, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       lr_schedule=args.lr_schedule, weight_decay=args.weight_decay, momentum=args.momentum,
                       seed=args.seed, recipe=args.recipe, device=args.device, data=args.data, data_dir=args.data_dir,
                       augment=args.augment, skip_bad=args.skip_bad, out=args.resume or args.out, loss=asdict(loss),
                       threads=args.threads, compile=args.compile, sync_bn=args.sync_bn,
                       image_size=[args.image_size[0], args.image_size[-1]] if args.image_size else None)


# option -> the config.json field it sets ("loss.x": a field of the loss settings)
_OPTION_FIELDS = {"backend": "backend", "model": "model", "prior_prob": "prior_prob", "batch_size": "batch_size", "recipe": "recipe", "lr": "lr",
                  "lr_schedule": "lr_schedule", "weight_decay": "weight_decay", "momentum": "momentum", "seed": "seed",
                  "data": "data", "image_size": "image_size", "augment": "augment", "skip_bad": "skip_bad",
                  "data_dir": "data_dir", "cls_loss": "loss.cls_loss", "box_loss": "loss.box_loss",
                  "sigma": "loss.sigma", "neg_pos_ratio": "loss.neg_pos_ratio", "cls_weight": "loss.cls_weight",
                  "box_weight": "loss.box_weight", "compile": "compile", "sync_bn": "sync_bn"}


def given_options(argv) -> set[str]:
    """The destinations of the options given on the command line ``argv`` (not the defaults)."""
    p = parser()
    for action in p._actions:
        action.default = argparse.SUPPRESS
    return set(vars(p.parse_args(argv)))


def check_resume_options(args, given: set[str]) -> None:
    """``ValueError`` when an option given with ``--resume`` contradicts the run: a resumed run keeps
    the settings it was started with (it may change only --epochs, --threads, --device)."""
    if "out" in given and Path(args.out) != Path(args.resume):
        raise ValueError(f"--out {args.out} and --resume {args.resume} name different run folders")
    saved = saved_config(args.resume)
    wanted = asdict(config_from_args(copy.copy(args)))
    for option in sorted(given & set(_OPTION_FIELDS)):
        field = _OPTION_FIELDS[option]
        mine, theirs = (wanted, saved) if "." not in field else (wanted["loss"], saved.get("loss", {}))
        key = field.split(".")[-1]
        if key in theirs and mine[key] != theirs[key] and not _same_path(option, mine[key], theirs[key]):
            flag = "--" + option.replace("_", "-")
            raise ValueError(f"{flag} {mine[key]!r} contradicts the run {args.resume}, trained with {theirs[key]!r}: a "
                             f"resumed run keeps its settings (it may change only --epochs, --threads, --device)")


def _same_path(option: str, a, b) -> bool:
    return option in ("data", "data_dir") and a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    try:
        if args.resume:
            check_resume_options(args, given_options(argv))
        config = config_from_args(args)
        history = train(config, resume=args.resume is not None, progress=not args.no_progress)
    except StopRequested as stopped:
        if str(stopped):
            print(stopped, file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        print(f"\nstopped at once; {Path(args.resume or args.out) / CHECKPOINT} is the last checkpoint, if the run "
              f"reached one", file=sys.stderr)
        return 130
    except NonFiniteLoss as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except cli.USER_ERRORS as error:
        print(f"error: {cli.describe(error)}", file=sys.stderr)
        return 2
    last = history[-1] if history else None
    if last and "val_map_50" in last:  # rank 0 of a distributed run, or the only process
        print(f"done: class err {last['class_err']:.2e}, bbox mae {last['bbox_mae']:.2e}, "
              f"val top-1 IoU>=0.5 {100 * last['val_top1_iou50']:.1f}%, val mAP@0.5 {last['val_map_50']:.3f} "
              f"-> {config.out}")
    return 0


def script() -> None:
    """The ``multissd-train`` console script (the same as ``python -m multissd.train``)."""
    sys.exit(main())


if __name__ == "__main__":
    script()
