"""NMS and multibox_detection (RELIABILITY R21-R25), against the book and across backends."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import HAS_TORCH, assert_close, assert_same

# The book's NMS example: four predicted boxes (offsets zero), dog and cat probabilities.
BOOK_ANCHORS = np.array([[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95],
                         [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]], np.float32)
BOOK_CLS_PROBS = np.array([[0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]], np.float32)
BOOK_OUTPUT = [[0, 0.9, 0.1, 0.08, 0.52, 0.92],
               [1, 0.9, 0.55, 0.2, 0.9, 0.88],
               [-1, 0.8, 0.08, 0.2, 0.56, 0.95],
               [-1, 0.7, 0.15, 0.3, 0.62, 0.91]]


def host(backend, x):
    return backend.to_numpy(x)


def run_nms(backend, boxes, scores, thr):
    return host(backend, backend.nms(backend.asarray(boxes), backend.asarray(scores), thr))


def boxes_with_iou(rng, n, iou_thresh):
    """torchvision's construction: the last box overlaps the first at IoU = threshold + 1e-5."""
    boxes = (rng.random((n, 4)) * 100).astype(np.float32)
    boxes[:, 2:] += boxes[:, :2]
    boxes[-1] = boxes[0]
    x0, _, x1, _ = boxes[-1].tolist()
    iou_thresh += 1e-5
    boxes[-1, 2] += (x1 - x0) * (1 - iou_thresh) / iou_thresh
    return boxes, rng.random(n).astype(np.float32)


# ---- the book's example ----------------------------------------------------------------------------

def test_book_nms_example(backend):
    # conf per box is [0.9, 0.8, 0.7, 0.9]: boxes 0 and 3 tie, the lower index comes first.
    assert_same(run_nms(backend, BOOK_ANCHORS, np.array([0.9, 0.8, 0.7, 0.9], np.float32), 0.5), [0, 3])


def test_book_detection_example(backend):
    output = host(backend, backend.multibox_detection(backend.asarray(BOOK_CLS_PROBS[None]),
                                                      backend.asarray(np.zeros((1, 16), np.float32)),
                                                      backend.asarray(BOOK_ANCHORS[None]), nms_threshold=0.5))
    assert output.shape == (1, 4, 6)
    np.testing.assert_allclose(output[0], BOOK_OUTPUT, atol=1e-6)


# ---- reliability cases -----------------------------------------------------------------------------

@pytest.mark.parametrize("thr", [0.2, 0.5, 0.8])
@pytest.mark.parametrize("seed", range(10))
def test_nms_cross_backend_R21(other, ref, thr, seed):
    boxes, scores = boxes_with_iou(np.random.default_rng(seed), 1000, thr)
    expected = ref.nms(boxes, scores, thr)
    actual = run_nms(other, boxes, scores, thr)
    assert_same(actual, expected)
    assert not (0 in actual and 999 in actual)  # the pair just above the threshold is suppressed


@pytest.mark.parametrize("seed", range(6))
def test_nms_on_a_grid_of_tied_scores_and_ious_cross_backend(other, ref, seed):
    """Boxes snapped to an 1/8 grid (duplicates, IoUs exactly 1/3, 1/2 ...) with scores in quarters:
    every backend's NMS (paddle's C++ kernel included) keeps the reference's boxes in its order."""
    rng = np.random.default_rng(seed)
    for n, thr in ((300, 1 / 3), (300, 0.5), (60, 0.25), (1, 0.5)):
        xy = rng.uniform(0, 1, (n, 2))
        boxes = (np.round(np.concatenate([xy, xy + rng.uniform(0.05, 0.4, (n, 2))], 1) * 8) / 8).astype(np.float32)
        scores = (np.round(rng.uniform(0, 1, n) * 4) / 4).astype(np.float32)
        assert_same(run_nms(other, boxes, scores, thr), ref.nms(boxes, scores, thr))


@pytest.mark.parametrize("thr", [0.2, 0.5, 0.8])
def test_nms_pair_just_above_threshold_is_suppressed_R21(backend, thr):
    boxes, scores = boxes_with_iou(np.random.default_rng(0), 1000, thr)
    keep = run_nms(backend, boxes, scores, thr)
    assert not (0 in keep and 999 in keep)
    # kept boxes never overlap more than the threshold
    iou = host(backend, backend.box_iou(backend.asarray(boxes[keep]), backend.asarray(boxes[keep])))
    assert (np.triu(iou, 1) <= thr).all()


