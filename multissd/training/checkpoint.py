"""The run folder and its checkpoint: what is saved after every epoch (and on Ctrl-C) so that
``--resume`` continues a run exactly.

A checkpoint is one safetensors file (written atomically, :func:`multissd.weights.write_file`): the
model's weights by neutral name, the optimiser's momentum buffers under ``momentum/<name>``, and in
its metadata the format, the model spec and the loop's state as JSON (epoch, batches done in it,
the epoch's running sums, elapsed time, the history of finished epochs, the seed).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from multissd.errors import InputError
from multissd.files import LOCK_FILE, TEMP_MARK, RunLock, write_text
from multissd.training.config import TrainConfig
from multissd.weights import read_file, write_file

CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "multissd.checkpoint/1"
MOMENTUM_PREFIX = "momentum/"  # the optimiser's momentum buffers beside the weights in a checkpoint
METRIC_COLUMNS = ("epoch", "loss", "class_err", "bbox_mae", "val_class_err", "val_bbox_mae", "val_top1_iou50",
                  "val_map_50", "examples_per_s", "epoch_seconds", "data_seconds")


def save_checkpoint(run: Path, weights: dict, state: dict, momentum: dict, spec_json: str) -> None:
    """Write ``run/checkpoint.safetensors`` atomically: ``weights`` and ``momentum`` (name -> NumPy
    array), ``state`` (JSON-able) and the model spec."""
    arrays = {**weights, **{MOMENTUM_PREFIX + name: value for name, value in momentum.items()}}
    write_file(Path(run) / CHECKPOINT, arrays,
               {"format": CHECKPOINT_FORMAT, "spec": spec_json, "state": json.dumps(state)})


def load_checkpoint(run) -> tuple[dict, dict]:
    """``(weights, state)`` of a run's checkpoint; ``ValueError`` naming the path if it is unusable.
    The optimiser's momentum buffers, if any, are in ``state["momentum"]`` by parameter name."""
    path = Path(run) / CHECKPOINT
    arrays, metadata = read_file(path, what="checkpoint")
    if metadata.get("format") != CHECKPOINT_FORMAT or "state" not in metadata:
        raise InputError(f"{path} is not a multissd checkpoint (format {metadata.get('format')!r})")
    state = json.loads(metadata["state"])
    state["momentum"] = {name[len(MOMENTUM_PREFIX):]: arrays.pop(name) for name in list(arrays)
                         if name.startswith(MOMENTUM_PREFIX)}
    return arrays, state


RUN_FILES = ("config.json", "metrics.csv", "curves.png", "predictions.png", "weights.safetensors", CHECKPOINT)
"""What a run writes into its folder."""


def saved_config(run) -> dict:
    """The ``config.json`` of the run folder ``run``; ``ValueError`` naming the path when it is missing
    or unreadable."""
    path = Path(run) / "config.json"
    if not path.is_file():
        raise InputError(f"Cannot resume {run}: it has no config.json (not a multissd run folder)")
    try:
        saved = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"Cannot resume {run}: {path} is not valid JSON ({error})") from None
    if not isinstance(saved, dict):
        raise InputError(f"Cannot resume {run}: {path} does not hold a run's settings")
    return saved


def _leftovers_of_a_failed_run(run: Path) -> bool:
    """Whether ``run`` holds only what a run that stopped before its first checkpoint leaves behind."""
    names = [p.name for p in run.iterdir() if p.name != LOCK_FILE]
    return (CHECKPOINT not in names and "config.json" in names
            and all(name in RUN_FILES or (name.startswith(".") and TEMP_MARK in name) for name in names))


def _in_use(run: Path) -> bool:
    """Whether ``run`` holds anything but a lock file."""
    return run.is_dir() and any(p.name != LOCK_FILE for p in run.iterdir())


def prepare_run(config: TrainConfig, resume: bool) -> tuple[TrainConfig, Path, dict | None, dict | None]:
    """Check the run folder -- nothing is created or written -- and, when resuming, read the weights and
    state of its checkpoint (``config`` is the resumed config already, :meth:`TrainConfig.resumed`).
    A new run's folder must be absent, empty, or what an earlier run left when it stopped before its
    first checkpoint (:func:`claim_run` reuses it)."""
    run = Path(config.out)
    if run.exists() and not run.is_dir():
        raise InputError(f"--out {run} is a file, not a folder")
    if resume:
        if not (run / CHECKPOINT).is_file() and (run / "config.json").is_file():
            raise InputError(f"Cannot resume {run}: the run stopped before the end of its first epoch, so it has no "
                             f"checkpoint; start it again (the same --out reuses the folder)")
        weights, state = load_checkpoint(run)
        if config.epochs < state["epoch"]:
            raise InputError(f"--epochs {config.epochs}: {run} has already trained {state['epoch']} epochs; a resumed "
                             f"run goes on from there (ask for {state['epoch']} or more)")
        return config, run, weights, state
    if _in_use(run) and not _leftovers_of_a_failed_run(run):
        raise InputError(f"Run folder {run} exists and is not empty; continue it with --resume {run} or choose "
                         f"another --out")
    return config, run, None, None


def claim_run(run: Path, resume: bool, log=print) -> RunLock:
    """Create the run folder if needed and lock it for this run (:class:`~multissd.files.RunLock`:
    ``InputError`` when another run holds it); a new run then clears what an earlier run left when it
    stopped before its first checkpoint. Called once everything has been checked, so that a mistake
    leaves no folder behind. Returns the lock, for the run to release when it ends."""
    created = not run.exists()
    try:
        run.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"--out {run} is a file, not a folder") from None
    try:
        lock = RunLock(run).acquire()
    except InputError:
        if created:
            run.rmdir()
        raise
    if lock.stale:
        log(f"{run / LOCK_FILE} was left by a run that did not end ({lock.stale}, no longer running); taking the "
            f"folder over")
    if not resume and _in_use(run):
        if not _leftovers_of_a_failed_run(run):  # another run got there first and went on past its checkpoint
            lock.release()
            raise InputError(f"Run folder {run} exists and is not empty; continue it with --resume {run} or choose "
                             f"another --out")
        log(f"reusing {run}: an earlier run stopped there before its first checkpoint")
        for path in run.iterdir():
            if path.name != LOCK_FILE:
                path.unlink()
    return lock


def write_metrics(path: Path, history: list[dict]) -> None:
    """The per-epoch figures as CSV (:data:`METRIC_COLUMNS`), written atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(path, text.getvalue())
