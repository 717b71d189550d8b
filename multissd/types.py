"""The names of the types in multissd's signatures (annotations only: nothing is checked here).

multissd's functions take and return the tensors of whichever backend is in use; these names say
which kind of value an argument is, the way the book's tabs do, without tying a signature to one
framework. The rules in :mod:`multissd.checks` are what check the values themselves.
"""
from __future__ import annotations

from typing import Any

Tensor = Any
"""An array of the backend in use: ``numpy.ndarray``, ``torch.Tensor`` or ``paddle.Tensor`` (a
function returns the framework of the tensors it received)."""

ArrayLike = Any
"""Anything :func:`multissd.asarray` converts: a tensor of any backend, a NumPy array, or nested
lists of numbers."""

Layer = Any
"""A model or layer of the backend in use: a ``torch.nn.Module``, a ``paddle.nn.Layer``, or a
NumPy-backend layer (``multissd/backends/numpy/layers.py``)."""

Device = Any
"""Where a backend puts tensors: a ``torch.device``, a device string such as ``"cpu"`` or
``"cuda"``, or ``None`` for the backend's default."""

__all__ = ["Tensor", "ArrayLike", "Layer", "Device"]
