"""The backend registry: which backends exist, whether they are installed, and how to load them.

A backend is a module (``multissd/backends/<name>.py``) that implements every function of
:mod:`multissd.contract`. Backends are imported lazily, on first use, so ``import multissd``
imports neither torch nor paddle. Which backend is *active* is owned by :mod:`multissd.config`;
this module only answers "which framework does this tensor belong to" and "load backend X".
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from types import ModuleType

import numpy as np

__all__ = [
    "BackendInfo", "BackendNotAvailableError", "REGISTRY", "DEFAULT_ORDER",
    "available_backends", "is_installed", "load", "load_nn", "load_train", "backend_name_of", "backend_for", "to_host",
]


@dataclass(frozen=True)
class BackendInfo:
    """What multissd needs to know about a backend before importing it."""

    name: str          # the name users pass to ``use_backend``
    module: str        # the multissd module implementing the contract
    import_name: str   # the framework's top-level import name
    tensor_type: str   # attribute of the framework module that is its tensor class
    pip_extra: str     # ``pip install 'multissd[<extra>]'`` installs the framework
    framework: str     # human-readable framework name for messages


REGISTRY: dict[str, BackendInfo] = {
    "numpy": BackendInfo("numpy", "multissd.backends.numpy", "numpy", "ndarray", "", "NumPy"),
    "torch": BackendInfo("torch", "multissd.backends.torch", "torch", "Tensor", "torch", "PyTorch"),
    "paddle": BackendInfo("paddle", "multissd.backends.paddle", "paddle", "Tensor", "paddle",
                          "PaddlePaddle"),
}

# With nothing chosen, the first installed of these is used.
DEFAULT_ORDER = ("torch", "paddle", "numpy")


class BackendNotAvailableError(ImportError):
    """A backend was asked for whose framework is not installed."""


def _info(name: str) -> BackendInfo:
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(
            f"Unknown multissd backend. Expected one of {sorted(REGISTRY)}. Received: backend={name!r}")
    return REGISTRY[name]


def is_installed(name: str) -> bool:
    """Whether the framework behind backend ``name`` can be imported (checked without importing it)."""
    info = _info(name)
    if info.import_name in sys.modules:
        return True
    return importlib.util.find_spec(info.import_name) is not None


def available_backends() -> list[str]:
    """Names of the backends whose framework is installed, in default-preference order."""
    return [name for name in DEFAULT_ORDER if is_installed(name)]


def load(name: str) -> ModuleType:
    """Import and return the backend module ``multissd.backends.<name>``.

    Raises ``ValueError`` for an unknown name (listing the valid ones) and
    :class:`BackendNotAvailableError` when the framework is not installed (naming the pip extra).
    """
    info = _info(name)
    module = sys.modules.get(info.module)
    if module is not None:
        return module
    if not is_installed(name):
        raise BackendNotAvailableError(
            f"The multissd backend {name!r} needs {info.framework}, which is not installed. "
            f"Install it with: pip install 'multissd[{info.pip_extra}]'")
    return importlib.import_module(info.module)


def load_nn(name: str) -> ModuleType:
    """Import and return ``multissd.backends.<name>_nn``: the backend's model pieces and losses."""
    return importlib.import_module(load(name).__name__ + "_nn")


def nn_attribute_getter(name: str):
    """A module ``__getattr__`` for ``multissd/backends/<name>.py`` that finds the model pieces and
    losses in ``<name>_nn.py``, so ``multissd.backends.torch.TinySSD`` works as well."""
    def __getattr__(attribute):
        from multissd.nn_contract import NN_CONTRACT
        if attribute in NN_CONTRACT:
            return getattr(load_nn(name), attribute)
        raise AttributeError(f"module 'multissd.backends.{name}' has no attribute {attribute!r}")
    return __getattr__


# Model base classes, by backend: (module, class name). A model of a backend counts as its tensor.
_MODEL_TYPES = {"numpy": ("multissd.backends.numpy_layers", "Layer"), "torch": ("torch.nn", "Module"),
                "paddle": ("paddle.nn", "Layer")}


def load_train(name: str) -> ModuleType:
    """Import and return ``multissd.backends.<name>_train``: devices, loaders and the training step."""
    return importlib.import_module(load(name).__name__ + "_train")


def backend_name_of(value) -> str | None:
    """The backend whose tensor (or model) type ``value`` is, or ``None`` for anything else.

    Only frameworks that are already imported are asked, so this never imports one.
    """
    if isinstance(value, np.ndarray):
        return "numpy"
    for info in REGISTRY.values():
        framework = sys.modules.get(info.import_name)
        if info.name != "numpy" and framework is not None and isinstance(value, getattr(framework, info.tensor_type)):
            return info.name
        module_name, class_name = _MODEL_TYPES[info.name]
        module = sys.modules.get(module_name)
        if module is not None and isinstance(value, getattr(module, class_name)):
            return info.name
    return None


def backend_for(*values) -> ModuleType:
    """The backend module that must handle a call receiving ``values``.

    Tensors decide: all tensors among ``values`` must belong to one framework (else ``TypeError``
    naming both). With no tensor among them, the active backend (:func:`multissd.get_backend`) is used.
    """
    found: dict[str, object] = {}
    for value in values:
        name = backend_name_of(value)
        if name is not None and name not in found:
            found[name] = value
    if len(found) > 1:
        (a, va), (b, vb) = list(found.items())[:2]
        raise TypeError(
            f"Received tensors of two frameworks in one call: {type(va).__module__}."
            f"{type(va).__name__} ({a}) and {type(vb).__module__}.{type(vb).__name__} ({b}). "
            f"Expected all tensors from one backend; convert with multissd.to_numpy() and "
            f"multissd.asarray().")
    if found:
        return load(next(iter(found)))
    from multissd.config import get_backend
    return load(get_backend())


def to_host(value) -> np.ndarray:
    """A NumPy copy (or view) of a tensor of any backend, for validation and messages."""
    name = backend_name_of(value)
    if name is None:
        return np.asarray(value)
    return load(name).to_numpy(value)
