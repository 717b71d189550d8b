"""The export contract on the fourth backend: no exporter."""
from __future__ import annotations

from multissd.backends.numpy import exporter as reference
from multissd.exporter import implements

CAN_EXPORT = False
OPSETS = (0, 0)  # none

export_onnx = implements(reference.export_onnx)
