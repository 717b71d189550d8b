"""Golden cases for the page's JavaScript box math (docs/javascripts/ssd/), from the NumPy reference.

    python tools/browser_golden.py OUT.json

Writes, as JSON, inputs and the NumPy backend's outputs for every function docs/javascripts/ssd/boxes.js
and resize.js port: anchors (TinySSD's five scales and random sizes and ratios), IoU (random boxes,
ties, empty boxes), offset decoding (with clamping), class probabilities (softmax and sigmoid
heads), NMS with tied scores, the book's ``multibox_detection``, ``multibox_detection_per_class``,
the book's anchor assignment, and Pillow's bilinear resize of random images to larger and smaller
sizes. ``tests/test_browser.py`` writes them and runs ``node --test`` on
``docs/javascripts/ssd/boxes.test.mjs``, which checks the JavaScript against them: integers exactly,
floats within 1e-5.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from multissd.backends.numpy import boxes as ref
from multissd.backends.numpy import nn as ref_nn
from multissd.model import TinySSDSpec


def _boxes(rng, n, low=0.0, high=1.0, quantum=None):
    corners = rng.uniform(low, high, (n, 2, 2))
    boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1).astype(np.float32)  # (n, 4)
    if quantum:  # coordinates on a grid: many exact ties of IoU and of area
        boxes = (np.round(boxes / quantum) * quantum).astype(np.float32)
    return boxes


def _flat(x) -> list:
    return np.asarray(x, np.float64).ravel().tolist()


def anchor_cases(rng) -> list[dict]:
    spec = TinySSDSpec()
    cases = [dict(height=h, width=w, sizes=list(spec.sizes[i]), ratios=list(spec.ratios[i]))
             for i, (h, w) in enumerate(spec.feature_map_sizes(256, 256))]
    cases += [dict(height=int(rng.integers(1, 6)), width=int(rng.integers(1, 6)),
                   sizes=rng.uniform(0.05, 0.9, rng.integers(1, 4)).astype(np.float32).tolist(),
                   ratios=rng.uniform(0.3, 3, rng.integers(1, 4)).astype(np.float32).tolist()) for _ in range(6)]
    for case in cases:
        data = np.zeros((1, 1, case["height"], case["width"]), np.float32)
        case["anchors"] = _flat(ref.multibox_prior(data, sizes=case["sizes"], ratios=case["ratios"]))
    return cases


def iou_cases(rng) -> list[dict]:
    cases = []
    for n, m, quantum in ((5, 7, None), (12, 9, 0.1), (0, 3, None), (4, 0, None)):
        a, b = _boxes(rng, n, quantum=quantum), _boxes(rng, m, quantum=quantum)
        if n and m:
            a[0] = b[0]                      # identical boxes
            a[1, 2:] = a[1, :2]              # an empty box
        cases.append(dict(boxes1=_flat(a), boxes2=_flat(b), iou=_flat(ref.box_iou(a, b))))
    return cases


def decode_cases(rng) -> list[dict]:
    anchors = _boxes(rng, 20, 0.05, 0.95)
    anchors[:, 2:] = np.maximum(anchors[:, 2:], anchors[:, :2] + 0.01)
    offsets = rng.normal(0, 2, (20, 4)).astype(np.float32)
    offsets[0, 2:] = 100  # beyond the clamp of log(1000 / 16)
    return [dict(anchors=_flat(anchors), offsets=_flat(offsets), boxes=_flat(ref.offset_inverse(anchors, offsets)))]


def probability_cases(rng) -> list[dict]:
    cases = []
    for head, columns in (("softmax", 2), ("softmax", 4), ("sigmoid", 4)):
        logits = rng.normal(0, 3, (30, columns)).astype(np.float32)
        logits[0] = 0  # ties
        probs = ref_nn.class_probabilities(logits[None], head)[0]
        cases.append(dict(head=head, columns=columns, logits=_flat(logits), probs=_flat(probs)))
    return cases


def nms_cases(rng) -> list[dict]:
    cases = []
    for n, quantum, threshold in ((40, 0.1, 0.5), (60, None, 0.45), (30, 0.2, 0.0), (1, None, 0.5), (0, None, 0.5)):
        boxes = _boxes(rng, n, quantum=quantum)
        scores = np.round(rng.uniform(0, 1, n), 1).astype(np.float32)  # many tied scores
        labels = rng.integers(0, 3, n)
        cases.append(dict(boxes=_flat(boxes), scores=_flat(scores), labels=labels.tolist(), threshold=threshold,
                          keep=ref.nms(boxes, scores, threshold).tolist(),
                          batched=ref.batched_nms(boxes, scores, labels, threshold).tolist()))
    return cases


def detection_cases(rng) -> list[dict]:
    spec = TinySSDSpec(num_classes=2)
    anchors = np.concatenate([ref.multibox_prior(np.zeros((1, 1, h, w), np.float32), sizes=spec.sizes[i],
                                                 ratios=spec.ratios[i])[0]
                              for i, (h, w) in enumerate(spec.feature_map_sizes(64, 64))])       # (A, 4)
    cases = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        logits = rng.normal(0, 1, (len(anchors), 3)).astype(np.float32)
        logits[:, 0] += 2
        logits[rng.choice(len(anchors), 20, replace=False), rng.integers(1, 3, 20)] += 6
        probs = ref_nn.class_probabilities(logits[None], "softmax")[0]                        # (A, 3)
        offsets = rng.normal(0, 0.5, (len(anchors), 4)).astype(np.float32)
        book = ref.multibox_detection(probs.T[None], offsets.reshape(1, -1), anchors[None])[0]
        found = ref.multibox_detection_per_class(probs.T[None], offsets.reshape(1, -1), anchors[None])[0]
        cases.append(dict(anchors=_flat(anchors), probs=_flat(probs), columns=3, offsets=_flat(offsets),
                          book=book.astype(np.float64).tolist(),
                          per_class=dict(boxes=found["boxes"].astype(np.float64).tolist(),
                                         scores=_flat(found["scores"]), labels=found["labels"].tolist())))
    return cases


def assignment_cases(rng) -> list[dict]:
    book_anchors = np.array([[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                             [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]], np.float32)
    book_truth = np.array([[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]], np.float32)
    cases = [(book_anchors, book_truth)]
    for g in (1, 3, 6):
        anchors = _boxes(rng, 40, quantum=0.05)
        anchors[:, 2:] = np.maximum(anchors[:, 2:], anchors[:, :2] + 0.05)  # anchors have a size
        truth = np.concatenate([rng.integers(0, 3, (g, 1)), _boxes(rng, g)], axis=1).astype(np.float32)
        cases.append((anchors, truth))
    out = []
    for anchors, truth in cases:
        labels = ref.multibox_target(anchors[None], truth[None])[2][0]
        out.append(dict(anchors=_flat(anchors), labels=_flat(truth),
                        assignment=ref.assign_anchor_to_bbox(truth[:, 1:], anchors).tolist(),
                        class_labels=labels.tolist()))
    return out


def resize_cases(rng) -> list[dict]:
    cases = []
    for (width, height), (out_w, out_h) in (((37, 29), (64, 64)), ((300, 180), (256, 256)), ((97, 256), (256, 256)),
                                            ((256, 256), (128, 100)), ((64, 64), (64, 64))):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        resized = np.asarray(Image.fromarray(pixels).resize((out_w, out_h), Image.BILINEAR))
        cases.append(dict(width=width, height=height, out_width=out_w, out_height=out_h,
                          rgb=pixels.ravel().tolist(), resized=resized.ravel().tolist()))
    return cases


def golden(seed: int = 0) -> dict:
    """Every golden case, from one seeded generator."""
    rng = np.random.default_rng(seed)
    return dict(anchors=anchor_cases(rng), iou=iou_cases(rng), decode=decode_cases(rng),
                probabilities=probability_cases(rng), nms=nms_cases(rng), detection=detection_cases(rng),
                assignment=assignment_cases(rng), resize=resize_cases(rng))


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "golden.json")
    out.write_text(json.dumps(golden()))
    print(f"wrote {out}")
