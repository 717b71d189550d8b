"""The PaddlePaddle backend (vectorised over the batch, with paddle's quirks handled where they occur).

- ``boxes.py`` -- the box functions of :mod:`multissd.boxes`;
- ``nn.py`` -- the model pieces, ``TinySSD`` and the losses of :mod:`multissd.nn`;
- ``trainer.py`` -- what :mod:`multissd.training` drives (:mod:`multissd.trainer`): devices, loaders, the step, inference, distribution;
- ``exporter.py`` -- ONNX export (:mod:`multissd.exporter`) with paddle.onnx.export (paddle2onnx).

Every contract function is also an attribute of this package (``from multissd.backends import paddle as B;
B.box_iou(a, b)``, ``B.TinySSD()``), loaded on first use.
"""
from multissd.registry import package_getattr

__getattr__ = package_getattr("paddle")
