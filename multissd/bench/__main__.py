"""``python -m multissd.bench``: multissd against the book's code, on this machine, in one run.

    python -m multissd.bench                       # the full table: about 6 minutes on a 2-core CPU
    python -m multissd.bench --weights runs/tinyssd/weights.safetensors --out benchmarks/results
    python -m multissd.bench --tiny                # a few seconds: checks that everything runs

Measures (medians over ``--repeat`` runs, each implementation in its own worker process with the
settings it runs with on its own): a training step on a 32 x 3 x 256 x 256 batch (the book's
eager PyTorch loop, multissd on torch eager and compiled, multissd on paddle with paddle's defaults
and with multissd's settings); ``multibox_target`` for 32 images with 1 and 8 objects; and
``multibox_detection`` on a model's output for 1 and 32 images and on an input like the book's
example (see :func:`example_detection_input`), book-style vs multissd on each backend; inference latency (model, softmax, detection) for one image and per image of the batch, on
each backend and on ONNX Runtime (the model exported by ``multissd.export``). Ratios are against the
book's code measured in the same run. The training step's FLOPs over its time, divided by a
measured float32 matrix-multiply rate, give the fraction of the machine's peak it reaches.

Writes ``bench.json``, ``bench.md`` (the table as docs/performance.md shows it) and ``bench.png``
(the ratios as bars) into ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from multissd.backends import BACKEND_NAMES
from multissd.bench.cases import WORKERS

GOALS = {("train", "torch"): 2.0, ("train", "paddle"): 0.6, ("target_8", "torch"): 10.0, ("target_8", "paddle"): 3.0,
         ("detection_per_image", "paddle"): 1.5, ("detection_example", "torch"): 20.0}
"""The speed-ups over the book's code asked for (issues #7 and #20), by (measurement, backend)."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m multissd.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32, the book's)")
    p.add_argument("--image-size", type=int, default=256, help="image side in pixels (default 256, the book's)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per measurement; the median is reported "
                                                         "(default 5)")
    p.add_argument("--weights", default=None,
                   help="a trained model whose output the detection timings use (default: "
                        "runs/tinyssd/weights.safetensors when it exists, else the untrained model, which the "
                        "table then says)")
    p.add_argument("--data", default=None, help="banana-detection folder for the images (default: the synthetic "
                                                "validation set)")
    p.add_argument("--data-dir", default=None, help="cache folder of the synthetic dataset")
    p.add_argument("--out", default="benchmarks/results", help="folder for bench.json and bench.png "
                                                               "(default benchmarks/results)")
    p.add_argument("--only", nargs="+", choices=sorted(WORKERS), default=None, help="run only these workers")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile step (it compiles for "
                                                             "10-70 s)")
    p.add_argument("--tiny", action="store_true", help="batch 2 of 64 x 64 images, 1 repeat: checks that it runs")
    p.add_argument("--time-to-accuracy", action="store_true",
                   help="also train the banana detector with the default recipe and with --recipe ssd (the default "
                        "before the fastai recipe) and report each run's wall time to 95%% top-1 IoU >= 0.5 (long: "
                        "about 10 minutes on a 2-core CPU)")
    p.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                   help="options for the --time-to-accuracy runs (e.g. --epochs 2 --data-dir DIR)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--inputs", default=None, help=argparse.SUPPRESS)
    return p


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------

def _random_labels(rng, batch: int, objects: int) -> np.ndarray:
    """(batch, objects, 5) normalised boxes of class 0 with sides 0.1-0.5."""
    size = rng.uniform(0.1, 0.5, (batch, objects, 2))
    corner = rng.uniform(0, 1, (batch, objects, 2)) * (1 - size)
    return np.concatenate([np.zeros((batch, objects, 1)), corner, corner + size], axis=2).astype(np.float32)


def example_detection_input(rng, num_anchors: int, objects: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """An input like the book's ``multibox_detection`` example, at TinySSD's size: for one image,
    class logits N(0, 1) with the background's raised by 6 everywhere and the object class's by 9
    on ``objects`` random anchors, softmaxed -> ``cls_probs (1, 2, A)``; offsets N(0, 0.3) ->
    ``(1, 4A)``. For 5444 anchors: about 300 confident boxes among about 1,100 candidates above
    the book's 0.01 score floor."""
    logits = rng.normal(0, 1, (num_anchors, 2))
    logits[:, 0] += 6
    logits[rng.choice(num_anchors, objects, replace=False), 1] += 9
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)                       # (A, 2)
    offsets = rng.normal(0, 0.3, (1, 4 * num_anchors))
    return probs.T[None].astype(np.float32), offsets.astype(np.float32)


