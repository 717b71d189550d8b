"""The training loop of the book, backend-neutral, with what a real run needs around it.

Per epoch: a progress bar with the running loss and examples/s; one line with the book's figures
(class error, bbox MAE) on training and validation data, the share of validation images whose top
detection overlaps a true box with IoU >= 0.5, validation mAP@0.5, and honest examples/s (examples /
whole epoch's wall time). After every epoch the run folder gets an atomic checkpoint, portable
weights, ``metrics.csv`` and ``curves.png``. Ctrl-C stops after the current batch and saves (a
mid-epoch checkpoint that ``--resume`` continues exactly); a non-finite loss stops the run naming
the epoch and batch and keeps the last good checkpoint. The backend's ``train`` module (the
*adapter*) supplies devices, loaders, the step and the collectives.
"""
from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from tqdm import tqdm  # the plain class: tqdm.auto's asyncio variant calls iter() on the loader when the bar
#                        is made, and a paddle DataLoader starts reading on iter() -- a second reader of the sampler

from multissd import registry
from multissd.anchor_fit import coverage, fitted_spec, needs_fitting
from multissd.data.augment import AugmentConfig, BatchSource
from multissd.data.datasets import check_trainable, data_kind, load_splits
from multissd.data.prefetch import prefetch
from multissd.data.sampler import EpochBatchSampler
from multissd.detection import top_detections, validation_figures
from multissd.errors import InputError
from multissd.host import keep_freed_memory
from multissd.plots import plot_curves, plot_detections
from multissd.files import RunLock, write_text
from multissd.training.checkpoint import (CHECKPOINT, claim_run, prepare_run, save_checkpoint, saved_config,
                                          write_metrics)
from multissd.training.config import TrainConfig, default_epochs
from multissd.training.distributed import Ranks
from multissd.training.schedule import learning_rate, still_rising
from multissd.weights import read_weights, save_weights


class StopRequested(Exception):
    """Ctrl-C was pressed: the run saved a checkpoint after the current batch."""


class NonFiniteLoss(Exception):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


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


@dataclass
class _Session:
    """One process's view of a run: what the loop reads and updates."""

    config: TrainConfig
    run: Path
    ranks: Ranks
    adapter: ModuleType
    device: object
    model: object        # the model that is evaluated and saved
    net: object          # what is trained: the model, wrapped for data parallelism when distributed
    optimizer: object
    loader: object
    sampler: EpochBatchSampler
    val_split: object
    state: dict          # epoch, batches_done, sums, elapsed, history, seed: what the checkpoint keeps
    progress: bool
    log: object
    lock: RunLock | None  # rank 0's lock on the run folder, released when the run ends

    def save_checkpoint(self) -> None:
        save_checkpoint(self.run, self.model_nn.get_weights(self.model), self.state,
                        self.adapter.get_momentum(self.optimizer, self.model), self.model.spec.to_json())

    @property
    def model_nn(self) -> ModuleType:
        return registry.load_nn(self.config.backend)


def train(config: TrainConfig, resume: bool = False, progress: bool = True, log=print) -> list[dict]:
    """Train TinySSD as configured; returns the per-epoch history (also written to ``metrics.csv``).

    Launched by ``torchrun`` or ``paddle.distributed.launch`` with several processes, it trains one
    model with the framework's data parallelism (see :mod:`multissd.training.distributed`).
    """
    if resume:  # the run's own settings: backend, model, data, batch size, recipe (RESUME_CHANGES aside)
        saved = saved_config(config.out)
        config = config.resumed(saved)
        if config.epochs != saved.get("epochs") and config.lr_schedule != "constant":
            log(f"--epochs {config.epochs}: the cosine schedule now decays over {config.epochs} epochs instead of "
                f"{saved.get('epochs')}, so the remaining steps' learning rates differ from the run's first plan")
    keep_freed_memory()
    adapter = registry.load_trainer(config.backend)
    if not adapter.CAN_TRAIN:
        adapter.make_optimizer(None, config.lr, config.weight_decay)  # raises the one-line error
    adapter.set_threads(config.threads)
    device = adapter.resolve_device(config.device)
    config.precision = adapter.resolve_precision(config.precision, device)  # config.json records what auto chose
    ranks = Ranks.join(adapter, device)
    quiet = lambda *args, **kwargs: None  # noqa: E731 - only rank 0 talks
    session = _start(config, resume, ranks, adapter, device, progress and ranks.main, log if ranks.main else quiet)
    try:
        history = _fit(session)
    finally:
        if session.lock is not None:
            session.lock.release()
    rise = still_rising(history)
    if rise is not None:
        session.log(f"the validation mAP@0.5 still rose {rise:.3f} in the last quarter of the epochs: the curve has not "
            f"flattened, and a longer run (--epochs {2 * session.config.epochs}) may do better")
    ranks.shutdown()
    return history


