"""Writing a trained model to an ONNX file through a framework's own exporter: the library behind
``python -m multissd.export`` (:mod:`multissd.export`).

:func:`export_onnx` reads any multissd weights file, builds the model on the exporting backend and
calls that backend's exporter (:mod:`multissd.exporter`: ``torch.onnx.export`` or paddle2onnx) on a
temporary file; then it names the graph's input and outputs as the contract does, adds the model's
config to the file's metadata, checks it with ONNX's checker and moves it into place.
:func:`compare_with_numpy` measures the file against the NumPy backend's forward.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from multissd import registry
from multissd.engine import EXPORT_EXTRA, INPUT_NAME, ONNX_FORMAT, OUTPUT_NAMES, OnnxModel, run_config
from multissd.errors import FieldError, InputError, MissingExtraError
from multissd.files import check_output, deferred_interrupt, write_file
from multissd.model import DEFAULT_IMAGE_SIZE, TinySSDSpec, image_size_pair
from multissd.weights import load_model

__all__ = ["DEFAULT_OPSET", "export_onnx", "compare_with_numpy", "check_opset", "image_size_of", "metadata"]

DEFAULT_OPSET = 18
"""ONNX opset of the exported graph (both exporters write 18; ONNX Runtime 1.18 and newer run it)."""


def image_size_of(image_size, config: dict, spec: TinySSDSpec) -> tuple[int, int]:
    """``(H, W)``: ``image_size`` (one int for a square, or two), else the run's, else
    :data:`~multissd.model.DEFAULT_IMAGE_SIZE`; ``ValueError`` when the model cannot take it (smaller
    than ``spec.min_image_size``, larger than :data:`~multissd.model.MAX_IMAGE_SIDE`)."""
    size = image_size if image_size is not None else config.get("image_size") or DEFAULT_IMAGE_SIZE
    try:
        return image_size_pair(size, "<image_size>", spec.min_image_size)
    except InputError as error:
        raise FieldError.from_message("image_size", str(error), "<image_size>") from None


def require_onnx() -> None:
    """``ImportError`` naming the extra when the ``onnx`` package is missing."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise MissingExtraError(f"Exporting to ONNX needs the onnx package and the framework's exporter: "
                          f"{EXPORT_EXTRA}") from None


def metadata(spec: TinySSDSpec, config: dict, size: tuple[int, int], backend: str, weights: Path) -> dict[str, str]:
    """The ``multissd.*`` entries the file carries (strings; JSON where structured)."""
    framework = registry.info(backend).import_name
    version = getattr(sys.modules.get(framework), "__version__", "?")
    return {"multissd.format": ONNX_FORMAT, "multissd.model": type(spec).__name__, "multissd.spec": spec.to_json(),
            "multissd.image_size": json.dumps(list(size)), "multissd.class_names": json.dumps(config.get("class_names")),
            "multissd.head": spec.head, "multissd.coding": json.dumps(spec.coding and dataclasses.asdict(spec.coding)),
            "multissd.run": json.dumps(config), "multissd.exported_by": f"{backend} {version}",
            "multissd.weights": weights.name}


def finish(path: Path, entries: dict[str, str]) -> None:
    """Name the graph's input and outputs as the contract does (``images``; ``anchors``,
    ``cls_preds``, ``bbox_preds``), add the metadata, check the model and save it in place."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    renames = {graph.input[0].name: INPUT_NAME, **{o.name: new for o, new in zip(graph.output, OUTPUT_NAMES)}}
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    for value in (*graph.input, *graph.output, *graph.initializer):  # an output may be a folded constant
        value.name = renames.get(value.name, value.name)
    del model.metadata_props[:]
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)  # with shape inference: what ONNX Runtime will check
    onnx.save(model, str(path))


def check_opset(opset, backend: str) -> int:
    """``opset`` when ``backend``'s exporter writes it as asked (its ``OPSETS``); ``FieldError`` naming
    ``opset`` (``--opset`` on the command line) otherwise."""
    lowest, highest = registry.load_exporter(backend).OPSETS
    if isinstance(opset, bool) or not isinstance(opset, int) or not lowest <= opset <= highest:
        raise FieldError("opset", f"{{name}} {opset!r}: the {backend} exporter writes ONNX opsets {lowest} to "
                                  f"{highest} (outside them it writes another opset, or fails)")
    return opset


def export_onnx(weights: str | Path, out: str | Path | None = None, backend: str = "torch",
                image_size: int | tuple[int, int] | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """Export the TinySSD in the weights file ``weights`` to ONNX with ``backend``'s exporter.

    Args:
        weights: a weights file written by multissd (``config.json`` beside it, if any, gives the
            image size and class names).
        out: the ONNX file to write (default: ``weights`` with the suffix ``.onnx``); written with
            the one writer (:func:`multissd.files.write_file`: atomic, never over ``weights``, nothing
            left behind on an error or Ctrl-C).
        backend: ``"torch"`` (``torch.onnx.export``) or ``"paddle"`` (``paddle.onnx.export``).
        image_size: ``H`` or ``(H, W)`` of the exported input (default: the run's, else 256).
        opset: the ONNX opset, within the exporter's ``OPSETS``.

    Returns the path written. ``ValueError`` for a file that holds no TinySSD, an image size the
    model cannot take, an opset the exporter does not write, an ``out`` that is a folder or the
    weights file, or ``backend="numpy"``; ``ImportError`` naming ``multissd[export]`` when the
    exporter is missing. Ctrl-C during the framework's exporter is held until it returns (torch's
    aborts the process when interrupted inside its C++), then stops the export.
    """
    weights = Path(weights)
    exporter = registry.load_exporter(backend)
    if not exporter.CAN_EXPORT:
        exporter.export_onnx(None, None, 0, 0, opset)  # raises the one line that names who can
    require_onnx()
    check_opset(opset, backend)
    out = check_output(Path(out) if out is not None else weights.with_suffix(".onnx"), [weights], "ONNX file")
    net = load_model(weights, backend=backend)
    if not isinstance(net.spec, TinySSDSpec):
        raise InputError(f"{weights} holds a {type(net.spec).__name__} (one of the lesson's classifiers); "
                         f"export takes a TinySSD detector")
    config = run_config(weights)
    size = image_size_of(image_size, config, net.spec)

    def write(temp: Path) -> None:
        with deferred_interrupt():
            exporter.export_onnx(net, temp, size[0], size[1], opset)
        finish(temp, metadata(net.spec, config, size, backend, weights))
    return write_file(out, write, [weights], "ONNX file")


def compare_with_numpy(onnx_file: str | Path, weights: str | Path, batches: Sequence[int] = (1, 8),
                       seed: int = 0) -> dict[str, float]:
    """ONNX Runtime's outputs on random images against the NumPy backend's eval-mode forward of
    ``weights``: per output (``anchors``, ``cls_preds``, ``bbox_preds``) the largest absolute
    difference over ``batches``, divided by the output's largest magnitude."""
    import numpy as np

    model = OnnxModel(onnx_file)
    net = load_model(weights, backend="numpy")
    net.eval()
    rng = np.random.default_rng(seed)
    worst = dict.fromkeys(OUTPUT_NAMES, 0.0)
    for batch in batches:
        images = rng.uniform(0, 255, (batch, 3, *model.image_size)).astype(np.float32)  # (B, 3, H, W)
        for name, actual, expected in zip(OUTPUT_NAMES, model(images), net(images)):
            expected = np.asarray(expected)
            scale = max(float(np.abs(expected).max()), 1e-30)
            worst[name] = max(worst[name], float(np.abs(actual - expected).max()) / scale)
    return worst
