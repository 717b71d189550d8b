"""The training loop of the book, backend-neutral, with what a real run needs around it.

Per epoch: a progress bar with the running loss and examples/s; one line with the book's figures
(class error, bbox MAE) on training and validation data, the share of validation images whose top
detection overlaps a true box with IoU >= 0.5, validation mAP@0.5, and honest examples/s (examples / whole epoch's
wall time). After every epoch the run folder gets an atomic checkpoint, portable weights,
``metrics.csv`` and ``curves.png``. Ctrl-C stops after the current batch and saves (a mid-epoch
checkpoint that ``--resume`` continues exactly); a non-finite loss stops the run naming the epoch
and batch and keeps the last good checkpoint.
"""
from __future__ import annotations

import csv
import json
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from multissd import backends
from multissd.data.augment import AugmentConfig, BatchSource
from multissd.data.datasets import load_splits
from multissd.data.sampler import EpochBatchSampler
from multissd.host import keep_freed_memory
from multissd.model_spec import TinySSDSpec
from multissd.nn_contract import LossConfig
from multissd.weights import read_file, save_weights, write_file

CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "multissd.checkpoint/1"
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
METRIC_COLUMNS = ("epoch", "loss", "class_err", "bbox_mae", "val_class_err", "val_bbox_mae", "val_top1_iou50",
                  "val_map_50", "examples_per_s", "epoch_seconds")


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


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of step ``step`` (0-based) of ``total_steps``: the book's constant ``lr``, or
    a cosine decay from ``lr`` to 0 over the run (the default; see ``docs/training.md``)."""
    if config.lr_schedule == "constant":
        return config.lr
    return 0.5 * config.lr * (1 + math.cos(math.pi * step / total_steps))


class StopRequested(Exception):
    """Ctrl-C was pressed: the run saved a checkpoint after the current batch."""


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


def _top1_hits(anchors, cls_probs, bbox_preds, labels) -> np.ndarray:
    """Per image: does the highest-scoring non-background anchor's box overlap a true box at IoU >= 0.5?

    The top detection of ``multibox_detection`` is that box (NMS always keeps the best-scoring box).
    """
    ref = backends.load("numpy")
    conf = cls_probs[:, 1:].max(axis=1)                                          # (B, A)
    best = conf.argmax(axis=1)                                                   # (B,)
    offsets = bbox_preds.reshape(len(best), -1, 4)[np.arange(len(best)), best]  # (B, 4)
    boxes = ref.offset_inverse(anchors[0, best], offsets)                        # (B, 4)
    hits = []
    for box, label in zip(boxes, labels):
        truth = label[label[:, 0] >= 0, 1:]
        hits.append(truth.size > 0 and ref.box_iou(box[None].astype(np.float32), truth.astype(np.float32)).max() >= 0.5)
    return np.asarray(hits)


def evaluate(adapter, net, split, device, batch_size: int = 32) -> dict:
    """Validation figures: class error, bbox MAE (the book's, on validation data), top-1 IoU>=0.5
    rate and mAP@0.5 (COCO's AP at IoU 0.5, per-class detections: see :mod:`multissd.evaluate`)."""
    from multissd.evaluate import batch_detections, split_targets
    from multissd.metrics import mean_average_precision
    ref, ref_nn = backends.load("numpy"), backends.load_nn("numpy")
    totals = np.zeros(4)  # cls_correct, cls_count, bbox_abs, bbox_count
    hits, preds = [], []
    for start in range(0, len(split), batch_size):
        images = split.images[start:start + batch_size].astype(np.float32)
        labels = split.labels[start:start + batch_size]
        anchors, cls_probs, bbox_preds = adapter.predict(net, images, device)  # one forward pass serves all figures
        bbox_labels, bbox_masks, cls_labels = ref.multibox_target(anchors, labels)
        totals += [ref_nn.cls_eval(cls_probs.transpose(0, 2, 1), cls_labels), cls_labels.size,
                   ref_nn.bbox_eval(bbox_preds, bbox_labels, bbox_masks), bbox_labels.size]
        hits.extend(_top1_hits(anchors, cls_probs, bbox_preds, labels))
        preds.extend(batch_detections(anchors, cls_probs, bbox_preds, images.shape[2:]))
    val_map_50 = mean_average_precision(preds, split_targets(split))["map_50"]
    return dict(val_class_err=1 - totals[0] / totals[1], val_bbox_mae=totals[2] / totals[3],
                val_top1_iou50=float(np.mean(hits)) if hits else 0.0, val_map_50=val_map_50)


def _write_metrics(path: Path, history: list[dict]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    tmp.replace(path)


MOMENTUM_PREFIX = "momentum/"  # the optimiser's momentum buffers beside the weights in a checkpoint


def _save_checkpoint(run: Path, nn, net, state: dict, momentum: dict) -> None:
    arrays = {**nn.get_weights(net), **{MOMENTUM_PREFIX + name: value for name, value in momentum.items()}}
    write_file(run / CHECKPOINT, arrays,
               {"format": CHECKPOINT_FORMAT, "spec": net.spec.to_json(), "state": json.dumps(state)})


def load_checkpoint(run) -> tuple[dict, dict]:
    """``(weights, state)`` of a run's checkpoint; ``ValueError`` naming the path if it is unusable.
    The optimiser's momentum buffers, if any, are in ``state["momentum"]`` by parameter name."""
    path = Path(run) / CHECKPOINT
    arrays, metadata = read_file(path, what="checkpoint")
    if metadata.get("format") != CHECKPOINT_FORMAT or "state" not in metadata:
        raise ValueError(f"{path} is not a multissd checkpoint (format {metadata.get('format')!r})")
    state = json.loads(metadata["state"])
    state["momentum"] = {name[len(MOMENTUM_PREFIX):]: arrays.pop(name) for name in list(arrays)
                         if name.startswith(MOMENTUM_PREFIX)}
    return arrays, state


class _StopFlag:
    """First Ctrl-C: stop after the current batch. Second: stop now."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True
            print("\nStopping after this batch (Ctrl-C again to stop at once)...", file=sys.stderr)
        try:
            self._previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def prepare_run(config: TrainConfig, resume: bool, create: bool = True) -> tuple[TrainConfig, Path, dict | None, dict | None]:
    """The run folder and, when resuming, the saved config, weights and state. ``create=False``
    checks a new run's folder without creating it (the other processes of a distributed run)."""
    run = Path(config.out)
    if resume:
        saved = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else None
        if saved is None:
            raise ValueError(f"Cannot resume: {run / 'config.json'} not found")
        weights, state = load_checkpoint(run)
        # --epochs given with --resume sets the total number of epochs; otherwise the saved one stands.
        # A config written before the schedule (augmentation) existed was trained at the book's
        # constant rate (without augmentation).
        saved.setdefault("lr_schedule", "constant")
        saved.setdefault("augment", "none")
        saved.setdefault("momentum", 0.0)  # written before momentum existed: plain SGD
        saved.setdefault("recipe", "book")
        resumed = TrainConfig(**{**saved, "epochs": config.epochs or saved["epochs"], "out": str(run)})
        return resumed, run, weights, state
    if run.exists() and any(run.iterdir()):
        raise ValueError(f"Run folder {run} exists and is not empty; continue it with --resume {run} or choose "
                         f"another --out")
    if create:
        run.mkdir(parents=True, exist_ok=True)
    return config, run, None, None


def train(config: TrainConfig, resume: bool = False, progress: bool = True, log=print) -> list[dict]:
    """Train TinySSD as configured; returns the per-epoch history (also written to ``metrics.csv``).

    Launched by ``torchrun`` or ``paddle.distributed.launch`` with several processes, it trains one
    model with the framework's data parallelism: each process takes its share of every global batch
    of ``config.batch_size``, gradients are all-reduced by the framework, and only rank 0 writes the
    run folder, logs and shows progress; evaluation runs once, on rank 0.
    """
    # tqdm's plain class: tqdm.auto's asyncio variant calls iter() on the loader when the bar is made, and a
    # paddle DataLoader starts reading batches on iter() -- a second reader of the sampler beside the loop's
    from tqdm import tqdm

    keep_freed_memory()
    backends.load(config.backend)
    adapter, nn = backends.load_train(config.backend), backends.load_nn(config.backend)
    if not adapter.CAN_TRAIN:
        adapter.make_optimizer(None, config.lr, config.weight_decay, config.momentum)  # raises the one-line error
    adapter.set_threads(config.threads)
    device = adapter.resolve_device(config.device)
    rank, world_size = adapter.init_distributed(device)
    main = rank == 0
    history = _train(config, resume, progress and main, log if main else (lambda *args, **kwargs: None),
                     adapter, nn, device, rank, world_size, tqdm)
    adapter.barrier()  # rank 0 has drawn predictions.png; the processes leave together
    adapter.shutdown()
    return history


def _train(config, resume, progress, log, adapter, nn, device, rank, world_size, tqdm) -> list[dict]:
    main = rank == 0
    if config.batch_size % world_size:
        raise ValueError(f"--batch-size {config.batch_size} (the global batch) must be divisible by the number of "
                         f"processes, {world_size}")
    if config.compile and world_size > 1:
        raise ValueError("--compile is not supported with several processes; leave it off")
    # every process checks the run folder before rank 0 writes anything into it
    config, run, weights, state = prepare_run(config, resume, create=False)
    adapter.barrier()
    if main:
        run.mkdir(parents=True, exist_ok=True)
    config.epochs = config.epochs or DEFAULT_EPOCHS
    if not main:  # rank 0 draws (or checks) the dataset first, then the others read it
        adapter.barrier()
    train_split, val_split = load_splits(config.data, config.data_dir, seed=config.seed, image_size=config.image_size,
                                         skip_bad=config.skip_bad, progress=log)
    if main:
        adapter.barrier()
    num_classes = len(train_split.class_names)
    spec = TinySSDSpec.from_json(json.dumps(config.spec)) if config.spec else TinySSDSpec(num_classes=num_classes)
    if spec.num_classes != num_classes:
        raise ValueError(f"The model has {spec.num_classes} classes but the data has {num_classes} "
                         f"({', '.join(train_split.class_names)})")
    config.spec = json.loads(spec.to_json())
    config.image_size = [int(d) for d in train_split.images.shape[2:]]
    config.class_names = config.class_names or list(train_split.class_names)
    if main:
        (run / "config.json").write_text(json.dumps(asdict(config), indent=2) + "\n")

    model = nn.TinySSD(spec=spec, seed=config.seed)
    if weights is not None:
        nn.set_weights(model, weights)
        if state.get("seed") != config.seed:
            log(f"warning: the checkpoint was made with seed {state.get('seed')}, the config says {config.seed}")
    net = adapter.distribute(adapter.prepare(model, device, compile=config.compile), device, config.sync_bn)
    model = adapter.unwrap(net)  # what is evaluated and saved
    optimizer = adapter.make_optimizer(net, config.lr, config.weight_decay, config.momentum)
    momentum = state.pop("momentum", None) if state else None  # arrays: kept out of the JSON state
    if momentum:
        adapter.set_momentum(optimizer, model, momentum)
    loss_config = config.loss_config()
    sampler = EpochBatchSampler(len(train_split), config.batch_size, shuffle=True, seed=config.seed, rank=rank,
                                world_size=world_size)
    steps_per_epoch = sampler.global_batches()
    source = BatchSource(train_split.for_training(), AugmentConfig.named(config.augment), config.seed)
    loader = adapter.make_loader(source, sampler, device)

    state = state or dict(epoch=0, batches_done=0, sums=[0.0] * 6, history=[], seed=config.seed)
    history = state["history"]
    if resume:
        log(f"resuming {run} at epoch {state['epoch'] + 1}, batch {state['batches_done']}")
    if world_size > 1:
        log(f"data parallel: {world_size} processes, {config.batch_size // world_size} images each per step"
            + (", synchronised batch norm" if config.sync_bn else ""))
    with _StopFlag() as stop:
        for epoch in range(state["epoch"], config.epochs):
            sampler.set_epoch(epoch, skip_batches=state["batches_done"])
            sums = np.asarray(state["sums"], dtype=np.float64)   # loss*n, n, cls_correct, cls_count, bbox_abs, bbox_count
            local = np.zeros(6)  # this process's share of this epoch's sums (all processes' are added at the end)
            # a resumed epoch counts the time its first part took before the stop
            started, batch = time.perf_counter() - state.get("elapsed", 0.0), state["batches_done"]
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not progress, leave=False,
                       unit="batch", file=sys.stderr)
            for X, Y in bar:
                adapter.set_lr(optimizer, learning_rate(config, epoch * steps_per_epoch + batch,
                                                        config.epochs * steps_per_epoch))
                try:
                    stats = adapter.train_step(net, optimizer, X, Y, loss_config, device)
                except FloatingPointError as error:
                    raise NonFiniteLoss(
                        f"Non-finite loss at epoch {epoch + 1}, batch {batch + 1} ({error}); the run stopped and "
                        f"kept its last good checkpoint in {run / CHECKPOINT}") from None
                n = int(Y.shape[0])
                local += [stats["loss"] * n, n, stats["cls_correct"], stats["cls_count"], stats["bbox_abs"],
                          stats["bbox_count"]]
                batch += 1
                elapsed = time.perf_counter() - started
                shown = sums + local * world_size  # an estimate for the bar; exact figures at the epoch's end
                bar.set_postfix(loss=f"{shown[0] / shown[1]:.4f}", ex_s=f"{shown[1] / elapsed:.1f}")
                # every process stops after the same batch when Ctrl-C reached any of them
                if (adapter.all_reduce([float(stop.requested)])[0] if world_size > 1 else stop.requested):
                    sums += adapter.all_reduce(local)
                    state.update(epoch=epoch, batches_done=batch, sums=sums.tolist(), elapsed=elapsed)
                    if not main:
                        raise StopRequested("")  # rank 0 saves and says so
                    _save_checkpoint(run, nn, model, state, adapter.get_momentum(optimizer, model))
                    raise StopRequested(f"Stopped at epoch {epoch + 1}, batch {batch}; saved {run / CHECKPOINT}. "
                                        f"Continue with --resume {run}")
            sums += adapter.all_reduce(local)
            seconds = time.perf_counter() - started
            row = dict(epoch=epoch + 1, loss=sums[0] / sums[1], class_err=1 - sums[2] / sums[3],
                       bbox_mae=sums[4] / sums[5], examples_per_s=sums[1] / seconds, epoch_seconds=seconds)
            if main:
                row.update(evaluate(adapter, model, val_split, device, config.batch_size))
            history.append(row)
            state.update(epoch=epoch + 1, batches_done=0, sums=[0.0] * 6, elapsed=0.0, history=history)
            if main:
                _save_checkpoint(run, nn, model, state, adapter.get_momentum(optimizer, model))
                save_weights(model, run / "weights.safetensors")
                _write_metrics(run / "metrics.csv", history)
                from multissd.plots import plot_curves
                plot_curves(history, run / "curves.png")
                log(f"epoch {epoch + 1}/{config.epochs}: loss {row['loss']:.4f}, class err {row['class_err']:.2e}, "
                    f"bbox mae {row['bbox_mae']:.2e} | val class err {row['val_class_err']:.2e}, "
                    f"val bbox mae {row['val_bbox_mae']:.2e}, top-1 IoU>=0.5 {100 * row['val_top1_iou50']:.1f}%, "
                    f"mAP@0.5 {row['val_map_50']:.3f} | "
                    f"{row['examples_per_s']:.1f} examples/s ({seconds:.0f} s)")
            adapter.barrier()  # the others wait while rank 0 evaluates and saves
    if main:
        _plot_predictions(adapter, model, val_split, device, run, config.class_names)
    return history


def _plot_predictions(adapter, net, split, device, run: Path, class_names, count: int = 12, threshold: float = 0.5):
    """``predictions.png``: validation images with their top detection and any other above ``threshold``."""
    from multissd.plots import plot_detections
    images = split.images[:count].astype(np.float32)
    anchors, cls_probs, bbox_preds = adapter.predict(net, images, device)
    output = adapter.detect(anchors, cls_probs, bbox_preds, 0.5, device)
    height, width = images.shape[2:]
    scale = np.array([width, height, width, height], np.float32)
    detections = []
    for rows in output:
        keep = rows[:, 0] >= 0
        keep[1:] &= rows[1:, 1] >= threshold  # rows come by decreasing score: the first is the top detection
        rows = rows[keep][:5]
        detections.append(np.concatenate([rows[:, :2], rows[:, 2:] * scale], axis=1) if len(rows) else rows)
    truths = [label[label[:, 0] >= 0, 1:] * scale for label in split.labels[:count]]
    plot_detections(split.images[:count].transpose(0, 2, 3, 1), detections, truths, run / "predictions.png",
                    class_names=class_names)

