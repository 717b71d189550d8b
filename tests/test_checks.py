"""Argument checks: each call's rule runs exactly once, in the contract's ``implements`` wrapper, for
calls through ``multissd.*`` and calls on a backend module alike; values of tensors on an accelerator
are not read back to the host unless the debug switch asks for it."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS, OTHER_BACKENDS

import multissd
from multissd import backends, checks

ANCHORS = np.array([[0.1, 0.1, 0.5, 0.6], [0.3, 0.2, 0.9, 0.8]], np.float32)
OFFSETS = np.array([[0.5, -0.2, 0.1, 0.3], [0.0, 0.1, -0.4, 0.2]], np.float32)


@pytest.fixture
def box_shape_calls(monkeypatch):
    """How often :func:`multissd.checks.box_shape` runs."""
    calls = []
    real = checks.box_shape
    monkeypatch.setattr(checks, "box_shape", lambda *args, **kwargs: calls.append(args[1]) or real(*args, **kwargs))
    return calls


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("call, expected", [
    (lambda f, t: f.box_convert(t(ANCHORS), "cxcywh", "xyxy"), ["boxes"]),
    (lambda f, t: f.offset_boxes(t(ANCHORS), t(ANCHORS[::-1].copy())), ["anchors", "assigned_bb"]),
    (lambda f, t: f.offset_inverse(t(ANCHORS), t(OFFSETS)), ["anchors", "offset_preds"]),
    (lambda f, t: f.box_iou(t(ANCHORS), t(ANCHORS)), ["boxes1", "boxes2"]),
], ids=["box_convert", "offset_boxes", "offset_inverse", "box_iou"])
def test_each_call_checks_its_arguments_once(name, call, expected, box_shape_calls):
    """Through ``multissd.*`` and on the backend module directly: the rule runs once per call (a
    conversion inside ``box_convert`` or the encoding inside ``offset_boxes`` is not checked again)."""
    module = backends.load(name)
    for functions in (multissd, module):
        box_shape_calls.clear()
        call(functions, module.asarray)
        assert box_shape_calls == expected


def test_the_rule_normalises_arguments(monkeypatch):
    """A rule may return normalised arguments: the backend receives the threshold as a float."""
    received = []
    ref = backends.load("numpy")
    real = ref._nms
    monkeypatch.setattr(ref, "_nms", lambda boxes, scores, threshold: received.append(threshold) or real(boxes, scores,
                                                                                                       threshold))
    ref.nms(ANCHORS, np.array([0.9, 0.8], np.float32), np.float32(0.5))
    assert received == [0.5] and type(received[0]) is float


@pytest.fixture
def on_a_device(monkeypatch):
    """Every torch or paddle tensor seen as living on an accelerator; the list of the tensors read back."""
    monkeypatch.delenv(checks.DEVICE_VALUES_ENV, raising=False)
    monkeypatch.setattr(checks, "on_host", lambda x: False)
    reads = []
    real = checks.to_host
    monkeypatch.setattr(checks, "to_host", lambda x: reads.append(x) or real(x))
    return reads


@pytest.mark.parametrize("name", OTHER_BACKENDS)  # NumPy arrays are always in host memory
def test_device_values_are_not_read_back(name, on_a_device, monkeypatch):
    module = backends.load(name)
    bad = module.asarray(np.array([[0, 0, np.nan, 1]], np.float32))
    module.box_iou(bad, bad)  # shapes are checked; values would need a copy from the device
    assert on_a_device == []
    monkeypatch.setenv(checks.DEVICE_VALUES_ENV, "1")  # the debug switch reads them
    with pytest.raises(ValueError, match="non-finite coordinate"):
        module.box_iou(bad, bad)
    assert len(on_a_device) == 1


@pytest.mark.parametrize("name", OTHER_BACKENDS)
def test_training_step_reads_no_values_back_from_the_device(name, on_a_device):
    """The step's ``multibox_target`` checks shapes only when the tensors are on a device: no
    device-to-host copy (a sync) in the middle of the step."""
    adapter, nn = backends.load_trainer(name), backends.load_nn(name)
    device = adapter.resolve_device("cpu")
    net = adapter.prepare(nn.TinySSD(1, seed=0), device)
    optimizer = adapter.make_optimizer(net, lr=0.01, weight_decay=5e-4)
    images = backends.load(name).asarray(np.random.default_rng(0).uniform(0, 255, (2, 3, 64, 64)).astype(np.float32))
    labels = backends.load(name).asarray(np.array([[[0, 0.1, 0.1, 0.6, 0.7]], [[0, 0.3, 0.2, 0.9, 0.9]]], np.float32))
    figures = adapter.train_step(net, optimizer, images, labels, multissd.BOOK_LOSS, device)
    assert np.isfinite(figures["loss"]) and on_a_device == []
