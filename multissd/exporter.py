"""The export contract: how a backend writes a model to ONNX with its framework's own exporter, written
down once.

Like :mod:`multissd.boxes`, :mod:`multissd.nn` and :mod:`multissd.trainer`: every backend's
``exporter.py`` implements :func:`export_onnx`, marked with :func:`implements`, and defines
``CAN_EXPORT``. :mod:`multissd.onnx_export` (behind ``python -m multissd.export``) loads the weights
file, calls the backend's :func:`export_onnx` on a temporary file, then names the graph's inputs and
outputs, adds the metadata and checks the file, whichever framework wrote it. A backend with no
exporter (NumPy builds no graph) says ``CAN_EXPORT = False`` and its :func:`export_onnx` raises one
line naming the backends that can.
"""
from __future__ import annotations

from multissd.dispatch import Contract
from multissd.types import Layer

EXPORTER = Contract("exporter")
"""The export contract: every backend's ``exporter.py`` implements :data:`CONTRACT` in this order."""
implements = EXPORTER.implements

EXPORTER.constant("CAN_EXPORT", bool, "whether the backend has an ONNX exporter")
EXPORTER.constant("OPSETS", tuple, "(lowest, highest): the ONNX opsets the exporter writes as asked (measured: "
                                   "outside them it writes another opset without a word, or aborts)")


@EXPORTER.declare
def export_onnx(net: Layer, path, height: int, width: int, opset: int) -> None:
    """Write ``net``'s eval-mode forward (a model of this backend, as :func:`multissd.load_model`
    builds it) to the ONNX file ``path`` at opset ``opset``: one input, float32 images ``(batch, 3,
    height, width)`` in 0..255 with a dynamic batch; three outputs, as the model's forward returns
    them: anchors ``(1, A, 4)``, raw class logits ``(batch, A, C)`` and box predictions ``(batch,
    4A)``. The weights are stored in the file. The names of the input and outputs need not be the
    contract's (:mod:`multissd.onnx_export` renames them); ``opset`` is in ``OPSETS``. Nothing but
    ``path`` is left behind: a work folder the exporter needs is ``<path>.d`` (removed; a killed
    export's is removed by the next one), and the framework's own temporary files go there too."""


CONTRACT = EXPORTER.names
"""The export contract, in order. Every backend's ``exporter.py`` defines exactly these, in this order."""

__all__ = ["EXPORTER", "CONTRACT", "implements", *CONTRACT]
