"""Bounding-box-aware augmentation, as the fastai lesson insists: the boxes move with the image.

Per training image, in this order (SSD's recipe, scaled to TinySSD): zoom-out (the image on a
larger canvas of its mean colour), SSD's random crop (a patch whose IoU with some object is at least
a random minimum, or no crop), resize back to the training size, horizontal flip, and the
photometric distortions (brightness, contrast, saturation, and for ``photo`` hue), applied to the
final image, where they cost least. Boxes are shifted, scaled and clipped with the image; an object
whose centre leaves the crop (mostly outside it) is dropped. Every draw comes from
``default_rng([seed, epoch, image index])``: an epoch's augmented images are the same when a run is
resumed. Batches are padded with -1 rows to their largest object count.

The named settings: ``none``; ``light`` (flip and colour jitter: the objects keep their sizes);
``ssd`` (also zoom-out up to 2x and the crops: TinySSD's smallest book anchor is 0.2 of the image,
so objects shrunk further could not be matched); ``photo`` (the SSD paper's whole recipe: its
photometric distortions, hue included, and zoom-out up to 4x, for anchors fitted to the data).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from multissd.backends.numpy.boxes import box_iou
from multissd.data.folder import PADDING
from multissd.errors import InputError

MIN_IOUS = (None, 0.1, 0.3, 0.5, 0.7, 0.9)  # SSD's crop modes; None keeps the whole image
_STREAM = 0xA06  # separates the augmentation draws from other uses of the run's seed


AUGMENTATIONS = ("light", "ssd", "photo", "none")


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (defaults: SSD's, with the zoom-out limited to
    2x instead of 4x: TinySSD's smallest anchor is 0.2 of the image, so objects shrunk further
    could not be matched)."""

    flip: float = 0.5
    jitter: float = 0.5            # probability of each of brightness, contrast, saturation
    brightness: float = 32.0       # +- pixel values
    contrast: tuple = (0.5, 1.5)
    saturation: tuple = (0.5, 1.5)
    hue: float = 0.0               # +- degrees of a hue rotation (0: none)
    zoom_out: float = 0.3
    max_zoom: float = 2.0
    crop: bool = True
    crop_trials: int = 50

    @classmethod
    def named(cls, name: str, max_zoom: float | None = None) -> "AugmentConfig | None":
        """The named setting (see the module docstring); ``max_zoom`` replaces its zoom-out limit."""
        if name not in AUGMENTATIONS:
            raise InputError(f"Unknown augmentation {name!r}; expected one of {', '.join(AUGMENTATIONS)}")
        config = {"ssd": cls(), "photo": cls(hue=18.0, zoom_out=0.5, max_zoom=4.0),
                  "light": cls(zoom_out=0.0, crop=False), "none": None}[name]
        if config is not None and max_zoom is not None:
            config = replace(config, max_zoom=float(max_zoom))
        return config


def _jitter(pixels: np.ndarray, rng, config: AugmentConfig) -> np.ndarray:
    """Colour jitter on float ``(H, W, 3)`` in 0..255."""
    if rng.random() < config.jitter:
        pixels = pixels + rng.uniform(-config.brightness, config.brightness)
    if rng.random() < config.jitter:
        pixels = (pixels - pixels.mean()) * rng.uniform(*config.contrast) + pixels.mean()
    if rng.random() < config.jitter:
        gray = pixels.mean(axis=2, keepdims=True)
        pixels = gray + (pixels - gray) * rng.uniform(*config.saturation)
    if config.hue and rng.random() < config.jitter:
        pixels = pixels @ _hue_rotation(np.radians(rng.uniform(-config.hue, config.hue)))
    return np.clip(pixels, 0, 255)


def _hue_rotation(angle: float) -> np.ndarray:
    """The ``(3, 3)`` matrix that turns RGB rows by ``angle`` around the grey axis: a rotation of the
    chroma plane of YIQ, which shifts the hue and keeps the brightness."""
    to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    cos, sin = np.cos(angle), np.sin(angle)
    turn = np.array([[1, 0, 0], [0, cos, -sin], [0, sin, cos]])
    return (np.linalg.inv(to_yiq) @ turn @ to_yiq).T.astype(np.float32)


def _zoom_out(pixels, boxes, rng, config: AugmentConfig):
    """The image at a random place on a canvas up to ``max_zoom`` times larger; boxes in pixels."""
    height, width = pixels.shape[:2]
    ratio = rng.uniform(1, config.max_zoom)
    canvas_h, canvas_w = int(height * ratio), int(width * ratio)
    top, left = int(rng.integers(0, canvas_h - height + 1)), int(rng.integers(0, canvas_w - width + 1))
    canvas = np.empty((canvas_h, canvas_w, 3), pixels.dtype)
    canvas[:] = pixels.reshape(-1, 3).mean(axis=0).round().astype(pixels.dtype)
    canvas[top:top + height, left:left + width] = pixels
    return canvas, boxes + np.array([left, top, left, top], boxes.dtype)


