"""The trainer contract: what the training loop (:mod:`multissd.training`) drives on a backend, written
down once.

Like :mod:`multissd.boxes` and :mod:`multissd.nn`: every backend's ``trainer.py`` (Keras 3 keeps a
``trainer.py`` in each framework folder too) implements these functions, in this order, with these
parameters, each marked with :func:`implements`, and defines ``CAN_TRAIN``. The loop never touches a
framework itself: it loads a backend's trainer (:func:`multissd.registry.load_trainer`) and calls
these, so a new backend trains as soon as they are written. A backend that cannot train (NumPy, with
no autograd) says ``CAN_TRAIN = False``, still runs models (:func:`predict`, :func:`detect`), and its
training functions raise one line naming the backends that can.

Data crosses the contract as NumPy: batches come from a :class:`~multissd.data.augment.BatchSource`
as float32 images ``(B, 3, H, W)`` in 0..255 and labels ``(B, G, 5)``; what the loop reads back
(losses, counts, predictions) is Python floats and NumPy arrays. Letters as in :mod:`multissd.boxes`.
"""
from __future__ import annotations

import numpy as np

from multissd.boxes import BOOK_OFFSETS
from multissd.dispatch import Contract
from multissd.types import Device, Layer

TRAINER = Contract("trainer")
"""The trainer contract: every backend's ``trainer.py`` implements :data:`CONTRACT` in this order."""
implements = TRAINER.implements

TRAINER.constant("CAN_TRAIN", bool, "whether the backend trains models (False: it only runs them)")

OPTIMIZERS = ("sgd", "adamw")
"""What ``--optimizer`` takes (:func:`make_optimizer`)."""
ADAM_BETAS = (0.9, 0.99)  # fastai's: beta1 (the momentum), beta2
ADAM_EPS = 1e-8

PRECISIONS = ("auto", "fp32", "bf16")
"""What ``--precision`` takes: ``fp32``; ``bf16`` -- the forward pass in bfloat16 (autocast), with
float32 weights, losses and optimiser; ``auto`` -- what :func:`resolve_precision` finds fastest here."""

# ---------------------------------------------------------------------------------------------
# Devices, batches, the model and its optimiser
# ---------------------------------------------------------------------------------------------


@TRAINER.declare
def resolve_device(device: str = "auto") -> Device:
    """The backend's device for a name of :data:`multissd.registry.DEVICES`: ``"auto"`` (a GPU when
    the framework sees one, else the CPU), ``"cpu"``, ``"cuda"``/``"gpu"`` (``ValueError`` naming
    ``--device`` when there is none). Returns what the other functions take as ``device``."""


@TRAINER.declare
def resolve_precision(precision: str, device: Device) -> str:
    """The precision the forward passes run at on ``device`` for ``precision`` (one of
    :data:`PRECISIONS`): ``"fp32"`` or ``"bf16"``. ``"auto"`` is ``"bf16"`` only where the backend runs
    it faster than float32 (measured; the reason is in the backend's code), else ``"fp32"``; an
    explicit ``"bf16"`` that the backend cannot run raises ``ValueError`` naming ``--precision``.
    Weights, losses and the optimiser stay float32 whatever the precision."""


@TRAINER.declare
def make_loader(source, sampler, device: Device):
    """An iterable over ``source`` (a :class:`~multissd.data.augment.BatchSource`) in the batches of
    ``sampler`` (an :class:`~multissd.data.sampler.EpochBatchSampler`, one list of indices per step),
    with ``len()`` the number of steps; each item is ``(X, Y)``: images float32 ``(B, 3, H, W)`` in
    0..255 and labels ``(B, G, 5)``, as the framework's tensors (or NumPy) that :func:`train_step`
    takes."""


@TRAINER.declare
def prepare(net: Layer, device: Device, compile: bool = False) -> Layer:
    """``net`` ready to train on ``device`` (moved, in the framework's fastest memory format); with
    ``compile``, compiled by the framework's compiler, or ``ValueError`` where it has none worth
    using. Returns the model to train."""


@TRAINER.declare
def make_optimizer(net: Layer, lr: float, weight_decay: float, momentum: float = 0.0, algorithm: str = "sgd"):
    """The optimiser of ``net``'s parameters at ``lr``. ``algorithm`` ``"sgd"`` (the book's): SGD with
    L2 ``weight_decay`` and, if asked, heavy-ball ``momentum`` (torch's convention: ``v = m v + g``,
    ``w -= lr v``); ``"adamw"`` (fastai's): Adam with decoupled ``weight_decay`` (``w -= lr wd w``),
    betas ``(momentum or 0.9, 0.99)``, epsilon ``1e-8``."""


