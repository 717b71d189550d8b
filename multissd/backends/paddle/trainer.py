"""PaddlePaddle: the training adapters :mod:`multissd.training` drives (devices, loaders, the step).

Same functions, same order as ``torch/trainer.py`` and ``numpy/trainer.py``.
"""
from __future__ import annotations

import math

import numpy as np
import paddle

from multissd.backends.paddle import boxes
from multissd.backends.paddle import nn
from multissd.boxes import BOOK_OFFSETS
from multissd.errors import InputError
from multissd.host import cpu_count
from multissd.trainer import ADAM_BETAS, ADAM_EPS, implements

CAN_TRAIN = True


@implements
def resolve_device(device: str = "auto"):
    """``"auto"`` (a GPU when paddle sees one), ``"cpu"``, ``"cuda"``/``"gpu"`` -> paddle's device string."""
    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if device == "auto":
        device = "gpu" if has_gpu else "cpu"
    elif device in ("cuda", "gpu"):
        if not has_gpu:
            raise InputError(f"--device {device}: paddle sees no GPU (the CPU build is installed, or no device); "
                             f"use --device cpu or auto")
        device = "gpu"
    elif device != "cpu":
        raise InputError(f"Expected device to be one of auto, cpu, cuda, gpu; received {device!r}")
    paddle.set_device(device)
    return device


class _Batches(paddle.io.Dataset):
    """Whole batches at once: ``dataset[batch_of_indices]`` -> (features, labels), no per-image collation."""

    def __init__(self, source):
        self.source = source

    def __len__(self):
        return len(self.source)

    def __getitem__(self, batch):
        images, labels = self.source[batch]
        return images.astype(np.float32), labels  # (B, 3, H, W) in 0..255, (B, G, 5)


class _OneBatchPerStep(paddle.io.Sampler):
    """Hands each of ``sampler``'s batches to the dataset whole (a batch of one batch)."""

    def __init__(self, sampler):
        self.sampler = sampler

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        for batch in self.sampler:
            yield [batch]


@implements
def resolve_precision(precision, device):
    # "auto" stays float32: paddle 3.3's bfloat16 AMP on the CPU was no faster than float32 (12.05 s vs
    # 10.94 s a TinySSD step, eager mode never reaches oneDNN); an explicit bf16 runs it all the same
    return "fp32" if precision == "auto" else precision


def _autocast(precision):
    """The forward pass at ``precision``: paddle's bfloat16 AMP (O1: white-listed operators in
    bfloat16, the weights in float32), or nothing."""
    return paddle.amp.auto_cast(enable=precision == "bf16", dtype="bfloat16", level="O1")


@implements
def make_loader(source, sampler, device):
    """A ``paddle.io.DataLoader`` over a :class:`~multissd.data.augment.BatchSource` in ``sampler``'s batches."""
    return paddle.io.DataLoader(_Batches(source), batch_sampler=_OneBatchPerStep(sampler), num_workers=0,
                                collate_fn=lambda items: [paddle.to_tensor(x) for x in items[0]])


@implements
def prepare(net, device, compile: bool = False):
    """Paddle places the model on the device chosen by :func:`resolve_device`; returns it.

    ``compile`` (``paddle.jit.to_static``) is refused: on the CPU its static graph ran the step
    slower than eager mode (9.9 s vs 8.2 s for 32 x 3 x 256 x 256), and with oneDNN enabled paddle
    3.3 fails to run it (both the PIR and the legacy executor); see ``docs/performance.md``.
    """
    if compile:
        raise InputError("--compile is available with --backend torch only: paddle's static graph "
                         "(paddle.jit.to_static) was slower than its eager mode on the CPU here")
    return net


_ACCUMULATORS = {"velocity": None, "moment1": "exp_avg", "moment2": "exp_avg_sq", "beta1_pow_acc": "beta1_pow",
                 "beta2_pow_acc": "beta2_pow"}
"""paddle's accumulator kinds -> the names the checkpoint keeps them under (``None``: the parameter's
own name, SGD's momentum as torch's); paddle counts Adam's steps as the powers of the betas."""


