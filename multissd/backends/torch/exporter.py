"""PyTorch: ONNX export with PyTorch's own exporter (``torch.onnx.export``, the ``torch.export``
-based one, which writes the graph with onnxscript).

Same function as ``paddle/exporter.py`` and ``numpy/exporter.py``.
"""
from __future__ import annotations

import logging
import warnings

import torch

from multissd.exporter import implements

CAN_EXPORT = True
OPSETS = (16, 23)  # 18 is the exporter's own; 16 and 17 by ONNX's version converter; below 16 it wrote 18 silently


@implements
def export_onnx(net, path, height: int, width: int, opset: int) -> None:
    """Write ``net``'s eval-mode forward to the ONNX file ``path``: input ``images`` float32
    ``(batch, 3, height, width)`` with a dynamic batch; outputs ``anchors`` ``(1, A, 4)``,
    ``cls_preds`` ``(batch, A, C + 1)`` (raw logits) and ``bbox_preds`` ``(batch, 4A)``, as the model's
    forward returns them. The weights are stored in the file (no external data)."""
    net = net.to("cpu").eval()
    example = torch.zeros(2, 3, height, width)  # 2, not 1: a batch of 1 would be read as a constant
    batch = torch.export.Dim("batch")
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping torchvision::nms", ...
    try:
        with warnings.catch_warnings():  # torch.export's notes on the traced code are not the user's concern
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (example,), str(path), input_names=["images"],
                              output_names=["anchors", "cls_preds", "bbox_preds"],
                              dynamic_shapes={"X": {0: batch}}, opset_version=opset, dynamo=True,
                              external_data=False, verbose=False)
    finally:
        quiet.setLevel(level)
