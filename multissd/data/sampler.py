"""Which images go into which batch: deterministic from ``(seed, epoch)``, resumable, shardable."""
from __future__ import annotations

import numpy as np

from multissd.errors import InputError


class EpochBatch(list):
    """A batch's image indices (a list) that also knows its ``epoch`` (it seeds augmentation)."""

    epoch: int = 0


class EpochBatchSampler:
    """Yields lists of image indices (:class:`EpochBatch`), one per batch of one epoch.

    Each finished pass moves on to the next epoch (``set_epoch`` chooses one explicitly). With
    ``shuffle``, epoch ``e`` visits the images in the order
    ``default_rng([seed, e]).permutation(n)``, so any epoch's order can be recomputed (resuming
    needs no saved random state). Global batches of ``batch_size`` are cut from that order; with
    ``world_size > 1`` process ``rank`` takes every ``world_size``-th image of each global batch,
    so the global batches are the same whatever the number of processes.

    Args:
        num_items: dataset size ``n``.
        batch_size: the global batch size.
        shuffle: shuffle per epoch (training) or keep the file order (evaluation).
        seed: the run's seed.
        rank, world_size: this process's share of every batch.
        drop_last: drop a last, smaller batch.
    """

    def __init__(self, num_items: int, batch_size: int, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"Expected batch_size to be an integer >= 1; received {batch_size!r}")
        if not 0 <= rank < world_size:
            raise InputError(f"Expected 0 <= rank < world_size; received rank={rank}, world_size={world_size}")
        if batch_size < world_size:
            raise InputError(f"The global batch size {batch_size} is smaller than the number of processes {world_size}")
        self.num_items, self.batch_size, self.shuffle, self.seed = num_items, batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch, self._skip = 0, 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Use epoch ``epoch``'s order, starting after its first ``skip_batches`` batches (resuming)."""
        self.epoch, self._skip = int(epoch), int(skip_batches)

    def order(self) -> np.ndarray:
        """All indices of the current epoch, in visiting order."""
        if not self.shuffle:
            return np.arange(self.num_items)
        return np.random.default_rng([int(self.seed), self.epoch]).permutation(self.num_items)

    def global_batches(self) -> int:
        full, rest = divmod(self.num_items, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def __len__(self) -> int:
        return self.global_batches() - self._skip

    def __iter__(self):
        order = self.order()
        for b in range(self._skip, self.global_batches()):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            indices = EpochBatch(batch[self.rank::self.world_size].tolist())
            indices.epoch = self.epoch
            yield indices
        # a finished pass moves on to the next epoch's order, like a DataLoader with shuffle=True
        self.epoch, self._skip = self.epoch + 1, 0
