"""The backends: which exist, whether they are installed, which one is active, which one owns a
tensor, and how to load a backend's modules (Keras 3's ``backend/config.py`` and einops'
``_backends.py`` in one).

The bottom of the house: it imports the standard library, NumPy and :mod:`multissd.errors`, never
another module of multissd, so every other module may import it. A backend is a package -- the
built-in ones are ``multissd/backends/<name>/`` -- with one module per contract: ``boxes.py``
(:mod:`multissd.boxes`), ``nn.py`` (:mod:`multissd.nn`), ``trainer.py`` (:mod:`multissd.trainer`)
and ``exporter.py`` (:mod:`multissd.exporter`); they are imported by name with :mod:`importlib` on
first use, so ``import multissd`` imports neither torch nor paddle. :func:`register` adds a backend
written outside multissd.

Which backend is *active* is decided here too, at call time (never at import time): an explicit
:func:`use_backend` beats the ``MULTISSD_BACKEND`` environment variable, which beats the default (the
first installed of torch, paddle, numpy). Nothing is written to disk.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from multissd.errors import InputError, InputTypeError, MissingExtraError

__all__ = [
    "BackendInfo", "BackendNotAvailableError", "REGISTRY", "BACKEND_NAMES", "DEFAULT_ORDER", "DEVICES", "PARTS",
    "ENV_VAR", "register", "unregister", "use_backend", "get_backend",
    "info", "is_installed", "available_backends", "load_part", "load", "load_nn", "load_trainer", "load_exporter",
    "backend_name_of", "tensor_backend", "to_host", "on_host", "package_getattr",
]

PARTS = ("boxes", "nn", "trainer", "exporter")
"""The modules every backend package has, one per contract (:mod:`multissd.boxes`,
:mod:`multissd.nn`, :mod:`multissd.trainer`, :mod:`multissd.exporter`)."""


@dataclass(frozen=True)
class BackendInfo:
    """What multissd needs to know about a backend before importing it."""

    name: str          # the name users pass to ``use_backend``
    import_name: str   # the module that defines the framework's tensor class (its top-level import name)
    tensor_type: str   # attribute of that module that is its tensor class
    model_module: str  # module of the framework's model base class (a model counts as its tensor)
    model_class: str   # that base class
    pip_extra: str     # ``pip install 'multissd[<extra>]'`` installs the framework
    framework: str     # human-readable framework name for messages
    package: str = ""  # the package implementing the contracts (default ``multissd.backends.<name>``)

    def __post_init__(self):
        if not self.package:
            object.__setattr__(self, "package", f"multissd.backends.{self.name}")


REGISTRY: dict[str, BackendInfo] = {
    "numpy": BackendInfo("numpy", "numpy", "ndarray", "multissd.backends.numpy.layers", "Layer", "", "NumPy"),
    "torch": BackendInfo("torch", "torch", "Tensor", "torch.nn", "Module", "torch", "PyTorch"),
    "paddle": BackendInfo("paddle", "paddle", "Tensor", "paddle.nn", "Layer", "paddle", "PaddlePaddle"),
}

BACKEND_NAMES = tuple(REGISTRY)
"""The built-in backends' names, in the registry's order (the reference first): what the CLIs offer."""

DEFAULT_ORDER = ("torch", "paddle", "numpy")
"""With nothing chosen, the first installed of these is the active backend."""

DEVICES = ("auto", "cpu", "cuda", "gpu")
"""The device names every backend's ``trainer.resolve_device`` accepts (``cuda`` and ``gpu`` are the same)."""

ENV_VAR = "MULTISSD_BACKEND"
"""The environment variable that chooses the backend when :func:`use_backend` has not."""

_explicit: str | None = None


class BackendNotAvailableError(MissingExtraError):
    """A backend was asked for whose framework is not installed."""


def register(entry: BackendInfo) -> BackendInfo:
    """Add the backend ``entry`` (written outside multissd: its package implements the four
    contracts, see ``docs/backends.md``), so that :func:`use_backend` and dispatch on its tensors
    reach it. ``ValueError`` when the name is taken."""
    if not isinstance(entry, BackendInfo):
        raise InputTypeError(f"Expected a multissd.registry.BackendInfo; received {type(entry).__name__}")
    if entry.name in REGISTRY:
        raise InputError(f"A backend named {entry.name!r} is already registered")
    REGISTRY[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove a backend added with :func:`register` (the built-in ones stay)."""
    if name in BACKEND_NAMES:
        raise InputError(f"{name!r} is a built-in backend; only registered ones can be removed")
    info(name)
    global _explicit
    if _explicit == name:
        _explicit = None
    del REGISTRY[name]


def info(name: str) -> BackendInfo:
    """The registry entry of backend ``name``; ``ValueError`` listing the valid names otherwise."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise InputError(
            f"Unknown multissd backend. Expected one of {sorted(REGISTRY)}. Received: backend={name!r}")
    return REGISTRY[name]