def test_iou_equal_to_threshold_keeps_both_R22(backend):
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], np.float32)
    assert_same(run_nms(backend, boxes, np.array([0.9, 0.8], np.float32), 0.5), [0, 1])


def test_threshold_zero_suppresses_any_overlap_R22(backend):
    boxes = np.array([[0, 0, 10, 10], [9.9, 9.9, 20, 20], [10, 10, 20, 20]], np.float32)
    # box 1 overlaps box 0 by a sliver and is suppressed; box 2 only touches box 0 and is kept
    assert_same(run_nms(backend, boxes, np.array([0.9, 0.8, 0.7], np.float32), 0.0), [0, 2])
    # without box 0, box 1 is kept and suppresses box 2
    assert_same(run_nms(backend, boxes[1:], np.array([0.8, 0.7], np.float32), 0.0), [0])


@pytest.mark.parametrize("boxes, scores, match", [
    (np.zeros(4), np.zeros(1), r"Expected boxes of shape \[N, 4\]"),
    (np.zeros((3, 5)), np.zeros(3), r"Expected boxes of shape \[N, 4\]"),
    (np.zeros((3, 4)), np.zeros((3, 2)), r"Expected scores of shape \[N\]"),
    (np.zeros((3, 4)), np.zeros(2), r"boxes has 3 rows but scores has 2"),
    (np.zeros((2, 4)), np.array([0.5, np.nan]), r"scores contains a non-finite value nan at index 1"),
    (np.array([[0, 0, 1, 1], [0, np.nan, 1, 1]]), np.zeros(2), r"boxes contains a non-finite coordinate"),
    (np.array([[0, 0, 1, 1], [2, 0, 1, 1]]), np.zeros(2), r"boxes has a box with xmax < xmin"),
], ids=["boxes-1d", "boxes-5", "scores-2d", "n-mismatch", "nan-score", "nan-box", "inverted"])
def test_nms_malformed_input_R23(backend, boxes, scores, match):
    with pytest.raises(ValueError, match=match):
        backend.nms(backend.asarray(boxes.astype(np.float32)), backend.asarray(scores.astype(np.float32)), 0.5)


def test_nms_bad_threshold(backend):
    with pytest.raises(ValueError, match="iou_threshold"):
        run_nms(backend, BOOK_ANCHORS, np.ones(4, np.float32), -0.1)


def test_nms_empty_and_single_R24(backend):
    keep = run_nms(backend, np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5)
    assert keep.shape == (0,) and keep.dtype == np.int64
    assert_same(run_nms(backend, BOOK_ANCHORS[:1], np.array([0.3], np.float32), 0.5), [0])


