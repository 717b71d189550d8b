"""Losses and metrics (RELIABILITY R16-R20), across backends; gradients and one SGD step, torch vs paddle."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS, OTHER_BACKENDS, host, nn_tensor

from multissd import LossConfig, backends

CONFIGS = {
    "book": LossConfig(),
    "focal": LossConfig(cls_loss="focal"),
    "bce": LossConfig(cls_loss="bce"),
    "bce_focal": LossConfig(cls_loss="bce_focal"),
    "smooth_l1": LossConfig(box_loss="smooth_l1", sigma=2.0),
    "mining": LossConfig(neg_pos_ratio=3),
    "weights": LossConfig(cls_weight=0.5, box_weight=2.0, box_loss="smooth_l1"),
    "exercise": LossConfig(cls_loss="focal", box_loss="smooth_l1", sigma=2.0),
}


tensor = nn_tensor


def loss_batch(seed=0, batch=4, num_classes=2, scale=3.0, empty_images=()):
    """Random logits and offsets, and targets from multibox_target on random boxes (numpy arrays)."""
    rng = np.random.default_rng(seed)
    ref = backends.load("numpy")
    anchors = ref.multibox_prior(np.zeros((1, 1, 6, 6), np.float32), [0.3, 0.5], [1, 2, 0.5])
    labels = np.full((batch, 3, 5), -1, np.float32)
    for b in range(batch):
        if b in empty_images:
            continue
        n = int(rng.integers(1, 4))
        xy = rng.uniform(0, 0.6, (n, 2))
        labels[b, :n, 0] = rng.integers(0, num_classes, n)
        labels[b, :n, 1:] = np.concatenate([xy, xy + rng.uniform(0.1, 0.4, (n, 2))], 1)
    bbox_labels, bbox_masks, cls_labels = ref.multibox_target(anchors, labels)
    num_anchors = anchors.shape[1]
    cls_preds = (rng.normal(0, scale, (batch, num_anchors, num_classes + 1))).astype(np.float32)
    bbox_preds = rng.normal(0, 1, (batch, 4 * num_anchors)).astype(np.float32)
    return cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks


# ---- calc_loss across backends -------------------------------------------------------------------

@pytest.mark.parametrize("config", list(CONFIGS))
def test_calc_loss_cross_backend(other_nn, config):
    inputs = loss_batch(seed=1, empty_images=(2,))
    expected = backends.load_nn("numpy").calc_loss(*inputs, config=CONFIGS[config])
    actual = host(other_nn.calc_loss(*[tensor(other_nn, x) for x in inputs], config=CONFIGS[config]))
    assert actual.shape == (4,)
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


def test_calc_loss_book_reduction(nn):
    cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks = loss_batch(seed=2)
    loss = host(nn.calc_loss(*[tensor(nn, x) for x in (cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)]))
    # by hand: mean cross-entropy over anchors + mean |masked offset error| over 4A
    lse = np.log(np.exp(cls_preds.astype(np.float64)).sum(-1))
    ce = lse - np.take_along_axis(cls_preds, cls_labels[..., None], -1)[..., 0]
    l1 = np.abs(bbox_preds * bbox_masks - bbox_labels * bbox_masks)
    np.testing.assert_allclose(loss, ce.mean(1) + l1.mean(1), rtol=1e-5)


def test_metrics_cross_backend(nn):
    cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks = loss_batch(seed=3)
    expected_cls = float((cls_preds.argmax(-1) == cls_labels).sum())
    expected_bbox = float(np.abs((bbox_labels - bbox_preds) * bbox_masks).sum(dtype=np.float64))
    assert nn.cls_eval(tensor(nn, cls_preds), tensor(nn, cls_labels)) == expected_cls
    got = nn.bbox_eval(tensor(nn, bbox_preds), tensor(nn, bbox_labels), tensor(nn, bbox_masks))
    assert isinstance(got, float) and got == pytest.approx(expected_bbox, rel=1e-5)


def test_hard_negative_mining_selects_top_k_with_stable_ties(nn):
    # One image, 1 positive, ratio 2: the two background anchors of highest loss count; ties -> lower index.
    cls_labels = np.array([[0, 1, 0, 0, 0, 0]], np.int64)
    logits = np.zeros((1, 6, 2), np.float32)
    logits[0, :, 1] = [1.0, 0.0, 3.0, 1.0, 1.0, -2.0]   # background losses: a0=a3=a4 < a2
    zeros = np.zeros((1, 24), np.float32)
    config = LossConfig(neg_pos_ratio=2)
    loss = float(host(nn.calc_loss(tensor(nn, logits), tensor(nn, cls_labels), tensor(nn, zeros), tensor(nn, zeros),
                                   tensor(nn, zeros), config=config))[0])
    ce = np.log(1 + np.exp(logits[0, :, 1] - logits[0, :, 0]))  # background CE per anchor
    ce_pos = np.log(1 + np.exp(logits[0, 1, 0] - logits[0, 1, 1]))
    assert loss == pytest.approx(ce_pos + ce[2] + ce[0], rel=1e-5)  # a2 (highest), then a0 (lowest index of the tie)


# ---- R16 / R17: no positives --------------------------------------------------------------------

def test_box_loss_is_exactly_zero_without_positives_R16_R17(nn):
    inputs = list(loss_batch(seed=4, empty_images=(0, 1, 2, 3)))
    assert not inputs[4].any()
    for name in ("book", "smooth_l1", "mining"):
        config = CONFIGS[name]
        box_only = LossConfig(**{**config.__dict__, "cls_weight": 0.0})
        loss = host(nn.calc_loss(*[tensor(nn, x) for x in inputs], config=box_only))
        assert np.all(loss == 0.0), name
    mined = host(nn.calc_loss(*[tensor(nn, x) for x in inputs], config=CONFIGS["mining"]))
    assert np.all(mined == 0.0)  # mining: no positive -> no negative -> 0 (torchvision semantics)


def test_one_object_gives_both_terms_R17(nn):
    inputs = loss_batch(seed=5, batch=1)
    cls_only = host(nn.calc_loss(*[tensor(nn, x) for x in inputs], config=LossConfig(box_weight=0.0)))
    box_only = host(nn.calc_loss(*[tensor(nn, x) for x in inputs], config=LossConfig(cls_weight=0.0)))
    assert cls_only[0] > 0 and box_only[0] > 0


def test_l1_gradient_finite_without_positives_R16():
    if "torch" not in BACKENDS:
        pytest.skip("needs torch")
    import torch
    tnn = backends.load_nn("torch")
    inputs = [torch.from_numpy(x) for x in loss_batch(seed=6, empty_images=(0, 1, 2, 3))]
    inputs[2].requires_grad_(True)
    tnn.calc_loss(*inputs, config=LossConfig(box_loss="smooth_l1")).mean().backward()
    assert torch.isfinite(inputs[2].grad).all() and (inputs[2].grad == 0).all()


# ---- R18: extreme logits ---------------------------------------------------------------------------

@pytest.mark.parametrize("magnitude", [30.0, 100.0, 1e4])
def test_cross_entropy_extreme_logits_cross_backend_R18(nn, magnitude):
    logits = np.array([[magnitude, -magnitude, 0.0], [-magnitude, magnitude, magnitude / 2]], np.float32)
    labels = np.array([1, 0], np.int64)
    expected = np.array([2 * magnitude, 2 * magnitude], np.float64)  # log-sum-exp is the top logit here
    for name, fn in (("cross_entropy", nn.cross_entropy), ("focal_loss", nn.focal_loss)):
        loss = host(fn(tensor(nn, logits), tensor(nn, labels), reduction="none"))
        assert np.isfinite(loss).all(), name
    np.testing.assert_allclose(host(nn.cross_entropy(tensor(nn, logits), tensor(nn, labels), reduction="none")),
                               expected, rtol=1e-5)
    bce = host(nn.binary_focal_loss(tensor(nn, logits), tensor(nn, labels), reduction="none"))
    assert np.isfinite(bce).all()


# ---- R19: focal --------------------------------------------------------------------------------------

def test_binary_focal_bounds_and_ratio_R19(nn):
    rng = np.random.default_rng(19)
    logits = rng.normal(0, 4, (200, 4)).astype(np.float32)
    labels = rng.integers(0, 4, 200)
    bce = host(nn.binary_focal_loss(tensor(nn, logits), tensor(nn, labels), reduction="none"))
    focal = host(nn.binary_focal_loss(tensor(nn, logits), tensor(nn, labels), alpha=0.25, gamma=2.0,
                                      reduction="none"))
    assert (focal <= bce + 1e-7).all()
    t = (labels[:, None] == np.arange(1, 4)).astype(np.float64)
    p = 1 / (1 + np.exp(-logits[:, 1:].astype(np.float64)))
    p_t = p * t + (1 - p) * (1 - t)
    expected_ratio = (1 - p_t) ** 2 * (0.25 * t + 0.75 * (1 - t))
    mask = bce > 1e-6
    np.testing.assert_allclose(focal[mask] / bce[mask], expected_ratio[mask], rtol=1e-4, atol=1e-5)
    softmax_focal = host(nn.focal_loss(tensor(nn, logits), tensor(nn, labels), reduction="none"))
    ce = host(nn.cross_entropy(tensor(nn, logits), tensor(nn, labels), reduction="none"))
    assert (softmax_focal <= ce + 1e-6).all()


@pytest.mark.parametrize("name", OTHER_BACKENDS)
def test_binary_focal_without_focus_equals_bce_and_its_gradient_R19(name):
    nn = backends.load_nn(name)
    rng = np.random.default_rng(20)
    logits, labels = rng.normal(0, 3, (50, 3)).astype(np.float32), rng.integers(0, 3, 50)
    grads = []
    for kwargs in (dict(alpha=-1.0, gamma=0.0), dict()):
        x = tensor(nn, logits)
        if name == "torch":
            x.requires_grad_(True)
        else:
            x.stop_gradient = False
        loss = nn.binary_focal_loss(x, tensor(nn, labels), **kwargs)
        loss.backward()
        grads.append(host(x.grad))
    np.testing.assert_array_equal(grads[0], grads[1])


# ---- R20: reductions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["cross_entropy", "focal_loss", "binary_focal_loss", "smooth_l1_loss"])
def test_invalid_reduction_R20(nn, fn):
    x = tensor(nn, np.zeros((2, 3), np.float32))
    second = tensor(nn, np.zeros((2,), np.int64)) if fn != "smooth_l1_loss" else x
    with pytest.raises(ValueError, match="Invalid reduction"):
        getattr(nn, fn)(x, second, reduction="avg")


@pytest.mark.parametrize("fn", ["cross_entropy", "focal_loss", "binary_focal_loss", "smooth_l1_loss"])
def test_empty_inputs_R20(nn, fn):
    x = tensor(nn, np.zeros((0, 3), np.float32))
    second = tensor(nn, np.zeros((0,), np.int64)) if fn != "smooth_l1_loss" else x
    assert float(host(getattr(nn, fn)(x, second, reduction="mean"))) == 0.0
    assert host(getattr(nn, fn)(x, second, reduction="none")).size == 0


def test_loss_config_rejects_bad_values():
    with pytest.raises(ValueError, match="Invalid cls_loss"):
        LossConfig(cls_loss="hinge")
    with pytest.raises(ValueError, match="Invalid box_loss"):
        LossConfig(box_loss="l2")
    with pytest.raises(ValueError, match="neg_pos_ratio"):
        LossConfig(neg_pos_ratio=0)


def test_calc_loss_shape_errors(nn):
    inputs = [tensor(nn, x) for x in loss_batch(seed=7)]
    with pytest.raises(ValueError, match=r"Expected bbox_masks of shape \[B, 4\*A\]"):
        nn.calc_loss(*inputs[:4], tensor(nn, np.zeros((4, 8), np.float32)))
    with pytest.raises(ValueError, match=r"Expected cls_labels of shape \[B, A\]"):
        nn.calc_loss(inputs[0], tensor(nn, np.zeros((3, 5), np.int64)), *inputs[2:])


# ---- one behaviour on every backend (issue #18's drift) -------------------------------------------

def test_calc_loss_has_the_dtype_of_the_predictions(nn, rng):
    """Box tensors of another float dtype do not change the loss's dtype (NumPy cast; torch and paddle
    promoted to float64)."""
    b, a, c = 2, 6, 3
    cls_preds = rng.normal(size=(b, a, c)).astype(np.float32)
    cls_labels = rng.integers(0, c, size=(b, a))
    bbox = [rng.normal(size=(b, 4 * a)) for _ in range(2)] + [np.ones((b, 4 * a))]  # float64
    loss = nn.calc_loss(nn_tensor(nn, cls_preds), nn_tensor(nn, cls_labels), *[nn_tensor(nn, x) for x in bbox])
    assert str(loss.dtype).rsplit(".", 1)[-1] == "float32"


def _requires_grad(tensor) -> bool:
    return bool(getattr(tensor, "requires_grad", False) or not getattr(tensor, "stop_gradient", True))


@pytest.mark.parametrize("name", OTHER_BACKENDS)
def test_evals_build_no_autograd_graph(name, rng, monkeypatch):
    """``cls_eval`` and ``bbox_eval`` read predictions that track gradients without recording their
    own operations (torch detached them, paddle did not)."""
    nn = backends.load_nn(name)
    framework = __import__(name)
    preds = nn_tensor(nn, rng.normal(size=(2, 6, 3)).astype(np.float32))
    bbox_preds = nn_tensor(nn, rng.normal(size=(2, 24)).astype(np.float32))
    for tensor in (preds, bbox_preds):
        if name == "torch":
            tensor.requires_grad_(True)
        else:
            tensor.stop_gradient = False
    seen = []
    real_abs, real_argmax = framework.abs, framework.Tensor.argmax
    monkeypatch.setattr(framework, "abs", lambda x, *a, **k: seen.append(_requires_grad(x)) or real_abs(x, *a, **k))
    monkeypatch.setattr(framework.Tensor, "argmax",
                        lambda self, *a, **k: seen.append(_requires_grad(self)) or real_argmax(self, *a, **k))
    nn.cls_eval(preds, nn_tensor(nn, rng.integers(0, 3, size=(2, 6))))
    nn.bbox_eval(bbox_preds, nn_tensor(nn, np.zeros((2, 24), np.float32)), nn_tensor(nn, np.ones((2, 24), np.float32)))
    assert seen == [False, False]
