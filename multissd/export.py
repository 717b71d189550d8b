"""``python -m multissd.export``: a trained TinySSD as an ONNX file, through a framework's own exporter.

    python -m multissd.export --weights runs/fruit/weights.safetensors --backend torch --out fruit.onnx
    python -m multissd.export --weights runs/fruit/weights.safetensors --backend paddle --image-size 320

``--backend torch`` exports with ``torch.onnx.export`` (the ``torch.export``-based exporter),
``--backend paddle`` with ``paddle.onnx.export`` (paddle2onnx); either reads any multissd weights
file, whichever framework trained it. The file holds the model's raw heads, as its forward returns
them: input ``images`` float32 ``(batch, 3, H, W)`` (pixels 0-255, a dynamic batch), outputs
``anchors`` ``(1, A, 4)``, ``cls_preds`` ``(batch, A, C + 1)`` (logits; a softmax or a sigmoid head,
as trained) and ``bbox_preds`` ``(batch, 4A)``, at the run's image size (``--image-size`` for
another). The model's config (spec, classes, image size, head, box coding, the run's config.json)
travels in the ONNX metadata, so ``python -m multissd.predict photo.jpg --weights fruit.onnx``
(the ``onnxruntime`` engine) decodes it exactly as the framework that trained it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from multissd import cli
from multissd.backends import _registry
from multissd.engine import EXPORT_EXTRA, INPUT_NAME, ONNX_FORMAT, OUTPUT_NAMES, OnnxModel, run_config
from multissd.model import TinySSDSpec
from multissd.weights import load_model

DEFAULT_OPSET = 18
"""ONNX opset of the exported graph (both exporters write 18; ONNX Runtime 1.18 and newer run it)."""
DEFAULT_IMAGE_SIZE = (256, 256)


def image_size_of(image_size, config: dict, spec: TinySSDSpec) -> tuple[int, int]:
    """``(H, W)``: ``image_size`` (one int for a square, or two), else the run's, else 256 x 256;
    ``ValueError`` when the model cannot take it (smaller than ``spec.min_image_size``)."""
    size = image_size if image_size is not None else config.get("image_size") or DEFAULT_IMAGE_SIZE
    size = [size] if isinstance(size, int) else list(size)
    if not 1 <= len(size) <= 2 or any(isinstance(s, bool) or not isinstance(s, int) for s in size):
        raise ValueError(f"Expected image_size to be one int (square) or two (HEIGHT, WIDTH); received {image_size!r}")
    height, width = size[0], size[-1]
    if min(height, width) < spec.min_image_size:
        raise ValueError(f"The model needs images of at least {spec.min_image_size} x {spec.min_image_size} pixels "
                         f"(each down-sampling stage halves them); received "
                         f"{height} x {width}")
    return height, width


def require_onnx() -> None:
    """``ImportError`` naming the extra when the ``onnx`` package is missing."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ImportError(f"Exporting to ONNX needs the onnx package and the framework's exporter: "
                          f"{EXPORT_EXTRA}") from None


def metadata(spec: TinySSDSpec, config: dict, size: tuple[int, int], backend: str, weights: Path) -> dict[str, str]:
    """The ``multissd.*`` entries the file carries (strings; JSON where structured)."""
    framework = _registry.info(backend).import_name
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


def export_onnx(weights: str | Path, out: str | Path | None = None, backend: str = "torch",
                image_size: int | tuple[int, int] | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """Export the TinySSD in the weights file ``weights`` to ONNX with ``backend``'s exporter.

    Args:
        weights: a weights file written by multissd (``config.json`` beside it, if any, gives the
            image size and class names).
        out: the ONNX file to write (default: ``weights`` with the suffix ``.onnx``); written
            atomically (a temporary file beside it, then a rename).
        backend: ``"torch"`` (``torch.onnx.export``) or ``"paddle"`` (``paddle.onnx.export``).
        image_size: ``H`` or ``(H, W)`` of the exported input (default: the run's, else 256).
        opset: the ONNX opset.

    Returns the path written. ``ValueError`` for a file that holds no TinySSD, an image size the
    model cannot take, or ``backend="numpy"``; ``ImportError`` naming ``multissd[export]`` when the
    exporter is missing.
    """
    weights = Path(weights)
    exporter = _registry.load_export(backend)
    if exporter.CAN_EXPORT:
        require_onnx()
    net = load_model(weights, backend=backend)
    if not isinstance(net.spec, TinySSDSpec):
        raise ValueError(f"{weights} holds a {type(net.spec).__name__} (one of the lesson's classifiers); "
                         f"export takes a TinySSD detector")
    config = run_config(weights)
    size = image_size_of(image_size, config, net.spec)
    out = Path(out) if out is not None else weights.with_suffix(".onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.tmp"
    try:
        exporter.export_onnx(net, tmp, size[0], size[1], opset)
        finish(tmp, metadata(net.spec, config, size, backend, weights))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


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


def parser():
    p = cli.new_parser("python -m multissd.export", __doc__)
    p.add_argument("--weights", required=True, help="a weights file written by multissd (runs/NAME/weights.safetensors)")
    p.add_argument("--backend", choices=[n for n in _registry.BACKEND_NAMES if n != "numpy"], default="torch",
                   help="whose exporter writes the graph: torch (torch.onnx.export, default) or paddle "
                        "(paddle.onnx.export / paddle2onnx); either reads weights any backend trained")
    p.add_argument("--out", default=None, help="the ONNX file (default: the weights file with the suffix .onnx)")
    p.add_argument("--image-size", type=int, nargs="+", default=None, metavar="PIXELS",
                   help="input size of the exported graph: one number (square) or HEIGHT WIDTH (default: the run's)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--check", action="store_true",
                   help="run the exported file with ONNX Runtime on random images (batch 1 and 8) and print its "
                        "largest difference from the numpy backend's forward, relative to each output's magnitude")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    def body() -> int:
        size = args.image_size
        if size is not None and len(size) > 2:
            raise ValueError(f"--image-size takes one size (square) or two (HEIGHT WIDTH); received {size}")
        out = export_onnx(args.weights, args.out, args.backend, size, args.opset)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB), exported with {args.backend}")
        if args.check:
            worst = compare_with_numpy(out, args.weights)
            print("ONNX Runtime vs the numpy forward, batch 1 and 8, largest |difference| / largest |value|: "
                  + ", ".join(f"{name} {value:.1e}" for name, value in worst.items()))
        return 0
    return cli.report_errors(body)


def script() -> None:
    """The ``multissd-export`` console script (the same as ``python -m multissd.export``)."""
    sys.exit(main())


if __name__ == "__main__":
    script()