def _start(config, resume, ranks, adapter, device, progress, log) -> _Session:
    """Check the run folder (every process), load the data (rank 0 first: it may draw the synthetic
    set), build the model, optimiser and loader -- and only then, with nothing left to refuse, let rank
    0 create and lock the run folder and write ``config.json``."""
    ranks.check(config.batch_size, config.compile)
    config, run, weights, state = prepare_run(config, resume)
    with ranks.main_first():
        train_split, val_split = load_splits(config.data, config.data_dir, seed=config.seed,
                                             image_size=config.image_size, skip_bad=config.skip_bad, progress=log)
    check_trainable(train_split, config.data or "bananas")
    config.epochs = config.epochs or default_epochs(data_kind(config.data), len(train_split), config.batch_size)
    _settle_config(config, train_split, log)
    model, net, optimizer = _build(config, adapter, device, ranks, weights, state, log)
    lock = None
    if ranks.main:
        lock = claim_run(run, resume, log)
        write_text(run / "config.json", json.dumps(asdict(config), indent=2) + "\n")
    ranks.barrier()
    sampler = EpochBatchSampler(len(train_split), config.batch_size, shuffle=True, seed=config.seed, rank=ranks.rank,
                                world_size=ranks.world_size)
    source = BatchSource(train_split.for_training(), AugmentConfig.named(config.augment, config.max_zoom), config.seed)
    state = state or dict(epoch=0, batches_done=0, sums=[0.0] * 6, history=[], seed=config.seed)
    if resume:
        log(f"resuming {run} at epoch {state['epoch'] + 1}, batch {state['batches_done']}")
    if ranks.world_size > 1:
        log(f"data parallel: {ranks.world_size} processes, {config.batch_size // ranks.world_size} images each per "
            f"step" + (", synchronised batch norm" if config.sync_bn else ""))
    return _Session(config, run, ranks, adapter, device, model, net, optimizer,
                    adapter.make_loader(source, sampler, device), sampler, val_split, state, progress, log, lock)


def _settle_config(config: TrainConfig, train_split, log) -> None:
    """Fill in what the data decides (spec -- its anchors fitted to the boxes when asked --, image
    size, class names); say how well the model's anchors cover the training boxes."""
    num_classes = len(train_split.class_names)
    config.check_image_size(train_split.images.shape[2:], f"the data {config.data or 'bananas'}")
    spec = _with_anchors(config, config.model_spec(num_classes), train_split.for_training(), log)
    if spec.num_classes != num_classes:
        raise InputError(f"The model has {spec.num_classes} classes but the data has {num_classes} "
                         f"({', '.join(train_split.class_names)})")
    if spec.head != config.loss_config().head:
        raise InputError(f"The model's head is {spec.head} but --cls-loss {config.loss['cls_loss']} trains a "
                         f"{config.loss_config().head} head")
    config.spec = json.loads(spec.to_json())
    config.image_size = [int(d) for d in train_split.images.shape[2:]]
    config.class_names = config.class_names or list(train_split.class_names)


def _with_anchors(config: TrainConfig, spec, split, log):
    """``spec``, with its anchor sizes and ratios fitted to ``split``'s boxes when
    ``config.anchor_sizes`` asks (``fit``, or ``auto`` and the spec's anchors leave too many boxes
    uncovered) on a new run; logs the coverage (:func:`multissd.anchor_fit.coverage`)."""
    if spec.anchors != "book":
        return spec
    size = split.images.shape[2:]

    def report(spec, what):
        shares = coverage(spec, split.labels, size, split.class_names)
        named = ", ".join(f"{name} {100 * share:.0f}%" for name, share in shares.items() if name != "all")
        log(f"{what} give {100 * shares['all']:.0f}% of the training boxes an anchor at IoU >= 0.5 ({named})")
        return shares
    shares = report(spec, f"{'the run' if config.spec else 'the model'}'s anchors")
    if config.spec or config.anchor_sizes == "book" or (config.anchor_sizes == "auto" and not needs_fitting(shares)):
        if not config.spec and needs_fitting(shares):  # --anchor-sizes book, on boxes its anchors miss
            log(f"these anchors leave {100 * (1 - shares['all']):.0f}% of the training boxes without an anchor at "
                f"IoU 0.5, which the model can hardly learn: --anchor-sizes fit fits the anchors to the boxes")
        return spec
    spec = fitted_spec(spec, split.labels, size)
    log(f"anchors fitted to the training boxes: sizes {[list(s) for s in spec.sizes]}, ratios "
        f"{[list(r) for r in spec.ratios]}")
    report(spec, "the fitted anchors")
    return spec


