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

import numpy as np
from PIL import Image, UnidentifiedImageError

from multissd import cli
from multissd.boxes import DETECTIONS_PER_IMAGE, NMS_THRESHOLD, SCORE_THRESHOLD, TOPK_CANDIDATES
from multissd.data.images import rgb_image
from multissd.detection import class_name
from multissd.host import keep_freed_memory
from multissd.engine import open_model
from multissd.plots import draw_detections

DEFAULT_IMAGE_SIZE = (256, 256)
DEFAULT_THRESHOLD = 0.9  # the book's display threshold
DEFAULT_MIN_DETECTIONS = 1
DECODINGS = ("per-class", "book")
BOOK_NMS_THRESHOLD = 0.5  # the book's multibox_detection default


def read_image(path: Path) -> Image.Image:
    """The image at ``path`` in RGB; ``ValueError`` naming the path if it is missing or unreadable."""
    try:
        with Image.open(path) as image:
            return rgb_image(image)
    except FileNotFoundError:
        raise ValueError(f"Image not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise ValueError(f"Cannot read image {path}: {error}") from None


def decode(box_ops, anchors, cls_probs, bbox_preds, nms_threshold, coding, how: str = "per-class") -> np.ndarray:
    """One image's detections as float32 ``(N, 6)`` rows ``[class_id, score, x1, y1, x2, y2]``
    (normalised), best first: ``how="per-class"`` -- :func:`multissd.multibox_detection_per_class`;
    ``"book"`` -- :func:`multissd.multibox_detection` (the rows with a class)."""
    inputs = box_ops.asarray(cls_probs), box_ops.asarray(bbox_preds), box_ops.asarray(anchors)
    if how == "book":
        rows = box_ops.to_numpy(box_ops.multibox_detection(*inputs, nms_threshold=nms_threshold, coding=coding)[0])
        return rows[rows[:, 0] >= 0].astype(np.float32)                          # (N, 6), by decreasing score
    found = box_ops.multibox_detection_per_class(*inputs, SCORE_THRESHOLD, nms_threshold, TOPK_CANDIDATES,
                                                 DETECTIONS_PER_IMAGE, coding)[0]
    boxes, scores, labels = (box_ops.to_numpy(found[key]) for key in ("boxes", "scores", "labels"))
    return np.concatenate([labels[:, None], scores[:, None], boxes], axis=1).astype(np.float32)  # (N, 6)


def predict_images(paths, weights, backend=None, threshold: float = DEFAULT_THRESHOLD, nms_threshold: float | None = None,
                   device: str = "auto", min_detections: int = 0, engine: str | None = None, how: str = "per-class"):
    """Detections per image, best first, by the model in ``weights`` run on ``backend`` (a weights
    file) or by ONNX Runtime (``engine="onnxruntime"``, an ``.onnx`` file from :mod:`multissd.export`;
    decoded by the NumPy backend).

    ``how`` is :func:`decode`'s (``"per-class"`` or ``"book"``); ``nms_threshold`` defaults to 0.45
    per class, 0.5 for the book's. Returns ``(results, class_names)``; ``results`` holds one
    ``(path, original PIL image, rows)`` per image, ``rows`` float32 ``(N, 6)``
    ``[class_id, score, x1, y1, x2, y2]`` in pixels of the original image, sorted by score (descending). A row is kept when ``score >= threshold``, or when it is one of
    the image's ``min_detections`` best (so ``min_detections=1`` always shows the model's best guess).
    """
    if isinstance(min_detections, bool) or not isinstance(min_detections, (int, np.integer)) or min_detections < 0:
        raise ValueError(f"min_detections must be an integer >= 0, got {min_detections!r}")
    if how not in DECODINGS:
        raise ValueError(f"Expected how to be one of {list(DECODINGS)}; received {how!r}")
    if nms_threshold is None:
        nms_threshold = BOOK_NMS_THRESHOLD if how == "book" else NMS_THRESHOLD
    runner = open_model(weights, backend, engine, device)
    adapter, box_ops, net, device = runner.adapter, runner.box_ops, runner.net, runner.device
    height, width = runner.settings.image_size or DEFAULT_IMAGE_SIZE
    class_names = runner.settings.class_names
    results = []
    for path in map(Path, paths):
        image = read_image(path)
        pixels = np.asarray(image.resize((width, height), Image.BILINEAR), np.float32).transpose(2, 0, 1)[None]
        anchors, cls_probs, bbox_preds = adapter.predict(net, pixels, device)
        rows = decode(box_ops, anchors, cls_probs, bbox_preds, nms_threshold, net.spec.coding, how)
        keep = rows[:, 1] >= threshold
        keep[:min_detections] = True
        rows = rows[keep]
        rows[:, 2:] *= np.array([image.width, image.height, image.width, image.height], np.float32)
        results.append((path, image, rows))
    return results, class_names


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
    p.add_argument("--out", default="predictions", help="folder for the drawn images (default predictions/)")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    keep_freed_memory()
    return cli.report_errors(lambda: _predict(args))


def _predict(args) -> int:
    results, class_names = predict_images(args.images, args.weights, args.backend, args.threshold,
                                          args.nms_threshold, args.device, args.min_detections, args.engine,
                                          args.decode)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path, image, rows in results:
        for row in rows:
            print(json.dumps({"image": str(path), "class": class_name(class_names, int(row[0])), "class_id": int(row[0]),
                              "score": round(float(row[1]), 4),
                              "box": [round(float(v), 1) for v in row[2:]],
                              "below_threshold": bool(row[1] < args.threshold)}))
        saved = draw_detections(image, rows, class_names, out / f"{path.stem}_detections.png", args.threshold)
        print(f"saved {saved}", file=sys.stderr)
    return 0


def script() -> None:
    """The ``multissd-predict`` console script (the same as ``python -m multissd.predict``)."""
    sys.exit(main())


if __name__ == "__main__":
    script()
