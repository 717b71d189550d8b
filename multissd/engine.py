"""What runs a trained model for ``predict`` and ``evaluate``: a multissd backend, or ONNX Runtime.

``open_model(weights, backend, engine, device)`` gives a :class:`Runner`: with a backend, the backend's trainer adapter, box functions and TinySSD loaded from a weights file; with
``engine="onnxruntime"``, an :class:`OnnxModel` (the graph :mod:`multissd.onnx_export` wrote, run by ONNX
Runtime) with the NumPy backend's adapter and box functions, so its detections are decoded by the
same code as ``--backend numpy``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multissd import registry
from multissd.errors import FieldError, InputError, MissingExtraError
from multissd.registry import get_backend
from multissd.model import TinySSDSpec, image_size_pair
from multissd.weights import load_model

ONNX_FORMAT = "multissd.onnx/1"
"""The ``multissd.format`` metadata entry of every ONNX file :mod:`multissd.onnx_export` writes."""
INPUT_NAME = "images"
OUTPUT_NAMES = ("anchors", "cls_preds", "bbox_preds")
"""The exported graph's input and outputs (the model's forward)."""
EXPORT_EXTRA = "pip install 'multissd[export]'"

ENGINES = ("onnxruntime",)
"""Engines besides the backends (``--engine``)."""


@dataclass(frozen=True)
class RunSettings:
    """What a run's ``config.json`` (or an ONNX file's metadata) says about its model's inputs."""

    image_size: tuple[int, int] | None
    class_names: list[str] | None
    config: dict


@dataclass(frozen=True)
class Runner:
    """A model ready to run: the backend's trainer ``adapter`` (``predict``), its ``box_ops``, the
    model ``net``, the resolved ``device``, the run's ``settings``, the ``engine``'s name (the
    backend's, or ``"onnxruntime"``) and the resolved ``precision`` of its forward passes."""

    adapter: object
    box_ops: object
    net: object
    device: object
    settings: RunSettings
    engine: str
    precision: str = "fp32"


def _session(path: Path, threads: int | None):
    try:
        import onnxruntime
    except ImportError:
        raise MissingExtraError(f"The onnxruntime engine needs ONNX Runtime: {EXPORT_EXTRA}") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    if threads:
        options.intra_op_num_threads = threads
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # ONNX Runtime raises its own types for a truncated or foreign file
        raise InputError(f"Cannot load ONNX file {path}: it is corrupt or not an ONNX model "
                         f"({type(error).__name__}: {error})") from None


class OnnxModel:
    """A TinySSD exported by :mod:`multissd.onnx_export`, run by ONNX Runtime on the CPU; called like the
    NumPy backend's TinySSD: ``model(X)`` with float32 ``X`` ``(B, 3, H, W)`` (pixels 0-255, ``(H, W)``
    the exported size) -> ``(anchors (1, A, 4), cls_preds (B, A, C + 1), bbox_preds (B, 4A))``.

    Attributes: ``spec`` (the :class:`~multissd.TinySSDSpec` the file carries), ``image_size``
    ``(H, W)``, ``class_names`` (or ``None``), ``config`` (the run's config.json), ``path``.
    A missing, corrupt or foreign file (one :mod:`multissd.onnx_export` did not write) raises
    ``ValueError`` naming the file.
    """

    def __init__(self, path, threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"ONNX file not found: {self.path}")
        self.session = _session(self.path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("multissd.format") != ONNX_FORMAT:
            raise InputError(f"{self.path} was not written by multissd.export (its metadata has no "
                             f"multissd.format {ONNX_FORMAT!r}); export a multissd weights file with "
                             f"python -m multissd.export")
        try:
            self.spec = TinySSDSpec.from_json(meta["multissd.spec"])
            self.image_size = image_size_pair(json.loads(meta["multissd.image_size"]),
                                              f"{self.path}: its metadata's multissd.image_size",
                                              self.spec.min_image_size)
            self.class_names = json.loads(meta.get("multissd.class_names", "null"))
            self.config = json.loads(meta.get("multissd.run", "{}"))
        except InputError:
            raise
        except (KeyError, ValueError, TypeError) as error:
            raise InputError(f"{self.path} holds unreadable multissd metadata: {error}") from None
        self._check_graph()

    def _check_graph(self) -> None:
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        names = (inputs[0].name if len(inputs) == 1 else None, tuple(o.name for o in outputs))
        if names != (INPUT_NAME, OUTPUT_NAMES):
            raise InputError(f"{self.path} has inputs {[i.name for i in inputs]} and outputs {list(names[1])}; a "
                             f"multissd export has {INPUT_NAME!r} and {list(OUTPUT_NAMES)}")
        columns = outputs[1].shape[-1]
        if isinstance(columns, int) and columns != self.spec.num_classes + 1:
            raise InputError(f"{self.path}: its metadata says {self.spec.num_classes} classes but the graph outputs "
                             f"{columns} class columns (expected {self.spec.num_classes + 1})")

    def eval(self):
        """Nothing to switch (an exported graph is in eval mode); returns the model."""
        return self

    def __call__(self, X):
        X = np.asarray(X)
        height, width = self.image_size
        if X.ndim != 4 or X.shape[1:] != (3, height, width):
            raise InputError(f"{self.path} takes images of shape [B, 3, {height}, {width}] (exported at "
                             f"{height} x {width}); received shape {list(X.shape)}")
        anchors, cls_preds, bbox_preds = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: X.astype(np.float32)})
        return anchors, cls_preds, bbox_preds


