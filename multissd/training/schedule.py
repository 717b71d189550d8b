"""The learning-rate schedule of a run: the book's constant rate, or a cosine decay."""
from __future__ import annotations

import math

from multissd.training.config import TrainConfig


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """The learning rate of step ``step`` (0-based) of ``total_steps``: the book's constant ``lr``, or
    a cosine decay from ``lr`` to 0 over the run (the default; see ``docs/training.md``)."""
    if config.lr_schedule == "constant":
        return config.lr
    return 0.5 * config.lr * (1 + math.cos(math.pi * step / total_steps))