@pytest.mark.parametrize("thr", [0.0, 0.5])
def test_empty_boxes_never_suppress_cross_backend(backend, ref, thr):
    """Two empty boxes at the same point have IoU 0 (0/0 by the formula): neither suppresses the
    other, even at threshold 0, on every backend and in per-class NMS too; a real overlap still does."""
    boxes = np.array([[0.2, 0.2, 0.2, 0.2], [0.2, 0.2, 0.2, 0.2], [0.1, 0.1, 0.5, 0.5],
                      [0.1, 0.1, 0.5, 0.52], [0.6, 0.6, 0.6, 0.9]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    expected = run_nms(ref, boxes, scores, thr)
    assert_same(expected, [0, 1, 2, 4])
    assert_same(run_nms(backend, boxes, scores, thr), expected)
    groups = np.array([0, 0, 1, 1, 0])
    kept = host(backend, backend.batched_nms(backend.asarray(boxes), backend.asarray(scores),
                                             backend.asarray(groups), thr))
    assert_same(kept, [0, 1, 2, 4])


def test_detection_all_below_threshold_R24(backend):
    probs = np.full((2, 3, 4), 0.001, np.float32)
    probs[:, 0] = 0.998
    out = host(backend, backend.multibox_detection(backend.asarray(probs), backend.asarray(np.zeros((2, 16), np.float32)),
                                                   backend.asarray(BOOK_ANCHORS[None])))
    assert out.shape == (2, 4, 6)
    assert (out[..., 0] == -1).all()
    np.testing.assert_allclose(out[..., 1], 0.999, rtol=1e-6)  # 1 - conf, as the book


@pytest.mark.parametrize("seed", range(3))
def test_tied_scores_are_stable_R25(backend, ref, seed):
    rng = np.random.default_rng(seed)
    boxes = (rng.random((300, 4)) * 50).astype(np.float32)
    boxes[:, 2:] += boxes[:, :2]
    scores = rng.choice(np.array([0.2, 0.5, 0.9], np.float32), size=300)
    keep = run_nms(backend, boxes, scores, 0.5)
    assert_same(keep, ref.nms(boxes, scores, 0.5))
    # by decreasing score, and by increasing index within a score
    order = np.lexsort((keep, -scores[keep]))
    assert_same(keep, keep[order])


def test_identical_boxes_keep_the_first(backend):
    boxes = np.tile(BOOK_ANCHORS[:1], (5, 1))
    assert_same(run_nms(backend, boxes, np.full(5, 0.5, np.float32), 0.5), [0])


# ---- multibox_detection across backends and against the book ---------------------------------------

def _detection_inputs(ref, rng, batch=3, num_classes=3, shape=(1, 3, 6, 5)):
    anchors = ref.multibox_prior(np.zeros(shape, np.float32), [0.3, 0.5], [1, 2, 0.5])
    num_anchors = anchors.shape[1]
    logits = rng.normal(0, 2, size=(batch, num_classes + 1, num_anchors))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    offsets = rng.normal(0, 1, size=(batch, 4 * num_anchors))
    return probs.astype(np.float32), offsets.astype(np.float32), anchors


@pytest.mark.parametrize("nms_threshold", [0.3, 0.5, 0.7])
@pytest.mark.parametrize("seed", range(3))
def test_multibox_detection_cross_backend(other, ref, seed, nms_threshold):
    probs, offsets, anchors = _detection_inputs(ref, np.random.default_rng(seed))
    expected = ref.multibox_detection(probs, offsets, anchors, nms_threshold=nms_threshold, pos_threshold=0.3)
    actual = host(other, other.multibox_detection(other.asarray(probs), other.asarray(offsets), other.asarray(anchors),
                                                  nms_threshold=nms_threshold, pos_threshold=0.3))
    assert_same(actual[..., 0], expected[..., 0])
    assert_close(actual[..., 1:], expected[..., 1:])


def test_multibox_detection_float64(backend, ref):
    probs, offsets, anchors = _detection_inputs(ref, np.random.default_rng(7), batch=2)
    expected = ref.multibox_detection(probs.astype(np.float64), offsets.astype(np.float64), anchors)
    actual = host(backend, backend.multibox_detection(backend.asarray(probs.astype(np.float64)),
                                                      backend.asarray(offsets.astype(np.float64)),
                                                      backend.asarray(anchors)))
    assert actual.dtype == np.float64
    assert_same(actual[..., 0], expected[..., 0])
    assert_close(actual[..., 1:], expected[..., 1:], "float64")


@pytest.mark.skipif(not HAS_TORCH, reason="the book's reference code needs torch")
@pytest.mark.parametrize("seed", range(4))
def test_multibox_detection_matches_book(backend, ref, seed):
    import torch

    from multissd.bench import book_reference as book
    probs, offsets, anchors = _detection_inputs(ref, np.random.default_rng(seed), batch=2)
    expected = book.multibox_detection(torch.from_numpy(probs), torch.from_numpy(offsets),
                                       torch.from_numpy(anchors)).numpy()
    actual = host(backend, backend.multibox_detection(backend.asarray(probs), backend.asarray(offsets),
                                                      backend.asarray(anchors)))
    for image in range(2):
        detected = expected[image, :, 0] >= 0
        num = int(detected.sum())
        assert num > 0
        # the detections: the book's rows, in the book's order
        assert_same(actual[image, :num, 0], expected[image, detected, 0])
        assert_close(actual[image, :num, 1:], expected[image, detected, 1:])
        assert (actual[image, num:, 0] == -1).all()
        # the background rows: the same rows, in anchor order
        rest_expected = expected[image, ~detected]
        rest_actual = actual[image, num:]
        key = lambda rows: rows[np.lexsort(rows[:, ::-1].T)]  # noqa: E731
        assert_close(key(rest_actual), key(rest_expected))


def test_detection_bad_shapes(backend, ref):
    probs, offsets, anchors = _detection_inputs(ref, np.random.default_rng(0), batch=2)
    p, o, a = backend.asarray(probs), backend.asarray(offsets), backend.asarray(anchors)
    with pytest.raises(ValueError, match=r"Batch sizes differ: cls_probs has 2 images but offset_preds has 1"):
        backend.multibox_detection(p, backend.asarray(offsets[:1]), a)
    with pytest.raises(ValueError, match=r"Expected offset_preds of shape \[B, 4\*A\]"):
        backend.multibox_detection(p, backend.asarray(offsets[:, :-4]), a)
    with pytest.raises(ValueError, match=r"cls_probs has \d+ anchors per image but anchors has"):
        backend.multibox_detection(p, o, backend.asarray(anchors[:, :-1]))
    with pytest.raises(ValueError, match=r"Expected cls_probs of shape \[B, C, A\] with C >= 2"):
        backend.multibox_detection(backend.asarray(probs[:, :1]), o, a)
    bad = probs.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"cls_probs contains a non-finite value at index \[1, 2, 3\]"):
        backend.multibox_detection(backend.asarray(bad), o, a)


# ---- per-class post-processing (torchvision's SSD) -------------------------------------------------

def run_batched(backend, boxes, scores, idxs, thr):
    return host(backend, backend.batched_nms(backend.asarray(boxes), backend.asarray(scores),
                                             backend.asarray(idxs), thr))


def per_class_loop(ref, boxes, scores, idxs, thr):
    """batched_nms spelled out: nms per class, then all kept by decreasing score (ties: lower index)."""
    kept = [np.flatnonzero(idxs == c)[ref.nms(boxes[idxs == c], scores[idxs == c], thr)] for c in np.unique(idxs)]
    kept = np.concatenate(kept)
    return kept[np.lexsort((kept, -scores[kept]))]


@pytest.mark.parametrize("seed", range(6))
def test_batched_nms_cross_backend(backend, ref, seed):
    rng = np.random.default_rng(seed)
    boxes, scores = boxes_with_iou(rng, 700, 0.5)
    scores[rng.random(700) < 0.2] = 0.5  # ties
    idxs = rng.integers(0, 4, 700)
    expected = per_class_loop(ref, boxes, scores, idxs, 0.5)
    assert_same(run_batched(backend, boxes, scores, idxs, 0.5), expected)


def test_batched_nms_never_suppresses_across_classes(backend):
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]], np.float32)
    scores = np.array([0.5, 0.9, 0.7, 0.8], np.float32)
    assert_same(run_batched(backend, boxes, scores, np.array([0, 1, 0, 1]), 0.5), [1, 2])
    assert_same(run_batched(backend, boxes, scores, np.array([0, 1, 2, 3]), 0.5), [1, 3, 2, 0])
    assert_same(run_batched(backend, boxes[:0], scores[:0], np.zeros(0, np.int64), 0.5), np.zeros(0, np.int64))