def _start_from(model, nn, path, log) -> None:
    """``--init``: copy into ``model`` every tensor of the weights file ``path`` whose name and shape
    match; the rest (a class head of another class count, a scale the other model lacks) keep their
    fresh initialisation. ``ValueError`` when nothing matches."""
    arrays, _ = read_weights(path)
    mine = nn.get_weights(model)
    matched = {name: arrays[name] for name, value in mine.items()
               if name in arrays and tuple(arrays[name].shape) == tuple(value.shape)}
    if not matched:
        raise InputError(f"--init {path}: none of its {len(arrays)} tensors has a name and shape of this model's")
    nn.set_weights(model, {**mine, **matched})
    fresh = sorted(set(mine) - set(matched))
    log(f"started from {path}: {len(matched)} of {len(mine)} tensors"
        + (f"; drawn afresh: {', '.join(fresh[:6])}{' ...' if len(fresh) > 6 else ''}" if fresh else ""))


def _build(config, adapter, device, ranks, weights, state, log):
    """``(model, net, optimizer)``: the model (from the checkpoint's weights when resuming), what is
    trained (prepared, and wrapped for data parallelism), and its optimiser (momentum restored)."""
    nn = registry.load_nn(config.backend)
    model = nn.TinySSD(spec=config.model_spec(), seed=config.seed)
    if config.init and weights is None:
        _start_from(model, nn, config.init, log)
    if weights is not None:
        nn.set_weights(model, weights)
        if state.get("seed") != config.seed:
            log(f"warning: the checkpoint was made with seed {state.get('seed')}, the config says {config.seed}")
    net = adapter.distribute(adapter.prepare(model, device, compile=config.compile), device, config.sync_bn)
    model = adapter.unwrap(net)  # what is evaluated and saved
    optimizer = adapter.make_optimizer(net, config.lr, config.weight_decay, config.momentum, config.optimizer)
    momentum = state.pop("momentum", None) if state else None  # arrays: kept out of the JSON state
    if momentum:
        adapter.set_momentum(optimizer, model, momentum)
    return model, net, optimizer


def _fit(session: _Session) -> list[dict]:
    """Every remaining epoch, then ``predictions.png``; returns the history."""
    config, state = session.config, session.state
    with _StopFlag() as stop:
        for epoch in range(state["epoch"], config.epochs):
            row = _run_epoch(session, epoch, stop)
            _check_finite_weights(session, epoch)
            state["history"].append(row)
            state.update(epoch=epoch + 1, batches_done=0, sums=[0.0] * 6, elapsed=0.0)
            if session.ranks.main:
                _save_epoch(session, row)
            session.ranks.barrier()  # the others wait while rank 0 evaluates and saves
    if session.ranks.main:
        _plot_predictions(session)
    return state["history"]


def _run_epoch(session: _Session, epoch: int, stop: _StopFlag) -> dict:
    """One epoch's steps (from the batch a stopped run reached); returns its figures. Raises
    :class:`StopRequested` after saving when Ctrl-C reached any process, :class:`NonFiniteLoss`
    when the loss is not finite."""
    config, state, ranks, adapter = session.config, session.state, session.ranks, session.adapter
    steps_per_epoch = session.sampler.global_batches()
    session.sampler.set_epoch(epoch, skip_batches=state["batches_done"])
    sums = np.asarray(state["sums"], dtype=np.float64)   # loss*n, n, cls_correct, cls_count, bbox_abs, bbox_count
    local = np.zeros(6)  # this process's share of this epoch's sums (all processes' are added at the end)
    # a resumed epoch counts the time its first part took before the stop
    started, batch = time.perf_counter() - state.get("elapsed", 0.0), state["batches_done"]
    bar = tqdm(total=batch + len(session.loader), initial=batch, desc=f"epoch {epoch + 1}/{config.epochs}",
               disable=not session.progress, leave=False, unit="batch", file=sys.stderr)
    batches, waited = prefetch(session.loader), 0.0  # the next batch is made while this one trains
    while True:
        asked = time.perf_counter()
        X, Y = next(batches, (None, None))
        waited += time.perf_counter() - asked
        if X is None:
            break
        bar.update()
        adapter.set_lr(session.optimizer, learning_rate(config, epoch * steps_per_epoch + batch,
                                                        config.epochs * steps_per_epoch))
        try:
            stats = adapter.train_step(session.net, session.optimizer, X, Y, config.loss_config(), session.device,
                                       config.precision)
        except FloatingPointError as error:
            raise _diverged(session, f"Non-finite loss at epoch {epoch + 1}, batch {batch + 1} ({error})") from None
        n = int(Y.shape[0])
        local += [stats["loss"] * n, n, stats["cls_correct"], stats["cls_count"], stats["bbox_abs"], stats["bbox_count"]]
        batch += 1
        elapsed = time.perf_counter() - started
        shown = sums + local * ranks.world_size  # an estimate for the bar; exact figures at the epoch's end
        bar.set_postfix(loss=f"{shown[0] / shown[1]:.4f}", ex_s=f"{shown[1] / elapsed:.1f}")
        if ranks.any(stop.requested):  # every process stops after the same batch
            state.update(epoch=epoch, batches_done=batch, sums=(sums + ranks.sum(local)).tolist(), elapsed=elapsed)
            _stop(session, epoch, batch)
    bar.close()
    sums += ranks.sum(local)
    seconds = time.perf_counter() - started
    return dict(epoch=epoch + 1, loss=sums[0] / sums[1], class_err=1 - sums[2] / sums[3], bbox_mae=sums[4] / sums[5],
                examples_per_s=sums[1] / seconds, epoch_seconds=seconds, data_seconds=waited)