def _crop(pixels, boxes, classes, rng, config: AugmentConfig):
    """SSD's random crop: ``(pixels, boxes, classes)`` of a patch, or the inputs unchanged."""
    min_iou = MIN_IOUS[int(rng.integers(len(MIN_IOUS)))]
    if min_iou is None or len(boxes) == 0:
        return pixels, boxes, classes
    height, width = pixels.shape[:2]
    for _ in range(config.crop_trials):
        w, h = rng.uniform(0.3, 1.0) * width, rng.uniform(0.3, 1.0) * height
        if not 0.5 <= h / w <= 2:
            continue
        left, top = rng.uniform(0, width - w), rng.uniform(0, height - h)
        patch = np.array([left, top, left + w, top + h])
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        inside = ((centres > patch[:2]) & (centres < patch[2:])).all(axis=1)  # (n,)
        if not inside.any() or box_iou(patch[None], boxes[inside]).max() < min_iou:
            continue
        x0, y0, x1, y1 = int(left), int(top), int(np.ceil(left + w)), int(np.ceil(top + h))
        kept = np.clip(boxes[inside], [x0, y0, x0, y0], [x1, y1, x1, y1]) - np.array([x0, y0, x0, y0])
        return pixels[y0:y1, x0:x1], kept, classes[inside]
    return pixels, boxes, classes


def augment(image: np.ndarray, label: np.ndarray, rng, config: AugmentConfig = AugmentConfig()):
    """One augmented training image.

    Args:
        image: uint8 ``(3, H, W)``.
        label: float32 ``(G, 5)`` rows ``[class, xmin, ymin, xmax, ymax]`` normalised, -1 rows padding.
        rng: a ``numpy.random.Generator``.

    Returns:
        ``(uint8 (3, H, W), float32 (G, 5))``: the same size, objects first, padding after.
    """
    _, height, width = image.shape
    real = label[:, 0] >= 0
    classes = label[real, 0]
    boxes = label[real, 1:].astype(np.float64) * [width, height, width, height]  # (n, 4) pixels
    pixels = image.transpose(1, 2, 0)                                             # (H, W, 3) uint8
    if rng.random() < config.zoom_out:
        pixels, boxes = _zoom_out(pixels, boxes, rng, config)
    if config.crop:
        pixels, boxes, classes = _crop(pixels, boxes, classes, rng, config)
    h, w = pixels.shape[:2]
    if (h, w) != (height, width):
        pixels = np.asarray(Image.fromarray(np.ascontiguousarray(pixels)).resize((width, height), Image.BILINEAR))
    boxes = boxes / [w, h, w, h]  # normalised
    if rng.random() < config.flip:
        pixels = pixels[:, ::-1]
        boxes = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=1)
    pixels = _jitter(pixels.astype(np.float32), rng, config).round().astype(np.uint8)
    out = np.full_like(label, PADDING)
    out[:len(classes), 0] = classes
    out[:len(classes), 1:] = np.clip(boxes, 0, 1)
    return np.ascontiguousarray(pixels.transpose(2, 0, 1)), out


def trim_padding(labels: np.ndarray) -> np.ndarray:
    """``(B, G, 5)`` -> ``(B, G', 5)``: objects first in each image, padded to the batch's largest count."""
    real = labels[..., 0] >= 0                                    # (B, G)
    order = np.argsort(~real, axis=1, kind="stable")              # objects first, in their order
    labels = np.take_along_axis(labels, order[..., None], axis=1)
    return labels[:, :max(int(real.sum(axis=1).max(initial=0)), 1)]


class BatchSource:
    """Whole batches of a split, augmented or not: ``source[batch]`` -> ``(uint8 (B, 3, H, W),
    float32 (B, G', 5))`` for a list of image indices; ``batch.epoch`` (see
    :class:`~multissd.data.sampler.EpochBatchSampler`) seeds the augmentation."""

    def __init__(self, split, augment_config: AugmentConfig | None = None, seed: int = 0):
        self.split, self.config, self.seed = split, augment_config, int(seed)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, batch):
        indices = list(batch)
        images, labels = self.split.images[indices], self.split.labels[indices]
        if self.config is not None:
            epoch = int(getattr(batch, "epoch", 0))
            pairs = [augment(images[j], labels[j], np.random.default_rng([self.seed, epoch, int(i), _STREAM]),
                             self.config) for j, i in enumerate(indices)]
            images = np.stack([image for image, _ in pairs])
            labels = np.stack([label for _, label in pairs])
        return images, trim_padding(labels)
