"""Encoding boxes as offsets and decoding them back (RELIABILITY R14, R15)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import HAS_TORCH, assert_close, random_boxes

from multissd import BOOK_OFFSETS, OffsetCoding

EXACT = OffsetCoding(eps=0.0)  # the book's scales (variances 0.1, 0.2) without the log's eps


def host(backend, x):
    return backend.to_numpy(x)


def pixel_boxes(rng, n, dtype):
    """``n`` (ground truth, anchor) pairs in pixels, sides >= 1 and within 10x of each other, as matched
    pairs are (a ratio beyond 62.5 would be clamped when decoding, on purpose)."""
    xy = rng.uniform(0, 200, size=(n, 2))
    wh = rng.uniform(1, 100, size=(n, 2))
    anchor_xy = xy + rng.uniform(-20, 20, size=(n, 2))
    anchor_wh = np.maximum(wh * np.exp(rng.uniform(-2.3, 2.3, size=(n, 2))), 1)
    gt = np.concatenate([xy, xy + wh], axis=1).astype(dtype)
    anchors = np.concatenate([anchor_xy, anchor_xy + anchor_wh], axis=1).astype(dtype)
    return gt, anchors


@pytest.mark.parametrize("dtype, atol", [("float32", 1e-4), ("float64", 1e-10)])
def test_decode_inverts_encode_R14(backend, dtype, atol):
    rng = np.random.default_rng(14)
    gt, anchors = pixel_boxes(rng, 1000, dtype)
    offsets = backend.offset_boxes(backend.asarray(anchors), backend.asarray(gt), EXACT)
    decoded = host(backend, backend.offset_inverse(backend.asarray(anchors), offsets, EXACT))
    assert decoded.dtype == np.dtype(dtype)
    np.testing.assert_allclose(decoded, gt, rtol=0, atol=atol)


def test_book_eps_costs_at_most_eps_times_the_anchor(backend):
    # With the book's eps=1e-6 inside the log, sizes come back larger by eps * anchor size.
    rng = np.random.default_rng(15)
    gt, anchors = pixel_boxes(rng, 1000, "float64")
    offsets = backend.offset_boxes(backend.asarray(anchors), backend.asarray(gt))
    decoded = host(backend, backend.offset_inverse(backend.asarray(anchors), offsets))
    anchor_size = (anchors[:, 2:] - anchors[:, :2]).max()
    np.testing.assert_allclose(decoded, gt, rtol=0, atol=1e-6 * anchor_size)


@pytest.mark.parametrize("wild", [100.0, -100.0, 1e4, -1e4])
def test_decode_wild_offsets_is_finite_R15(backend, wild):
    anchors = np.array([[0.1, 0.1, 0.3, 0.4], [0.5, 0.5, 0.6, 0.9]], np.float32)
    offsets = np.full((2, 4), wild, np.float32)
    boxes = host(backend, backend.offset_inverse(backend.asarray(anchors), backend.asarray(offsets)))
    assert np.isfinite(boxes).all()
    if wild > 0:  # the size is clamped at exp(log(1000/16)) = 62.5 times the anchor's
        np.testing.assert_allclose(boxes[0, 2] - boxes[0, 0], 0.2 * 1000 / 16, rtol=1e-5)
    assert math.isclose(BOOK_OFFSETS.max_log_scale, math.log(1000 / 16))


def test_encode_against_zero_size_anchor_raises_R15(backend):
    anchors = np.array([[0.1, 0.1, 0.1, 0.4]], np.float32)
    with pytest.raises(ValueError, match=r"anchors must have finite coordinates and positive width and height; "
                                         r"the box at index 0"):
        backend.offset_boxes(backend.asarray(anchors), backend.asarray(np.array([[0, 0, 1, 1]], np.float32)))


def test_encode_zero_size_ground_truth_is_finite_R15(backend):
    anchors = np.array([[0.1, 0.1, 0.3, 0.4]], np.float32)
    offsets = host(backend, backend.offset_boxes(backend.asarray(anchors),
                                                 backend.asarray(np.array([[0.2, 0.2, 0.2, 0.2]], np.float32))))
    assert np.isfinite(offsets).all()
    np.testing.assert_allclose(offsets[0, 2:], 5 * np.log(1e-6), rtol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_offsets_cross_backend(other, ref, seed):
    rng = np.random.default_rng(seed)
    anchors, gt = random_boxes(rng, 500), random_boxes(rng, 500)
    offsets = ref.offset_boxes(anchors, gt)
    assert_close(host(other, other.offset_boxes(other.asarray(anchors), other.asarray(gt))), offsets)
    preds = rng.normal(0, 3, size=(500, 4)).astype(np.float32)
    assert_close(host(other, other.offset_inverse(other.asarray(anchors), other.asarray(preds))),
                 ref.offset_inverse(anchors, preds))


def test_custom_coding_scales(backend):
    anchors = np.array([[0.0, 0.0, 2.0, 2.0]], np.float32)
    gt = np.array([[1.0, 1.0, 3.0, 5.0]], np.float32)
    coding = OffsetCoding(center_scale=1.0, size_scale=1.0, eps=0.0)
    offsets = host(backend, backend.offset_boxes(backend.asarray(anchors), backend.asarray(gt), coding))
    np.testing.assert_allclose(offsets, [[0.5, 1.0, 0.0, math.log(2.0)]], rtol=1e-6)


@pytest.mark.skipif(not HAS_TORCH, reason="the book's reference code needs torch")
def test_offsets_match_book(backend, rng):
    import torch

    from multissd.bench import book_reference as book
    anchors, gt = random_boxes(rng, 300), random_boxes(rng, 300)
    expected = book.offset_boxes(torch.from_numpy(anchors), torch.from_numpy(gt)).numpy()
    assert_close(host(backend, backend.offset_boxes(backend.asarray(anchors), backend.asarray(gt))), expected)
    preds = rng.normal(0, 2, size=(300, 4)).astype(np.float32)
    expected = book.offset_inverse(torch.from_numpy(anchors), torch.from_numpy(preds)).numpy()
    assert_close(host(backend, backend.offset_inverse(backend.asarray(anchors), backend.asarray(preds))), expected)