@TRAINER.declare
def get_momentum(optimizer, model: Layer) -> dict[str, np.ndarray]:
    """The optimiser's state by parameter name (``model`` unwrapped, as :func:`unwrap` gives it):
    SGD's momentum buffers under the parameter's name; AdamW's moments under ``exp_avg/<name>``,
    ``exp_avg_sq/<name>`` and its step count as the framework keeps it (torch: ``step/<name>``;
    paddle: the betas' powers, ``beta1_pow/<name>``, ``beta2_pow/<name>``); float32 arrays; empty
    before the first step. The checkpoint keeps them so that a resumed run continues exactly."""


@TRAINER.declare
def set_momentum(optimizer, model: Layer, buffers: dict[str, np.ndarray]) -> None:
    """Restore :func:`get_momentum`'s ``buffers`` into a fresh optimiser of ``model`` (copies)."""


@TRAINER.declare
def set_lr(optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (the loop's schedule calls it before each step)."""


# ---------------------------------------------------------------------------------------------
# One step, inference
# ---------------------------------------------------------------------------------------------

@TRAINER.declare
def train_step(net: Layer, optimizer, X, Y, loss_config, device: Device, precision: str = "fp32") -> dict[str, float]:
    """One optimiser step on the batch ``(X, Y)`` (an item of :func:`make_loader`) with the losses of
    ``loss_config`` (a :class:`multissd.nn.LossConfig`; the targets from
    :func:`multissd.multibox_target` with the model spec's ``target_options()``), the forward pass at
    ``precision`` (a result of :func:`resolve_precision`), the losses in float32.

    Returns Python floats: ``loss`` (mean over the batch), ``cls_correct``, ``cls_count``,
    ``bbox_abs``, ``bbox_count`` (the book's accumulator). A non-finite loss raises
    ``FloatingPointError`` before the weights change.
    """


@TRAINER.declare
def predict(net: Layer, X, device: Device, precision: str = "fp32") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eval-mode forward without gradients on float32 images ``X`` ``(B, 3, H, W)`` (NumPy or the
    framework's), at ``precision`` -> float32 NumPy ``(anchors (1, A, 4), cls_probs (B, C, A),
    bbox_preds (B, 4A))``, the class probabilities read as the model's head says (softmax or sigmoid)."""


@TRAINER.declare
def detect(anchors: np.ndarray, cls_probs: np.ndarray, bbox_preds: np.ndarray, nms_threshold: float,
           device: Device, coding=BOOK_OFFSETS) -> np.ndarray:
    """:func:`multissd.multibox_detection` run by this backend on ``device`` for NumPy inputs
    (:func:`predict`'s outputs) -> NumPy float32 ``(B, A, 6)``."""


@TRAINER.declare
def set_threads(threads: int | None) -> None:
    """The framework's intra-op CPU threads (``None``: its default)."""


# ---------------------------------------------------------------------------------------------
# Several processes (data parallelism)
# ---------------------------------------------------------------------------------------------

@TRAINER.declare
def init_distributed(device: Device) -> tuple[int, int]:
    """Join the process group the framework's launcher started this process in -> ``(rank,
    world_size)``; ``(0, 1)`` when there is none."""


@TRAINER.declare
def distribute(net: Layer, device: Device, sync_bn: bool = False) -> Layer:
    """``net`` wrapped for data parallelism when running in a process group (gradients averaged
    across processes), with batch norm over the global batch when ``sync_bn``; else ``net``."""


@TRAINER.declare
def unwrap(net: Layer) -> Layer:
    """The model inside :func:`distribute`'s or :func:`prepare`'s wrappers (``net`` itself if none)."""


@TRAINER.declare
def all_reduce(values: np.ndarray) -> np.ndarray:
    """float64 ``values`` summed over the processes (themselves when there is one)."""


@TRAINER.declare
def barrier() -> None:
    """Wait for every process (nothing to wait for with one)."""


@TRAINER.declare
def shutdown() -> None:
    """Leave the process group, if any."""


CONTRACT = TRAINER.names
"""The trainer contract, in order. Every backend's ``trainer.py`` defines exactly these, in this order."""

__all__ = ["TRAINER", "CONTRACT", "PRECISIONS", "OPTIMIZERS", "ADAM_BETAS", "ADAM_EPS", "implements", *CONTRACT]
