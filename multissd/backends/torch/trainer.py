"""PyTorch: the training adapters :mod:`multissd.training` drives (devices, loaders, the step).

Same functions, same order as ``paddle/trainer.py`` and ``numpy/trainer.py``. Fast paths: the model
and the batches use the channels-last memory format on CPU and GPU (a 1.4x faster step on these
2-core CPUs), and the step syncs with the host only to read the loss once.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from multissd.backends.torch import boxes
from multissd.backends.torch import nn
from multissd.boxes import BOOK_OFFSETS
from multissd.errors import FieldError, InputError
from multissd.trainer import ADAM_BETAS, ADAM_EPS, implements

CAN_TRAIN = True


@implements
def resolve_device(device: str = "auto"):
    """``"auto"`` (a GPU when torch sees one), ``"cpu"``, ``"cuda"``/``"gpu"`` -> ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise InputError(f"--device {device}: torch sees no CUDA device; use --device cpu or auto")
        return torch.device("cuda")
    if device == "cpu":
        return torch.device("cpu")
    raise InputError(f"Expected device to be one of auto, cpu, cuda, gpu; received {device!r}")


class _Batches(torch.utils.data.Dataset):
    """Whole batches at once: ``dataset[batch_of_indices]`` -> (features, labels), no per-image collation."""

    def __init__(self, source):
        self.source = source

    def __len__(self):
        return len(self.source)

    def __getitem__(self, batch):
        images, labels = self.source[batch]
        return torch.from_numpy(images).float(), torch.from_numpy(labels)  # (B, 3, H, W) in 0..255, (B, G, 5)


def _bf16_runs_fast(device) -> bool:
    """Whether bfloat16 runs faster than float32 on ``device``: a GPU with bfloat16 arithmetic, or a CPU
    whose oneDNN has native bfloat16 instructions (AVX-512 BF16 or AMX; elsewhere oneDNN emulates
    them, slower than float32). Measured on a 2-core AVX-512 BF16 CPU: TinySSD's channels-last step
    1.59x faster, the default banana run 1.32x shorter at the same accuracy (docs/performance.md)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    native = [getattr(torch.cpu, name, lambda: False)() for name in ("_is_avx512_bf16_supported",
                                                                      "_is_amx_tile_supported")]
    return torch.backends.mkldnn.is_available() and any(native)


@implements
def resolve_precision(precision, device):
    if precision == "auto":
        return "bf16" if _bf16_runs_fast(device) else "fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise FieldError("precision", "{name} bf16: this GPU has no bfloat16 arithmetic; use fp32")
    return precision


def _autocast(device, precision):
    """The forward pass at ``precision``: bfloat16 autocast (matrix products and convolutions in
    bfloat16, reductions and the weights in float32), or nothing."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


@implements
def make_loader(source, sampler, device):
    """A ``torch.utils.data.DataLoader`` over a :class:`~multissd.data.augment.BatchSource` in
    ``sampler``'s batches."""
    return torch.utils.data.DataLoader(_Batches(source), sampler=sampler, batch_size=None,
                                       pin_memory=device.type == "cuda")


@implements
def prepare(net, device, compile: bool = False):
    """Move ``net`` to ``device`` in the channels-last memory format; with ``compile``, also
    ``torch.compile`` it (its forward and backward become fused kernels). Returns the model to train.

    ``compile`` is off by default: on the 2-core CPUs multissd is tested on, the compiled step was
    no faster than the eager one (1.87 s vs 1.75 s for 32 x 3 x 256 x 256) and the first step took
    10-70 s to compile; on a GPU it may pay -- measure with ``python -m multissd.bench``.
    """
    net = net.to(device=device, memory_format=torch.channels_last)
    return torch.compile(net) if compile else net


@implements
def make_optimizer(net, lr: float, weight_decay: float, momentum: float = 0.0, algorithm: str = "sgd"):
    if algorithm == "adamw":
        return torch.optim.AdamW(net.parameters(), lr=lr, betas=(momentum or ADAM_BETAS[0], ADAM_BETAS[1]),
                                 eps=ADAM_EPS, weight_decay=weight_decay)
    return torch.optim.SGD(net.parameters(), lr=lr, weight_decay=weight_decay, momentum=momentum)


@implements
def get_momentum(optimizer, model) -> dict[str, np.ndarray]:
    buffers = {}
    for name, param in model.named_parameters():
        for key, value in optimizer.state.get(param, {}).items():
            if torch.is_tensor(value):
                buffers[name if key == "momentum_buffer" else f"{key}/{name}"] = value.detach().cpu().numpy().copy()
    return buffers


@implements
def set_momentum(optimizer, model, buffers: dict[str, np.ndarray]) -> None:
    for name, param in model.named_parameters():
        for key in ("momentum_buffer", "exp_avg", "exp_avg_sq", "step"):
            saved = buffers.get(name if key == "momentum_buffer" else f"{key}/{name}")
            if saved is not None:  # AdamW's step count stays on the CPU, as torch keeps it
                where = "cpu" if key == "step" else param.device
                optimizer.state[param][key] = torch.tensor(saved, device=where, dtype=torch.float32)  # a copy


