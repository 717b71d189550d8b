"""Pictures: training curves (like the book's plot), images with their boxes, precision-recall
curves and the benchmark's bars. Matplotlib is imported on first use, with the file-only Agg backend."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from multissd.detection import class_name
from multissd.files import write_file
from multissd.metrics import RECALL_THRESHOLDS


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path, inputs=(), **options) -> Path:
    """Save ``fig`` to ``path`` with the one writer (atomic; never over an input of the command) and
    close it; ``options`` go to ``savefig``."""
    try:
        return write_file(path, lambda temp: fig.savefig(temp, **options), inputs, what="picture")
    finally:
        _pyplot().close(fig)


def plot_curves(history: list[dict], path) -> Path:
    """Class error and bbox MAE per epoch, training and validation (the book's figure, plus val)."""
    plt = _pyplot()
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    ax.plot(epochs, [row["class_err"] for row in history], "-", label="class error")
    ax.plot(epochs, [row["bbox_mae"] for row in history], "m--", label="bbox mae")
    ax.plot(epochs, [row["val_class_err"] for row in history], "g-.", label="val class error")
    ax.plot(epochs, [row["val_bbox_mae"] for row in history], "r:", label="val bbox mae")
    ax.set_xlabel("epoch")
    ax.set_yscale("log")
    ax.set_xlim(1, max(epochs[-1], 2))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


_FAR = 1e5  # pixels: a box drawn beyond this is off any image anyway; matplotlib's text fails far out


def draw_boxes(ax, boxes, labels=None, color="w", text_color="k") -> None:
    """Rectangles (and optional labels) on a matplotlib axis; boxes in pixels ``(N, 4)`` (a wild
    model's boxes are clipped to +-1e5 pixels, where they are off the picture all the same)."""
    plt = _pyplot()
    boxes = np.clip(np.nan_to_num(np.reshape(np.asarray(boxes, np.float64), (-1, 4))), -_FAR, _FAR)
    for i, box in enumerate(boxes):
        rect = plt.Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1], fill=False, edgecolor=color,
                             linewidth=2)
        ax.add_patch(rect)
        if labels is not None and i < len(labels):
            ax.text(box[0], box[1], labels[i], va="center", ha="center", fontsize=8, color=text_color,
                    bbox=dict(facecolor=color, lw=0))


def show_bboxes(axes, bboxes, labels=None, colors=("b", "g", "r", "m", "c")) -> None:
    """The book's ``show_bboxes``: corner boxes ``(N, 4)`` in pixels on a matplotlib axis, each in
    the next of ``colors`` (cycled), with optional labels (black text on white boxes, else white).
    A single label or colour may be given as a string, as the book's ``_make_list`` allows."""
    labels = [labels] if isinstance(labels, str) else labels
    colors = [colors] if isinstance(colors, str) else colors
    for i, bbox in enumerate(np.reshape(bboxes, (-1, 4))):
        color = colors[i % len(colors)]
        label = [labels[i]] if labels is not None and i < len(labels) else None
        draw_boxes(axes, bbox, label, color=color, text_color="k" if color == "w" else "w")


