"""Where paddle spends a TinySSD training step's time, or ``multibox_target``'s: paddle.profiler's
operator summary.

    python benchmarks/profile_paddle.py                   # multissd's training step as it trains
    python benchmarks/profile_paddle.py --before          # each convolution adds its own bias (the
                                                          # plain Sequential, before #20)
    python benchmarks/profile_paddle.py --case target     # multibox_target, 32 images x 8 objects

One book-recipe training step (by default batch 32, 3 x 256 x 256, one box per image, paddle on every core as
``multissd.train`` runs it) is run twice untimed, timed ``--steps`` times, then profiled for
``--steps`` steps; the operators are printed by CPU time, with their share of the operators' total
(forward kernels and the ``...GradNode`` backward nodes are separate rows). The performance page's
before/after table comes from the first two commands on a quiet machine. ``--case target`` profiles
``multibox_target`` on the 5444 TinySSD anchors and 32 images of 8 random boxes each, drawn as
``python -m multissd.bench`` draws the labels it times.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--case", choices=("step", "target"), default="step",
                   help="step: one training step (default); target: multibox_target with 8 objects an image")
    p.add_argument("--before", action="store_true",
                   help="run the down-sampling blocks as a plain nn.Sequential (the convolution adds its bias)")
    p.add_argument("--steps", type=int, default=2, help="calls timed and calls profiled (default 2)")
    p.add_argument("--rows", type=int, default=12, help="operators printed (default 12)")
    p.add_argument("--batch-size", type=int, default=32, help="images per step (default 32, the book's)")
    p.add_argument("--image-size", type=int, default=256, help="image side in pixels (default 256, the book's)")
    args = p.parse_args(argv)
    for name in ("steps", "rows", "batch_size", "image_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.before and args.case != "step":
        p.error("--before changes the training step's convolutions; it means nothing with --case target")

    import paddle
    import paddle.profiler as profiler
    from paddle import nn as pnn
    from paddle.profiler.profiler_statistic import StatisticData

    from multissd.backends.paddle import nn as paddle_nn
    from multissd.backends.paddle import trainer as train
    from multissd.host import keep_freed_memory
    from multissd.nn import BOOK_LOSS

    keep_freed_memory()
    train.set_threads(None)
    if args.before:
        paddle_nn.ConvNormSequential.forward = pnn.Sequential.forward
    rng = np.random.default_rng(0)
    batch, size = args.batch_size, args.image_size
    images = paddle.to_tensor(rng.uniform(0, 1, (batch, 3, size, size)).astype(np.float32))
    labels = np.full((batch, 1, 5), -1, np.float32)
    labels[:, 0] = [0, 0.2, 0.2, 0.6, 0.7]
    labels = paddle.to_tensor(labels)
    net = paddle_nn.TinySSD(num_classes=1, seed=0)
    optimizer = train.make_optimizer(net, 0.2, 5e-4)

    if args.case == "step":
        def step():
            train.train_step(net, optimizer, images, labels, BOOK_LOSS, "cpu")
    else:
        from multissd.backends.paddle import boxes
        from multissd.bench.__main__ import _random_labels
        with paddle.no_grad():
            anchors = net(images[:1])[0]                                      # (1, A, 4)
        boxes_8 = paddle.to_tensor(_random_labels(rng, batch, 8))            # (B, 8, 5)

        def step():
            boxes.multibox_target(anchors, boxes_8)

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    seconds = (time.perf_counter() - start) / args.steps
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU], on_trace_ready=lambda _: None)  # no trace file
    prof.start()
    for _ in range(args.steps):
        step()
        prof.step()
    prof.stop()
    items = StatisticData(prof.profiler_result.get_data(), prof.profiler_result.get_extra_info()).event_summary.items
    total = sum(item.cpu_time for item in items.values())
    what = "multibox_target, 8 objects" if args.case == "target" else "training step"
    print(f"paddle {paddle.__version__}, {what}, {'before (conv adds its bias)' if args.before else 'multissd'}, "
          f"batch {batch} x 3 x {size} x {size}: "
          f"{seconds * 1e3:.1f} ms a call (mean of {args.steps}); operators {total / 1e6 / args.steps:.1f} ms a call")
    print("| operator | calls | ms a call | share |\n| --- | --- | --- | --- |")
    for name, item in sorted(items.items(), key=lambda kv: -kv[1].cpu_time)[:args.rows]:
        print(f"| {name} | {item.call // args.steps} | {item.cpu_time / 1e6 / args.steps:.1f} | "
              f"{100 * item.cpu_time / total:.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
