"""Data: the banana dataset (synthetic or the book's folder) and batches for every backend."""
from __future__ import annotations

from multissd import registry
from multissd.registry import get_backend
from multissd.data.augment import AugmentConfig, BatchSource, augment
from multissd.data.bananas import bananas, cache_dir, generate_bananas, synthetic_bananas_dir
from multissd.data.folder import DetectionSplit, read_split, write_split
from multissd.data.fruit import example_image
from multissd.data.datasets import load_splits
from multissd.data.sampler import EpochBatchSampler

__all__ = ["load_data_bananas", "bananas", "cache_dir", "generate_bananas", "synthetic_bananas_dir",
           "DetectionSplit", "read_split", "write_split", "EpochBatchSampler", "load_splits", "AugmentConfig",
           "BatchSource", "augment", "example_image"]


def load_data_bananas(batch_size: int, data=None, data_dir=None, seed: int = 0):
    """The book's ``load_data_bananas``: ``(train_iter, val_iter)`` for the active backend.

    Batches are ``(features, labels)``: float32 ``(B, 3, 256, 256)`` with values in 0..255, and
    ``(B, 1, 5)`` rows ``[class, xmin, ymin, xmax, ymax]`` normalised to [0, 1] -- a torch
    ``DataLoader``, a paddle ``DataLoader`` or NumPy batches. The training batches are shuffled,
    in a new order for each pass. ``data`` is a folder in the book's layout; by default the
    synthetic dataset is used (generated once into the cache, see :func:`cache_dir`).
    """
    adapter = registry.load_trainer(get_backend())
    device = adapter.resolve_device("auto")
    train, val = bananas(data, data_dir, seed=seed)
    train_iter = adapter.make_loader(BatchSource(train), EpochBatchSampler(len(train), batch_size, shuffle=True, seed=seed),
                                     device)
    val_iter = adapter.make_loader(BatchSource(val), EpochBatchSampler(len(val), batch_size, shuffle=False), device)
    return train_iter, val_iter
