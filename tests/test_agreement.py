"""R50: the three backends give the same answer, or the same clear error, for the same input --
empty batches, half precision, labels and probabilities out of range (issue #19, item 10)."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import OTHER_BACKENDS, assert_close

from multissd import backends

REF = backends.load("numpy")
ANCHORS = REF.multibox_prior(np.zeros((1, 1, 4, 4), np.float32), [0.3, 0.5], [1, 2])  # (1, 48, 4)
A = ANCHORS.shape[1]
UNIFORM = np.full((1, 3, A), 1 / 3, np.float32)
LABEL = np.array([[[0, 0.1, 0.1, 0.5, 0.5]]], np.float32)

BOX_CASES = {
    "target_empty_batch": lambda B: B.multibox_target(B.asarray(ANCHORS), B.asarray(np.zeros((0, 3, 5), np.float32))),
    "target_no_rows": lambda B: B.multibox_target(B.asarray(ANCHORS), B.asarray(np.zeros((2, 0, 5), np.float32))),
    "target_float16": lambda B: B.multibox_target(B.asarray(ANCHORS.astype(np.float16)), B.asarray(LABEL.astype(np.float16))),
    "detection_empty_batch": lambda B: B.multibox_detection(B.asarray(UNIFORM[:0]), B.asarray(np.zeros((0, 4 * A), np.float32)),
                                                            B.asarray(ANCHORS)),
    "per_class_empty_batch": lambda B: B.multibox_detection_per_class(
        B.asarray(UNIFORM[:0]), B.asarray(np.zeros((0, 4 * A), np.float32)), B.asarray(ANCHORS)),
    "detection_float16": lambda B: B.multibox_detection(B.asarray(UNIFORM.astype(np.float16)),
                                                        B.asarray(np.zeros((1, 4 * A), np.float16)),
                                                        B.asarray(ANCHORS.astype(np.float16))),
    "per_class_float16": lambda B: B.multibox_detection_per_class(B.asarray(UNIFORM.astype(np.float16)),
                                                                  B.asarray(np.zeros((1, 4 * A), np.float16)),
                                                                  B.asarray(ANCHORS.astype(np.float16))),
    "nms_float16": lambda B: B.nms(B.asarray(ANCHORS[0, :5].astype(np.float16)), B.asarray(np.arange(5, dtype=np.float16)),
                                   0.5),
    "detection_probabilities_above_1": lambda B: B.multibox_detection(
        B.asarray(UNIFORM * 4.5), B.asarray(np.zeros((1, 4 * A), np.float32)), B.asarray(ANCHORS)),
    "per_class_negative_probability": lambda B: B.multibox_detection_per_class(
        B.asarray(UNIFORM - 0.5), B.asarray(np.zeros((1, 4 * A), np.float32)), B.asarray(ANCHORS)),
}


def _loss(name, labels):
    def run(B):
        nn = backends.load_nn(B.__name__.split(".")[-2])  # B is a backend's boxes module
        return getattr(nn, name)(B.asarray(np.zeros((2, 3), np.float32)), B.asarray(np.asarray(labels)))
    return run


LOSS_CASES = {
    "cross_entropy_label_minus_1": _loss("cross_entropy", [-1, 0]),
    "cross_entropy_label_C": _loss("cross_entropy", [3, 0]),
    "focal_label_minus_1": _loss("focal_loss", [-1, 0]),
    "binary_focal_label_C": _loss("binary_focal_loss", [5, 0]),
    "cross_entropy_label_shape": _loss("cross_entropy", [0, 0, 1]),
}


def _outcome(call, backend):
    """``("ok", result as NumPy)`` or ``("error", type name, message)``."""
    try:
        result = call(backends.load(backend))
    except (ValueError, TypeError) as error:
        return ("error", type(error).__name__, str(error))
    return ("ok", result)


def _same(actual, expected):
    if isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected)
        for a, e in zip(actual, expected):
            _same(a, e)
    elif isinstance(expected, dict):
        assert set(actual) == set(expected)
        for key in expected:
            _same(actual[key], expected[key])
    else:
        actual = backends.to_host(actual)
        assert actual.shape == expected.shape and actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
        assert_close(actual, expected)


@pytest.mark.parametrize("case", list(BOX_CASES) + list(LOSS_CASES))
@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_backends_agree_R50(case, backend):
    call = {**BOX_CASES, **LOSS_CASES}[case]
    expected, actual = _outcome(call, "numpy"), _outcome(call, backend)
    assert actual[0] == expected[0], (actual, expected)
    if expected[0] == "error":
        assert actual == expected
    else:
        _same(actual[1], expected[1])


def test_errors_say_what_was_wrong_R50():
    assert _outcome(BOX_CASES["detection_probabilities_above_1"], "numpy")[2].startswith(
        "cls_probs[0, 0, 0] is 1.5; expected probabilities in [0, 1]")
    assert _outcome(LOSS_CASES["cross_entropy_label_minus_1"], "numpy")[2].startswith(
        "labels[0] is -1; expected a class in [0, 3)")
