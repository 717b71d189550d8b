"""The trainer contract on the fourth backend: it runs models but cannot train (no autograd)."""
from __future__ import annotations

from fourth_backend import forward
from multissd.backends.numpy import trainer as reference
from multissd.trainer import CONTRACT, implements

CAN_TRAIN = False

for _name in CONTRACT:
    globals()[_name] = implements(forward(getattr(reference, _name)))
