"""What ``python -m multissd.bench`` measures, one function per implementation.

Each function runs in a fresh worker process (started by :mod:`multissd.bench.__main__`), so that
every implementation runs with the process settings it would have on its own: the book's code
with the interpreter's defaults, multissd with what ``multissd.train`` sets up (glibc keeping freed
memory, paddle using every core -- see :mod:`multissd.host`). All read the same inputs from an
``.npz`` written by the parent: ``images`` (B, 3, S, S) float32 in 0..255, ``labels_1`` (B, 1, 5)
and ``labels_8`` (B, 8, 5) normalised, the model output ``anchors`` (1, A, 4), ``cls_probs``
(B, 2, A) and ``bbox_preds`` (B, 4A), the book-like detection input ``example_cls_probs``
(1, 2, A) and ``example_bbox_preds`` (1, 4A), and ``weights`` (the neutral weights of the model that made
that output, so inference detects the same boxes everywhere).
"""
from __future__ import annotations

import statistics
import time

from multissd.nn import BOOK_LOSS


def median_time(fn, repeat: int, warmup: int = 1) -> dict:
    """Run ``fn`` ``warmup`` times untimed, then ``repeat`` times -> ``{"median_s", "times_s", "first_s"}``."""
    first = None
    for i in range(warmup):
        start = time.perf_counter()
        fn()
        first = time.perf_counter() - start if i == 0 else first
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return dict(median_s=statistics.median(times), times_s=times, first_s=first)


def _box_cases(impl, inputs, repeat) -> dict:
    """``multibox_target`` (1 and 8 objects), ``multibox_detection`` (1 and all images) with ``impl``."""
    target, detection, to_native = impl
    anchors = to_native(inputs["anchors"])
    out = {}
    for objects in (1, 8):
        labels = to_native(inputs[f"labels_{objects}"])
        out[f"target_{objects}"] = median_time(lambda labels=labels: target(anchors, labels), repeat)
    batch = len(inputs["images"])
    for images in sorted({1, batch}):
        probs, preds = to_native(inputs["cls_probs"][:images]), to_native(inputs["bbox_preds"][:images])
        result = median_time(lambda probs=probs, preds=preds: detection(probs, preds, anchors), repeat)
        result["per_image_s"] = result["median_s"] / images
        out[f"detection_{images}"] = result
    probs, preds = to_native(inputs["example_cls_probs"]), to_native(inputs["example_bbox_preds"])
    out["detection_example"] = median_time(lambda: detection(probs, preds, anchors), repeat)
    return out


# ---------------------------------------------------------------------------------------------
# Training steps
# ---------------------------------------------------------------------------------------------

def train_book(inputs, repeat):
    """The book's eager PyTorch step (``book_reference.train_step``), NCHW, interpreter defaults."""
    import torch

    from multissd.bench import book_reference as book
    torch.manual_seed(0)
    net = book.TinySSD(num_classes=1)
    trainer = torch.optim.SGD(net.parameters(), lr=0.2, weight_decay=5e-4)
    X, Y = torch.from_numpy(inputs["images"]), torch.from_numpy(inputs["labels_1"])
    net.train()
    return median_time(lambda: book.train_step(net, trainer, X, Y, torch.device("cpu")), repeat)


def _train_multissd(backend, inputs, repeat, compile=False, tuned=True, precision="fp32"):
    from multissd import backends
    from multissd.host import keep_freed_memory
    if tuned:
        keep_freed_memory()
    backends.load(backend)
    adapter, nn = backends.load_trainer(backend), backends.load_nn(backend)
    if tuned:
        adapter.set_threads(None)
    device = adapter.resolve_device("cpu")
    net = adapter.prepare(nn.TinySSD(num_classes=1, seed=0), device, compile=compile)
    optimizer = adapter.make_optimizer(net, 0.2, 5e-4)
    X, Y = _native(backend, inputs["images"]), _native(backend, inputs["labels_1"])  # as the loaders yield them
    step = lambda: adapter.train_step(net, optimizer, X, Y, BOOK_LOSS, device, precision)  # noqa: E731
    return median_time(step, repeat), net, X, Y


