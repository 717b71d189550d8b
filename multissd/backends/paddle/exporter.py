"""PaddlePaddle: ONNX export with Paddle's own exporter (``paddle.onnx.export``: ``paddle.jit``
traces the model to a static program and paddle2onnx converts it).

Same function as ``torch/exporter.py`` and ``numpy/exporter.py``.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

import paddle

from multissd.exporter import implements

CAN_EXPORT = True
OPSETS = (11, 21)  # paddle2onnx 2.1 wrote opset 11 when asked for 7-10, and aborted the process at 22 and 23


@implements
def export_onnx(net, path, height: int, width: int, opset: int) -> None:
    """Write ``net``'s eval-mode forward to the ONNX file ``path``: input ``images`` float32
    ``(batch, 3, height, width)`` with a dynamic batch; three outputs, ``(1, A, 4)`` anchors,
    ``(batch, A, C + 1)`` raw class logits and ``(batch, 4A)`` box predictions, as the model's forward
    returns them (paddle2onnx names them ``fetch_name_*``: :mod:`multissd.onnx_export` renames them)."""
    net.eval()
    spec = [paddle.static.InputSpec([None, 3, height, width], "float32", "images")]
    path = Path(path)
    work = Path(f"{path}.d")
    work.mkdir()
    previous, tempfile.tempdir = tempfile.tempdir, str(work)  # paddle2onnx's own static model goes there, not /tmp
    try:
        prefix = os.path.join(work, "model")  # paddle.onnx.export appends ".onnx"
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log):  # paddle2onnx's progress lines
                paddle.onnx.export(net, prefix, input_spec=spec, opset_version=opset)
        except (Exception, SystemExit) as error:  # paddle2onnx logs a failed conversion, then calls sys.exit
            raise RuntimeError(f"paddle.onnx.export failed ({type(error).__name__}: {error}); its log:\n"
                               f"{log.getvalue()}") from None
        if not os.path.isfile(prefix + ".onnx"):  # paddle2onnx logs its failures instead of raising
            raise RuntimeError(f"paddle.onnx.export wrote no ONNX file:\n{log.getvalue()}")
        os.replace(prefix + ".onnx", path)
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(work, ignore_errors=True)
        convert = sys.modules.get("paddle2onnx.convert")  # it keeps the temporary folder it made, in work
        if convert is not None and str(getattr(convert, "PADDLE2ONNX_EXPORT_TEMP_DIR", "")).startswith(str(work)):
            convert.PADDLE2ONNX_EXPORT_TEMP_DIR = None