def run_config(weights: Path) -> dict:
    """The run's ``config.json`` beside ``weights`` (``{}`` if there is none)."""
    path = weights.parent / "config.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(f"Cannot read {path}: {error}") from None


def read_settings(weights: Path) -> RunSettings:
    """The image size and class names of the run in ``config.json`` beside ``weights`` (``None`` each
    if there is none)."""
    config = run_config(weights)
    size = config.get("image_size")
    size = image_size_pair(size, f"{weights.parent / 'config.json'}: image_size") if size else None
    return RunSettings(size, config.get("class_names"), config)


def open_model(weights: str | Path, backend: str | None = None, engine: str | None = None,
               device: str = "auto", precision: str = "fp32") -> Runner:
    """A :class:`Runner` for the model in ``weights``.

    ``engine``: ``None`` -- ``"onnxruntime"`` for an ``.onnx`` file, else the backend; ``"onnxruntime"``
    -- ``weights`` is a file :mod:`multissd.onnx_export` wrote, run by ONNX Runtime and decoded by the
    NumPy backend (``backend`` must then be ``None`` or ``"numpy"``). ``device`` is the backend's
    (ONNX Runtime runs on the CPU); ``precision`` that of the forward passes (``--precision``: the
    backend resolves ``auto``; ONNX Runtime runs the float32 graph).
    """
    weights = Path(weights)
    if engine is None and weights.suffix == ".onnx":
        engine = "onnxruntime"
    if engine is not None and engine not in ENGINES:
        raise InputError(f"Unknown engine {engine!r}; expected one of {list(ENGINES)} (or none: the backend)")
    if engine == "onnxruntime":
        if backend not in (None, "numpy"):
            raise InputError(f"--backend {backend} with the onnxruntime engine: ONNX Runtime runs the model and "
                             f"NumPy decodes its output; leave out --backend")
        if weights.suffix == ".safetensors":
            raise InputError(f"{weights} is a weights file, not an ONNX graph: export it first with "
                             f"python -m multissd.export --weights {weights}")
        if device not in ("auto", "cpu"):
            raise InputError(f"The onnxruntime engine runs on the CPU; received device={device!r}")
        if precision == "bf16":
            raise FieldError("precision", "{name} bf16: the onnxruntime engine runs the exported float32 graph")
        net = OnnxModel(weights)
        return Runner(registry.load_trainer("numpy"), registry.load("numpy"), net, "cpu",
                      RunSettings(net.image_size, net.class_names, net.config), "onnxruntime")
    backend = backend or get_backend()
    if not weights.is_file():
        raise InputError(f"Weights file not found: {weights}")
    adapter = registry.load_trainer(backend)
    device = adapter.resolve_device(device)
    precision = adapter.resolve_precision(precision, device)
    net = adapter.prepare(load_model(weights, backend=backend), device)
    return Runner(adapter, registry.load(backend), net, device, read_settings(weights), backend, precision)