def make_inputs(args, log=print) -> tuple[dict, str]:
    """The arrays every worker reads, and a line saying where the model output came from."""
    from multissd import backends
    from multissd.weights import read_weights
    rng = np.random.default_rng(0)
    size, batch = args.image_size, args.batch_size
    if args.tiny or size != 256:
        images = rng.uniform(0, 255, (batch, 3, size, size)).astype(np.float32)
        source = "random images"
    else:
        from multissd.data.bananas import bananas
        val = bananas(args.data, args.data_dir, progress=log)[1]
        images = val.images[np.arange(batch) % len(val)].astype(np.float32)
        source = "banana validation images"
    backend = backends.available_backends()[0]  # the first installed of torch, paddle, numpy
    adapter, nn = backends.load_trainer(backend), backends.load_nn(backend)
    weights = args.weights or ("runs/tinyssd/weights.safetensors"
                               if Path("runs/tinyssd/weights.safetensors").is_file() and not args.tiny else None)
    net = nn.TinySSD(num_classes=1, seed=0)
    if weights:
        arrays, _ = read_weights(weights)
        nn.set_weights(net, arrays)
        model = f"trained model {weights}"
    else:
        model = "untrained model (seed 0): pass --weights for a trained one"
    device = adapter.resolve_device("cpu")
    anchors, cls_probs, bbox_preds = adapter.predict(adapter.prepare(net, device), images, device)
    example_probs, example_preds = example_detection_input(rng, anchors.shape[1])
    inputs = dict(images=images, labels_1=_random_labels(rng, batch, 1), labels_8=_random_labels(rng, batch, 8),
                  anchors=anchors, cls_probs=cls_probs, bbox_preds=bbox_preds,
                  example_cls_probs=example_probs, example_bbox_preds=example_preds)
    inputs.update({f"weights/{k}": v for k, v in nn.get_weights(net).items()})
    return inputs, f"{model} on {source}"


def _load_inputs(path) -> dict:
    with np.load(path) as data:
        inputs = {k: data[k] for k in data.files if not k.startswith("weights/")}
        inputs["weights"] = {k[len("weights/"):]: data[k] for k in data.files if k.startswith("weights/")}
    return inputs


# ---------------------------------------------------------------------------------------------
# Running the workers
# ---------------------------------------------------------------------------------------------