def _diverged(session: _Session, what: str) -> NonFiniteLoss:
    """The error of a run that diverged, saying truthfully what it kept."""
    if (session.run / CHECKPOINT).is_file():
        kept = f"the run stopped and kept its last good checkpoint in {session.run / CHECKPOINT}"
    else:
        kept = (f"the run stopped in its first epoch, before any checkpoint, so {session.run} will be reused by a new "
                f"run; a smaller --lr may keep it stable (this one is {session.config.lr:g})")
    return NonFiniteLoss(f"{what}; {kept}")


def _check_finite_weights(session: _Session, epoch: int) -> None:
    """:class:`NonFiniteLoss` when the epoch's last update left a weight NaN or infinite (every loss
    was finite, but the model can no longer be evaluated or saved)."""
    weights = session.model_nn.get_weights(session.model)
    bad = [name for name, value in weights.items() if not np.isfinite(value).all()]
    if bad:
        raise _diverged(session, f"The weights became non-finite at the end of epoch {epoch + 1} ({len(bad)} tensors, "
                                 f"{bad[0]} first): the run diverged")


def _stop(session: _Session, epoch: int, batch: int) -> None:
    """Ctrl-C: rank 0 saves a mid-epoch checkpoint and says so; every process raises StopRequested."""
    if not session.ranks.main:
        raise StopRequested("")
    session.save_checkpoint()
    raise StopRequested(f"Stopped at epoch {epoch + 1}, batch {batch}; saved {session.run / CHECKPOINT}. "
                        f"Continue with --resume {session.run}")


def _save_epoch(session: _Session, row: dict) -> None:
    """Rank 0 after an epoch: validation figures into ``row``, then checkpoint, weights,
    ``metrics.csv``, ``curves.png`` and the epoch's line."""
    config, run = session.config, session.run
    try:
        row.update(validation_figures(session.adapter, session.model, session.val_split, session.device,
                                      config.batch_size, config.precision))
    except FloatingPointError as error:
        raise _diverged(session, f"Epoch {row['epoch']}: {error}, the run diverged") from None
    session.save_checkpoint()
    save_weights(session.model, run / "weights.safetensors")
    write_metrics(run / "metrics.csv", session.state["history"])
    plot_curves(session.state["history"], run / "curves.png")
    session.log(f"epoch {row['epoch']}/{config.epochs}: loss {row['loss']:.4f}, class err {row['class_err']:.2e}, "
                f"bbox mae {row['bbox_mae']:.2e} | val class err {row['val_class_err']:.2e}, "
                f"val bbox mae {row['val_bbox_mae']:.2e}, top-1 IoU>=0.5 {100 * row['val_top1_iou50']:.1f}%, "
                f"mAP@0.5 {row['val_map_50']:.3f} | "
                f"{row['examples_per_s']:.1f} examples/s ({row['epoch_seconds']:.0f} s)")


def _plot_predictions(session: _Session, count: int = 12) -> None:
    """``predictions.png``: validation images with their top detection and any other above 0.5."""
    split = session.val_split
    detections = top_detections(session.adapter, session.model, split.images[:count].astype(np.float32), session.device)
    height, width = split.images.shape[2:]
    scale = np.array([width, height, width, height], np.float32)
    truths = [label[label[:, 0] >= 0, 1:] * scale for label in split.labels[:count]]
    plot_detections(split.images[:count].transpose(0, 2, 3, 1), detections, truths, session.run / "predictions.png",
                    class_names=session.config.class_names)
