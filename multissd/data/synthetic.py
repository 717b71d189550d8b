"""A synthetic stand-in for the book's banana detection dataset, drawn with NumPy and Pillow.

The book downloads ``banana-detection`` (1000 training and 100 validation images of 256 x 256, one
banana each); these machines cannot, so multissd draws one: a curved, shaded yellow banana with a
stem and darker tips, at a random position, size (about 10%-45% of the image side), rotation,
curvature and thickness, over varied backgrounds (gradients, cloudy noise, stripes and checks) with
clutter (shapes of other colours, some of them banana-shaped) and sensor noise. Every image is
determined by ``(seed, split, index)``, so the dataset is the same on every machine.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from multissd.model import DEFAULT_IMAGE_SIZE

IMAGE_SIZE = DEFAULT_IMAGE_SIZE[0]  # the synthetic images are square, at the book's size
# The banana's box: its longer side, as a fraction of the image side. Most boxes are 0.2-0.45 (a few
# down to about 0.15): the book's TinySSD has no anchor smaller than 0.2, so a much smaller banana
# could not be matched to any anchor at IoU 0.5.
MIN_SIDE, MAX_SIDE = 0.10, 0.45
# The small bananas (``--data small-bananas``, the book's exercise on objects much smaller than the
# image): sides 0.04-0.10 of the image, below every anchor of the book's TinySSD.
SMALL_SIDES = (0.04, 0.10)
SPLIT_IDS = {"train": 0, "val": 1}
BANANA_CLASS = 0


def _distractor_colour(rng) -> tuple[int, int, int]:
    """A saturated colour that is not yellow or orange (hues 35-75 degrees are left to bananas)."""
    hue = rng.uniform(75, 395) % 360
    r, g, b = colorsys.hsv_to_rgb(hue / 360, rng.uniform(0.35, 1.0), rng.uniform(0.3, 1.0))
    return int(r * 255), int(g * 255), int(b * 255)


def _background(rng, size: int) -> Image.Image:
    """Gradient, cloudy noise, stripes or checks, in random colours other than banana yellow."""
    kind = rng.integers(4)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c1, c2 = (np.array(_distractor_colour(rng), np.float32) / 255 * rng.uniform(0.5, 1.0) for _ in range(2))
    if kind == 0:  # linear gradient
        angle = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(angle) + yy * math.sin(angle))
        t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    elif kind == 1:  # cloudy noise: low-resolution noise, upsampled smoothly
        cells = int(rng.integers(3, 12))
        low = (rng.uniform(0, 255, (cells, cells))).astype(np.uint8)
        t = np.asarray(Image.fromarray(low).resize((size, size), Image.BICUBIC), np.float32) / 255
    elif kind == 2:  # stripes
        angle, freq = rng.uniform(0, math.pi), rng.uniform(3, 20)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * freq * (xx * math.cos(angle) + yy * math.sin(angle)))
    else:  # checks
        n = int(rng.integers(3, 12))
        t = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float32)
    image = c1 * (1 - t[..., None]) + c2 * t[..., None]
    return Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8))


def _clutter(rng, image: Image.Image) -> None:
    """Draw distractors: ellipses, boxes, triangles, lines and banana-shaped arcs of other colours."""
    draw = ImageDraw.Draw(image)
    size = image.size[0]
    for _ in range(int(rng.integers(2, 10))):
        colour = _distractor_colour(rng)
        x, y = rng.uniform(-0.1, 1.1, 2) * size
        w, h = rng.uniform(0.03, 0.3, 2) * size
        kind = rng.integers(5)
        if kind == 0:
            draw.ellipse([x, y, x + w, y + h], fill=colour)
        elif kind == 1:
            draw.rectangle([x, y, x + w, y + h], fill=colour)
        elif kind == 2:
            points = [(x + rng.uniform(-1, 1) * w, y + rng.uniform(-1, 1) * h) for _ in range(3)]
            draw.polygon(points, fill=colour)
        elif kind == 3:
            draw.line([x, y, x + w * rng.choice([-1, 1]), y + h], fill=colour, width=int(rng.integers(2, 8)))
        else:
            start = rng.uniform(0, 360)
            draw.arc([x, y, x + 2 * w, y + 2 * w], start, start + rng.uniform(60, 140), fill=colour,
                     width=int(max(3, w * rng.uniform(0.2, 0.5))))
    if rng.random() < 0.5:
        image.paste(image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0))))


def _banana_layers(rng, size: int, sides: tuple[float, float] = (MIN_SIDE, MAX_SIDE)):
    """One banana: ``(coverage (H, W) in [0, 1], colour (H, W, 3) in [0, 1])``, or ``None`` if it
    does not fit inside the image with its box's longer side within ``sides`` (fractions of the
    image side)."""
    scale = sides[1] / MAX_SIDE                              # 1 for the book's bananas: the same draws
    length = rng.uniform(0.2, 0.55) * scale * size           # chord length in pixels
    half = length / 2
    bend = rng.uniform(0.22, 0.5)                            # sagitta / half-length
    thickness = rng.uniform(0.2, 0.32)                       # max half-thickness / half-length
    angle = rng.uniform(0, 2 * math.pi)
    cx, cy = rng.uniform(0.1, 0.9, 2) * size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy
    u = (dx * math.cos(angle) + dy * math.sin(angle)) / half      # along the banana, -1..1
    v = (-dx * math.sin(angle) + dy * math.cos(angle)) / half     # across
    centre = bend * (1 - u ** 2) - bend / 2
    profile = np.clip(1 - u ** 2, 0, 1) ** 0.55                   # tapers at the tips
    half_width = thickness * profile + 0.02
    across = (v - centre) / half_width                            # -1..1 inside
    pixel = 1.0 / half                                            # one pixel, in (u, v) units
    body = np.clip((half_width - np.abs(v - centre)) / pixel + 0.5, 0, 1) * (np.abs(u) <= 1)
    stem_end = 1.0 + rng.uniform(0.06, 0.14)
    stem = ((u > 0.9) & (u < stem_end) & (np.abs(v - centre) < thickness * 0.22 + pixel)).astype(np.float32)
    coverage = np.maximum(body, stem)
    if coverage[0].max() > 0.1 or coverage[-1].max() > 0.1 or coverage[:, 0].max() > 0.1 or coverage[:, -1].max() > 0.1:
        return None
    ys, xs = np.nonzero(coverage >= 0.5)
    if xs.size == 0:
        return None
    side = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) / size
    if not sides[0] <= side <= sides[1]:
        return None
    base = np.array([rng.uniform(0.85, 1.0), rng.uniform(0.7, 0.9), rng.uniform(0.05, 0.3)], np.float32)
    lit = rng.choice([-1.0, 1.0])
    shade = np.clip(1.05 - 0.3 * across ** 2 - 0.12 * lit * across, 0.45, 1.1)     # a rounded, lit side
    colour = base * shade[..., None]
    tip = np.clip((np.abs(u) - 0.78) / 0.22, 0, 1) ** 1.5                         # darker tips
    dark = np.array([0.35, 0.25, 0.08], np.float32) * rng.uniform(0.7, 1.2)
    colour = colour * (1 - tip[..., None]) + dark * tip[..., None]
    stem_colour = np.array([0.35, 0.4, 0.12], np.float32) * rng.uniform(0.7, 1.2)
    colour = np.where(stem[..., None] > body[..., None], stem_colour, colour)
    for _ in range(int(rng.integers(0, 12))):                                     # brown speckles
        su, sv = rng.uniform(-0.8, 0.8), rng.uniform(-0.6, 0.6)
        spot = ((u - su) ** 2 + ((v - centre) / half_width - sv) ** 2 * 0.05) < rng.uniform(1e-4, 2e-3)
        colour = np.where(spot[..., None], colour * 0.55, colour)
    return coverage, np.clip(colour, 0, 1)


def render_banana(rng, size: int = IMAGE_SIZE, sides: tuple[float, float] = (MIN_SIDE, MAX_SIDE)
                  ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Draw one image: ``(uint8 (size, size, 3), (xmin, ymin, xmax, ymax))``, the box in pixels with
    exclusive ``xmax``/``ymax`` (the pixels with at least half banana coverage), its longer side
    within ``sides`` of the image side (the book's bananas by default; :data:`SMALL_SIDES` for the
    small ones)."""
    image = _background(rng, size)
    _clutter(rng, image)
    layers = None
    while layers is None:
        layers = _banana_layers(rng, size, sides)
    coverage, colour = layers
    pixels = np.asarray(image, np.float32) / 255
    pixels = pixels * (1 - coverage[..., None]) + colour * coverage[..., None]
    pixels += rng.normal(0, rng.uniform(0, 0.04), pixels.shape)                  # sensor noise
    ys, xs = np.nonzero(coverage >= 0.5)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8), box


def banana_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws image ``index`` of ``split``: independent of every other image."""
    return np.random.default_rng([int(seed), SPLIT_IDS[split], int(index)])