def run_worker(name: str, inputs_path: str, repeat: int, log=print) -> dict | None:
    """Run one worker in a fresh interpreter; its result, or None (with the reason logged)."""
    framework = WORKERS[name][0]
    if framework != "numpy" and find_spec(framework) is None:
        log(f"  {name}: skipped ({framework} is not installed)")
        return None
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "multissd.bench", "--worker", name, "--inputs", inputs_path,
               "--repeat", str(repeat)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        log(f"  {name}: failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(lines[-1])


def _ratio(baseline, value):
    return baseline / value if baseline and value else None


INFERENCE_WORKERS = {"book": "boxes_book", **{name: f"boxes_{name}" for name in BACKEND_NAMES},
                     "onnxruntime": "infer_onnxruntime"}
"""Implementation -> the worker that measures its inference."""


def summarise(results: dict) -> list[dict]:
    """Table rows: what, implementation, median seconds, ratio to the book's code, goal."""
    rows = []

    def add(what, impl, seconds, baseline, goal_key=None, note=""):
        """One row; ``goal_key`` is ``(measurement, backend)`` in :data:`GOALS`, if it has a goal."""
        if seconds is None:
            return
        rows.append(dict(what=what, implementation=impl, seconds=seconds, ratio=_ratio(baseline, seconds),
                         goal=GOALS.get(goal_key), note=note))

    def label(impl):
        return "book, torch (baseline)" if impl == "book" else f"multissd {impl}"

    get = lambda worker, *keys: _dig(results.get(worker), *keys)
    book_step = get("train_book", "median_s")
    add("training step", "book, torch eager (baseline)", book_step, book_step)
    add("training step", "multissd torch", get("train_torch", "median_s"), book_step, ("train", "torch"))
    torch_step = get("train_torch", "median_s")
    add("training step", "multissd torch bf16", get("train_torch_bf16", "median_s"), book_step,
        note=f"{torch_step / get('train_torch_bf16', 'median_s'):.2f}x the float32 step (goal 2x)"
        if torch_step and get("train_torch_bf16", "median_s") else "")
    compile_first = get("train_torch_compile", "first_s")
    add("training step", "multissd torch --compile", get("train_torch_compile", "median_s"), book_step,
        note=f"first step (compiling) {compile_first:.0f} s" if compile_first else "")
    add("training step", "multissd paddle, paddle's defaults", get("train_paddle_defaults", "median_s"), book_step)
    add("training step", "multissd paddle", get("train_paddle", "median_s"), book_step, ("train", "paddle"))
    paddle_step = get("train_paddle", "median_s")
    add("training step", "multissd paddle bf16", get("train_paddle_bf16", "median_s"), book_step,
        note=f"{paddle_step / get('train_paddle_bf16', 'median_s'):.2f}x the float32 step"
        if paddle_step and get("train_paddle_bf16", "median_s") else "")
    for objects in (1, 8):
        key = f"target_{objects}"
        base = get("boxes_book", key, "median_s")
        for impl in ("book", *BACKEND_NAMES):
            add(f"multibox_target, {objects} object{'s' * (objects > 1)}/image", label(impl),
                get(f"boxes_{impl}", key, "median_s"), base, (key, impl))
    detection_keys = sorted((k for k in (results.get("boxes_book") or {})
                             if k.startswith("detection_") and k.split("_")[1].isdigit()),
                            key=lambda k: int(k.split("_")[1]))
    for key in detection_keys:
        images = int(key.split("_")[1])
        base = get("boxes_book", key, "per_image_s")
        for impl in ("book", *BACKEND_NAMES):
            add(f"multibox_detection per image, batch {images}", label(impl),
                get(f"boxes_{impl}", key, "per_image_s"), base, ("detection_per_image", impl))
    base = get("boxes_book", "detection_example", "median_s")
    for impl in ("book", *BACKEND_NAMES):
        add("multibox_detection, the book's example input", label(impl),
            get(f"boxes_{impl}", "detection_example", "median_s"), base, ("detection_example", impl))
    for key, what, value in (("inference", "inference, 1 image (model + detection)", "median_s"),
                             ("inference_batch", "inference per image, whole batch", "per_image_s")):
        base = get("boxes_book", key, value)
        for impl, worker in INFERENCE_WORKERS.items():
            add(what, label(impl), get(worker, key, value), base)
            add(what, f"{label(impl)} bf16", get(worker, f"{key}_bf16", value), base)
    before = get("time_to_accuracy_ssd", "median_s")
    for recipe in ("ssd", "fastai"):
        add("training to 95% top-1 (wall time)", f"multissd torch --recipe {recipe}",
            get(f"time_to_accuracy_{recipe}", "median_s"), before,
            note=f"whole run {get(f'time_to_accuracy_{recipe}', 'wall_s'):.0f} s"
            if get(f"time_to_accuracy_{recipe}", "wall_s") else "")
    return rows


def time_to_accuracy(train_args: list[str], target: float = 0.95) -> dict:
    """Train with ``python -m multissd.train`` and the ``train_args`` in a fresh process: its wall time
    (``wall_s``), the time at which the validation top-1 IoU >= 0.5 first reached ``target``
    (``median_s``: the start-up, then each epoch's time to that epoch's end; ``None`` if never), and
    the epochs' figures."""
    import csv
    import time
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "multissd.train", "--out", os.path.join(tmp, "run"), "--no-progress",
                   *train_args]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1:]}
        with open(os.path.join(tmp, "run", "metrics.csv")) as handle:
            rows = list(csv.DictReader(handle))
    spent = wall - sum(float(row["epoch_seconds"]) for row in rows)  # start-up, validation, saving
    reached, clock = None, spent
    for row in rows:
        clock += float(row["epoch_seconds"])
        if reached is None and float(row["val_top1_iou50"]) >= target:
            reached = clock
    return dict(median_s=reached, wall_s=wall, target=target, epochs=[
        {key: float(row[key]) for key in ("epoch", "val_top1_iou50", "val_map_50", "epoch_seconds")} for row in rows])


