"""``python -m multissd.evaluate``: mAP of trained weights on a validation set, the way papers report it.

    python -m multissd.evaluate --weights runs/tinyssd/weights.safetensors
    python -m multissd.evaluate --weights runs/fruit/weights.safetensors --data fruit --backend paddle

The model runs on every image of the split; detections are post-processed per class as the detection
libraries do (:func:`multissd.multibox_detection_per_class`: score > 0.01, 400 candidates per class,
NMS at 0.45, 200 per image) and scored with :func:`multissd.metrics.mean_average_precision` (COCO's
mAP@[.5:.95], AP50, AP75, per-class AP, and the SSD paper's VOC2007 11-point AP50), with boxes in
pixels of the images as loaded. Prints a table, writes ``eval.json`` and plots the precision-recall
curves at IoU 0.5 to ``pr_curves.png`` (beside the weights unless ``--out`` says otherwise).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from multissd import backends
from multissd.metrics import RECALL_THRESHOLDS, mean_average_precision

SCORE_THRESHOLD, NMS_THRESHOLD, TOPK_CANDIDATES, DETECTIONS_PER_IMAGE = 0.01, 0.45, 400, 200  # torchvision's SSD
SUMMARY_KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100", "voc07_map_50")


def batch_detections(anchors, cls_probs, bbox_preds, image_size) -> list[dict]:
    """Per-class detections of one batch of model outputs (NumPy, as ``adapter.predict`` returns
    them), boxes in pixels of ``image_size`` ``(H, W)``: one ``{"boxes" (N, 4), "scores" (N,),
    "labels" (N,)}`` per image, the input :func:`mean_average_precision` takes."""
    ref = backends.load("numpy")
    height, width = image_size
    scale = np.array([width, height, width, height], np.float64)
    return [{"boxes": image["boxes"].astype(np.float64) * scale, "scores": image["scores"], "labels": image["labels"]}
            for image in ref.multibox_detection_per_class(cls_probs, bbox_preds, anchors, SCORE_THRESHOLD,
                                                          NMS_THRESHOLD, TOPK_CANDIDATES, DETECTIONS_PER_IMAGE)]


def split_targets(split) -> list[dict]:
    """The ground truth of ``split`` for :func:`mean_average_precision`, boxes in pixels: per image
    ``{"boxes" (M, 4), "labels" (M,), "iscrowd" (M,)}`` (crowd regions and VOC difficult objects
    flagged, so that they are ignored)."""
    height, width = split.images.shape[2:]
    scale = np.array([width, height, width, height], np.float64)
    targets = []
    for i in range(len(split)):
        label = split.labels[i]
        real = label[:, 0] >= 0
        targets.append({"boxes": label[real, 1:].astype(np.float64) * scale, "labels": label[real, 0].astype(np.int64),
                        "iscrowd": split.ignored(i)[real].astype(np.int64)})
    return targets


def split_detections(adapter, net, split, device, batch_size: int = 32) -> tuple[list[dict], list[dict]]:
    """Run ``net`` over ``split`` and post-process per class: ``(preds, targets)`` for
    :func:`mean_average_precision` (see :func:`batch_detections` and :func:`split_targets`)."""
    preds = []
    for start in range(0, len(split), batch_size):
        images = split.images[start:start + batch_size].astype(np.float32)
        preds.extend(batch_detections(*adapter.predict(net, images, device), images.shape[2:]))
    return preds, split_targets(split)


def evaluate_split(adapter, net, split, device, batch_size: int = 32) -> dict:
    """:func:`mean_average_precision` of ``net`` on ``split`` (see :func:`split_detections`)."""
    return mean_average_precision(*split_detections(adapter, net, split, device, batch_size))


def report(result: dict, class_names) -> str:
    """The summary and per-class table as text."""
    lines = ["mAP@[.5:.95] {map:.4f}   AP50 {map_50:.4f}   AP75 {map_75:.4f}   VOC07 AP50 {voc07_map_50:.4f}".format(**result),
             "AP small {map_small:.4f}   medium {map_medium:.4f}   large {map_large:.4f}   AR@100 {mar_100:.4f}".format(
                 **result), "", f"{'class':<16}{'AP':>8}{'AP50':>8}{'VOC07 AP50':>12}"]
    for k, class_id in enumerate(result["classes"]):
        lines.append(f"{class_name(class_names, int(class_id)):<16}{result['map_per_class'][k]:>8.4f}"
                     f"{result['map_50_per_class'][k]:>8.4f}{result['voc07_ap_50_per_class'][k]:>12.4f}")
    lines.append("(-1: no ground truth to measure it)")
    return "\n".join(lines)


def class_name(class_names, class_id: int) -> str:
    """The name of ``class_id`` (0-based object class) in ``class_names``, else ``"class N"``."""
    if class_names and 0 <= class_id < len(class_names):
        return class_names[class_id]
    return f"class {class_id}"


def to_json(result: dict, class_names) -> dict:
    """The figures of :func:`mean_average_precision` as plain JSON (per-class AP keyed by class name)."""
    out = {key: float(result[key]) for key in SUMMARY_KEYS}
    out["per_class"] = {class_name(class_names, int(c)): {"ap": float(result["map_per_class"][k]),
                                                      "ap50": float(result["map_50_per_class"][k]),
                                                      "voc07_ap50": float(result["voc07_ap_50_per_class"][k]),
                                                      "ar100": float(result["mar_100_per_class"][k])}
                        for k, c in enumerate(result["classes"])}
    return out


def plot_pr_curves(result: dict, class_names, path) -> Path:
    """Precision against recall at IoU 0.5 per class (COCO's interpolated curve), to ``path``."""
    from multissd.plots import _pyplot
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    at_50 = np.flatnonzero(np.isclose(result["iou_thresholds"], 0.5))
    for k, class_id in enumerate(result["classes"]):
        if not at_50.size or result["map_50_per_class"][k] < 0:
            continue
        precision = result["precision"][at_50[0], :, k, 0, -1]  # (101,) area all, 100 detections
        ax.plot(RECALL_THRESHOLDS, precision, label=f"{class_name(class_names, int(class_id))} "
                                                     f"(AP50 {result['map_50_per_class'][k]:.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title(f"IoU 0.5: mAP {result['map_50']:.3f}")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m multissd.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="a weights file written by multissd (runs/NAME/weights.safetensors)")
    p.add_argument("--data", default=None,
                   help="the dataset: 'bananas' or 'fruit' (synthetic), or a folder (banana-detection, Pascal VOC or "
                        "COCO layout); default: the run's own, from config.json beside the weights, else bananas")
    p.add_argument("--data-dir", default=None, help="where synthetic datasets are cached (default: the run's, else "
                                                    "$MULTISSD_DATA, else ~/.cache/multissd)")
    p.add_argument("--split", choices=["val", "train"], default="val", help="which split to evaluate (default val)")
    p.add_argument("--backend", choices=["numpy", "torch", "paddle"], default=None,
                   help="framework to run the model with (default: the active backend)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "gpu"], default="auto", help="device (default auto)")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed annotations with a warning instead of stopping")
    p.add_argument("--out", default=None, help="folder for eval.json and pr_curves.png (default: beside the weights)")
    args = p.parse_args(argv)
    from multissd.config import get_backend
    from multissd.data.datasets import load_splits
    from multissd.host import keep_freed_memory
    from multissd.weights import load_model
    keep_freed_memory()
    try:
        weights = Path(args.weights)
        config_path = weights.parent / "config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        data = args.data if args.data is not None else config.get("data")
        image_size = config.get("image_size")
        data_dir = args.data_dir if args.data_dir is not None else config.get("data_dir")
        train, val = load_splits(data, data_dir, seed=config.get("seed", 0),
                                 image_size=tuple(image_size) if image_size else None, skip_bad=args.skip_bad,
                                 progress=lambda message: print(message, file=sys.stderr))
        split = val if args.split == "val" else train
        class_names = config.get("class_names") or split.class_names
        backend = args.backend or get_backend()
        adapter = backends.load_train(backend)
        device = adapter.resolve_device(args.device)
        net = adapter.prepare(load_model(weights, backend=backend), device)
        if net.spec.num_classes != len(split.class_names):
            raise ValueError(f"{weights} detects {net.spec.num_classes} classes but the data has "
                             f"{len(split.class_names)} ({', '.join(split.class_names)})")
        result = evaluate_split(adapter, net, split, device, args.batch_size)
    except (ValueError, TypeError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else weights.parent
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(split)} {args.split} images, backend {backend}")
    print(report(result, class_names))
    (out / "eval.json").write_text(json.dumps({"images": len(split), "split": args.split, "backend": backend,
                                               **to_json(result, class_names)}, indent=2) + "\n")
    plot_pr_curves(result, class_names, out / "pr_curves.png")
    print(f"wrote {out / 'eval.json'} and {out / 'pr_curves.png'}", file=sys.stderr)
    return 0


def cli() -> None:
    """The ``multissd-evaluate`` console script (the same as ``python -m multissd.evaluate``)."""
    sys.exit(main())


if __name__ == "__main__":
    cli()
