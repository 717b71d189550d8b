"""NumPy: what the trainer may use of the NumPy backend -- batches and inference; it cannot train.

Same functions, same order as ``torch/trainer.py`` and ``paddle/trainer.py``; the training ones raise
a one-line error that names the backends that can train (``CAN_TRAIN = False``).
"""
from __future__ import annotations

import numpy as np

from multissd.backends.numpy import boxes, nn
from multissd.boxes import BOOK_OFFSETS
from multissd.errors import FieldError, InputError
from multissd.trainer import implements

CAN_TRAIN = False
_CANNOT_TRAIN = ("The numpy backend runs models but cannot train them (it has no autograd); "
                 "train with --backend torch or --backend paddle")


@implements
def resolve_device(device: str = "auto"):
    """Only the CPU: ``"auto"`` and ``"cpu"`` -> ``"cpu"``."""
    if device in ("auto", "cpu"):
        return "cpu"
    raise InputError(f"The numpy backend runs on the CPU only; received device={device!r}")


@implements
def resolve_precision(precision, device):
    if precision == "bf16":
        raise FieldError("precision", "{name} bf16: the numpy backend computes in float32 only (NumPy has no "
                                      "bfloat16); use fp32 or auto")
    return "fp32"


@implements
def make_loader(source, sampler, device):
    """NumPy batches ``(features float32 (B, 3, H, W), labels (B, G, 5))`` of a
    :class:`~multissd.data.augment.BatchSource` in ``sampler``'s batches."""
    class _Loader:
        def __len__(self):
            return len(sampler)

        def __iter__(self):
            for batch in sampler:
                images, labels = source[batch]
                yield images.astype(np.float32), labels
    return _Loader()


@implements
def prepare(net, device, compile: bool = False):
    """Nothing to move or compile; returns ``net``."""
    return net


@implements
def make_optimizer(net, lr: float, weight_decay: float, momentum: float = 0.0, algorithm: str = "sgd"):
    """Raises ``ValueError``: the numpy backend cannot train."""
    raise InputError(_CANNOT_TRAIN)


@implements
def get_momentum(optimizer, model) -> dict[str, np.ndarray]:
    """No optimiser: NumPy does not train."""
    raise InputError(_CANNOT_TRAIN)


@implements
def set_momentum(optimizer, model, buffers: dict[str, np.ndarray]) -> None:
    """No optimiser: NumPy does not train."""
    raise InputError(_CANNOT_TRAIN)


@implements
def set_lr(optimizer, lr: float) -> None:
    """Raises ``ValueError``: the numpy backend cannot train."""
    raise InputError(_CANNOT_TRAIN)


@implements
def train_step(net, optimizer, X, Y, loss_config, device, precision="fp32"):
    """Raises ``ValueError``: the numpy backend cannot train."""
    raise InputError(_CANNOT_TRAIN)


@implements
def predict(net, X, device, precision="fp32"):
    net.eval()
    anchors, cls_preds, bbox_preds = net(np.asarray(X, np.float32))
    return anchors, nn.class_probabilities(cls_preds, net.spec.head).transpose(0, 2, 1), bbox_preds


@implements
def detect(anchors, cls_probs, bbox_preds, nms_threshold, device, coding=BOOK_OFFSETS):
    """``multibox_detection`` -> ``(B, A, 6)``."""
    return boxes.multibox_detection(cls_probs, bbox_preds, anchors, nms_threshold=nms_threshold, coding=coding)


@implements
def set_threads(threads: int | None) -> None:
    """NumPy's threads are set by its BLAS; nothing to do."""


@implements
def init_distributed(device) -> tuple[int, int]:
    """``(0, 1)``: the numpy backend does not train, in one process or several."""
    return 0, 1


@implements
def distribute(net, device, sync_bn: bool = False):
    """``net`` itself."""
    return net


@implements
def unwrap(net):
    """``net`` itself."""
    return net


@implements
def all_reduce(values: np.ndarray) -> np.ndarray:
    """``values`` as float64 (one process)."""
    return np.asarray(values, np.float64)


@implements
def barrier() -> None:
    """Nothing to wait for."""


@implements
def shutdown() -> None:
    """Nothing to release."""
