"""A second synthetic dataset with several classes and objects: bananas, apples and oranges.

Each 256 x 256 image holds 1 to 6 fruits (bananas drawn as in :mod:`multissd.data.synthetic`,
round red or green apples with a stem and a highlight, dimpled oranges with a navel), sometimes
overlapping, over the banana dataset's backgrounds and clutter, so that multi-object matching,
padding and per-class AP are exercised. Boxes are the full extent of each fruit (pixels with at
least half coverage); a fruit is not placed where it would hide more than half of another or
overlap one with IoU above 0.4. Determined by ``(seed, split, index)``, like the banana dataset.
"""
from __future__ import annotations

import colorsys

import numpy as np

from multissd.backends.numpy.boxes import box_iou
from multissd.data.synthetic import IMAGE_SIZE, _background, _banana_layers, _clutter

CLASS_NAMES = ("banana", "apple", "orange")
MAX_OBJECTS = 6
SPLIT_IDS = {"train": 10, "val": 11}
MIN_DIAMETER, MAX_DIAMETER = 0.12, 0.4  # round fruit, as a fraction of the image side


def _round_fruit_layers(rng, size: int, kind: str):
    """An apple or an orange: ``(coverage (H, W) in [0, 1], colour (H, W, 3) in [0, 1])`` or ``None``."""
    radius = rng.uniform(MIN_DIAMETER, MAX_DIAMETER) * size / 2
    cx, cy = rng.uniform(radius, size - radius, 2)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = (xx + 0.5 - cx) / radius, (yy + 0.5 - cy) / radius
    r = np.sqrt(dx ** 2 + dy ** 2)
    if kind == "apple":  # a little wider than tall, with a dip at the top
        r = np.sqrt((dx / 1.08) ** 2 + dy ** 2) + 0.12 * np.exp(-(dx / 0.25) ** 2) * (dy < 0)
    coverage = np.clip((1 - r) * radius + 0.5, 0, 1)
    light = np.array([-0.35, -0.45]) * rng.choice([-1.0, 1.0], 2)
    shade = np.clip(1.1 - 0.35 * r ** 2 - 0.25 * (dx * light[0] + dy * light[1]), 0.4, 1.2)
    if kind == "apple":
        hue = rng.choice([rng.uniform(-0.02, 0.02), rng.uniform(0.18, 0.28)])  # red or green
        base = np.array(colorsys.hsv_to_rgb(hue % 1, rng.uniform(0.7, 0.95), rng.uniform(0.6, 0.9)), np.float32)
        streaks = 1 + 0.08 * np.sin(dx * rng.uniform(10, 20) + rng.uniform(0, 6))
        colour = base * (shade * streaks)[..., None]
        stem = (np.abs(dx - 0.05 * dy) < 0.05) & (dy < -0.7) & (dy > -1.15)
        coverage = np.maximum(coverage, stem.astype(np.float32))
        colour = np.where(stem[..., None], np.array([0.35, 0.22, 0.08], np.float32), colour)
    else:
        base = np.array(colorsys.hsv_to_rgb(rng.uniform(0.06, 0.09), rng.uniform(0.8, 1.0), rng.uniform(0.85, 1.0)),
                        np.float32)
        dimples = 1 + 0.06 * rng.standard_normal((size, size)).astype(np.float32)
        colour = base * (shade * dimples)[..., None]
        navel = ((dx - light[0] * 0.2) ** 2 + (dy - light[1] * 0.2) ** 2) < 0.004
        colour = np.where(navel[..., None], colour * 0.6, colour)
    highlight = np.exp(-((dx + light[0]) ** 2 + (dy + light[1]) ** 2) / 0.03)
    colour = colour + 0.35 * highlight[..., None]
    return coverage, np.clip(colour, 0, 1)


def _box(coverage: np.ndarray):
    ys, xs = np.nonzero(coverage >= 0.5)
    if xs.size == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


