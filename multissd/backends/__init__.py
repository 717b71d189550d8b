"""The backends: one folder per framework, each implementing the same contracts in its own idiom.

- ``numpy/`` -- the reference (it stands in for the book's MXNet ``np``/``npx`` tab): runs models,
  cannot train;
- ``torch/`` -- PyTorch;
- ``paddle/`` -- PaddlePaddle.

Each folder has ``boxes.py`` (:mod:`multissd.boxes`: anchors, IoU, matching, offsets, NMS),
``nn.py`` (:mod:`multissd.nn`: the model pieces, ``TinySSD``, the losses) and ``train.py`` (what
:mod:`multissd.training` drives: devices, loaders, the step, inference, distribution), with the
same functions in the same order, like the book's tabs. The registry
(:mod:`multissd.backends._registry`) says which backends exist and loads them on first use.
"""
from multissd.backends._registry import (BACKEND_NAMES, DEFAULT_ORDER, DEVICES, REGISTRY, BackendInfo,
                                         BackendNotAvailableError, available_backends, backend_name_of, info,
                                         is_installed, load, load_nn, load_train, on_host, tensor_backend, to_host)

__all__ = [
    "BackendInfo", "BackendNotAvailableError", "REGISTRY", "BACKEND_NAMES", "DEFAULT_ORDER", "DEVICES",
    "info", "is_installed", "available_backends", "load", "load_nn", "load_train", "backend_name_of",
    "tensor_backend", "to_host", "on_host",
]
