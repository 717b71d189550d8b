"""The PyTorch backend (vectorised over the batch, on the CPU or a GPU).

- ``boxes.py`` -- the box functions of :mod:`multissd.boxes`;
- ``nn.py`` -- the model pieces, ``TinySSD`` and the losses of :mod:`multissd.nn`;
- ``trainer.py`` -- what :mod:`multissd.training` drives (:mod:`multissd.trainer`): devices, loaders, the step, inference, distribution;
- ``exporter.py`` -- ONNX export (:mod:`multissd.exporter`) with torch.onnx.export.

Every contract function is also an attribute of this package (``from multissd.backends import torch as B;
B.box_iou(a, b)``, ``B.TinySSD()``), loaded on first use.
"""
from multissd.registry import package_getattr

__getattr__ = package_getattr("torch")