def _dig(value, *keys):
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def format_table(rows: list[dict]) -> str:
    lines = [f"{'measurement':<42} {'implementation':<36} {'median':>10} {'vs book':>8} {'goal':>6}  note",
             "-" * 118]
    for row in rows:
        goal = row["goal"]
        mark = "" if goal is None or row["ratio"] is None else (" ok" if row["ratio"] >= goal else " MISSED")
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] else "-"
        lines.append(f"{row['what']:<42} {row['implementation']:<36} {_seconds(row['seconds']):>10} {ratio:>8} "
                     f"{(f'{goal:.1f}x' if goal else ''):>6}{mark}  {row['note']}")
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    """The rows as the Markdown table of ``docs/performance.md`` (a test holds the page to the
    committed ``bench.json``): the measurement named once per group, times, ratios to the book's
    code, and each goal with whether this run met it."""
    lines = ["| measurement | implementation | time | vs book | goal |", "| --- | --- | --- | --- | --- |"]
    previous = None
    for row in rows:
        what = "" if row["what"] == previous else row["what"]
        previous = row["what"]
        ratio = f"{row['ratio']:.2f}x" if row["ratio"] else "-"
        goal = row["goal"]
        if goal is not None and row["ratio"] is not None:
            met = row["ratio"] >= goal
            ratio = f"**{ratio}**" if met else ratio
            goal = f"{goal:g}x, {'met' if met else '**missed**'}"
        note = f", {row['note']}" if row["note"] else ""
        lines.append(f"| {what} | {row['implementation']}{note} | {_seconds(row['seconds'])} | {ratio} | {goal or ''} |")
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return f"{value:.3f} s" if value >= 0.1 else f"{value * 1e3:.2f} ms"


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.worker:
        inputs = _load_inputs(args.inputs)
        print(json.dumps(WORKERS[args.worker][1](inputs, args.repeat)))
        return 0
    if args.tiny:
        args.batch_size, args.image_size, args.repeat = 2, 64, 1
    names = args.only or [name for name in WORKERS if not (args.no_compile and name == "train_torch_compile")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    inputs, source = make_inputs(args)
    print(f"multissd.bench: batch {args.batch_size} x 3 x {args.image_size} x {args.image_size}, median of "
          f"{args.repeat}; detection inputs: {source}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "inputs.npz")
        np.savez(path, **inputs)
        for name in names:
            print(f"  running {name} ...", flush=True)
            result = run_worker(name, path, args.repeat)
            if result is not None:
                results[name] = result
    if args.time_to_accuracy:
        for recipe in ("fastai", "ssd"):
            print(f"  training the banana detector, --recipe {recipe} ...", flush=True)
            results[f"time_to_accuracy_{recipe}"] = time_to_accuracy(["--recipe", recipe, *args.train_args])
    rows = summarise(results)
    peak, flops, step = (_dig(results, "matmul_peak", "flops_per_s"), _dig(results, "train_torch", "flops"),
                         _dig(results, "train_torch", "median_s"))
    efficiency = None
    if peak and flops and step:
        efficiency = dict(step_flops=flops, step_flops_per_s=flops / step, matmul_peak_flops_per_s=peak,
                          fraction_of_peak=flops / step / peak)
    print()
    print(format_table(rows))
    if efficiency:
        print(f"\ntraining step: {flops / 1e9:.0f} GFLOP, {efficiency['step_flops_per_s'] / 1e9:.1f} GFLOP/s = "
              f"{100 * efficiency['fraction_of_peak']:.0f}% of this machine's measured float32 matmul rate "
              f"({peak / 1e9:.1f} GFLOP/s)")
    report = dict(batch_size=args.batch_size, image_size=args.image_size, repeat=args.repeat, inputs=source,
                  machine=_machine(), rows=rows, efficiency=efficiency, raw=results)
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "bench.md").write_text(markdown_table(rows) + "\n")
    from multissd.plots import plot_bench
    plot_bench(rows, out / "bench.png")
    print(f"\nwrote {out / 'bench.json'}, {out / 'bench.md'} (the table for docs/performance.md) and "
          f"{out / 'bench.png'}")
    return 0


def _machine() -> dict:
    import platform

    from multissd.host import cpu_count
    versions = {}
    for name in BACKEND_NAMES:
        if find_spec(name):
            try:
                from importlib.metadata import version
                versions[name] = version("paddlepaddle" if name == "paddle" else name)
            except Exception:  # noqa: BLE001 - a missing distribution name only loses the version
                pass
    return dict(cpu=platform.processor() or platform.machine(), cores=cpu_count(), python=platform.python_version(),
                versions=versions)


if __name__ == "__main__":
    sys.exit(main())
