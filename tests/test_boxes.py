"""Box conversions, areas, IoU and anchors (RELIABILITY R01-R06), on every backend."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import HAS_TORCH, assert_close, assert_same, random_boxes

import multissd

INT_BOXES = [[0, 0, 100, 100], [0, 0, 50, 50], [200, 200, 300, 300], [0, 0, 25, 25]]
INT_BOXES2 = [[0, 0, 100, 100], [0, 0, 50, 50], [200, 200, 300, 300]]
INT_IOU = [[1.0, 0.25, 0.0], [0.25, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0625, 0.25, 0.0]]
FLOAT_BOXES = [[285.3538, 185.5758, 1193.5110, 851.4551],
               [285.1472, 188.7374, 1192.4984, 851.0669],
               [279.2440, 197.9812, 1189.4746, 849.2019]]
FLOAT_IOU = [[1.0, 0.9933, 0.9673], [0.9933, 1.0, 0.9737], [0.9673, 0.9737, 1.0]]


def host(backend, x):
    return backend.to_numpy(x)


# ---- conversions (R06) -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt_pair", [("xyxy", "xywh"), ("xyxy", "cxcywh"), ("xywh", "cxcywh")],
                         ids=lambda p: "-".join(p))
def test_box_convert_round_trip_R06(backend, fmt_pair):
    boxes = np.array([[0, 0, 100, 100], [0, 0, 0, 0], [10, 15, 30, 35], [23, 35, 93, 95]], dtype=np.float32)
    a, b = fmt_pair
    there = backend.box_convert(backend.asarray(boxes), a, b)
    back = backend.box_convert(there, b, a)
    assert_same(host(backend, back), boxes)


def test_box_convert_known_values_R06(backend):
    xyxy = np.array([[10, 20, 30, 60]], dtype=np.float32)
    assert_same(host(backend, backend.box_convert(backend.asarray(xyxy), "xyxy", "xywh")), [[10, 20, 20, 40]])
    assert_same(host(backend, backend.box_convert(backend.asarray(xyxy), "xyxy", "cxcywh")), [[20, 40, 20, 40]])
    assert_same(host(backend, backend.box_corner_to_center(backend.asarray(xyxy))), [[20, 40, 20, 40]])
    assert_same(host(backend, backend.box_center_to_corner(backend.asarray(np.array([[20, 40, 20, 40.]], np.float32)))),
                xyxy)


@pytest.mark.parametrize("bad", ["xyxyx", "XYXY", None, "cxcy"])
def test_box_convert_unknown_format_R06(backend, bad):
    boxes = backend.asarray(np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match="Unknown box format"):
        backend.box_convert(boxes, bad, "xyxy")
    with pytest.raises(ValueError, match="out_fmt"):
        backend.box_convert(boxes, "xyxy", bad)


def test_book_conversion_example(backend):
    # The book's dog and cat boxes: converting there and back gives the boxes again.
    boxes = np.array([[60.0, 45.0, 378.0, 516.0], [400.0, 112.0, 655.0, 493.0]], dtype=np.float32)
    t = backend.asarray(boxes)
    assert_same(host(backend, backend.box_center_to_corner(backend.box_corner_to_center(t))), boxes)


# ---- IoU ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["int16", "int32", "int64", "float32", "float64"])
def test_iou_int_boxes_R01(backend, dtype):
    iou = host(backend, backend.box_iou(backend.asarray(INT_BOXES, dtype), backend.asarray(INT_BOXES2, dtype)))
    assert iou.dtype == (np.float64 if dtype == "float64" else np.float32)
    np.testing.assert_allclose(iou, INT_IOU, atol=1e-4)


@pytest.mark.parametrize("dtype", ["int16", "int32", "int64", "float32", "float64"])
def test_iou_int_boxes_cross_backend_R01(other, ref, dtype):
    expected = ref.box_iou(np.asarray(INT_BOXES, dtype), np.asarray(INT_BOXES2, dtype))
    actual = host(other, other.box_iou(other.asarray(INT_BOXES, dtype), other.asarray(INT_BOXES2, dtype)))
    assert_same(actual, expected)


def test_iou_float16_no_overflow_R02(backend):
    boxes = backend.asarray(FLOAT_BOXES, "float16")
    iou = host(backend, backend.box_iou(boxes, boxes))
    assert np.isfinite(iou).all()
    np.testing.assert_allclose(iou, FLOAT_IOU, atol=0.002)


def test_iou_matches_pairwise_loop_R03(backend, rng):
    boxes1, boxes2 = random_boxes(rng, 5), random_boxes(rng, 7)
    iou = host(backend, backend.box_iou(backend.asarray(boxes1), backend.asarray(boxes2)))
    expected = np.zeros((5, 7))
    for i, a in enumerate(boxes1.astype(np.float64)):
        for j, b in enumerate(boxes2.astype(np.float64)):
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            expected[i, j] = inter / union
    assert_close(iou, expected)


@pytest.mark.parametrize("seed", range(4))
def test_iou_cross_backend(other, ref, seed):
    rng = np.random.default_rng(seed)
    boxes1, boxes2 = random_boxes(rng, 50), random_boxes(rng, 60)
    boxes2[:5] = boxes1[:5]  # identical pairs
    boxes2[5] = [0.3, 0.3, 0.3, 0.5]  # zero width
    assert_same(host(other, other.box_iou(other.asarray(boxes1), other.asarray(boxes2))), ref.box_iou(boxes1, boxes2))


def test_iou_empty_inputs_R04(backend):
    empty, three = backend.asarray(np.zeros((0, 4), np.float32)), backend.asarray(random_boxes(np.random.default_rng(1), 3))
    assert host(backend, backend.box_iou(empty, three)).shape == (0, 3)
    assert host(backend, backend.box_iou(three, empty)).shape == (3, 0)
    assert host(backend, backend.box_iou(empty, empty)).shape == (0, 0)
    assert host(backend, backend.box_area(empty)).shape == (0,)


def test_iou_zero_area_is_zero_not_nan_R05(backend):
    point = backend.asarray(np.array([[5, 5, 5, 5]], np.float32))
    line = backend.asarray(np.array([[5, 5, 5, 9]], np.float32))
    box = backend.asarray(np.array([[0, 0, 10, 10]], np.float32))
    assert host(backend, backend.box_iou(point, point)).tolist() == [[0.0]]
    assert host(backend, backend.box_iou(line, line)).tolist() == [[0.0]]
    assert host(backend, backend.box_iou(point, box)).tolist() == [[0.0]]


def test_box_area(backend):
    areas = host(backend, backend.box_area(backend.asarray(INT_BOXES, "int16")))
    assert areas.dtype == np.float32
    assert areas.tolist() == [10000, 2500, 10000, 625]


@pytest.mark.skipif(not HAS_TORCH, reason="the book's reference code needs torch")
def test_iou_matches_book(backend, rng):
    import torch

    from multissd.bench import book_reference as book
    boxes1, boxes2 = random_boxes(rng, 30), random_boxes(rng, 40)
    expected = book.box_iou(torch.from_numpy(boxes1), torch.from_numpy(boxes2)).numpy()
    assert_same(host(backend, backend.box_iou(backend.asarray(boxes1), backend.asarray(boxes2))), expected)


# ---- anchors -----------------------------------------------------------------------------------

BOOK_SIZES, BOOK_RATIOS = [0.75, 0.5, 0.25], [1, 2, 0.5]


def test_multibox_prior_book_example(backend):
    # The book: a 561 x 728 image, 3 sizes and 3 ratios -> 5 anchors per pixel.
    anchors = host(backend, backend.multibox_prior(backend.asarray(np.zeros((1, 3, 561, 728), np.float32)),
                                                   BOOK_SIZES, BOOK_RATIOS))
    assert anchors.shape == (1, 2042040, 4) and anchors.dtype == np.float32
    boxes = anchors.reshape(561, 728, 5, 4)
    np.testing.assert_allclose(boxes[250, 250, 0, :], [0.06, 0.07, 0.63, 0.82], atol=0.006)


@pytest.mark.parametrize("shape", [(1, 3, 561, 728), (2, 8, 20, 20), (1, 1, 3, 5), (4, 1), (1, 1, 1, 1)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("sizes, ratios", [(BOOK_SIZES, BOOK_RATIOS), ([0.2, 0.272], [1, 2, 0.5]), ([0.5], [1])],
                         ids=["book", "tinyssd", "single"])
def test_multibox_prior_cross_backend(other, ref, shape, sizes, ratios):
    data = np.zeros(shape, np.float32)
    expected = ref.multibox_prior(data, sizes, ratios)
    actual = host(other, other.multibox_prior(other.asarray(data), sizes, ratios))
    assert_same(actual, expected)  # bit-identical: matching downstream compares IoUs exactly


@pytest.mark.skipif(not HAS_TORCH, reason="the book's reference code needs torch")
@pytest.mark.parametrize("shape", [(1, 3, 561, 728), (1, 1, 3, 5)], ids=["book", "rect"])
def test_multibox_prior_matches_book(backend, shape):
    import torch

    from multissd.bench import book_reference as book
    expected = book.multibox_prior(torch.zeros(shape), BOOK_SIZES, BOOK_RATIOS).numpy()
    actual = host(backend, backend.multibox_prior(backend.asarray(np.zeros(shape, np.float32)), BOOK_SIZES, BOOK_RATIOS))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1.2e-7)


def test_multibox_prior_order_and_rectangular_maps(backend):
    # 2 rows x 3 columns, sizes [0.4, 0.2], ratios [1, 4]: K = 3 anchors per location.
    anchors = host(backend, backend.multibox_prior(backend.asarray(np.zeros((2, 3), np.float32)), [0.4, 0.2], [1, 4]))
    assert anchors.shape == (1, 18, 4)
    centres = (anchors[0, :, :2] + anchors[0, :, 2:]) / 2
    # location-major, row-major: the first K anchors share the centre of pixel (0, 0)
    np.testing.assert_allclose(centres[:3], [[1 / 6, 1 / 4]] * 3, atol=1e-6)
    np.testing.assert_allclose(centres[3], [3 / 6, 1 / 4], atol=1e-6)
    np.testing.assert_allclose(centres[9], [1 / 6, 3 / 4], atol=1e-6)
    wh = anchors[0, :3, 2:] - anchors[0, :3, :2]
    # ratio 1 anchors are square in pixels: width * W == height * H
    np.testing.assert_allclose(wh[0, 0] * 3, wh[0, 1] * 2, rtol=1e-6)
    np.testing.assert_allclose(wh[:, 1], [0.4, 0.2, 0.4 / 2], rtol=1e-6)  # heights: s / sqrt(r)
    np.testing.assert_allclose(wh[2, 0] / wh[2, 1] * 3 / 2, 4, rtol=1e-6)  # ratio 4 in pixels


@pytest.mark.parametrize("sizes, ratios, match", [
    ([], [1], "sizes"), ([0.5], [], "ratios"), ([0.5, -0.1], [1], "sizes"), ([0.5], [0], "ratios"),
    ([float("nan")], [1], "sizes")])
def test_multibox_prior_bad_arguments(backend, sizes, ratios, match):
    with pytest.raises(ValueError, match=match):
        backend.multibox_prior(backend.asarray(np.zeros((1, 3, 4, 4), np.float32)), sizes, ratios)


def test_multibox_prior_bad_data_shape(backend):
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        backend.multibox_prior(backend.asarray(np.zeros((5,), np.float32)), [0.5], [1])


def test_top_level_functions_dispatch(backend):
    boxes = backend.asarray(np.asarray(INT_BOXES, np.float32))
    result = multissd.box_iou(boxes, boxes)
    assert type(result) is type(boxes)


# ---- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("boxes1, match", [
    (np.zeros((2, 5)), r"Expected boxes1 of shape \[N, 4\] \(xmin, ymin, xmax, ymax\); received shape \[2, 5\]"),
    (np.zeros(4), r"Expected boxes1 of shape \[N, 4\]"),
    (np.zeros((1, 2, 4)), r"Expected boxes1 of shape \[N, 4\]"),
    (np.array([[0, 0, 1, 1], [5, 0, 1, 1]]), r"boxes1 has a box with xmax < xmin or ymax < ymin at index 1: "
                                             r"\[5, 0, 1, 1\]"),
    (np.array([[0, 3, 1, 1]]), r"xmax < xmin or ymax < ymin at index 0"),
    (np.array([[0, 0, np.nan, 1]]), r"boxes1 contains a non-finite coordinate \(nan or inf\) in the box at index 0"),
    (np.array([[0, 0, 1, 1], [-np.inf, 0, 1, 1]]), r"non-finite coordinate .* at index 1"),
], ids=["trailing-5", "1d", "3d", "inverted-x", "inverted-y", "nan", "inf"])
def test_box_iou_bad_input(backend, boxes1, match):
    with pytest.raises(ValueError, match=match):
        backend.box_iou(backend.asarray(boxes1.astype(np.float32)), backend.asarray(np.zeros((1, 4), np.float32)))


def test_box_functions_reject_non_tensors(backend):
    with pytest.raises(TypeError, match="Expected boxes to be a tensor"):
        backend.box_corner_to_center([[0, 0, 1, 1]])


def test_conversions_reject_wrong_trailing_dimension(backend):
    with pytest.raises(ValueError, match=r"Expected boxes of shape \[\.\.\., 4\]"):
        backend.box_corner_to_center(backend.asarray(np.zeros((3, 5), np.float32)))


def test_multibox_prior_bit_identical_for_any_sizes_ratios_and_shape_cross_backend(other, ref, rng):
    """Anchors agree bit for bit for arbitrary sizes, ratios and rectangular maps (torch computed its
    anchor widths another way and its CPU sqrt is not correctly rounded: 1 ulp off about a third of
    the time)."""
    for _ in range(60):
        sizes = list(np.round(rng.uniform(0.05, 1.0, rng.integers(1, 4)), rng.integers(1, 6)))
        ratios = list(np.round(rng.uniform(0.2, 4.0, rng.integers(1, 4)), rng.integers(1, 6)))
        data = np.zeros((1, 1, int(rng.integers(1, 9)), int(rng.integers(1, 9))), np.float32)
        expected = ref.multibox_prior(data, sizes, ratios)
        assert_same(host(other, other.multibox_prior(other.asarray(data), sizes, ratios)), expected)


# ---- R41: tensors that track gradients (the book's prediction code runs without no_grad) ------

def _tracking(other, array):
    """``array`` as a tensor of ``other``'s framework that tracks gradients."""
    tensor = other.asarray(array)
    if hasattr(tensor, "requires_grad_"):
        return tensor.requires_grad_(True)
    tensor.stop_gradient = False
    return tensor


