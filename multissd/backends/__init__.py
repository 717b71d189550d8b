"""The backends: one folder per framework, each implementing the same contracts in its own idiom.

- ``numpy/`` -- the reference (it stands in for the book's MXNet ``np``/``npx`` tab): runs models,
  cannot train or export;
- ``torch/`` -- PyTorch;
- ``paddle/`` -- PaddlePaddle.

Each folder has one module per contract, with the same functions in the same order, like the book's
tabs: ``boxes.py`` (:mod:`multissd.boxes`: anchors, IoU, matching, offsets, NMS), ``nn.py``
(:mod:`multissd.nn`: the model pieces, ``TinySSD``, the losses), ``trainer.py``
(:mod:`multissd.trainer`: what the training loop drives -- devices, loaders, the step, inference,
distribution) and ``exporter.py`` (:mod:`multissd.exporter`: ONNX export). The registry
(:mod:`multissd.registry`) says which backends exist and loads them on first use; its names are
re-exported here.
"""
from multissd.registry import (BACKEND_NAMES, DEFAULT_ORDER, DEVICES, REGISTRY, BackendInfo, BackendNotAvailableError,
                               available_backends, backend_name_of, info, is_installed, load, load_exporter, load_nn,
                               load_trainer, on_host, tensor_backend, to_host)

load_train = load_trainer    # the names of these two before the adapters were called trainer.py and exporter.py
load_export = load_exporter

__all__ = [
    "BackendInfo", "BackendNotAvailableError", "REGISTRY", "BACKEND_NAMES", "DEFAULT_ORDER", "DEVICES",
    "info", "is_installed", "available_backends", "load", "load_nn", "load_trainer", "load_exporter", "load_train",
    "load_export", "backend_name_of", "tensor_backend", "to_host", "on_host",
]