def _native(backend, array):
    """A NumPy array as a CPU tensor of ``backend``."""
    from multissd import registry
    return registry.load(backend).asarray(array)


def train_torch(inputs, repeat):
    """multissd's torch step as ``multissd.train`` runs it (channels-last, kept memory), with the
    step's FLOPs counted by ``torch.utils.flop_counter``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from multissd.backends.torch import trainer as torch_train
    result, net, X, Y = _train_multissd("torch", inputs, repeat)
    optimizer = torch_train.make_optimizer(net, 0.0, 0.0)
    with FlopCounterMode(display=False) as counter:
        torch_train.train_step(net, optimizer, X, Y, BOOK_LOSS, torch.device("cpu"))
    result["flops"] = counter.get_total_flops()
    return result


def train_torch_bf16(inputs, repeat):
    """multissd's torch step in bfloat16 (``--precision bf16``: autocast, channels-last, kept memory)."""
    return _train_multissd("torch", inputs, repeat, precision="bf16")[0]


def train_paddle_bf16(inputs, repeat):
    """multissd's paddle step with paddle's bfloat16 AMP (``--precision bf16``)."""
    return _train_multissd("paddle", inputs, repeat, precision="bf16")[0]


def train_torch_compile(inputs, repeat):
    """multissd's torch step with ``--compile`` (first step: the compile time)."""
    return _train_multissd("torch", inputs, repeat, compile=True)[0]


def train_paddle_defaults(inputs, repeat):
    """multissd's paddle step with paddle's own process defaults (one math thread, glibc's malloc)."""
    return _train_multissd("paddle", inputs, repeat, tuned=False)[0]


def train_paddle(inputs, repeat):
    """multissd's paddle step as ``multissd.train`` runs it (every core, kept memory)."""
    return _train_multissd("paddle", inputs, repeat)[0]


def matmul_peak(inputs, repeat, n: int = 2048):
    """The machine's float32 matrix-multiply rate (torch, every core): ``{"flops_per_s"}``."""
    import torch
    a, b = torch.rand(n, n), torch.rand(n, n)
    result = median_time(lambda: torch.mm(a, b), max(repeat, 5), warmup=2)
    result["flops_per_s"] = 2 * n ** 3 / result["median_s"]
    return result


# ---------------------------------------------------------------------------------------------
# Box functions and inference
# ---------------------------------------------------------------------------------------------

def _inference_cases(predict_and_detect, images, repeat) -> dict:
    """Latency of ``predict_and_detect`` (model + detection) on 1 image (``inference``) and on the
    whole batch (``inference_batch``, with ``per_image_s``)."""
    out = {"inference": median_time(lambda: predict_and_detect(images[:1]), repeat)}
    batch = median_time(lambda: predict_and_detect(images), repeat)
    batch["per_image_s"] = batch["median_s"] / len(images)
    out["inference_batch"] = batch
    return out


def boxes_book(inputs, repeat):
    """The book's ``multibox_target``/``multibox_detection`` and its model's inference, eager torch."""
    import torch

    from multissd.bench import book_reference as book
    from multissd.backends.torch import nn as torch_nn
    out = _box_cases((book.multibox_target, book.multibox_detection, torch.from_numpy), inputs, repeat)
    net = book.TinySSD(num_classes=1)
    reference = torch_nn.TinySSD(num_classes=1)
    torch_nn.set_weights(reference, dict(inputs["weights"]))
    net.load_state_dict(reference.state_dict())
    net.eval()

    def predict_and_detect(images):
        with torch.no_grad():
            anchors, cls_preds, bbox_preds = net(torch.from_numpy(images))
            probs = torch.softmax(cls_preds, dim=2).permute(0, 2, 1)
            return book.multibox_detection(probs, bbox_preds, anchors)
    out.update(_inference_cases(predict_and_detect, inputs["images"], repeat))
    return out