def test_batched_nms_bad_input(backend):
    boxes, scores = np.zeros((3, 4), np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"Expected idxs of shape \[N\] = \[3\]"):
        backend.batched_nms(backend.asarray(boxes), backend.asarray(scores), backend.asarray(np.zeros(2, np.int64)), 0.5)
    with pytest.raises(TypeError, match="Expected idxs to hold integer classes"):
        backend.batched_nms(backend.asarray(boxes), backend.asarray(scores), backend.asarray(scores), 0.5)


def detection_case(rng, batch=3, classes=4, anchors=600):
    logits = rng.normal(0, 2.5, (batch, classes, anchors))
    probs = (np.exp(logits) / np.exp(logits).sum(1, keepdims=True)).astype(np.float32)
    probs[:, :, ::7] = probs[:, :, 3:4]  # tied scores across anchors
    offsets = rng.normal(0, 1.5, (batch, 4 * anchors)).astype(np.float32)  # some boxes leave the image
    corner = rng.uniform(-0.1, 0.8, (anchors, 2))
    anchor_boxes = np.concatenate([corner, corner + rng.uniform(0.05, 0.4, (anchors, 2))], 1).astype(np.float32)
    return probs, offsets, anchor_boxes[None]


def per_class_reference(ref, probs, offsets, anchor_boxes, score_threshold, nms_threshold, topk, cap):
    """torchvision's SSD.postprocess_detections, step by step, with stable ties."""
    out = []
    for i in range(len(probs)):
        boxes = np.clip(ref.offset_inverse(anchor_boxes[0], offsets[i].reshape(-1, 4)), 0, 1)
        all_boxes, all_scores, all_labels = [], [], []
        for c in range(1, probs.shape[1]):
            score = probs[i, c]
            keep = np.flatnonzero(score > score_threshold)
            keep = keep[np.argsort(-score[keep], kind="stable")][:topk]
            all_boxes.append(boxes[keep]), all_scores.append(score[keep]), all_labels.append(np.full(len(keep), c - 1))
        boxes, scores, labels = map(np.concatenate, (all_boxes, all_scores, all_labels))
        keep = per_class_loop(ref, boxes, scores, labels, nms_threshold)[:cap]
        out.append((boxes[keep], scores[keep], labels[keep]))
    return out


