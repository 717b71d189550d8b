"""The model-and-loss contract on the fourth backend: every function and class of :mod:`multissd.nn`."""
from __future__ import annotations

from fourth_backend import forward, unwrap, wrap
from multissd.backends.numpy import nn as reference
from multissd.nn import CONTRACT, implements


class Module:
    """The fourth backend's model base class (what makes a model belong to it)."""


for _name in CONTRACT:
    _original = getattr(reference, _name)
    if isinstance(_original, type):  # TinySSD, Classifier: the reference model, its input and output wrapped
        _model = type(_name, (Module, _original), {"__call__": lambda self, X: wrap(super(type(self), self).__call__(unwrap(X))),
                                                   "__module__": __name__})
        globals()[_name] = implements(_model)
    else:
        globals()[_name] = implements(forward(_original))
