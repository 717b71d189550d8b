"""Just enough of a neural-network library in NumPy to run TinySSD: the layers the book uses.

Forward passes only (no autograd): 3x3 convolutions (stride 1 or more), linear layers, batch norm
over channels or features (inference, and training-mode forward that uses and updates batch
statistics as PyTorch does), ReLU, dropout, 2x2 max pooling, adaptive max pooling, flattening, and
a ``Sequential`` container. Parameters are float32 arrays held by name, and
:meth:`Layer.named_arrays` yields them with the same dotted names as ``torch.nn``.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_CONV_CHUNK_ELEMENTS = 1 << 24  # im2col elements per chunk (64 MiB of float32)


class Layer:
    """A node of the model tree: its own arrays and its child layers, both by name."""

    def __init__(self):
        object.__setattr__(self, "_arrays", OrderedDict())
        object.__setattr__(self, "_children", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if isinstance(value, Layer):
            self._children[name] = value
        object.__setattr__(self, name, value)

    def add_array(self, name: str, value: np.ndarray) -> None:
        self._arrays[name] = np.asarray(value, dtype=np.float32)

    def __getattr__(self, name):
        arrays = self.__dict__.get("_arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def named_arrays(self, prefix: str = ""):
        """Yield ``(dotted_name, array)`` for every parameter and buffer, depth first."""
        for name, value in self._arrays.items():
            yield prefix + name, value
        for name, child in self._children.items():
            yield from child.named_arrays(f"{prefix}{name}.")

    def set_array(self, dotted_name: str, value: np.ndarray) -> None:
        owner, _, name = dotted_name.rpartition(".")
        layer = self
        for part in owner.split(".") if owner else []:
            layer = layer._children[part]
        if name not in layer._arrays:
            raise KeyError(dotted_name)
        layer._arrays[name] = np.array(value, dtype=np.float32)

    def train(self, mode: bool = True):
        object.__setattr__(self, "training", mode)
        for child in self._children.values():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def __call__(self, x):
        return self.forward(x)


class Conv2d(Layer):
    """``(B, C, H, W) -> (B, O, H', W')``: 3x3 (or k x k) convolution with ``padding`` and ``stride``
    (``H' = (H + 2 padding - k) // stride + 1``; 'same' size for stride 1 and padding 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1,
                 stride: int = 1):
        super().__init__()
        self.padding, self.stride = padding, stride
        self.add_array("weight", np.zeros((out_channels, in_channels, kernel_size, kernel_size)))
        self.add_array("bias", np.zeros(out_channels))

    def forward(self, x):
        weight, bias = self._arrays["weight"], self._arrays["bias"]
        k, p, s = weight.shape[-1], self.padding, self.stride
        out = np.empty((x.shape[0], weight.shape[0], (x.shape[2] + 2 * p - k) // s + 1,
                        (x.shape[3] + 2 * p - k) // s + 1), dtype=np.result_type(x, weight))
        step = max(1, _CONV_CHUNK_ELEMENTS // max(1, x[0].size * k * k))  # images per chunk: bounds memory
        for start in range(0, x.shape[0], step):
            padded = np.pad(x[start:start + step], ((0, 0), (0, 0), (p, p), (p, p)))  # (b, C, H+2p, W+2p)
            windows = sliding_window_view(padded, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # (b, C, H', W', k, k)
            chunk = np.tensordot(windows, weight, axes=([1, 4, 5], [1, 2, 3]))   # (b, H', W', O)
            out[start:start + step] = (chunk + bias).transpose(0, 3, 1, 2)       # (b, O, H', W')
        return out


class Linear(Layer):
    """``(B, in) -> (B, out)``: ``x @ weight.T + bias``, weight ``(out, in)`` as ``torch.nn.Linear``'s."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.add_array("weight", np.zeros((out_features, in_features)))
        self.add_array("bias", np.zeros(out_features))

    def forward(self, x):
        return x @ self._arrays["weight"].T + self._arrays["bias"]


class BatchNorm2d(Layer):
    """Batch norm over ``(B, C, H, W)``; momentum in PyTorch's convention."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.add_array("weight", np.ones(num_features))
        self.add_array("bias", np.zeros(num_features))
        self.add_array("running_mean", np.zeros(num_features))
        self.add_array("running_var", np.ones(num_features))

    def forward(self, x):
        a = self._arrays
        if self.training:
            mean = x.mean(axis=(0, 2, 3), dtype=np.float64)                   # (C,)
            var = x.var(axis=(0, 2, 3), dtype=np.float64)                     # biased, (C,)
            n = x.size // x.shape[1]
            unbiased = var * n / max(n - 1, 1)
            a["running_mean"] = ((1 - self.momentum) * a["running_mean"] + self.momentum * mean).astype(np.float32)
            a["running_var"] = ((1 - self.momentum) * a["running_var"] + self.momentum * unbiased).astype(np.float32)
        else:
            mean, var = a["running_mean"], a["running_var"]
        scale = a["weight"] / np.sqrt(var + self.eps)                          # (C,)
        shift = a["bias"] - mean * scale
        return (x * scale[:, None, None].astype(np.float32) + shift[:, None, None].astype(np.float32))


class BatchNorm1d(BatchNorm2d):
    """Batch norm over the features of ``(B, F)`` (the lesson's ``BatchNorm1d``): ``BatchNorm2d`` on
    ``(B, F, 1, 1)``, so the statistics and their update are the same code."""

    def forward(self, x):
        return super().forward(x[:, :, None, None])[:, :, 0, 0]


class Dropout(Layer):
    """Dropout: nothing in eval mode; in training mode an inverted-dropout mask from NumPy's global
    generator (the NumPy backend does not train, so no other backend's mask is matched)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        keep = np.random.default_rng().random(x.shape) >= self.p
        return np.where(keep, x / (1 - self.p), 0).astype(x.dtype)


class ReLU(Layer):
    def forward(self, x):
        return np.maximum(x, 0)


class MaxPool2d(Layer):
    """``(B, C, H, W) -> (B, C, H//2, W//2)``: 2x2 max pooling, stride 2 (odd edges dropped)."""

    def __init__(self, kernel_size: int = 2):
        super().__init__()
        self.kernel_size = kernel_size

    def forward(self, x):
        k = self.kernel_size
        b, c, h, w = x.shape
        x = x[:, :, :h // k * k, :w // k * k]
        return x.reshape(b, c, h // k, k, w // k, k).max(axis=(3, 5))


class AdaptiveMaxPool2d(Layer):
    """``(B, C, H, W) -> (B, C, size, size)``: cell ``i`` the maximum over rows (and columns)
    ``floor(i H / size) .. ceil((i + 1) H / size) - 1``, as ``torch.nn.AdaptiveMaxPool2d``; the
    default ``size=1`` is global max pooling."""

    def __init__(self, size: int = 1):
        super().__init__()
        self.size = size

    def forward(self, x):
        if self.size == 1:
            return x.max(axis=(2, 3), keepdims=True)
        n, (h, w) = self.size, x.shape[2:]
        rows = [(i * h // n, -(-(i + 1) * h // n)) for i in range(n)]          # [start, end) per cell
        cols = [(j * w // n, -(-(j + 1) * w // n)) for j in range(n)]
        return np.stack([np.stack([x[:, :, r0:r1, c0:c1].max(axis=(2, 3)) for c0, c1 in cols], axis=-1)
                         for r0, r1 in rows], axis=-2)                          # (B, C, n, n)


class Flatten(Layer):
    """``(B, ...) -> (B, prod(...))``, as ``torch.nn.Flatten``."""

    def forward(self, x):
        return x.reshape(x.shape[0], -1)


class Sequential(Layer):
    """Layers applied in order; children are named ``"0"``, ``"1"``, ... like ``torch.nn.Sequential``."""

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)

    def __getitem__(self, i):
        return self._children[str(i)]

    def __len__(self):
        return len(self._children)

    def forward(self, x):
        for layer in self._children.values():
            x = layer(x)
        return x