@implements
def make_optimizer(net, lr: float, weight_decay: float, momentum: float = 0.0, algorithm: str = "sgd"):
    if algorithm == "adamw":  # paddle's AdamW decays the weights apart from the gradient, as torch's
        return paddle.optimizer.AdamW(learning_rate=lr, beta1=momentum or ADAM_BETAS[0], beta2=ADAM_BETAS[1],
                                      epsilon=ADAM_EPS, parameters=net.parameters(), weight_decay=weight_decay)
    if momentum:  # velocity = momentum * velocity + grad; param -= lr * velocity: torch's rule
        return paddle.optimizer.Momentum(learning_rate=lr, momentum=momentum, parameters=net.parameters(),
                                         weight_decay=weight_decay)
    return paddle.optimizer.SGD(learning_rate=lr, parameters=net.parameters(), weight_decay=weight_decay)


@implements
def get_momentum(optimizer, model) -> dict[str, np.ndarray]:
    # paddle keeps an optimiser's state as accumulators named "<parameter>_<kind>_0"
    state = optimizer.state_dict()
    buffers = {}
    for name, param in model.named_parameters():
        if param.stop_gradient:
            continue
        for kind, ours in _ACCUMULATORS.items():
            value = state.get(f"{param.name}_{kind}_0")
            if value is not None:
                buffers[name if ours is None else f"{ours}/{name}"] = value.numpy().copy()
    return buffers


@implements
def set_momentum(optimizer, model, buffers: dict[str, np.ndarray]) -> None:
    state = {}
    for name, param in model.named_parameters():
        for kind, ours in _ACCUMULATORS.items():
            saved = buffers.get(name if ours is None else f"{ours}/{name}")
            if saved is not None:
                state[f"{param.name}_{kind}_0"] = paddle.to_tensor(saved)
    if state:
        optimizer.set_state_dict(state)


@implements
def set_lr(optimizer, lr: float) -> None:
    """Set the learning rate (the trainer's schedule calls it per step)."""
    optimizer.set_lr(lr)


@implements
def train_step(net, optimizer, X, Y, loss_config, device, precision="fp32"):
    # under paddle.DataParallel paddle averages the gradients over the processes during backward
    net.train()
    optimizer.clear_grad()
    with _autocast(precision):
        anchors, cls_preds, bbox_preds = net(X)
    cls_preds, bbox_preds = cls_preds.astype("float32"), bbox_preds.astype("float32")  # the losses in float32
    bbox_labels, bbox_masks, cls_labels = boxes.multibox_target(anchors, Y, **unwrap(net).spec.target_options())
    loss = nn.calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks, config=loss_config).mean()
    value = float(loss)
    if not math.isfinite(value):
        raise FloatingPointError(f"loss is {value}")
    loss.backward()
    optimizer.step()
    return dict(loss=value, cls_correct=nn.cls_eval(cls_preds, cls_labels, loss_config.head),
                cls_count=int(cls_labels.numel()),
                bbox_abs=nn.bbox_eval(bbox_preds, bbox_labels, bbox_masks), bbox_count=int(bbox_labels.numel()))


@implements
def predict(net, X, device, precision="fp32"):
    net.eval()
    with paddle.no_grad():
        X = X if isinstance(X, paddle.Tensor) else paddle.to_tensor(np.asarray(X, np.float32))
        with _autocast(precision):
            anchors, cls_preds, bbox_preds = net(X)
        cls_preds, bbox_preds = cls_preds.astype("float32"), bbox_preds.astype("float32")
        cls_probs = nn.class_probabilities(cls_preds, net.spec.head).transpose([0, 2, 1])
    return anchors.numpy(), cls_probs.numpy(), bbox_preds.numpy()


@implements
def detect(anchors, cls_probs, bbox_preds, nms_threshold, device, coding=BOOK_OFFSETS):
    """``multibox_detection`` on this backend for NumPy inputs -> NumPy ``(B, A, 6)``."""
    return boxes.multibox_detection(paddle.to_tensor(cls_probs), paddle.to_tensor(bbox_preds),
                                    paddle.to_tensor(anchors), nms_threshold=nms_threshold, coding=coding).numpy()


@implements
def set_threads(threads: int | None) -> None:
    """CPU threads of paddle's math libraries (``None``: one per core). Paddle itself starts with
    one thread; two threads made the 2-core step 1.45x faster (12.0 s -> 8.2 s)."""
    paddle.base.core.set_num_threads(threads or cpu_count())


# --------------------------------------------------------------------------------------------
# Data parallelism: paddle.distributed.launch and paddle.DataParallel
# --------------------------------------------------------------------------------------------