@implements
def set_lr(optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (the trainer's schedule calls it per step)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def _to_device(X, Y, device):
    X = X.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    return X, Y.to(device, non_blocking=True)


@implements
def train_step(net, optimizer, X, Y, loss_config, device, precision="fp32"):
    X, Y = _to_device(X, Y, device)
    net.train()
    optimizer.zero_grad(set_to_none=True)
    with _autocast(device, precision):
        anchors, cls_preds, bbox_preds = net(X)
    cls_preds, bbox_preds = cls_preds.float(), bbox_preds.float()  # the losses in float32
    bbox_labels, bbox_masks, cls_labels = boxes.multibox_target(anchors, Y, **unwrap(net).spec.target_options())
    loss = nn.calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks, config=loss_config).mean()
    value = float(loss.detach())
    if not math.isfinite(value):
        raise FloatingPointError(f"loss is {value}")
    loss.backward()
    optimizer.step()
    return dict(loss=value, cls_correct=nn.cls_eval(cls_preds, cls_labels, loss_config.head),
                cls_count=cls_labels.numel(),
                bbox_abs=nn.bbox_eval(bbox_preds, bbox_labels, bbox_masks), bbox_count=bbox_labels.numel())


@implements
def predict(net, X, device, precision="fp32"):
    net.eval()
    with torch.no_grad():
        X = torch.as_tensor(np.asarray(X, np.float32)) if not isinstance(X, torch.Tensor) else X
        X = X.to(device).contiguous(memory_format=torch.channels_last)
        with _autocast(device, precision):
            anchors, cls_preds, bbox_preds = net(X)
        cls_preds, bbox_preds = cls_preds.float(), bbox_preds.float()
        cls_probs = nn.class_probabilities(cls_preds, net.spec.head).permute(0, 2, 1)
    return anchors.cpu().numpy(), cls_probs.cpu().numpy(), bbox_preds.cpu().numpy()


@implements
def detect(anchors, cls_probs, bbox_preds, nms_threshold, device, coding=BOOK_OFFSETS):
    """``multibox_detection`` on this backend for NumPy inputs -> NumPy ``(B, A, 6)``."""
    return boxes.multibox_detection(torch.from_numpy(cls_probs).to(device), torch.from_numpy(bbox_preds).to(device),
                                    torch.from_numpy(anchors).to(device), nms_threshold=nms_threshold,
                                    coding=coding).cpu().numpy()


@implements
def set_threads(threads: int | None) -> None:
    """Intra-op threads (``None``: torch's default, one per core)."""
    if threads:
        torch.set_num_threads(threads)


# --------------------------------------------------------------------------------------------
# Data parallelism: torchrun and DistributedDataParallel
# --------------------------------------------------------------------------------------------

@implements
def init_distributed(device) -> tuple[int, int]:
    """Join the process group ``torchrun`` launched this process into -> ``(rank, world_size)``;
    ``(0, 1)`` when it was not (``WORLD_SIZE`` unset or 1). NCCL on GPUs, gloo on the CPU."""
    import os

    import torch.distributed as dist
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _all_reduce_sum(x):
    """Differentiable sum across processes (torch's ``torch.distributed.nn`` all_reduce, which warns
    that it will move; its suggested replacement is private)."""
    import warnings

    from torch.distributed.nn.functional import all_reduce
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return all_reduce(x)


class _SyncBatchNorm2d(torch.nn.BatchNorm2d):
    """Batch norm over the whole global batch on the CPU, where ``torch.nn.SyncBatchNorm`` refuses
    to run (it needs a GPU): the batch statistics are summed across processes with torch's
    differentiable ``all_reduce``, so the gradients flow through them as in SyncBatchNorm."""

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        channels = x.shape[1]
        count = torch.full((1,), x.numel() // channels, dtype=x.dtype)
        totals = _all_reduce_sum(torch.cat([x.sum(dim=(0, 2, 3)), count]))           # (C + 1,): sums, N
        n = totals[channels]
        mean = totals[:channels] / n                                                   # (C,)
        centred = x - mean[None, :, None, None]                                        # (B, C, H, W)
        var = _all_reduce_sum(centred.square().sum(dim=(0, 2, 3))) / n                 # (C,) biased
        with torch.no_grad():
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var * n / max(float(n) - 1, 1.0))
            self.num_batches_tracked += 1
        scale = torch.rsqrt(var + self.eps) * self.weight                              # (C,)
        return centred * scale[None, :, None, None] + self.bias[None, :, None, None]


def _sync_batch_norm(module, device):
    """``module`` with every ``BatchNorm2d`` synchronised across processes (weights and statistics kept)."""
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, torch.nn.BatchNorm2d):
            synced = _SyncBatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum)
            synced.load_state_dict(child.state_dict())
            setattr(module, name, synced.to(device=child.weight.device, memory_format=torch.channels_last))
        else:
            _sync_batch_norm(child, device)
    return module


@implements
def distribute(net, device, sync_bn: bool = False):
    """``net`` wrapped in ``DistributedDataParallel`` when running in a process group (gradients
    all-reduced and averaged by torch), with synchronised batch norm if asked; else ``net``."""
    import torch.distributed as dist
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return net
    if sync_bn:
        net = _sync_batch_norm(net, device)
    return torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index or torch.cuda.current_device()]
                                                     if device.type == "cuda" else None)


@implements
def unwrap(net):
    """The model inside a ``DistributedDataParallel`` (or compiled) wrapper."""
    net = getattr(net, "module", net)
    return getattr(net, "_orig_mod", net)


@implements
def all_reduce(values: np.ndarray) -> np.ndarray:
    """float64 ``values`` summed over the processes (themselves when there is one)."""
    import torch.distributed as dist
    if not dist.is_initialized():
        return np.asarray(values, np.float64)
    tensor = torch.as_tensor(np.asarray(values, np.float64))
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


@implements
def barrier() -> None:
    """Wait for every process (nothing to wait for with one)."""
    import torch.distributed as dist
    if dist.is_initialized():
        dist.barrier()


@implements
def shutdown() -> None:
    """Leave the process group, if any."""
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()
