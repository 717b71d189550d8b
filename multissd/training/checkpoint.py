"""The run folder and its checkpoint: what is saved after every epoch (and on Ctrl-C) so that
``--resume`` continues a run exactly.

A checkpoint is one safetensors file (written atomically, :func:`multissd.weights.write_file`): the
model's weights by neutral name, the optimiser's momentum buffers under ``momentum/<name>``, and in
its metadata the format, the model spec and the loop's state as JSON (epoch, batches done in it,
the epoch's running sums, elapsed time, the history of finished epochs, the seed).
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from multissd.training.config import TrainConfig
from multissd.weights import read_file, write_file

CHECKPOINT = "checkpoint.safetensors"
CHECKPOINT_FORMAT = "multissd.checkpoint/1"
MOMENTUM_PREFIX = "momentum/"  # the optimiser's momentum buffers beside the weights in a checkpoint
METRIC_COLUMNS = ("epoch", "loss", "class_err", "bbox_mae", "val_class_err", "val_bbox_mae", "val_top1_iou50",
                  "val_map_50", "examples_per_s", "epoch_seconds")


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
        raise ValueError(f"{path} is not a multissd checkpoint (format {metadata.get('format')!r})")
    state = json.loads(metadata["state"])
    state["momentum"] = {name[len(MOMENTUM_PREFIX):]: arrays.pop(name) for name in list(arrays)
                         if name.startswith(MOMENTUM_PREFIX)}
    return arrays, state


def prepare_run(config: TrainConfig, resume: bool, create: bool = True) -> tuple[TrainConfig, Path, dict | None, dict | None]:
    """The run folder and, when resuming, the saved config, weights and state. ``create=False``
    checks a new run's folder without creating it (the other processes of a distributed run)."""
    run = Path(config.out)
    if resume:
        saved = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else None
        if saved is None:
            raise ValueError(f"Cannot resume: {run / 'config.json'} not found")
        weights, state = load_checkpoint(run)
        # --epochs given with --resume sets the total number of epochs; otherwise the saved one stands
        resumed = TrainConfig.from_saved(saved, epochs=config.epochs or saved["epochs"], out=str(run))
        return resumed, run, weights, state
    if run.exists() and any(run.iterdir()):
        raise ValueError(f"Run folder {run} exists and is not empty; continue it with --resume {run} or choose "
                         f"another --out")
    if create:
        run.mkdir(parents=True, exist_ok=True)
    return config, run, None, None


def write_metrics(path: Path, history: list[dict]) -> None:
    """The per-epoch figures as CSV (:data:`METRIC_COLUMNS`), written atomically."""
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    tmp.replace(path)
