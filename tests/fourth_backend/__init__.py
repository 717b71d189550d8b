"""A fourth backend, written outside multissd from the list in docs/backends.md ("Adding a backend")
alone: it registers itself with :func:`multissd.registry.register` and implements the four contracts
(``boxes.py``, ``nn.py``, ``trainer.py``, ``exporter.py``) by handing NumPy arrays to the reference
backend and wrapping what comes back in its own tensor type, so that dispatch can tell its tensors
from NumPy's. ``tests/test_fourth_backend.py`` runs the contract tests on it."""
from __future__ import annotations

import numpy as np

from multissd.registry import BackendInfo, package_getattr


class Tensor(np.ndarray):
    """The fourth backend's tensor: a NumPy array of its own type."""


ENTRY = BackendInfo(name="fourth", import_name="fourth_backend", tensor_type="Tensor",
                    model_module="fourth_backend.nn", model_class="Module", pip_extra="", framework="Fourth (NumPy)",
                    package="fourth_backend")

__getattr__ = package_getattr("fourth")


def _each_array(value, convert):
    """``value`` with ``convert`` applied to every NumPy array in it (tuples, lists, dicts)."""
    if isinstance(value, np.ndarray):
        return convert(value)
    if isinstance(value, (tuple, list)):
        return type(value)(_each_array(v, convert) for v in value)
    if isinstance(value, dict):
        return {key: _each_array(v, convert) for key, v in value.items()}
    return value


def wrap(value):
    """``value`` with every NumPy array in it as a :class:`Tensor`."""
    return _each_array(value, lambda array: array.view(Tensor))


def unwrap(value):
    """``value`` with every :class:`Tensor` in it as a plain NumPy array."""
    return _each_array(value, lambda array: array.view(np.ndarray))


def forward(reference):
    """A function with ``reference``'s name and parameters that calls it on plain arrays and wraps
    its result (``functools.wraps`` keeps the parameters visible to ``@implements``)."""
    import functools

    @functools.wraps(reference)
    def call(*args, **kwargs):
        return wrap(reference(*unwrap(args), **unwrap(kwargs)))
    return call
