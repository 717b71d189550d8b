"""The processes of a data-parallel run, as the loop sees them.

Launched by ``torchrun`` or ``paddle.distributed.launch`` with several processes, training runs one
model with the framework's data parallelism: each process takes its share of every global batch,
gradients are all-reduced by the framework, and only rank 0 (:attr:`Ranks.main`) writes the run
folder, logs, shows progress and evaluates, while the others wait at a barrier. With one process
every collective here is free. The backend's ``train`` module supplies the collectives.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from multissd.errors import InputError


@dataclass(frozen=True)
class Ranks:
    """This process's rank among ``world_size`` processes, and the backend adapter whose
    collectives connect them."""

    adapter: ModuleType
    rank: int = 0
    world_size: int = 1

    @classmethod
    def join(cls, adapter: ModuleType, device) -> "Ranks":
        """Join the process group the launcher started (one process: rank 0 of 1)."""
        rank, world_size = adapter.init_distributed(device)
        return cls(adapter, rank, world_size)

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes, logs, shows progress and evaluates."""
        return self.rank == 0

    def check(self, batch_size: int, compile: bool) -> None:
        """``ValueError`` when the global batch cannot be shared out, or ``--compile`` is asked for
        with several processes."""
        if batch_size % self.world_size:
            raise InputError(f"--batch-size {batch_size} (the global batch) must be divisible by the number of "
                             f"processes, {self.world_size}")
        if compile and self.world_size > 1:
            raise InputError("--compile is not supported with several processes; leave it off")

    def barrier(self) -> None:
        """Wait for every process."""
        self.adapter.barrier()

    @contextmanager
    def main_first(self):
        """Rank 0 runs the block first (e.g. draws the synthetic dataset), then the others."""
        if not self.main:
            self.barrier()
        yield
        if self.main:
            self.barrier()

    def sum(self, values) -> np.ndarray:
        """float64 ``values`` summed over the processes."""
        return self.adapter.all_reduce(values)

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is set in any process (Ctrl-C reached one): every process then stops
        after the same batch."""
        if self.world_size == 1:
            return flag
        return bool(self.sum([float(flag)])[0])

    def shutdown(self) -> None:
        """Leave together: wait for rank 0 (it draws predictions.png last), then leave the group."""
        self.adapter.barrier()
        self.adapter.shutdown()
