"""NumPy: ONNX export -- NumPy has no exporter (no graph to trace).

Same function as ``torch/exporter.py`` and ``paddle/exporter.py``; it raises a one-line error naming the
backends that can export (either reads any weights file, whichever framework trained it).
"""
from __future__ import annotations

from multissd.errors import InputError
from multissd.exporter import implements

CAN_EXPORT = False
OPSETS = (0, 0)  # none


@implements
def export_onnx(net, path, height: int, width: int, opset: int) -> None:
    """Raises ``ValueError``: NumPy has no ONNX exporter."""
    raise InputError("The numpy backend has no ONNX exporter (it builds no graph); export with --backend torch "
                     "(torch.onnx) or --backend paddle (paddle2onnx): either reads any multissd weights file")
