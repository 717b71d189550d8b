"""The NumPy backend (the reference: it follows the book's code step by step and runs models, but cannot train).

- ``boxes.py`` -- the box functions of :mod:`multissd.boxes`;
- ``nn.py`` -- the model pieces, ``TinySSD`` and the losses of :mod:`multissd.nn`;
- ``layers.py`` -- just enough of a neural-network library in NumPy to run TinySSD;
- ``trainer.py`` -- what :mod:`multissd.training` drives (:mod:`multissd.trainer`): devices, loaders, the step, inference, distribution;
- ``exporter.py`` -- ONNX export (:mod:`multissd.exporter`) (NumPy has no exporter: it raises, naming torch and paddle).

Every contract function is also an attribute of this package (``from multissd.backends import numpy as B;
B.box_iou(a, b)``, ``B.TinySSD()``), loaded on first use.
"""
from multissd.registry import package_getattr

__getattr__ = package_getattr("numpy")