@implements
def init_distributed(device) -> tuple[int, int]:
    """Join the parallel environment ``paddle.distributed.launch`` started this process in ->
    ``(rank, world_size)``; ``(0, 1)`` when it was not (``PADDLE_TRAINERS_NUM`` unset or 1)."""
    import os
    if int(os.environ.get("PADDLE_TRAINERS_NUM", "1")) <= 1:
        return 0, 1
    import paddle.distributed as dist
    global _GROUP
    if not dist.is_initialized():
        dist.init_parallel_env()
        # multissd's own collectives (batch-norm statistics, metrics, the stop flag) get a communicator
        # of their own, apart from the one paddle.DataParallel's gradient hooks use
        _GROUP = dist.new_group(list(range(dist.get_world_size())))
    return dist.get_rank(), dist.get_world_size()


_GROUP = None  # the communicator of multissd's own collectives (see init_distributed)


class _AllReduceSum(paddle.autograd.PyLayer):
    """Sum across processes, with the gradient summed back (paddle's all_reduce has no gradient)."""

    @staticmethod
    def forward(ctx, x):
        out = x.clone()
        paddle.distributed.all_reduce(out, group=_GROUP)
        return out

    @staticmethod
    def backward(ctx, grad):
        out = grad.clone()
        paddle.distributed.all_reduce(out, group=_GROUP)
        return out


class _SyncBatchNorm2D(nn.BatchNorm2D):
    """Batch norm over the whole global batch on the CPU, where ``paddle.nn.SyncBatchNorm`` has no
    kernel: the batch statistics are summed across processes with a differentiable all-reduce."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        channels = x.shape[1]
        count = paddle.full([1], x.numel() // channels, dtype=x.dtype)
        totals = _AllReduceSum.apply(paddle.concat([x.sum(axis=[0, 2, 3]), count]))   # (C + 1,): sums, N
        n = totals[channels]
        mean = totals[:channels] / n                                                   # (C,)
        centred = x - mean.reshape([1, -1, 1, 1])                                      # (B, C, H, W)
        var = _AllReduceSum.apply(centred.square().sum(axis=[0, 2, 3])) / n            # (C,) biased
        m, count_value = self._torch_momentum, float(n)
        with paddle.no_grad():
            self._mean.set_value((1 - m) * self._mean + m * mean)
            self._variance.set_value((1 - m) * self._variance + m * var * count_value / max(count_value - 1, 1.0))
        scale = paddle.rsqrt(var + self._epsilon) * self.weight                        # (C,)
        return centred * scale.reshape([1, -1, 1, 1]) + self.bias.reshape([1, -1, 1, 1])


def _sync_batch_norm(layer, device):
    """``layer`` with every batch norm synchronised across processes (weights and statistics kept)."""
    if str(device).startswith("gpu"):
        return paddle.nn.SyncBatchNorm.convert_sync_batchnorm(layer)
    for name, child in layer.named_children():
        if isinstance(child, nn.BatchNorm2D):
            synced = _SyncBatchNorm2D(child._num_features, eps=child._epsilon, momentum=child._torch_momentum)
            synced.set_state_dict(child.state_dict())
            setattr(layer, name, synced)
        else:
            _sync_batch_norm(child, device)
    return layer


@implements
def distribute(net, device, sync_bn: bool = False):
    """``net`` wrapped in ``paddle.DataParallel`` when running in a parallel environment (gradients
    all-reduced and averaged by paddle), with synchronised batch norm if asked; else ``net``."""
    import paddle.distributed as dist
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return net
    if sync_bn:
        net = _sync_batch_norm(net, device)
    return paddle.DataParallel(net)


@implements
def unwrap(net):
    """The model inside a ``paddle.DataParallel`` wrapper."""
    return getattr(net, "_layers", net)


@implements
def all_reduce(values: np.ndarray) -> np.ndarray:
    """float64 ``values`` summed over the processes (themselves when there is one)."""
    import paddle.distributed as dist
    if not dist.is_initialized():
        return np.asarray(values, np.float64)
    tensor = paddle.to_tensor(np.asarray(values, np.float64))
    dist.all_reduce(tensor, group=_GROUP)
    return tensor.numpy()


@implements
def barrier() -> None:
    """Wait for every process (nothing to wait for with one)."""
    import paddle.distributed as dist
    if dist.is_initialized():
        dist.barrier(group=_GROUP)


@implements
def shutdown() -> None:
    """Nothing to release: paddle's parallel environment ends with the process."""
