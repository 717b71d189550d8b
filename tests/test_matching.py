"""Anchor labelling: assign_anchor_to_bbox and multibox_target (RELIABILITY R07, R10-R13)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS, HAS_TORCH, assert_close, assert_same, random_boxes, random_labels

# The book's example (section "Labeling Anchor Boxes in Training Data"): a dog and a cat, 5 anchors.
BOOK_GROUND_TRUTH = np.array([[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]], dtype=np.float32)
BOOK_ANCHORS = np.array([[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                         [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]], dtype=np.float32)
BOOK_OFFSETS_PRINTED = [0, 0, 0, 0, 1.40, 10.0, 2.59, 7.18, -1.20, 0.269, 1.68, -1.57,
                        0, 0, 0, 0, -0.571, -1.00, 4.17e-06, 0.626]

# MMDetection's golden case (R10).
MMDET_PRIORS = np.array([[0, 0, 10, 10], [10, 10, 20, 20], [5, 5, 15, 15], [32, 32, 38, 42]], np.float32)
MMDET_GT = np.array([[0, 0, 10, 9], [0, 10, 10, 19]], np.float32)


def host(backend, x):
    return backend.to_numpy(x)


def target(backend, anchors, labels, **kwargs):
    return [host(backend, t) for t in backend.multibox_target(backend.asarray(anchors), backend.asarray(labels),
                                                               **kwargs)]


# ---- the book's small example --------------------------------------------------------------------

def test_book_example_class_labels(backend):
    offsets, mask, classes = target(backend, BOOK_ANCHORS[None], BOOK_GROUND_TRUTH[None])
    assert_same(classes, [[0, 1, 2, 0, 2]])
    assert classes.dtype == np.int64
    assert_same(mask, [[0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]])
    np.testing.assert_allclose(offsets[0], BOOK_OFFSETS_PRINTED, rtol=5e-3, atol=1e-5)


def test_book_example_assignment(backend):
    anchors_bbox_map = backend.assign_anchor_to_bbox(backend.asarray(BOOK_GROUND_TRUTH[:, 1:]),
                                                     backend.asarray(BOOK_ANCHORS), None)
    assert_same(host(backend, anchors_bbox_map), [-1, 0, 1, -1, 1])


# ---- golden and degenerate cases -----------------------------------------------------------------

def test_mmdet_golden_case_R10(backend):
    result = host(backend, backend.assign_anchor_to_bbox(backend.asarray(MMDET_GT), backend.asarray(MMDET_PRIORS),
                                                         iou_threshold=0.5))
    assert_same(result, [0, -1, 1, -1])


def test_empty_ground_truth_R11(backend):
    result = host(backend, backend.assign_anchor_to_bbox(backend.asarray(np.zeros((0, 4), np.float32)),
                                                         backend.asarray(MMDET_PRIORS)))
    assert_same(result, [-1, -1, -1, -1])
    offsets, mask, classes = target(backend, BOOK_ANCHORS[None], np.zeros((2, 0, 5), np.float32))
    assert offsets.shape == mask.shape == (2, 20) and classes.shape == (2, 5)
    assert not offsets.any() and not mask.any() and not classes.any()


def test_all_padding_image_is_all_background_R11(backend):
    labels = np.stack([BOOK_GROUND_TRUTH, np.full((2, 5), -1, np.float32)])
    offsets, mask, classes = target(backend, BOOK_ANCHORS[None], labels)
    assert_same(classes, [[0, 1, 2, 0, 2], [0, 0, 0, 0, 0]])
    assert not offsets[1].any() and not mask[1].any()


def test_empty_anchors_R12(backend):
    result = backend.assign_anchor_to_bbox(backend.asarray(MMDET_GT), backend.asarray(np.zeros((0, 4), np.float32)))
    result = host(backend, result)
    assert result.shape == (0,) and result.dtype == np.int64
    both = host(backend, backend.assign_anchor_to_bbox(backend.asarray(np.zeros((0, 4), np.float32)),
                                                       backend.asarray(np.zeros((0, 4), np.float32))))
    assert both.shape == (0,) and both.dtype == np.int64


def test_two_gts_share_best_anchor_R13a(backend):
    # Both boxes overlap anchor 0 most; greedy gives it to box 1 (IoU 0.81 > 0.64) and box 0 its next best.
    anchors = np.array([[0, 0, 10, 10], [0, 0, 8, 10], [50, 50, 60, 60]], np.float32)
    gts = np.array([[0, 0, 8, 8], [0, 0, 9, 9]], np.float32)
    result = host(backend, backend.assign_anchor_to_bbox(backend.asarray(gts), backend.asarray(anchors),
                                                         iou_threshold=0.9))
    assert_same(result, [1, 0, -1])


def test_gt_overlapping_no_anchor_is_force_matched_like_the_book_R13b(backend):
    # The book (unlike RELIABILITY R13's advice) gives every box an anchor, even at IoU 0:
    # the first anchor not yet taken. multissd follows the book; see assign_anchor_to_bbox's docstring.
    anchors = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], np.float32)
    gts = np.array([[20, 20, 30, 30], [90, 90, 95, 95]], np.float32)
    result = host(backend, backend.assign_anchor_to_bbox(backend.asarray(gts), backend.asarray(anchors)))
    assert_same(result, [1, 0, -1])


def test_fewer_anchors_than_boxes(backend):
    anchors = np.array([[0, 0, 10, 10]], np.float32)
    gts = np.array([[0, 0, 5, 5], [0, 0, 10, 9], [1, 1, 2, 2]], np.float32)
    assert_same(host(backend, backend.assign_anchor_to_bbox(backend.asarray(gts), backend.asarray(anchors))), [1])


def test_ties_take_the_lower_index(backend):
    # Two identical boxes and two identical anchors: every IoU is equal.
    anchors = np.array([[0, 0, 4, 4], [0, 0, 4, 4]], np.float32)
    gts = np.array([[0, 0, 4, 2], [0, 0, 4, 2]], np.float32)
    assert_same(host(backend, backend.assign_anchor_to_bbox(backend.asarray(gts), backend.asarray(anchors))), [0, 1])


@pytest.mark.parametrize("delta, expected", [(1e-5, [0]), (0.0, [0]), (-1e-5, [-1])], ids=["above", "equal", "below"])
def test_threshold_is_inclusive(backend, delta, expected):
    # IoU of these is exactly 0.5 in float32; the anchor is labelled by threshold when IoU >= threshold.
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 5]], np.float32)
    gts = np.array([[0, 0, 10, 5]], np.float32)
    result = host(backend, backend.assign_anchor_to_bbox(backend.asarray(gts), backend.asarray(anchors),
                                                         iou_threshold=0.5 - delta))
    assert result[0] == expected[0] and result[1] == 0


def test_padding_rows_are_never_matched(backend):
    # A padding row whose box coincides with an anchor must not take it.
    labels = np.array([[[-1, 0, 0.1, 0.2, 0.3], [0, 0.55, 0.2, 0.9, 0.88]]], np.float32)
    offsets, mask, classes = target(backend, BOOK_ANCHORS[None], labels)
    assert classes[0, 0] == 0 and mask[0, :4].sum() == 0
    assert_same(classes, [[0, 0, 1, 0, 1]])


def test_padding_in_the_middle(backend):
    labels = np.array([[BOOK_GROUND_TRUTH[0], [-1, -1, -1, -1, -1], BOOK_GROUND_TRUTH[1]]], np.float32)
    assert_same(target(backend, BOOK_ANCHORS[None], labels)[2], [[0, 1, 2, 0, 2]])


def test_anchor_layout_2d_or_3d(backend):
    a = target(backend, BOOK_ANCHORS, BOOK_GROUND_TRUTH[None])
    b = target(backend, BOOK_ANCHORS[None], BOOK_GROUND_TRUTH[None])
    for x, y in zip(a, b):
        assert_same(x, y)


def test_float64_labels_keep_float64(backend):
    offsets, mask, classes = target(backend, BOOK_ANCHORS[None].astype(np.float64), BOOK_GROUND_TRUTH[None].astype(np.float64))
    assert offsets.dtype == mask.dtype == np.float64
    assert_same(classes, [[0, 1, 2, 0, 2]])


# ---- cross-backend on random batches -------------------------------------------------------------

CASES = {
    "one_object": dict(batch=8, max_objects=1),
    "many_objects": dict(batch=6, max_objects=8),
    "padding": dict(batch=5, max_objects=4, pad_rows=3),
    "empty_images": dict(batch=6, max_objects=5, empty_images=(0, 3)),
    "many_classes": dict(batch=4, max_objects=6, num_classes=20),
}


def _anchors(ref, shape=(1, 3, 8, 6)):
    return ref.multibox_prior(np.zeros(shape, np.float32), [0.3, 0.5], [1, 2, 0.5])


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", range(3))
def test_multibox_target_cross_backend(other, ref, case, seed):
    rng = np.random.default_rng(seed)
    labels = random_labels(rng, **CASES[case])
    anchors = _anchors(ref)
    expected = ref.multibox_target(anchors, labels)
    actual = target(other, anchors, labels)
    assert_close(actual[0], expected[0])
    assert_same(actual[1], expected[1])
    assert_same(actual[2], expected[2])


@pytest.mark.parametrize("seed", range(3))
def test_multibox_target_ties_cross_backend(other, ref, seed):
    # Objects placed exactly on anchors (and duplicated) create many equal IoUs.
    rng = np.random.default_rng(seed)
    anchors = _anchors(ref, (1, 1, 4, 4))
    picks = rng.integers(0, anchors.shape[1], size=(3, 4))
    labels = np.concatenate([np.zeros((3, 4, 1), np.float32), np.clip(anchors[0][picks], 0.0, 1.0)], axis=-1)
    labels[:, 1] = labels[:, 0]
    labels[..., 3:] = np.maximum(labels[..., 3:], labels[..., 1:3] + 0.01)
    expected = ref.multibox_target(anchors, labels)
    actual = target(other, anchors, labels)
    for a, e in zip(actual[1:], expected[1:]):
        assert_same(a, e)
    assert_close(actual[0], expected[0])


def _grid_boxes(rng, n, cells):
    """(n, 4) boxes with corners on a ``cells`` x ``cells`` grid: many exactly equal IoUs."""
    lo = rng.integers(0, cells, (n, 2))
    hi = lo + 1 + rng.integers(0, cells - lo, (n, 2))
    return (np.concatenate([lo, hi], axis=1) / cells).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
def test_multibox_target_grid_ties_cross_backend(other, ref, seed):
    # Coarse grids, as many boxes as anchors or more, padding rows, one class per box slot (so that a
    # box matched to the wrong anchor shows in the class labels). Earlier vectorised versions went
    # wrong here once every anchor was taken while boxes were left.
    rng = np.random.default_rng(seed)
    for _ in range(25):
        cells, num_anchors = int(rng.choice([2, 3, 4])), int(rng.integers(1, 20))
        batch, num_gt = int(rng.integers(1, 4)), int(rng.integers(1, 12))
        anchors = _grid_boxes(rng, num_anchors, cells)[None]
        classes = np.broadcast_to(np.arange(num_gt, dtype=np.float32)[None, :, None] % 5, (batch, num_gt, 1))
        labels = np.concatenate([classes, _grid_boxes(rng, batch * num_gt, cells).reshape(batch, num_gt, 4)], 2)
        labels[rng.random((batch, num_gt)) < 0.2] = -1
        expected = ref.multibox_target(anchors, labels)
        actual = target(other, anchors, labels)
        assert_same(actual[2], expected[2])
        assert_same(actual[1], expected[1])
        assert_close(actual[0], expected[0])


@pytest.mark.parametrize("seed", range(3))
def test_assign_cross_backend(other, ref, seed):
    rng = np.random.default_rng(seed)
    anchors, gts = random_boxes(rng, 200), random_boxes(rng, 12, min_size=0.05)
    for thr in (0.3, 0.5, 0.7):
        expected = ref.assign_anchor_to_bbox(gts, anchors, iou_threshold=thr)
        assert_same(host(other, other.assign_anchor_to_bbox(other.asarray(gts), other.asarray(anchors),
                                                            iou_threshold=thr)), expected)


@pytest.mark.skipif(not HAS_TORCH, reason="the book's reference code needs torch")
@pytest.mark.parametrize("seed", range(3))
def test_multibox_target_matches_book(backend, seed):
    # The book's code handles neither padding nor empty images, so compare on full rows only.
    import torch

    from multissd.bench import book_reference as book
    rng = np.random.default_rng(seed)
    anchors = _anchors(backends_numpy())
    labels = random_labels(rng, batch=4, max_objects=3)
    labels[:, :, 0] = np.where(labels[:, :, 0] < 0, 0, labels[:, :, 0])
    labels[:, :, 1:] = np.where(labels[:, :, 1:] < 0, labels[:, :1, 1:], labels[:, :, 1:])  # duplicates, not padding
    expected = [t.numpy() for t in book.multibox_target(torch.from_numpy(anchors), torch.from_numpy(labels))]
    actual = target(backend, anchors, labels)
    assert_close(actual[0], expected[0])
    assert_same(actual[1], expected[1])
    assert_same(actual[2], expected[2])


def backends_numpy():
    from multissd import backends
    return backends.load("numpy")


# ---- bad input (R07) -----------------------------------------------------------------------------

@pytest.mark.parametrize("boxes", [[[1, 3, 1, 4]], [[2, 4, 3, 4]], [[0, 0, -5, 10]], [[np.nan, 0, 1, 1]],
                                   [[0, 0, np.inf, 1]]], ids=["zero-width", "zero-height", "negative", "nan", "inf"])
def test_invalid_target_boxes_R07(backend, boxes):
    labels = np.concatenate([np.zeros((1, 1, 1)), np.asarray(boxes, np.float64)[None]], axis=-1).astype(np.float32)
    with pytest.raises(ValueError, match=r"positive height and width. Found invalid box .* for target at index 0"):
        backend.multibox_target(backend.asarray(BOOK_ANCHORS[None]), backend.asarray(labels))


@pytest.mark.parametrize("shape", [(4,), (1, 5), (1, 2, 4), (1, 2, 6)])
def test_labels_of_wrong_shape_R07(backend, shape):
    with pytest.raises(ValueError, match=r"Expected target labels of shape \[B, G, 5\]"):
        backend.multibox_target(backend.asarray(BOOK_ANCHORS[None]), backend.asarray(np.zeros(shape, np.float32)))


@pytest.mark.parametrize("cls", [0.5, -2, np.nan])
def test_bad_class_value(backend, cls):
    labels = BOOK_GROUND_TRUTH[None].copy()
    labels[0, 1, 0] = cls
    with pytest.raises(ValueError, match=r"labels\[0, 1\] has class"):
        backend.multibox_target(backend.asarray(BOOK_ANCHORS[None]), backend.asarray(labels))


def test_anchors_of_wrong_shape(backend):
    with pytest.raises(ValueError, match=r"Expected anchors of shape \[1, A, 4\] or \[A, 4\]"):
        backend.multibox_target(backend.asarray(np.zeros((2, 5, 4), np.float32)), backend.asarray(BOOK_GROUND_TRUTH[None]))


def test_bad_threshold(backend):
    with pytest.raises(ValueError, match="iou_threshold"):
        backend.multibox_target(backend.asarray(BOOK_ANCHORS[None]), backend.asarray(BOOK_GROUND_TRUTH[None]),
                                iou_threshold=1.5)
    with pytest.raises(TypeError, match="iou_threshold"):
        backend.assign_anchor_to_bbox(backend.asarray(MMDET_GT), backend.asarray(MMDET_PRIORS), iou_threshold="0.5")


def test_inverted_ground_truth_box(backend):
    with pytest.raises(ValueError, match=r"xmax < xmin or ymax < ymin at index 1"):
        backend.assign_anchor_to_bbox(backend.asarray(np.array([[0, 0, 1, 1], [3, 0, 1, 1]], np.float32)),
                                      backend.asarray(MMDET_PRIORS))


@pytest.mark.parametrize("name", ["torch", "paddle"])
def test_assign_leaves_its_iou_matrix_alone(name, rng):
    """The batched matcher reads the IoU matrix it is given and changes nothing in it (torch wrote
    over padding rows in place, paddle did not)."""
    from multissd import backends
    if not backends.is_installed(name):
        pytest.skip(f"{name} not installed")
    box_ops = backends.load(name)
    jaccard = rng.uniform(0, 1, size=(2, 3, 7)).astype(np.float32)   # (B, G, A)
    is_object = np.array([[True, True, False], [True, False, False]])  # padding rows
    given = box_ops.asarray(jaccard)
    box_ops._assign(given, box_ops.asarray(is_object), 0.5)
    assert_same(box_ops.to_numpy(given), jaccard)


@pytest.mark.skipif("paddle" not in BACKENDS, reason="paddle is not installed or not selected")
def test_paddle_iou_with_anchors_is_the_pairwise_iou_to_the_bit():
    """Paddle's multibox_target computes IoUs on the anchors' distinct x- and y-intervals and
    gathers them back: the same numbers as the plain pairwise IoU, for grid anchors (TinySSD's
    5444), arbitrary anchors, zero-area boxes and anchors (IoU 0, never NaN), in float32 and 64."""
    import paddle

    from multissd.backends.paddle import boxes as pb

    rng = np.random.default_rng(5)
    grid = pb.multibox_prior(paddle.zeros([1, 3, 8, 8]), [0.2, 0.3], [1.0, 2.0, 0.5])[0]    # (256, 4)
    loose = paddle.to_tensor(random_boxes(rng, 300))
    flat = paddle.to_tensor(np.array([[0.1, 0.1, 0.1, 0.4], [0.5, 0.5, 0.5, 0.5], [0.2, 0.2, 0.6, 0.6]], np.float32))
    for anchors in (grid, loose, flat, paddle.concat([grid, flat])):
        boxes = random_boxes(rng, 4 * 6).reshape(4, 6, 4)
        boxes[0, :2] = [[0.3, 0.3, 0.3, 0.3], [0.5, 0.5, 0.5, 0.5]]  # zero-area ground truth
        for dtype in ("float32", "float64"):
            b, a = paddle.to_tensor(boxes).astype(dtype), anchors.astype(dtype)
            expected = pb._pairwise_iou(b, a)
            actual = pb._iou_with_anchors(b, a)
            assert not bool(paddle.isnan(actual).any())
            np.testing.assert_array_equal(actual.numpy(), expected.numpy())
