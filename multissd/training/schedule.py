"""The learning-rate schedule of a run, step by step: the book's constant rate, a cosine decay (with an
optional linear warmup), or fastai's one-cycle policy.

- ``constant``: ``lr`` at every step (the book's).
- ``cosine``: after ``warmup`` of the steps rising linearly to ``lr``, a cosine decay from ``lr`` to 0
  (the default; SGDR's annealing without restarts).
- ``onecycle``: fastai's ``fit_one_cycle`` (the lesson's course), Smith's one-cycle policy -- a cosine
  rise from ``lr / 25`` to ``lr`` over the first ``warmup`` of the steps (0.25 when none is set, as
  fastai), then a cosine fall to ``lr / 25 / 1e4``. fastai also cycles the momentum (0.95 -> 0.85 ->
  0.95); multissd keeps it fixed (``--momentum``).
"""
from __future__ import annotations

import math

from multissd.training.config import TrainConfig

ONE_CYCLE_DIV = 25.0          # fastai's div: the first rate is lr / 25
ONE_CYCLE_FINAL_DIV = 1e4     # fastai's div_final: the last rate is the first / 1e4
ONE_CYCLE_PCT_START = 0.25    # fastai's pct_start: the rise takes a quarter of the steps


def _cosine(start: float, end: float, fraction: float) -> float:
    """From ``start`` at ``fraction`` 0 to ``end`` at 1 along half a cosine."""
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * min(max(fraction, 0.0), 1.0)))


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of step ``step`` (0-based) of ``total_steps`` under ``config.lr_schedule``
    (see the module docstring; figures in ``docs/training.md``)."""
    if config.lr_schedule == "constant":
        return config.lr
    total_steps = max(total_steps, 1)
    if config.lr_schedule == "onecycle":
        rise = max(1, round((config.warmup or ONE_CYCLE_PCT_START) * total_steps))
        low = config.lr / ONE_CYCLE_DIV
        if step < rise:
            return _cosine(low, config.lr, step / rise)
        return _cosine(config.lr, low / ONE_CYCLE_FINAL_DIV, (step - rise) / max(total_steps - rise, 1))
    warm = round(config.warmup * total_steps)
    if step < warm:
        return config.lr * (step + 1) / warm
    return 0.5 * config.lr * (1 + math.cos(math.pi * (step - warm) / max(total_steps - warm, 1)))


FLAT_TOLERANCE = 0.01   # mAP@0.5 gained over the last quarter of the epochs that still counts as flat
FLAT_SHARE = 0.25


def still_rising(history: list[dict]) -> float | None:
    """How much the validation mAP@0.5 rose over the last quarter of the epochs of ``history`` (the
    best of that quarter against the epoch before it), when it rose by more than
    :data:`FLAT_TOLERANCE` -- the curve has not flattened and a longer run may do better -- else
    ``None``. Runs of fewer than 4 epochs are not judged."""
    maps = [row["val_map_50"] for row in history if "val_map_50" in row]
    if len(maps) < 4:
        return None
    last = max(1, round(len(maps) * FLAT_SHARE))
    rise = max(maps[-last:]) - maps[-last - 1]
    return rise if rise > FLAT_TOLERANCE else None
