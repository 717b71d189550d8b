"""The backend registry: which backends exist, whether they are installed, which one owns a tensor,
and how to load a backend's modules.

A leaf module (einops' ``_backends.py``): it imports only the standard library and NumPy, never
another module of multissd, so every other module may import it without a cycle. Backends are
folders, ``multissd/backends/<name>/`` with ``boxes.py`` (the box contract, :mod:`multissd.boxes`),
``nn.py`` (the model pieces and losses, :mod:`multissd.nn`), ``train.py`` (what the trainer
drives) and ``export.py`` (ONNX export, :mod:`multissd.export`); they are imported by name with
:mod:`importlib` on first use, so ``import multissd`` imports neither torch nor paddle. Which backend is *active* is owned by :mod:`multissd.config`.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from types import ModuleType

import numpy as np

__all__ = [
    "BackendInfo", "BackendNotAvailableError", "REGISTRY", "BACKEND_NAMES", "DEFAULT_ORDER", "DEVICES",
    "info", "is_installed", "available_backends", "load", "load_nn", "load_train", "load_export", "backend_name_of",
    "tensor_backend", "to_host", "on_host", "package_getattr",
]


@dataclass(frozen=True)
class BackendInfo:
    """What multissd needs to know about a backend before importing it."""

    name: str          # the name users pass to ``use_backend``
    import_name: str   # the framework's top-level import name
    tensor_type: str   # attribute of the framework module that is its tensor class
    model_module: str  # module of the framework's model base class (a model counts as its tensor)
    model_class: str   # that base class
    pip_extra: str     # ``pip install 'multissd[<extra>]'`` installs the framework
    framework: str     # human-readable framework name for messages

    @property
    def package(self) -> str:
        """The multissd package implementing the backend: ``multissd.backends.<name>``."""
        return f"multissd.backends.{self.name}"


REGISTRY: dict[str, BackendInfo] = {
    "numpy": BackendInfo("numpy", "numpy", "ndarray", "multissd.backends.numpy.layers", "Layer", "", "NumPy"),
    "torch": BackendInfo("torch", "torch", "Tensor", "torch.nn", "Module", "torch", "PyTorch"),
    "paddle": BackendInfo("paddle", "paddle", "Tensor", "paddle.nn", "Layer", "paddle", "PaddlePaddle"),
}

BACKEND_NAMES = tuple(REGISTRY)
"""Every backend's name, in the registry's order (the reference first): what the CLIs offer."""

DEFAULT_ORDER = ("torch", "paddle", "numpy")
"""With nothing chosen, the first installed of these is the active backend."""

DEVICES = ("auto", "cpu", "cuda", "gpu")
"""The device names every backend's ``train.resolve_device`` accepts (``cuda`` and ``gpu`` are the same)."""


class BackendNotAvailableError(ImportError):
    """A backend was asked for whose framework is not installed."""


def info(name: str) -> BackendInfo:
    """The registry entry of backend ``name``; ``ValueError`` listing the valid names otherwise."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(
            f"Unknown multissd backend. Expected one of {sorted(REGISTRY)}. Received: backend={name!r}")
    return REGISTRY[name]


def is_installed(name: str) -> bool:
    """Whether the framework behind backend ``name`` can be imported (checked without importing it)."""
    framework = info(name).import_name
    if framework in sys.modules:
        return True
    return importlib.util.find_spec(framework) is not None


def available_backends() -> list[str]:
    """Names of the backends whose framework is installed, in default-preference order."""
    return [name for name in DEFAULT_ORDER if is_installed(name)]


def _load_module(name: str, part: str) -> ModuleType:
    """Import ``multissd.backends.<name>.<part>``; ``BackendNotAvailableError`` (naming the pip extra)
    when the framework is not installed."""
    entry = info(name)
    module = sys.modules.get(f"{entry.package}.{part}")
    if module is not None:
        return module
    if not is_installed(name):
        raise BackendNotAvailableError(
            f"The multissd backend {name!r} needs {entry.framework}, which is not installed. "
            f"Install it with: pip install 'multissd[{entry.pip_extra}]'")
    return importlib.import_module(f"{entry.package}.{part}")


def load(name: str) -> ModuleType:
    """The box functions of backend ``name``: ``multissd.backends.<name>.boxes``.

    Raises ``ValueError`` for an unknown name (listing the valid ones) and
    :class:`BackendNotAvailableError` when the framework is not installed (naming the pip extra).
    """
    return _load_module(name, "boxes")


def load_nn(name: str) -> ModuleType:
    """The model pieces and losses of backend ``name``: ``multissd.backends.<name>.nn``."""
    return _load_module(name, "nn")


def load_train(name: str) -> ModuleType:
    """What the trainer drives on backend ``name`` (devices, loaders, the step, inference,
    distribution): ``multissd.backends.<name>.train``."""
    return _load_module(name, "train")


def load_export(name: str) -> ModuleType:
    """ONNX export on backend ``name`` (``export_onnx``; ``CAN_EXPORT``): ``multissd.backends.<name>.export``."""
    return _load_module(name, "export")


def package_getattr(name: str):
    """A module ``__getattr__`` for the package ``multissd.backends.<name>``: its box functions,
    model pieces and losses by name, so that ``from multissd.backends import paddle as P;
    P.box_iou(a, b)`` and ``P.TinySSD()`` work; ``P.boxes``, ``P.nn``, ``P.train`` are its modules."""
    def __getattr__(attribute: str):
        if attribute in ("boxes", "nn", "train", "layers"):
            return importlib.import_module(f"{info(name).package}.{attribute}")
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        for loader in (load, load_nn):
            module = loader(name)
            if hasattr(module, attribute):
                return getattr(module, attribute)
        raise AttributeError(f"module 'multissd.backends.{name}' has no attribute {attribute!r}")
    return __getattr__


def backend_name_of(value) -> str | None:
    """The backend whose tensor (or model) type ``value`` is, or ``None`` for anything else.

    Only frameworks that are already imported are asked, so this never imports one.
    """
    if isinstance(value, np.ndarray):
        return "numpy"
    for entry in REGISTRY.values():
        framework = sys.modules.get(entry.import_name)
        if entry.name != "numpy" and framework is not None and isinstance(value, getattr(framework, entry.tensor_type)):
            return entry.name
        models = sys.modules.get(entry.model_module)
        if models is not None and isinstance(value, getattr(models, entry.model_class)):
            return entry.name
    return None


def tensor_backend(values) -> str | None:
    """The one backend that owns the tensors among ``values``, or ``None`` when there is no tensor.

    Tensors of two frameworks in one call raise ``TypeError`` naming both.
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
    return next(iter(found), None)


def to_host(value) -> np.ndarray:
    """A NumPy copy (or view) of a tensor of any backend, for validation and messages."""
    name = backend_name_of(value)
    if name is None:
        return np.asarray(value)
    return load(name).to_numpy(value)


def on_host(value) -> bool:
    """Whether reading ``value``'s numbers needs no copy from an accelerator: NumPy arrays, Python
    objects and tensors in CPU memory (each backend's ``boxes.on_host`` says for its tensors)."""
    name = backend_name_of(value)
    if name is None or name == "numpy":
        return True
    return load(name).on_host(value)