def _boxes_multissd(backend, inputs, repeat):
    from multissd import backends
    from multissd.host import keep_freed_memory
    keep_freed_memory()
    boxes, nn, adapter = backends.load(backend), backends.load_nn(backend), backends.load_trainer(backend)
    adapter.set_threads(None)
    out = _box_cases((boxes.multibox_target, boxes.multibox_detection, lambda a: _native(backend, a)), inputs,
                     repeat)
    device = adapter.resolve_device("cpu")
    net = nn.TinySSD(num_classes=1)
    nn.set_weights(net, dict(inputs["weights"]))
    net = adapter.prepare(net, device)

    def predict_and_detect(images, precision="fp32"):
        anchors, cls_probs, bbox_preds = adapter.predict(net, images, device, precision)
        return adapter.detect(anchors, cls_probs, bbox_preds, 0.5, device)
    out.update(_inference_cases(predict_and_detect, inputs["images"], repeat))
    if backend != "numpy":  # NumPy computes in float32 only
        bf16 = _inference_cases(lambda images: predict_and_detect(images, "bf16"), inputs["images"], repeat)
        out.update({f"{key}_bf16": value for key, value in bf16.items()})
    return out


def boxes_numpy(inputs, repeat):
    """multissd's NumPy reference (the book's loops in NumPy)."""
    return _boxes_multissd("numpy", inputs, repeat)


def boxes_torch(inputs, repeat):
    """multissd's vectorised torch box functions and inference."""
    return _boxes_multissd("torch", inputs, repeat)


def boxes_paddle(inputs, repeat):
    """multissd's vectorised paddle box functions and inference."""
    return _boxes_multissd("paddle", inputs, repeat)


def infer_onnxruntime(inputs, repeat):
    """multissd's onnxruntime engine: the model exported by ``multissd.export`` (torch's exporter, else
    paddle's; the export is not timed), run by ONNX Runtime and decoded by the NumPy backend."""
    import tempfile
    from pathlib import Path

    from multissd import backends, save_weights
    from multissd.engine import OnnxModel
    from multissd.onnx_export import export_onnx
    nn, adapter = backends.load_nn("numpy"), backends.load_trainer("numpy")
    net = nn.TinySSD(num_classes=1)
    nn.set_weights(net, dict(inputs["weights"]))
    exporter = next(name for name in ("torch", "paddle") if backends.is_installed(name))
    with tempfile.TemporaryDirectory() as tmp:
        weights = save_weights(net, Path(tmp) / "weights.safetensors")
        model = OnnxModel(export_onnx(weights, backend=exporter, image_size=tuple(inputs["images"].shape[2:])))

    def predict_and_detect(images):
        anchors, cls_probs, bbox_preds = adapter.predict(model, images, "cpu")
        return adapter.detect(anchors, cls_probs, bbox_preds, 0.5, "cpu")
    return {**_inference_cases(predict_and_detect, inputs["images"], repeat), "exporter": exporter}


WORKERS = {
    "train_book": ("torch", train_book),
    "train_torch": ("torch", train_torch),
    "train_torch_bf16": ("torch", train_torch_bf16),
    "train_torch_compile": ("torch", train_torch_compile),
    "train_paddle_defaults": ("paddle", train_paddle_defaults),
    "train_paddle": ("paddle", train_paddle),
    "train_paddle_bf16": ("paddle", train_paddle_bf16),
    "matmul_peak": ("torch", matmul_peak),
    "boxes_book": ("torch", boxes_book),
    "boxes_numpy": ("numpy", boxes_numpy),
    "boxes_torch": ("torch", boxes_torch),
    "boxes_paddle": ("paddle", boxes_paddle),
    "infer_onnxruntime": ("onnxruntime", infer_onnxruntime),
}
"""Worker name -> (the framework it needs, the function)."""
