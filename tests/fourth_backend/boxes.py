"""The box contract on the fourth backend: every function of :mod:`multissd.boxes`, in its order."""
from __future__ import annotations

import numpy as np

from fourth_backend import Tensor, forward
from multissd.backends.numpy import boxes as reference
from multissd.boxes import CONTRACT, implements

for _name in CONTRACT:
    globals()[_name] = implements(forward(getattr(reference, _name)))


@implements
def asarray(x, dtype=None):
    return np.asarray(reference.asarray(x, dtype)).view(Tensor)


@implements
def to_numpy(x):
    return np.array(x, copy=True).view(np.ndarray)
