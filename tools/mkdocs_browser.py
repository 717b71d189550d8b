"""MkDocs hook: what the page "Try it: SSD in your browser" (docs/try.md) serves, made at build time.

- ONNX Runtime Web from the npm registry (``package.json``/``package-lock.json`` at the repository
  root; ``npm ci`` installs it into ``node_modules/``): its WebAssembly build is copied into the site
  as ``javascripts/ort/`` -- the page fetches nothing from a CDN and works with no network.
- The models: each committed weights file of :data:`MODELS` exported to ONNX with
  ``multissd.export`` (torch's exporter; cached in ``build/site-models/`` by the weights' hash) as
  ``models/<name>.onnx``, and ``models/models.json`` describing them (spec, class names, image size,
  sample images) for the page.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))
from try_samples import sample_paths  # noqa: E402  (the sample images, made by tools/try_samples.py)

ROOT = Path(__file__).resolve().parent.parent
ORT = ROOT / "node_modules" / "onnxruntime-web" / "dist"
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
CACHE = ROOT / "build" / "site-models"

MODELS = (
    dict(name="banana", title="Bananas: TinySSD, 1 class", weights="docs/weights/banana.safetensors",
         class_names=["banana"], samples=sample_paths("bananas")),
    dict(name="fruit", title="Fruit: TinySSD, 3 classes", weights="docs/weights/fruit.safetensors",
         class_names=["banana", "apple", "orange"], samples=sample_paths("fruit")),
)
"""The models the page offers: a committed weights file each, and its sample images (in docs/)."""


def ort_files() -> list[Path]:
    """ONNX Runtime Web's files as ``npm ci`` installs them; a ``PluginError`` saying to run it."""
    missing = [name for name in ORT_FILES if not (ORT / name).is_file()]
    if missing:
        raise PluginError(f"The page 'Try it: SSD in your browser' serves ONNX Runtime Web from the npm registry, "
                          f"and {ORT} lacks {', '.join(missing)}: run `npm ci` in {ROOT} (Node.js and npm) first")
    return [ORT / name for name in ORT_FILES]


def exported(weights: Path, name: str) -> Path:
    """``weights`` exported to ONNX (cached by the file's hash)."""
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    out = CACHE / f"{name}-{digest}.onnx"
    if not out.is_file():
        try:
            from multissd.onnx_export import export_onnx
            export_onnx(weights, out, backend="torch")
        except ImportError as error:
            raise PluginError(f"Building the site exports its models to ONNX: pip install 'multissd[all]' ({error})")
    return out


def describe(entry: dict, weights: Path) -> dict:
    """What the page needs to know of a model: its spec (with its head), classes and image size."""
    from multissd.model import DEFAULT_IMAGE_SIZE
    from multissd.weights import read_weights
    _, spec = read_weights(weights)
    if getattr(spec, "anchors", None) != "book" or len(entry["class_names"]) != spec.num_classes:
        raise PluginError(f"{weights}: the try page shows TinySSD models with the book's anchors and "
                          f"{len(entry['class_names'])} classes ({entry['class_names']}); this file holds {spec}")
    return dict(name=entry["name"], title=entry["title"], file=f"models/{entry['name']}.onnx",
                spec=dataclasses.asdict(spec), class_names=entry["class_names"],
                image_size=list(DEFAULT_IMAGE_SIZE), samples=entry["samples"])


def on_files(files, config):
    for path in ort_files():
        files.append(File.generated(config, f"javascripts/ort/{path.name}", abs_src_path=str(path)))
    described = []
    for entry in MODELS:
        weights = ROOT / entry["weights"]
        described.append(describe(entry, weights))  # checked before the export's work
        files.append(File.generated(config, f"models/{entry['name']}.onnx",
                                    abs_src_path=str(exported(weights, entry["name"]))))
    files.append(File.generated(config, "models/models.json", content=json.dumps(described)))
    return files
