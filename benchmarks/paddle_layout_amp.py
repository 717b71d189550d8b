"""Does paddle's training step on the CPU gain from channels-last (NHWC) or bfloat16 AMP?

    python benchmarks/paddle_layout_amp.py                 # batch 32 of 256 x 256, median of 5
    python benchmarks/paddle_layout_amp.py --batch-size 2 --image-size 64 --repeat 1   # a quick check

Builds TinySSD's layers (the base network, the down-sampling blocks, the global max pool, a class
and a box predictor per scale) with paddle's own ``Conv2D``, ``BatchNorm2D`` and ``MaxPool2D`` in
each data format -- ``NCHW`` (what multissd's paddle backend uses) and ``NHWC`` -- and times one
forward and backward pass (the losses' share of a step is small: see ``docs/performance.md``), in
float32 and under ``paddle.amp.auto_cast(dtype="bfloat16")``. Prints one line per setting, with
its ratio to NCHW float32 measured in the same run.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


class _GlobalMaxPool:
    """The global max pool in either layout (paddle's AdaptiveMaxPool2D takes NCHW only)."""

    def __init__(self, data_format: str):
        self.axes = [2, 3] if data_format == "NCHW" else [1, 2]

    def __call__(self, x):
        return x.max(axis=self.axes, keepdim=True)

    def parameters(self):
        return []


def build(data_format: str, num_classes: int = 1):
    """TinySSD's layers in ``data_format``: ``(stages, predictors)``."""
    import paddle.nn as nn

    def block(cin, cout):
        layers = []
        for c in (cin, cout):
            layers += [nn.Conv2D(c, cout, 3, padding=1, data_format=data_format),
                       nn.BatchNorm2D(cout, data_format=data_format), nn.ReLU()]
        return nn.Sequential(*layers, nn.MaxPool2D(2, data_format=data_format))

    stages = [nn.Sequential(block(3, 16), block(16, 32), block(32, 64)), block(64, 128),
              block(128, 128), block(128, 128), _GlobalMaxPool(data_format)]
    channels = (64, 128, 128, 128, 128)
    predictors = nn.LayerList([nn.LayerList([nn.Conv2D(c, 4 * (num_classes + 1), 3, padding=1, data_format=data_format),
                                             nn.Conv2D(c, 16, 3, padding=1, data_format=data_format)])
                               for c in channels])
    return stages, predictors


def step_time(data_format: str, precision: str, batch: int, size: int, repeat: int) -> float:
    """Median seconds of one forward and backward pass."""
    import paddle
    paddle.seed(0)
    stages, predictors = build(data_format)
    parameters = [p for stage in stages for p in stage.parameters()] + list(predictors.parameters())
    shape = (batch, 3, size, size) if data_format == "NCHW" else (batch, size, size, 3)
    images = paddle.to_tensor(np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32))

    def once():
        with paddle.amp.auto_cast(enable=precision == "bf16", dtype="bfloat16", level="O1"):
            x, total = images, 0.0
            for stage, (cls, box) in zip(stages, predictors):
                x = stage(x)
                total = total + cls(x).astype("float32").mean() + box(x).astype("float32").mean()
        total.backward()
        for p in parameters:
            p.clear_gradient()

    once()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/paddle_layout_amp.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    from multissd.host import cpu_count, keep_freed_memory
    import paddle
    keep_freed_memory()
    paddle.set_device("cpu")
    paddle.set_num_threads(cpu_count()) if hasattr(paddle, "set_num_threads") else None
    baseline = None
    for data_format in ("NCHW", "NHWC"):
        for precision in ("fp32", "bf16"):
            seconds = step_time(data_format, precision, args.batch_size, args.image_size, args.repeat)
            baseline = baseline or seconds
            print(f"paddle {paddle.__version__} {data_format} {precision}: {seconds:.3f} s a forward and backward pass "
                  f"of {args.batch_size} x {args.image_size} x {args.image_size} ({baseline / seconds:.2f}x NCHW fp32)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
