"""Draw ``docs/logs/small_objects.png``: each small-banana run's best box on the same validation images.

    python docs/logs/small_objects_figure.py runs/small256_book runs/small256_fit runs/small512_book \
        runs/small512_fit --out docs/logs/small_objects.png

Each argument is a run folder of ``python -m multissd.train --data small-bananas`` (its
``weights.safetensors``, ``config.json`` and ``metrics.csv``). The first ``--images`` validation
images of the small bananas are written to a temporary folder as PNGs and run through each model as
``python -m multissd.predict`` runs them (its best detection, whatever its score); every panel shows a
window of ``--window`` pixels of the 256-pixel image around the true banana (green), enlarged, with
the model's best box (white) and its score (or where it lies outside the window, that it does). A row per run, titled with its input size, anchors and
last validation mAP@0.5 (the records in ``docs/logs/small_*``).
"""
from __future__ import annotations

import argparse
import csv
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run folders of python -m multissd.train --data small-bananas")
    p.add_argument("--out", default="docs/logs/small_objects.png")
    p.add_argument("--images", type=int, default=5, help="how many validation images (default 5)")
    p.add_argument("--window", type=int, default=72, help="the side of the window shown, in pixels of the 256-pixel "
                                                           "image (default 72)")
    args = p.parse_args()

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from multissd.data import load_splits
    from multissd.inference import predict_images

    _, val = load_splits("small-bananas")
    count = min(args.images, len(val))
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i in range(count):
            paths.append(Path(folder) / f"val_{i}.png")
            Image.fromarray(val.images[i].transpose(1, 2, 0)).save(paths[-1])
        found = {run: predict_images(paths, Path(run) / "weights.safetensors", backend="numpy", threshold=1.0,
                                     min_detections=1)[0] for run in args.runs}
    side = val.images.shape[-1]
    fig, axes = plt.subplots(len(args.runs), count, figsize=(2.1 * count, 2.35 * len(args.runs)), squeeze=False)
    for r, run in enumerate(args.runs):
        config = json.loads((Path(run) / "config.json").read_text())
        with open(Path(run) / "metrics.csv") as handle:
            final = list(csv.DictReader(handle))[-1]
        size = config["image_size"][0] if config.get("image_size") else side
        axes[r, 0].set_title(f"{size} px, {config['anchor_sizes']} anchors: mAP@0.5 {float(final['val_map_50']):.3f}",
                             loc="left", fontsize=9)
        for c in range(count):
            ax = axes[r, c]
            truth = val.labels[c, 0, 1:] * side                                     # (4,) pixels
            centre = (truth[:2] + truth[2:]) / 2
            x0, y0 = np.clip(centre - args.window / 2, 0, side - args.window).astype(int)
            ax.imshow(val.images[c].transpose(1, 2, 0)[y0:y0 + args.window, x0:x0 + args.window],
                      extent=(x0, x0 + args.window, y0 + args.window, y0))
            _, _, rows = found[run][c]
            best = rows[0, 2:]
            inside = best[0] < x0 + args.window and best[2] > x0 and best[1] < y0 + args.window and best[3] > y0
            for box, colour in ((best, "white"), (truth, "lime")):
                ax.add_patch(plt.Rectangle(box[:2], *(box[2:] - box[:2]), fill=False, edgecolor=colour, linewidth=2,
                                           clip_on=True))
            text = f"{rows[0, 1]:.2f}" if inside else f"best box elsewhere, {rows[0, 1]:.2f}"
            ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=8, color="k",
                    bbox=dict(facecolor="white", lw=0, pad=1))
            ax.set_xlim(x0, x0 + args.window)
            ax.set_ylim(y0 + args.window, y0)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print("wrote", args.out)


if __name__ == "__main__":
    main()