@pytest.mark.parametrize("score_threshold, nms_threshold, topk, cap", [(0.01, 0.45, 400, 200), (0.3, 0.3, 20, 15)])
@pytest.mark.parametrize("seed", range(3))
def test_detection_per_class_cross_backend(backend, ref, seed, score_threshold, nms_threshold, topk, cap):
    probs, offsets, anchor_boxes = detection_case(np.random.default_rng(seed))
    expected = per_class_reference(ref, probs, offsets, anchor_boxes, score_threshold, nms_threshold, topk, cap)
    actual = backend.multibox_detection_per_class(
        backend.asarray(probs), backend.asarray(offsets), backend.asarray(anchor_boxes), score_threshold,
        nms_threshold, topk, cap)
    assert len(actual) == len(expected)
    for image, (boxes, scores, labels) in zip(actual, expected):
        assert set(image) == {"boxes", "scores", "labels"}
        assert host(backend, image["labels"]).dtype == np.int64
        assert_same(host(backend, image["labels"]), labels)
        assert_close(host(backend, image["scores"]), scores)
        assert_close(host(backend, image["boxes"]), boxes)
        assert 0 < len(labels) <= cap and (np.diff(scores) <= 0).all()
        assert boxes.min() >= 0 and boxes.max() <= 1  # clipped to the image


def test_detection_per_class_feeds_mean_average_precision(backend):
    from multissd.metrics import mean_average_precision
    probs, offsets, anchor_boxes = detection_case(np.random.default_rng(9), batch=2)
    images = backend.multibox_detection_per_class(backend.asarray(probs), backend.asarray(offsets),
                                                  backend.asarray(anchor_boxes))
    preds = [{k: host(backend, v) for k, v in image.items()} for image in images]
    targets = [{"boxes": p["boxes"][:2], "labels": p["labels"][:2]} for p in preds]
    assert mean_average_precision(preds, targets)["map_50"] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(score_threshold=1.5), ValueError, r"Expected score_threshold in \[0.0, 1.0\]"),
    (dict(topk_candidates=0), ValueError, "Expected topk_candidates >= 1"),
    (dict(detections_per_image=2.5), TypeError, "Expected detections_per_image to be an int >= 1"),
])
def test_detection_per_class_bad_options(backend, kwargs, error, match):
    probs, offsets, anchor_boxes = detection_case(np.random.default_rng(0), batch=1, anchors=10)
    with pytest.raises(error, match=match):
        backend.multibox_detection_per_class(backend.asarray(probs), backend.asarray(offsets),
                                             backend.asarray(anchor_boxes), **kwargs)


# ---- soft-NMS (the chapter's exercise; MMCV's linear and Gaussian decays) ----------------------------

def mmcv_soft_nms(boxes, scores, iou_threshold, sigma, min_score, method):
    """MMCV's soft_nms CPU loop written out (in place: the best box swapped to the front, a box whose
    score falls below min_score swapped with the last one and the count shortened), in float64."""
    boxes, scores = boxes.astype(np.float64).copy(), scores.astype(np.float64).copy()
    index, count = list(range(len(scores))), len(scores)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    i = 0
    while i < count:
        best = max(range(i, count), key=lambda k: (scores[k], -index[k]))
        for array in (boxes, scores, areas):
            array[[i, best]] = array[[best, i]]
        index[i], index[best] = index[best], index[i]
        pos = i + 1
        while pos < count:
            w = max(0.0, min(boxes[i, 2], boxes[pos, 2]) - max(boxes[i, 0], boxes[pos, 0]))
            h = max(0.0, min(boxes[i, 3], boxes[pos, 3]) - max(boxes[i, 1], boxes[pos, 1]))
            overlap = w * h / (areas[i] + areas[pos] - w * h)
            if method == "linear":
                scores[pos] *= 1 - overlap if overlap >= iou_threshold else 1.0
            else:
                scores[pos] *= np.exp(-overlap * overlap / sigma)
            if scores[pos] < min_score:
                last = count - 1
                for array in (boxes, scores, areas):
                    array[[pos, last]] = array[[last, pos]]
                index[pos], index[last] = index[last], index[pos]
                count -= 1
                continue
            pos += 1
        i += 1
    return np.array(index[:count], np.int64), scores[:count]


