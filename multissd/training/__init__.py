"""Training TinySSD: the book's loop and what a real run needs around it.

- ``config.py`` -- :class:`TrainConfig` (a run's ``config.json``) and the recipes (``--recipe ssd|book``);
- ``schedule.py`` -- the learning rate per step (constant or cosine);
- ``checkpoint.py`` -- the run folder, the checkpoint format, ``metrics.csv``;
- ``loop.py`` -- :func:`train`: epochs, steps, Ctrl-C, validation figures, what is saved after each epoch;
- ``distributed.py`` -- the processes of a data-parallel run (rank 0 writes; collectives).

The command line is :mod:`multissd.train`; the backends' ``trainer`` modules (:mod:`multissd.trainer`) supply the step.
"""
from multissd.training.checkpoint import CHECKPOINT, METRIC_COLUMNS, load_checkpoint
from multissd.training.config import DEFAULT_EPOCHS, DEFAULT_RECIPE, LR_SCHEDULES, RECIPES, TrainConfig
from multissd.training.loop import NonFiniteLoss, StopRequested, train
from multissd.training.schedule import learning_rate

__all__ = ["TrainConfig", "RECIPES", "DEFAULT_RECIPE", "DEFAULT_EPOCHS", "LR_SCHEDULES", "learning_rate", "train",
           "StopRequested", "NonFiniteLoss", "CHECKPOINT", "METRIC_COLUMNS", "load_checkpoint"]
