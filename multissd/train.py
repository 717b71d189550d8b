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

import sys
from pathlib import Path

from multissd import cli, registry
from multissd.errors import InputError
from multissd.registry import get_backend
from multissd.training import CHECKPOINT, NonFiniteLoss, StopRequested, TrainConfig, train
from multissd.training.checkpoint import saved_config
from multissd.training.options import FLAGS, add_options, config_from_options, contradictions, given

__all__ = ["main", "parser", "script", "config_from_args"]


def parser():
    """The options of ``python -m multissd.train``: one per setting of the run's config
    (:data:`multissd.training.options.OPTIONS`), then --resume and --no-progress."""
    p = cli.new_parser("python -m multissd.train", __doc__)
    add_options(p)
    p.add_argument("--resume", metavar="RUN", default=None,
                   help="continue the run in this folder from its last checkpoint with its config.json "
                        "(--epochs, if given, sets the new total)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch only)")
    return p


def config_from_args(args) -> TrainConfig:
    """The :class:`TrainConfig` the parsed options ask for (a recipe's values where an option is not
    given); ``ValueError`` naming the option that is out of range."""
    backend = args.backend or get_backend()
    registry.load(backend)  # a missing framework fails here, naming its pip extra
    values = given(args)
    if args.resume:
        values["out"] = args.resume
    return config_from_options(values, backend, resuming=bool(args.resume))


def _run(args) -> int:
    """Check the options, train, and print the last epoch's figures."""
    if args.resume:
        if args.out is not None and Path(args.out) != Path(args.resume):
            raise InputError(f"--out {args.out} and --resume {args.resume} name different run folders")
        contradictions(given(args), config_from_args(args), saved_config(args.resume), args.resume)
    config = config_from_args(args)
    try:
        history = train(config, resume=args.resume is not None, progress=not args.no_progress)
    except StopRequested as stopped:
        if str(stopped):
            print(stopped, file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        print(f"\nstopped at once; {Path(config.out) / CHECKPOINT} is the last checkpoint, if the run reached one",
              file=sys.stderr)
        return 130
    except NonFiniteLoss as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    last = history[-1] if history else None
    if last and "val_map_50" in last:  # rank 0 of a distributed run, or the only process
        print(f"done: class err {last['class_err']:.2e}, bbox mae {last['bbox_mae']:.2e}, "
              f"val top-1 IoU>=0.5 {100 * last['val_top1_iou50']:.1f}%, val mAP@0.5 {last['val_map_50']:.3f} "
              f"-> {config.out}")
    return 0


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return cli.report_errors(lambda: _run(args), FLAGS)


script = cli.script(main)


if __name__ == "__main__":
    script()