def run_soft_nms(backend, boxes, scores, *args):
    keep, kept = backend.soft_nms(backend.asarray(boxes), backend.asarray(scores), *args)
    return host(backend, keep), host(backend, kept)


@pytest.mark.parametrize("method", ["linear", "gaussian"])
@pytest.mark.parametrize("n", [0, 1, 7, 200])
def test_soft_nms_cross_backend(other, ref, rng, method, n):
    boxes, scores = boxes_with_iou(rng, max(n, 1), 0.5)
    boxes, scores = boxes[:n], scores[:n]
    args = (0.3, 0.5, 1e-3, method)
    keep, kept = run_soft_nms(other, boxes, scores, *args)
    expected_keep, expected_kept = run_soft_nms(ref, boxes, scores, *args)
    assert_same(keep, expected_keep)
    assert kept.dtype == np.float32
    assert_close(kept, expected_kept)


@pytest.mark.parametrize("method,sigma,threshold", [("linear", 0.5, 0.3), ("linear", 0.5, 0.0),
                                                    ("gaussian", 0.5, 0.3), ("gaussian", 0.1, 0.3)])
def test_soft_nms_is_mmcvs_algorithm(backend, rng, method, sigma, threshold):
    """The kept boxes, their order and their decayed scores are those of MMCV's loop."""
    boxes = (rng.random((60, 4)) * 50).astype(np.float32)
    boxes[:, 2:] += boxes[:, :2] + 5                     # many overlaps in a 100 x 100 field
    scores = rng.uniform(0.05, 1.0, 60).astype(np.float32)
    keep, kept = run_soft_nms(backend, boxes, scores, threshold, sigma, 1e-3, method)
    expected_keep, expected_kept = mmcv_soft_nms(boxes, scores, threshold, sigma, 1e-3, method)
    assert_same(keep, expected_keep)
    np.testing.assert_allclose(kept, expected_kept, rtol=1e-5)


def test_soft_nms_decays_instead_of_dropping(backend):
    """Two identical boxes: greedy NMS drops the second; linear soft-NMS takes its score to 0 (then
    below min_score: dropped); Gaussian keeps it at exp(-1 / sigma) of its score."""
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    keep, kept = run_soft_nms(backend, boxes, scores, 0.3, 0.5, 1e-3, "linear")
    assert_same(keep, np.array([0, 2]))
    keep, kept = run_soft_nms(backend, boxes, scores, 0.3, 0.5, 1e-3, "gaussian")
    assert_same(keep, np.array([0, 2, 1]))
    np.testing.assert_allclose(kept, [0.9, 0.7, 0.8 * np.exp(-2.0)], rtol=1e-6)
    keep, _ = run_soft_nms(backend, boxes, scores, 0.3, 0.5, 0.75, "gaussian")  # min_score: 0.7 dropped
    assert_same(keep, np.array([0]))


def test_soft_nms_float64_keeps_its_dtype(backend, rng):
    boxes, scores = boxes_with_iou(rng, 30, 0.4)
    keep, kept = run_soft_nms(backend, boxes.astype(np.float64), scores.astype(np.float64), 0.3, 0.5, 1e-3,
                              "gaussian")
    assert kept.dtype == np.float64 and len(keep) == len(kept)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(method="hard"), ValueError, r"method to be one of \['linear', 'gaussian'\]"),
    (dict(sigma=0.0), ValueError, "sigma to be a finite number > 0"),
    (dict(sigma="wide"), TypeError, "sigma to be a number"),
    (dict(min_score=-0.1), ValueError, "min_score to be a finite number >= 0"),
    (dict(iou_threshold=1.5), ValueError, r"iou_threshold in \[0.0, 1.0\]"),
])
def test_soft_nms_bad_options(backend, kwargs, error, match):
    boxes = backend.asarray(np.array([[0, 0, 1, 1]], np.float32))
    scores = backend.asarray(np.array([0.5], np.float32))
    with pytest.raises(error, match=match):
        backend.soft_nms(boxes, scores, **kwargs)