def is_installed(name: str) -> bool:
    """Whether the framework behind backend ``name`` can be imported (checked without importing it)."""
    framework = info(name).import_name
    if framework in sys.modules:
        return True
    return importlib.util.find_spec(framework.partition(".")[0]) is not None


def available_backends() -> list[str]:
    """Names of the backends whose framework is installed, in default-preference order (registered
    ones after the built-in ones)."""
    order = DEFAULT_ORDER + tuple(name for name in REGISTRY if name not in DEFAULT_ORDER)
    return [name for name in order if is_installed(name)]


# ---------------------------------------------------------------------------------------------
# Which backend is active
# ---------------------------------------------------------------------------------------------

class _BackendChoice:
    """Returned by :func:`use_backend`; as a context manager it restores the previous choice on exit."""

    def __init__(self, name: str, previous: str | None):
        self.name = name
        self._previous = previous

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc_info) -> None:
        global _explicit
        _explicit = self._previous

    def __repr__(self) -> str:
        return f"use_backend({self.name!r})"


def use_backend(name: str) -> _BackendChoice:
    """Make ``name`` ("numpy", "torch", "paddle" or a registered backend) the active backend.

    Works as a plain call (the choice stays until changed) and as a context manager
    (``with multissd.use_backend("paddle"): ...`` restores the previous choice afterwards).
    An unknown name raises ``ValueError`` listing the valid names; a backend whose framework is not
    installed raises :class:`multissd.BackendNotAvailableError` naming the pip extra. The
    framework itself is imported on first use, not here.
    """
    global _explicit
    info(name)  # validates the name
    if not is_installed(name):
        load(name)  # raises the error that names the pip extra
    previous = _explicit
    _explicit = name
    return _BackendChoice(name, previous)


def get_backend() -> str:
    """The name of the active backend: explicit choice, else ``$MULTISSD_BACKEND``, else the default."""
    if _explicit is not None:
        return _explicit
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        if from_env not in REGISTRY:
            raise InputError(
                f"Unknown multissd backend in the environment variable {ENV_VAR}. Expected one of "
                f"{sorted(REGISTRY)}. Received: {ENV_VAR}={from_env!r}")
        return from_env
    return available_backends()[0]


# ---------------------------------------------------------------------------------------------
# Loading a backend's modules
# ---------------------------------------------------------------------------------------------

def load_part(name: str, part: str) -> ModuleType:
    """Import the module ``part`` (one of :data:`PARTS`) of backend ``name``'s package;
    ``BackendNotAvailableError`` (naming the pip extra) when the framework is not installed."""
    if part not in PARTS:
        raise InputError(f"Expected a backend part, one of {list(PARTS)}; received part={part!r}")
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
    """The box functions of backend ``name`` (its ``boxes.py``, :mod:`multissd.boxes`).

    Raises ``ValueError`` for an unknown name (listing the valid ones) and
    :class:`BackendNotAvailableError` when the framework is not installed (naming the pip extra).
    """
    return load_part(name, "boxes")


def load_nn(name: str) -> ModuleType:
    """The model pieces and losses of backend ``name`` (its ``nn.py``, :mod:`multissd.nn`)."""
    return load_part(name, "nn")


def load_trainer(name: str) -> ModuleType:
    """What the training loop drives on backend ``name`` -- devices, loaders, the step, inference,
    distribution (its ``trainer.py``, :mod:`multissd.trainer`)."""
    return load_part(name, "trainer")


def load_exporter(name: str) -> ModuleType:
    """ONNX export on backend ``name`` (its ``exporter.py``, :mod:`multissd.exporter`)."""
    return load_part(name, "exporter")


def package_getattr(name: str):
    """A module ``__getattr__`` for a backend's package: its box functions, model pieces and losses
    by name, so that ``from multissd.backends import paddle as P; P.box_iou(a, b)`` and
    ``P.TinySSD()`` work; ``P.boxes``, ``P.nn``, ``P.trainer``, ``P.exporter`` are its modules."""
    def __getattr__(attribute: str):
        if attribute in PARTS or attribute == "layers":
            return importlib.import_module(f"{info(name).package}.{attribute}")
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        for loader in (load, load_nn):
            module = loader(name)
            if hasattr(module, attribute):
                return getattr(module, attribute)
        raise AttributeError(f"module {info(name).package!r} has no attribute {attribute!r}")
    return __getattr__


# ---------------------------------------------------------------------------------------------
# Which backend owns a tensor
# ---------------------------------------------------------------------------------------------

def backend_name_of(value) -> str | None:
    """The backend whose tensor (or model) type ``value`` is, or ``None`` for anything else.

    Only frameworks that are already imported are asked, so this never imports one. The registered
    backends are asked from the last to the first, so a backend whose tensors subclass another's
    (a NumPy-based one) claims its own before the reference does.
    """
    for entry in reversed(REGISTRY.values()):
        framework = sys.modules.get(entry.import_name)
        if framework is not None and isinstance(value, getattr(framework, entry.tensor_type)):
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
        raise InputTypeError(
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
