"""``python -m multissd.evaluate``: mAP of trained weights on a validation set, the way papers report it.

    python -m multissd.evaluate --weights runs/tinyssd/weights.safetensors
    python -m multissd.evaluate --weights runs/fruit/weights.safetensors --data fruit --backend paddle

The model runs on every image of the split; detections are post-processed per class as the detection
libraries do (:func:`multissd.multibox_detection_per_class`: score > 0.01, 400 candidates per class,
NMS at 0.45, 200 per image; :mod:`multissd.detection`) and scored with :func:`multissd.metrics.mean_average_precision` (COCO's
mAP@[.5:.95], AP50, AP75, per-class AP, and the SSD paper's VOC2007 11-point AP50), with boxes in
pixels of the images as loaded. Prints a table, writes ``eval.json`` and plots the precision-recall
curves at IoU 0.5 to ``pr_curves.png`` (beside the weights unless ``--out`` says otherwise).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from multissd import cli
from multissd.data.datasets import load_splits
from multissd.detection import class_name, evaluate_split
from multissd.engine import ENGINES, open_model
from multissd.host import keep_freed_memory
from multissd.plots import plot_pr_curves

SUMMARY_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100", "voc07_map_50")


def per_class(result: dict, class_names) -> dict[str, dict[str, float]]:
    """Per class name: ``ap``, ``ap50``, ``voc07_ap50``, ``ar100`` -- every class of the model, -1 for
    one that neither the ground truth nor the detections contain."""
    ids = sorted({int(c) for c in result["classes"]} | set(range(len(class_names or []))))
    index = {int(c): k for k, c in enumerate(result["classes"])}
    keys = {"ap": "map_per_class", "ap50": "map_50_per_class", "voc07_ap50": "voc07_ap_50_per_class",
            "ar100": "mar_100_per_class"}
    return {class_name(class_names, c): {name: float(result[key][index[c]]) if c in index else -1.0
                                         for name, key in keys.items()} for c in ids}


def report(result: dict, class_names) -> str:
    """The summary and per-class table as text."""
    lines = ["mAP@[.5:.95] {map:.4f}   AP50 {map_50:.4f}   AP75 {map_75:.4f}   VOC07 AP50 {voc07_map_50:.4f}".format(**result),
             "AP small {map_small:.4f}   medium {map_medium:.4f}   large {map_large:.4f}   AR@100 {mar_100:.4f}".format(
                 **result), "", f"{'class':<16}{'AP':>8}{'AP50':>8}{'VOC07 AP50':>12}"]
    for name, figures in per_class(result, class_names).items():
        lines.append(f"{name:<16}{figures['ap']:>8.4f}{figures['ap50']:>8.4f}{figures['voc07_ap50']:>12.4f}")
    lines.append("(-1: no ground truth to measure it)")
    return "\n".join(lines)


def to_json(result: dict, class_names) -> dict:
    """The figures of :func:`mean_average_precision` as plain JSON (per-class AP keyed by class name)."""
    return {**{key: float(result[key]) for key in SUMMARY_KEYS}, "per_class": per_class(result, class_names)}


def parser():
    p = cli.new_parser("python -m multissd.evaluate", __doc__)
    p.add_argument("--weights", required=True, help="a weights file written by multissd (runs/NAME/weights.safetensors), "
                                                    "or an ONNX file written by python -m multissd.export")
    p.add_argument("--data", default=None,
                   help="the dataset: 'bananas' or 'fruit' (synthetic), or a folder (banana-detection, Pascal VOC or "
                        "COCO layout); default: the run's own, from config.json beside the weights, else bananas")
    p.add_argument("--data-dir", default=None, help="where synthetic datasets are cached (default: the run's, else "
                                                    "$MULTISSD_DATA, else ~/.cache/multissd)")
    p.add_argument("--split", choices=["val", "train"], default="val", help="which split to evaluate (default val)")
    cli.add_backend(p, "framework to run the model with (default: the active backend)")
    cli.add_engine(p)
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    cli.add_device(p)
    p.add_argument("--skip-bad", action="store_true", help="skip malformed annotations with a warning instead of stopping")
    p.add_argument("--out", default=None, help="folder for eval.json and pr_curves.png (default: beside the weights)")
    return p


def evaluate_run(args) -> tuple[dict, list, int, str]:
    """Load the model and the split, run and score: ``(result, class_names, images, engine)``."""
    runner = open_model(args.weights, args.backend, args.engine, args.device)  # before the data (a minute to draw)
    config, net = runner.settings.config, runner.net
    data = args.data if args.data is not None else config.get("data")
    image_size = runner.settings.image_size
    data_dir = args.data_dir if args.data_dir is not None else config.get("data_dir")
    train, val = load_splits(data, data_dir, seed=config.get("seed", 0), image_size=image_size,
                             skip_bad=args.skip_bad, progress=lambda message: print(message, file=sys.stderr))
    split = val if args.split == "val" else train
    class_names = runner.settings.class_names or split.class_names
    if net.spec.num_classes != len(split.class_names):
        raise ValueError(f"{args.weights} detects {net.spec.num_classes} classes but the data has "
                         f"{len(split.class_names)} ({', '.join(split.class_names)})")
    result = evaluate_split(runner.adapter, net, split, runner.device, args.batch_size)
    return result, class_names, len(split), runner.engine


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    keep_freed_memory()

    def body() -> int:
        result, class_names, images, engine = evaluate_run(args)
        out = Path(args.out) if args.out else Path(args.weights).parent
        out.mkdir(parents=True, exist_ok=True)
        print(f"{images} {args.split} images, {'engine' if engine in ENGINES else 'backend'} {engine}")
        print(report(result, class_names))
        (out / "eval.json").write_text(json.dumps({"images": images, "split": args.split, "backend": engine,
                                                   **to_json(result, class_names)}, indent=2) + "\n")
        plot_pr_curves(result, class_names, out / "pr_curves.png")
        print(f"wrote {out / 'eval.json'} and {out / 'pr_curves.png'}", file=sys.stderr)
        return 0
    return cli.report_errors(body)


def script() -> None:
    """The ``multissd-evaluate`` console script (the same as ``python -m multissd.evaluate``)."""
    sys.exit(main())


if __name__ == "__main__":
    script()