def plot_detections(images, detections, truths, path, columns: int = 4, class_names=None) -> Path:
    """A grid of images (uint8 ``(H, W, 3)``) with predicted boxes (white, with scores) and true
    boxes (green). ``detections`` per image: rows ``[class, score, x1, y1, x2, y2]`` in pixels."""
    plt = _pyplot()
    rows = int(np.ceil(len(images) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows), dpi=100, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, dets, truth in zip(axes.ravel(), images, detections, truths):
        ax.imshow(image)
        draw_boxes(ax, truth, color="lime")
        names = [f"{(class_names[int(d[0])] + ' ') if class_names else ''}{d[1]:.2f}" for d in dets]
        draw_boxes(ax, [d[2:] for d in dets], names, color="w")
    fig.tight_layout()
    return _save(fig, path)


DRAWING_SIDE = 1024
"""The longest side of a drawn picture: larger photos are drawn scaled down (a 6000 x 6000 photo drawn
at full size took 4.6 GB and 16 s)."""


def draw_detections(image, rows, class_names, path, threshold: float, inputs=()) -> Path:
    """Save the PIL ``image`` with its detections drawn, like the book's display: white boxes with class
    and score; detections shown although they score below ``threshold`` are yellow. ``rows``
    ``(N, 6)`` ``[class_id, score, x1, y1, x2, y2]`` in pixels of ``image``. An image larger than
    :data:`DRAWING_SIDE` is drawn scaled down to it. ``path`` is never one of ``inputs`` (the image
    files the command reads)."""
    plt = _pyplot()
    scale = min(1.0, DRAWING_SIDE / max(image.width, image.height))
    if scale < 1:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BILINEAR)
    fig = plt.figure(figsize=(image.width / 100, image.height / 100), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(image)
    ax.axis("off")
    for low, color in ((False, "w"), (True, "yellow")):
        chosen = rows[(rows[:, 1] < threshold) == low]
        labels = [f"{class_name(class_names, int(r[0]))} {r[1]:.2f}" for r in chosen]
        draw_boxes(ax, chosen[:, 2:] * scale, labels, color=color)
    return _save(fig, path, inputs)


def plot_pr_curves(result: dict, class_names, path) -> Path:
    """Precision against recall at IoU 0.5 per class (COCO's interpolated curve) of a
    :func:`multissd.metrics.mean_average_precision` result, to ``path``."""
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
    return _save(fig, path)


def plot_bench(rows: list[dict], path) -> Path:
    """Horizontal bars: each implementation's speed-up over the book's code (log scale), grouped
    under a heading per measurement, with the goal marked where there is one. Narrow and tall, with
    short labels, so that it stays readable on a phone's screen."""
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.transforms import blended_transform_factory

    rows = [row for row in rows if row["ratio"]]
    groups = list(dict.fromkeys(row["what"] for row in rows))  # measurements, in table order
    # y positions from the top: each group a heading line, then its bars
    places, headings, y = [], [], 0.0
    for what in groups:
        headings.append((y, what))
        y -= 1.0
        for row in rows:
            if row["what"] == what:
                places.append((y, row))
                y -= 1.0
        y -= 0.3
    fig, ax = plt.subplots(figsize=(4.6, 0.27 * (len(places) + len(groups)) + 2.3), dpi=130)

    def colour(row):
        if "baseline" in row["implementation"] or "defaults" in row["implementation"]:
            return "0.6"  # a reference, not a result
        target = row["goal"] if row["goal"] is not None else 1.0  # without a goal: faster than the book or not
        return "tab:green" if row["ratio"] >= target else ("tab:red" if row["goal"] is not None else "tab:orange")

    ys = [yi for yi, _ in places]
    ratios = [row["ratio"] for _, row in places]
    ax.barh(ys, ratios, color=[colour(row) for _, row in places], height=0.8)
    for yi, row in places:
        if row["goal"]:
            ax.plot([row["goal"]] * 2, [yi - 0.45, yi + 0.45], "k-", lw=2)
        ax.text(row["ratio"], yi, f" {row['ratio']:.1f}x", va="center", fontsize=7.5)
    ax.set_yticks(ys, [row["implementation"].replace(" (baseline)", "") for _, row in places], fontsize=7.5)
    to_axes_x = blended_transform_factory(ax.transAxes, ax.transData)
    for yi, what in headings:
        ax.text(-0.02, yi, what, transform=to_axes_x, ha="right", va="center", fontsize=8, fontweight="bold")
    ax.set_ylim(y + 0.5, 0.8)
    ax.set_xscale("log")
    ax.set_xlim(right=max(ratios) * 3)  # room for the last bar's "N.Nx"
    ax.axvline(1, color="k", lw=0.8)
    ax.tick_params(axis="x", labelsize=7.5)
    ax.set_xlabel("speed-up over the book's code", fontsize=8)
    legend = [Patch(color="tab:green", label="meets its goal (or, with none, beats the book)"),
              Patch(color="tab:red", label="misses its goal"), Patch(color="tab:orange", label="slower than the book"),
              Patch(color="0.6", label="the book's code, or paddle's defaults"),
              Line2D([], [], color="k", lw=2, label="the goal")]
    fig.legend(handles=legend, loc="lower center", ncol=1, fontsize=7.5, frameon=False)
    fig.tight_layout(rect=(0, 0.95 / fig.get_figheight(), 1, 1))
    return _save(fig, path)


def _stage_label(spec, i: int, size: tuple[int, int]) -> str:
    kind = spec.block_layout(i)[0]
    title = {"base": f"base network\n{len(spec.base_channels)} down-sampling blocks", "down": "down-sampling block",
             "global_max_pool": "global max pool"}[kind]
    return f"{title}\n{spec.scale_channels(i)} x {size[0]} x {size[1]}"


def plot_architecture(spec, path, height: int = 256, width: int = 256) -> Path:
    """The SSD diagram of the book's Fig. 14.7.1, drawn from ``spec`` (a :class:`~multissd.TinySSDSpec`)
    for an input of ``height x width``: the stages left to right with their feature maps
    (channels x H x W), below each predicted scale its class and box predictors (output channels)
    and its anchors (H x W x a), all concatenated into the model's three outputs."""
    plt = _pyplot()
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    sizes = spec.feature_map_sizes(height, width)
    fig, ax = plt.subplots(figsize=(1.9 * (spec.num_scales + 1), 4.6), dpi=120)
    ax.set_xlim(-0.6, spec.num_scales + 0.6)
    ax.set_ylim(-3.4, 1.0)
    ax.axis("off")

    def box(x, y, text, colour, width=0.84, height=0.78):
        ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.03",
                                    fc=colour, ec="0.3", lw=0.8))
        ax.text(x, y, text, ha="center", va="center", fontsize=7.5)

    def arrow(start, end):
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=9, color="0.35", lw=0.9))

    box(-0.1, 0.3, f"image\n{spec.in_channels} x {height} x {width}", "#eeeeee", width=0.8)
    for i, size in enumerate(sizes):
        x = i + 1
        box(x, 0.3, _stage_label(spec, i, size), "#fde9b8")
        arrow((x - 0.58, 0.3), (x - 0.43, 0.3))
        if not spec.predicted(i):
            continue
        a = spec.num_anchors(i)
        box(x, -1.05, f"class predictor\n3x3 conv, {a} x ({spec.num_classes} + 1)\nbox predictor\n3x3 conv, {4 * a}",
            "#d5e8f7", height=0.95)
        box(x, -2.25, f"anchors\n{size[0]} x {size[1]} x {a}\n= {size[0] * size[1] * a}", "#e2f2dc", height=0.8)
        arrow((x, -0.1), (x, -0.56))
        arrow((x, -1.53), (x, -1.84))
    ax.text((spec.num_scales + 1) / 2, -3.1,
            f"concatenated over the scales: anchors (1, {spec.total_anchors(height, width)}, 4), class predictions "
            f"(B, {spec.total_anchors(height, width)}, {spec.num_classes + 1}), box predictions "
            f"(B, {4 * spec.total_anchors(height, width)})", ha="center", va="center", fontsize=8.5)
    fig.tight_layout()
    return _save(fig, path, bbox_inches="tight")