def _tracks(tensor) -> bool:
    return bool(getattr(tensor, "requires_grad", False) or not getattr(tensor, "stop_gradient", True))


def test_box_functions_take_tensors_that_track_gradients_R41(other, ref, rng):
    """IoU stays differentiable; matching, NMS and detection read such tensors and return the same
    answers as without gradients, carrying none (torch raised "functions with out=... arguments
    don't support automatic differentiation")."""
    boxes = random_boxes(rng, 6)
    iou = other.box_iou(_tracking(other, boxes), _tracking(other, boxes[::-1].copy()))
    assert _tracks(iou)
    assert_same(host(other, iou), ref.box_iou(boxes, boxes[::-1].copy()))
    iou.sum().backward()
    scores = rng.uniform(size=6).astype(np.float32)
    kept = other.nms(_tracking(other, boxes), _tracking(other, scores), 0.3)
    assert not _tracks(kept) and host(other, kept).tolist() == ref.nms(boxes, scores, 0.3).tolist()
    anchors = ref.multibox_prior(np.zeros((1, 1, 4, 4), np.float32), [0.3, 0.5], [1, 2])
    labels = np.concatenate([np.zeros((1, 6, 1), np.float32), boxes[None]], axis=2)
    targets = other.multibox_target(_tracking(other, anchors), _tracking(other, labels))
    for got, expected in zip(targets, ref.multibox_target(anchors, labels)):
        assert not _tracks(got)
        assert_close(host(other, got), expected)
    probs = rng.dirichlet(np.ones(3), size=(1, anchors.shape[1])).transpose(0, 2, 1).astype(np.float32)
    offsets = rng.normal(0, 0.1, (1, 4 * anchors.shape[1])).astype(np.float32)
    found = other.multibox_detection(_tracking(other, probs), _tracking(other, offsets), other.asarray(anchors))
    assert not _tracks(found)
    assert_close(host(other, found), ref.multibox_detection(probs, offsets, anchors))