def render_fruit(rng, size: int = IMAGE_SIZE):
    """Draw one image: ``(uint8 (size, size, 3), boxes (n, 4) int pixels, classes (n,) int)``, 1 <= n <= 6."""
    image = _background(rng, size)
    _clutter(rng, image)
    pixels = np.asarray(image, np.float32) / 255
    wanted = int(rng.integers(1, MAX_OBJECTS + 1))
    boxes, classes, masks = [], [], []
    for _ in range(wanted * 6):  # a few tries per fruit to find a free place
        if len(boxes) == wanted:
            break
        cls = int(rng.integers(len(CLASS_NAMES)))
        layers = _banana_layers(rng, size) if cls == 0 else _round_fruit_layers(rng, size, CLASS_NAMES[cls])
        if layers is None:
            continue
        coverage, colour = layers
        box = _box(coverage)
        if box is None or (boxes and box_iou(box[None], np.stack(boxes)).max() > 0.4):
            continue
        solid = coverage >= 0.5
        if any((mask & solid).sum() > 0.5 * mask.sum() for mask in masks):  # would hide most of a fruit
            continue
        pixels = pixels * (1 - coverage[..., None]) + colour * coverage[..., None]
        masks = [mask & ~solid for mask in masks] + [solid]
        boxes.append(box)
        classes.append(cls)
    pixels += rng.normal(0, rng.uniform(0, 0.04), pixels.shape)  # sensor noise
    image = (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)
    return image, np.array(boxes, np.int64).reshape(-1, 4), np.array(classes, np.int64)


def fruit_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws image ``index`` of ``split``: independent of every other image."""
    return np.random.default_rng([int(seed), SPLIT_IDS[split], int(index)])


# The book's ``catdog.jpg`` boxes (its dog and its cat), normalised: the stand-in's two fruits fill them.
EXAMPLE_BOXES = np.array([[0.08, 0.08, 0.52, 0.92], [0.55, 0.2, 0.9, 0.88]])
EXAMPLE_FRUIT = ("banana", "apple")


def _fit_into(rng, kind: str, box, canvas: int = 512):
    """One fruit drawn on its own and stretched to fill ``box`` (whole pixels ``[x0, y0, x1, y1]``):
    ``(coverage (h, w), colour (h, w, 3))`` with ``h, w`` the box's size."""
    from PIL import Image

    for _ in range(100):  # a fruit that fits its canvas
        layers = (_banana_layers(rng, canvas) if kind == "banana"
                  else _round_fruit_layers(rng, canvas, kind))
        if layers is not None and _box(layers[0]) is not None:
            break
    coverage, colour = layers
    x0, y0, x1, y1 = _box(coverage).astype(int)
    coverage, colour = coverage[y0:y1, x0:x1], colour[y0:y1, x0:x1]  # cropped to the fruit
    if kind == "banana" and (x1 - x0 > y1 - y0) != (box[2] - box[0] > box[3] - box[1]):  # along the box
        coverage, colour = coverage.T, colour.transpose(1, 0, 2)
    size = (int(box[2] - box[0]), int(box[3] - box[1]))  # (w, h) for Pillow

    def stretch(plane):
        return np.asarray(Image.fromarray(np.ascontiguousarray(plane, np.float32), "F").resize(size, Image.BILINEAR))

    return np.clip(stretch(coverage), 0, 1), np.stack([stretch(colour[..., c]) for c in range(3)], -1)


def example_image(seed: int = 0, height: int = 561, width: int = 728):
    """A fruit scene the size of the book's ``catdog.jpg`` (561 x 728), the documentation's stand-in
    for it (nothing is downloaded): a banana where the book has its dog and an apple where it has
    its cat, each filling the book's box for that animal (:data:`EXAMPLE_BOXES`, normalised), over
    the datasets' background and clutter.

    Returns ``(uint8 (height, width, 3), boxes (2, 4) float whole pixels [xmin, ymin, xmax, ymax],
    names (2,) of str)``; at the default size the boxes are the book's ``[60, 45, 378, 516]`` and
    ``[400, 112, 655, 493]`` within a pixel or two.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    background = _background(rng, width)
    _clutter(rng, background)
    pixels = np.asarray(Image.fromarray(np.asarray(background)).resize((width, height), Image.BILINEAR),
                        np.float32) / 255  # (height, width, 3)
    boxes = []
    for kind, box in zip(EXAMPLE_FRUIT, EXAMPLE_BOXES * np.array([width, height, width, height])):
        box = box.round().astype(int)
        coverage, colour = _fit_into(rng, kind, box)
        x0, y0, x1, y1 = box
        region = pixels[y0:y1, x0:x1]
        pixels[y0:y1, x0:x1] = region * (1 - coverage[..., None]) + colour * coverage[..., None]
        ys, xs = np.nonzero(coverage >= 0.5)
        boxes.append([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1])
    pixels += rng.normal(0, 0.02, pixels.shape)  # sensor noise
    image = (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)
    return image, np.array(boxes, np.float64), list(EXAMPLE_FRUIT)
