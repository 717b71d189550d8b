"""``python -m multissd.predict``: find objects in images with trained weights, on any backend.

    python -m multissd.predict photo.jpg --weights runs/tinyssd/weights.safetensors
    python -m multissd.predict a.png b.png --weights w.safetensors --backend numpy --threshold 0.5 --out preds

Each image is resized to the model's input size and run through the model; its output is decoded as
the detection libraries do (``--decode per-class``, the default: :func:`multissd.multibox_detection_per_class`
-- the head's softmax or sigmoid, every class of every anchor scoring above 0.01, the 400 best per
class, NMS within each class at IoU 0.45, at most 200 per image, boxes clipped to the image: not the
book's function), or as the book does (``--decode book``: :func:`multissd.multibox_detection`, one
class per anchor, class-agnostic NMS at 0.5, unclipped boxes). One JSON line per detection is
printed -- image, class, score, box in pixels of the original image -- and the image is saved with
its boxes drawn, like the book's ``display``. Detections scoring at least ``--threshold`` (the book's
0.9) are reported; so is each image's best detection when it scores lower (``--min-detections``,
default 1), marked ``"below_threshold": true`` and drawn yellow, so that a model less sure than the
book's still shows what it found. Weights trained on one backend predict on any other, NumPy included; a model exported with
``python -m multissd.export`` predicts on ONNX Runtime (``--weights model.onnx``, the ``onnxruntime``
engine), decoded by the NumPy backend's code.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from multissd import cli
from multissd.boxes import BOOK_NMS_THRESHOLD, NMS_THRESHOLD
from multissd.data.images import read_image
from multissd.detection import class_name
from multissd.host import keep_freed_memory
from multissd.inference import (DECODINGS, DEFAULT_MIN_DETECTIONS, DEFAULT_THRESHOLD, decode, drawing_names,
                                predict_images)
from multissd.plots import draw_detections

__all__ = ["main", "parser", "script", "predict_images", "decode", "read_image"]  # the library, re-exported


def parser():
    p = cli.new_parser("python -m multissd.predict", __doc__)
    p.add_argument("images", nargs="+", help="image files (any format Pillow reads)")
    p.add_argument("--weights", required=True, help="a weights file written by multissd (weights.safetensors), or "
                                                    "an ONNX file written by python -m multissd.export")
    cli.add_backend(p, "framework to run the model with (default: the active backend)")
    cli.add_engine(p)
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                   help="lowest score to report (default 0.9, the book's)")
    p.add_argument("--min-detections", type=int, default=DEFAULT_MIN_DETECTIONS, metavar="N",
                   help="report each image's N best detections even when they score below --threshold, marked "
                        '"below_threshold" and drawn yellow (default 1: every image shows the model\'s best guess; '
                        "0 applies the threshold strictly, as the book)")
    p.add_argument("--decode", choices=list(DECODINGS), default="per-class",
                   help="per-class (default): multibox_detection_per_class, as detection libraries decode (score > "
                        "0.01, 400 candidates and NMS per class, 200 per image, clipped boxes); book: the book's "
                        "multibox_detection (one class per anchor, class-agnostic NMS)")
    p.add_argument("--nms-threshold", type=float, default=None,
                   help=f"IoU above which NMS suppresses a box (default {NMS_THRESHOLD:g} within a class, "
                        f"torchvision's SSD; {BOOK_NMS_THRESHOLD:g} with --decode book, the book's)")
    cli.add_device(p)
    cli.add_precision(p)
    p.add_argument("--out", default="predictions", help="folder for the drawn images (default predictions/)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    keep_freed_memory()
    return cli.report_errors(lambda: _predict(args), {"threshold": "--threshold", "nms_threshold": "--nms-threshold",
                                                      "min_detections": "--min-detections", "precision": "--precision"})


def _predict(args) -> int:
    results, class_names = predict_images(args.images, args.weights, args.backend, args.threshold,
                                          args.nms_threshold, args.device, args.min_detections, args.engine,
                                          args.decode, args.precision)
    out = Path(args.out)
    for (path, image, rows), name in zip(results, drawing_names(path for path, _, _ in results)):
        for row in rows:
            print(json.dumps({"image": str(path), "class": class_name(class_names, int(row[0])), "class_id": int(row[0]),
                              "score": round(float(row[1]), 4),
                              "box": [round(float(v), 1) for v in row[2:]],
                              "below_threshold": bool(row[1] < args.threshold)}))
        saved = draw_detections(image, rows, class_names, out / name, args.threshold, inputs=args.images)
        print(f"saved {saved}", file=sys.stderr)
    return 0


script = cli.script(main)


if __name__ == "__main__":
    script()
