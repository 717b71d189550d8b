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
from multissd.detection import SUMMARY_KEYS, per_class, report, to_json
from multissd.engine import ENGINES
from multissd.files import write_text
from multissd.host import keep_freed_memory
from multissd.inference import evaluate_weights
from multissd.plots import plot_pr_curves

__all__ = ["main", "parser", "script", "evaluate_weights", "report", "per_class", "to_json", "SUMMARY_KEYS"]  # the library, re-exported


def parser():
    p = cli.new_parser("python -m multissd.evaluate", __doc__)
    p.add_argument("--weights", required=True, help="a weights file written by multissd (runs/NAME/weights.safetensors), "
                                                    "or an ONNX file written by python -m multissd.export")
    p.add_argument("--data", default=None,
                   help="the dataset: 'bananas', 'small-bananas' or 'fruit' (synthetic), or a folder (banana-detection, Pascal VOC or "
                        "COCO layout); default: the run's own, from config.json beside the weights, else bananas")
    p.add_argument("--data-dir", default=None, help="where synthetic datasets are cached (default: the run's, else "
                                                    "$MULTISSD_DATA, else ~/.cache/multissd)")
    p.add_argument("--split", choices=["val", "train"], default="val", help="which split to evaluate (default val)")
    cli.add_backend(p, "framework to run the model with (default: the active backend)")
    cli.add_engine(p)
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    cli.add_device(p)
    cli.add_precision(p)
    p.add_argument("--skip-bad", action="store_true", help="skip malformed annotations with a warning instead of stopping")
    p.add_argument("--out", default=None, help="folder for eval.json and pr_curves.png (default: beside the weights)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    keep_freed_memory()

    def body() -> int:
        result, class_names, images, engine = evaluate_weights(
            args.weights, args.data, args.data_dir, args.split, args.backend, args.engine, args.batch_size,
            args.device, args.skip_bad, progress=lambda message: print(message, file=sys.stderr),
            precision=args.precision)
        out = Path(args.out) if args.out else Path(args.weights).parent
        print(f"{images} {args.split} images, {'engine' if engine in ENGINES else 'backend'} {engine}")
        print(report(result, class_names))
        write_text(out / "eval.json", json.dumps({"images": images, "split": args.split, "backend": engine,
                                                  **to_json(result, class_names)}, indent=2) + "\n",
                   inputs=[args.weights], what="evaluation")
        plot_pr_curves(result, class_names, out / "pr_curves.png")
        print(f"wrote {out / 'eval.json'} and {out / 'pr_curves.png'}", file=sys.stderr)
        return 0
    return cli.report_errors(body, {"batch_size": "--batch-size", "precision": "--precision"})


script = cli.script(main)


if __name__ == "__main__":
    script()
