"""Portable weights: one safetensors file, neutral parameter names, any backend.

``save_weights(net, path)`` writes every parameter and batch-norm statistic of a TinySSD built on
any backend, with the model's spec in the file's metadata; ``load_weights(net, path)`` reads it
into a TinySSD of any backend. Files are written atomically (a temporary file, then a rename), so
an interrupted save never leaves a half-written file at ``path``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from multissd import registry
from multissd.errors import InputError, InputTypeError
from multissd.files import write_bytes
from multissd.registry import get_backend
from multissd.classifier import ClassifierSpec
from multissd.model import TinySSDSpec

FORMAT = "multissd.tinyssd/1"


def _nn_of(net):
    name = registry.backend_name_of(net)
    if name is None or not hasattr(net, "spec"):
        raise InputTypeError(f"Expected a multissd TinySSD (any backend); received {type(net).__name__}")
    return registry.load_nn(name)


def write_file(path, arrays, metadata: dict[str, str], inputs=()) -> Path:
    """Write NumPy ``arrays`` and string ``metadata`` to the safetensors file ``path`` with the one
    writer (:func:`multissd.files.write_file`: atomic, an interrupted or failed write leaves the old
    file intact; never over one of ``inputs``). The file is serialised in memory first, so a full disk
    is an ``OSError`` naming ``path`` (safetensors' own writer reports it in its own words)."""
    from safetensors.numpy import save

    data = save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=metadata)
    return write_bytes(path, data, inputs, what="weights file")


def read_file(path, what: str = "weights file") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays and metadata of a safetensors file; a missing, truncated or corrupt file raises
    ``ValueError`` naming the path."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what[0].upper()}{what[1:]} not found: {path}")
    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}
    except Exception as error:  # safetensors raises its own error types for every kind of damage
        raise InputError(f"Cannot read {what} {path}: it is truncated or not a safetensors file "
                         f"({type(error).__name__}: {error})") from None
    return arrays, metadata


def save_weights(net, path) -> Path:
    """Write ``net``'s weights to ``path`` (safetensors; float32 arrays by neutral name, the spec in
    the metadata). The write is atomic. Returns the path."""
    weights = _nn_of(net).get_weights(net)
    return write_file(path, weights, {"format": FORMAT, "spec": net.spec.to_json(), "model": type(net.spec).__name__})


def read_weights(path) -> tuple[dict[str, np.ndarray], TinySSDSpec | ClassifierSpec | None]:
    """The arrays of a weights file and the spec stored with it (``None`` if it has none): a
    :class:`~multissd.TinySSDSpec`, or a :class:`~multissd.ClassifierSpec` for the lesson's classifiers.

    A missing, truncated or corrupt file raises ``ValueError`` naming the path.
    """
    arrays, metadata = read_file(path)
    for name, array in arrays.items():
        if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
            raise InputError(f"Weights file {path}: {name} holds {int((~np.isfinite(array)).sum())} non-finite "
                             f"values (NaN or infinity); the weights of a diverged run cannot predict")
    spec = None
    if "spec" in metadata:
        kind = ClassifierSpec if metadata.get("model") == "ClassifierSpec" else TinySSDSpec
        try:
            spec = kind.from_json(metadata["spec"])
        except (ValueError, TypeError, json.JSONDecodeError) as error:
            raise InputError(f"Weights file {path} holds an unreadable model spec: {error}") from None
    return arrays, spec


def load_weights(net, path):
    """Load the weights file ``path`` into ``net`` (a TinySSD of any backend); returns ``net``.

    The names and shapes must match ``net``'s spec: otherwise ``ValueError`` naming the first
    mismatching parameter.
    """
    arrays, _ = read_weights(path)
    net.spec.check_weights(arrays, source=f"weights file {path}")
    _nn_of(net).set_weights(net, arrays)
    return net


def load_model(path, backend: str | None = None, **kwargs):
    """Build the model stored in the weights file ``path`` (a TinySSD, or one of the lesson's
    classifiers) and load its weights, on ``backend`` (default: the active one)."""
    arrays, spec = read_weights(path)
    if spec is None:
        raise InputError(f"Weights file {path} stores no model spec; build the model yourself and use load_weights")
    nn = registry.load_nn(backend or get_backend())
    net = nn.Classifier(spec, **kwargs) if isinstance(spec, ClassifierSpec) else nn.TinySSD(spec=spec, **kwargs)
    spec.check_weights(arrays, source=f"weights file {path}")
    nn.set_weights(net, arrays)
    return net
