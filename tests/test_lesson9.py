"""The fastai lesson 9 road (issue #15): a sigmoid (BCE / focal) head that works end to end."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import BACKENDS, OTHER_BACKENDS, assert_close, backend_name, host, nn_tensor
from test_train_cli import run_train, tiny_data  # noqa: F401  (tiny_data: fixture)

import multissd
from multissd import LossConfig, TinySSDSpec, backends, predict, train
from multissd.model import BOOK_INIT
from multissd.training import TrainConfig
from multissd.weights import read_weights

needs_torch = pytest.mark.skipif("torch" not in BACKENDS, reason="needs torch")


# ---- reading class logits -----------------------------------------------------------------------------

@pytest.mark.parametrize("head", ["softmax", "sigmoid"])
def test_class_probabilities_cross_backend(other_nn, ref_nn, rng, head):
    logits = rng.normal(0, 3, (2, 7, 4)).astype(np.float32)
    expected = ref_nn.class_probabilities(logits, head)
    assert_close(host(other_nn.class_probabilities(nn_tensor(other_nn, logits), head)), expected)
    assert (expected >= 0).all() and (expected <= 1).all()
    if head == "sigmoid":  # one sigmoid per object column; background = 1 - the best of them
        assert_close(expected[..., 1:], 1 / (1 + np.exp(-logits[..., 1:])))
        assert_close(expected[..., 0], 1 - expected[..., 1:].max(-1))
    else:
        assert_close(expected.sum(-1), np.ones((2, 7)))


def test_cls_eval_of_a_sigmoid_head_cross_backend(nn):
    """Background unless some class's sigmoid reaches 0.5 (logit 0 counts), then the arg-max."""
    logits = np.array([[[9.0, -1.0, -2.0], [-9.0, 0.0, -1.0], [0.0, -0.5, 2.0], [-1.0, -0.5, -2.0]]], np.float32)
    labels = np.array([[0, 1, 2, 0]])
    assert nn.cls_eval(nn_tensor(nn, logits), nn_tensor(nn, labels), "sigmoid") == 4.0
    assert nn.cls_eval(nn_tensor(nn, logits), nn_tensor(nn, labels)) == 3.0  # softmax: the last row is class 1
    with pytest.raises(ValueError, match="Expected head to be one of"):
        nn.cls_eval(nn_tensor(nn, logits), nn_tensor(nn, labels), "tanh")


# ---- the three defects of the BCE path --------------------------------------------------------------

def test_sigmoid_head_starts_at_the_prior(nn):
    """Each class column of a sigmoid head starts at sigmoid prior_prob (it started at ~0.49)."""
    spec = TinySSDSpec(num_classes=3, head="sigmoid")
    net = nn.TinySSD(spec=spec, seed=0)
    net.train()
    X = np.random.default_rng(0).uniform(0, 255, size=(2, 3, 64, 64)).astype(np.float32)
    _, cls_preds, _ = (host(t) for t in net(nn_tensor(nn, X)))
    sigmoids = 1 / (1 + np.exp(-cls_preds[..., 1:]))
    np.testing.assert_allclose(sigmoids.mean(), spec.prior_prob, rtol=0.3)
    assert sigmoids.max() < 0.05


def test_weights_without_a_head_decode_as_softmax():
    spec = json.loads(TinySSDSpec(num_classes=2).to_json())
    del spec["head"]  # a weights file written before heads existed
    assert TinySSDSpec.from_json(json.dumps(spec)).head == "softmax"


@pytest.mark.parametrize("loss, explicit, expected", [
    ("bce-focal", [], None), ("focal", [], None), ("bce-focal", ["--neg-pos-ratio", "3"], 3.0), ("ce", [], 3.0),
    ("bce", [], 3.0)])
def test_focal_losses_do_not_mine_by_default(loss, explicit, expected):
    args = train.parser().parse_args(["--cls-loss", loss, *explicit])
    config = train.config_from_args(args)
    assert config.loss["neg_pos_ratio"] == expected


def test_focal_losses_are_divided_by_the_positives_cross_backend(nn, ref_nn, rng):
    b, a, c = 2, 9, 3
    cls_preds = rng.normal(size=(b, a, c)).astype(np.float32)
    cls_labels = np.array([[0, 1, 0, 2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0]])
    boxes = [rng.normal(size=(b, 4 * a)).astype(np.float32) for _ in range(2)]
    mask = np.repeat((cls_labels > 0).astype(np.float32), 4, axis=1)
    config = LossConfig(cls_loss="bce_focal")
    got = host(nn.calc_loss(*(nn_tensor(nn, x) for x in (cls_preds, cls_labels, *boxes, mask)), config=config))
    per_element = ref_nn.binary_focal_loss(cls_preds, cls_labels, 0.25, 2.0, reduction="none")   # (B, A, Q)
    box = np.abs(boxes[0] * mask - boxes[1] * mask)
    expected = (per_element.sum(axis=(1, 2)) + box.sum(axis=1)) / np.maximum((cls_labels > 0).sum(axis=1), 1)
    assert_close(got, expected)


def test_the_solutions_focal_run_averages_over_anchors_cross_backend(nn, ref_nn, rng):
    """``average="anchors"``: the d2l solutions' exercise 14.7.1 -- softmax focal (alpha 0.25, gamma 2)
    and smooth L1 (sigma 2), each the mean over every anchor, as the book's losses are; RetinaNet's
    per-positive division is ``"positives"`` (and ``"auto"`` for the focal losses); mining contradicts it."""
    b, a, c = 2, 9, 3
    cls_preds = rng.normal(size=(b, a, c)).astype(np.float32)
    cls_labels = np.array([[0, 1, 0, 2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0, 0]])
    boxes = [rng.normal(size=(b, 4 * a)).astype(np.float32) for _ in range(2)]
    mask = np.repeat((cls_labels > 0).astype(np.float32), 4, axis=1)
    inputs = [nn_tensor(nn, x) for x in (cls_preds, cls_labels, *boxes, mask)]
    config = LossConfig(cls_loss="focal", box_loss="smooth_l1", sigma=2.0, average="anchors")
    cls = ref_nn.focal_loss(cls_preds, cls_labels, 0.25, 2.0, reduction="none")                  # (B, A)
    box = ref_nn.smooth_l1_loss(boxes[0] * mask, boxes[1] * mask, 2.0, reduction="none")          # (B, 4A)
    assert_close(host(nn.calc_loss(*inputs, config=config)), cls.mean(axis=1) + box.mean(axis=1))
    positives = np.maximum((cls_labels > 0).sum(axis=1), 1)
    for average in ("positives", "auto"):
        got = host(nn.calc_loss(*inputs, config=dataclasses.replace(config, average=average)))
        assert_close(got, (cls.sum(axis=1) + box.sum(axis=1)) / positives)
    with pytest.raises(ValueError, match="average"):
        LossConfig(average="anchors", neg_pos_ratio=3.0)
    with pytest.raises(ValueError, match="Invalid average"):
        LossConfig(average="images")


@needs_torch
@pytest.mark.parametrize("loss", ["bce", "bce-focal"])
def test_a_bce_model_is_decoded_with_its_sigmoids(loss, tiny_data, tmp_path):
    """Trained with BCE, the model's head is recorded as sigmoid (config.json and the weights file), and
    a prediction's score is its best anchor's sigmoid (it was a softmax over columns the model never
    learnt, the background's included)."""
    assert run_train(tiny_data, tmp_path / "run", "--cls-loss", loss) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["spec"]["head"] == "sigmoid" and config["loss"]["neg_pos_ratio"] == (3.0 if loss == "bce" else None)
    arrays, spec = read_weights(tmp_path / "run" / "weights.safetensors")
    assert spec.head == "sigmoid"
    image = tiny_data / "bananas_val" / "images" / "0.png"
    (_, _, rows), = predict.predict_images([image], tmp_path / "run" / "weights.safetensors", "numpy",
                                           threshold=0.0)[0]
    net = backends.load_nn("numpy").TinySSD(spec=spec)
    backends.load_nn("numpy").set_weights(net, arrays)
    net.eval()
    pixels = np.asarray(predict.read_image(image), np.float32).transpose(2, 0, 1)[None]
    _, cls_preds, _ = net(pixels)
    best = 1 / (1 + np.exp(-cls_preds[0, :, 1:].max()))
    np.testing.assert_allclose(rows[0, 1], best, rtol=1e-5)


# ---- the lesson's anchor grid, tanh decoding and matching ------------------------------------------------

def test_grid_anchors_match_the_lessons_numbers(ref):
    """The lesson's 4x4, 2x2, 1x1 grids with 3 zooms x 3 ratios: k = 9 anchors per cell, 189 in all."""
    corners, centres, grid_sizes = ref.grid_anchors()
    assert corners.shape == centres.shape == (189, 4) and grid_sizes.shape == (189, 1)
    # the lesson's first cell: centre (1/8, 1/8); zoom 0.75 with (1, 1), (1, .5), (.5, 1) -> (h, w) / 4
    np.testing.assert_allclose(centres[:3], [[0.125, 0.125, 0.1875, 0.1875], [0.125, 0.125, 0.09375, 0.1875],
                                             [0.125, 0.125, 0.1875, 0.09375]])
    np.testing.assert_allclose(centres[9, :2], [0.375, 0.125])  # the next cell along x (row-major)
    np.testing.assert_allclose(centres[-1], [0.5, 0.5, 1.3, 0.65])  # the 1x1 grid, zoom 1.3, ratio (.5, 1)
    np.testing.assert_allclose(np.unique(grid_sizes), [0.25, 0.5, 1.0])
    np.testing.assert_allclose(corners, np.concatenate([centres[:, :2] - centres[:, 2:] / 2,
                                                        centres[:, :2] + centres[:, 2:] / 2], axis=1))


def test_grid_anchors_cross_backend(other, ref):
    for grids, zooms, ratios in (((4, 2, 1), (0.75, 1.0, 1.3), ((1, 1), (1, 0.5), (0.5, 1))), ((3, 5), (1.0,), ((1, 1),))):
        expected = ref.grid_anchors(grids, zooms, ratios)
        actual = other.grid_anchors(grids, zooms, ratios)
        for a, e in zip(actual, expected):
            assert host(a).dtype == np.float32 and (host(a) == e).all()  # bit-identical


def test_actn_to_bb_cross_backend(other, ref, rng):
    corners, _, grid_sizes = ref.grid_anchors()
    actn = rng.normal(0, 2, (3, 189, 4)).astype(np.float32)
    expected = ref.actn_to_bb(actn, corners, grid_sizes)
    assert_close(host(other.actn_to_bb(other.asarray(actn), other.asarray(corners), other.asarray(grid_sizes))),
                 expected)
    centres = (expected[..., :2] + expected[..., 2:]) / 2
    anchor_centres = (corners[:, :2] + corners[:, 2:]) / 2
    assert (np.abs(centres - anchor_centres) <= grid_sizes / 2 + 1e-6).all()  # at most half a cell away
    ratio = (expected[..., 2:] - expected[..., :2]) / (corners[:, 2:] - corners[:, :2])
    assert (ratio >= 0.5 - 1e-5).all() and (ratio <= 1.5 + 1e-5).all()  # half to one and a half times the anchor
    assert_close(ref.actn_to_bb(np.zeros((189, 4), np.float32), corners, grid_sizes), corners)  # zero: the anchor


def test_lesson_matching_differs_from_the_books_R13():
    """Two boxes whose best anchor is the same: the book gives both an anchor (greedy, one-to-one);
    the lesson's later box takes the shared anchor and the earlier one is left without (as its
    ``map_to_ground_truth``); the lesson labels by IoU strictly above 0.4."""
    ref = backends.load("numpy")
    anchors = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.0, 1.0, 0.5], [0.0, 0.5, 0.5, 1.0]], np.float32)
    boxes = np.array([[0.0, 0.0, 0.45, 0.45], [0.0, 0.0, 0.5, 0.48]], np.float32)  # IoU 0.81 and 0.96 with anchor 0
    assert ref.assign_anchor_to_bbox(boxes, anchors).tolist() == [1, 0, -1]  # box 0 still gets an anchor
    assert ref.map_to_ground_truth(boxes, anchors).tolist() == [1, -1, -1]   # box 0 has none
    box = np.array([[0.0, 0.0, 1.0, 1.0]], np.float32)
    anchors = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.4, 1.0]], np.float32)  # IoU 1 (its best) and exactly 0.4
    assert ref.map_to_ground_truth(box, anchors, 0.4).tolist() == [0, -1]          # strictly above 0.4
    assert ref.assign_anchor_to_bbox(box, anchors, iou_threshold=0.4).tolist() == [0, 0]  # at least 0.4


def test_map_to_ground_truth_cross_backend(other, ref, rng):
    corners, _, _ = ref.grid_anchors()
    for trial in range(60):
        g = int(rng.integers(1, 7))
        xy = rng.uniform(0, 0.8, (g, 2))
        boxes = np.concatenate([xy, np.minimum(xy + rng.uniform(0.05, 0.6, (g, 2)), 1)], 1).astype(np.float32)
        if trial % 3 == 0:  # on the anchors' own grid: ties everywhere
            boxes = np.round(boxes * 4) / 4
            boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.25)
        expected = ref.map_to_ground_truth(boxes, corners)
        assert host(other.map_to_ground_truth(other.asarray(boxes), other.asarray(corners))).tolist() == \
            expected.tolist()


def test_lesson_targets_are_boxes_cross_backend(other, ref, rng):
    """``multibox_target(..., coding=None, matching="lesson")``: the matched boxes themselves, for
    the lesson's L1 loss on decoded boxes; padding rows never match."""
    corners, _, _ = ref.grid_anchors()
    labels = np.full((3, 4, 5), -1, np.float32)
    for b, n in enumerate((2, 4, 0)):
        xy = rng.uniform(0, 0.6, (n, 2))
        labels[b, :n] = np.concatenate([rng.integers(0, 3, (n, 1)), xy, xy + rng.uniform(0.1, 0.4, (n, 2))], 1)
    expected = ref.multibox_target(corners[None], labels, 0.4, None, "lesson")
    actual = other.multibox_target(other.asarray(corners[None]), other.asarray(labels), 0.4, None, "lesson")
    for a, e in zip(actual, expected):
        assert_close(host(a), e)
    boxes, mask, classes = expected
    matched = mask.reshape(3, -1, 4)[..., 0] > 0
    assert (classes[2] == 0).all() and matched[0].sum() >= 1
    rows = boxes.reshape(3, -1, 4)[matched]
    assert all(any(np.allclose(row, label[1:]) for label in labels.reshape(-1, 5)) for row in rows)


# ---- the lesson's SSD: 4x4, 2x2, 1x1 grids, k = 9, tanh boxes --------------------------------------------

def test_lesson_ssd_shapes_and_forward_cross_backend(other_nn, ref_nn):
    spec = TinySSDSpec.lesson9(num_classes=3)
    assert spec.total_anchors(256, 256) == 189 and spec.min_image_size == 128 and spec.head == "sigmoid"
    X = np.random.default_rng(0).uniform(0, 255, (2, 3, 256, 256)).astype(np.float32)
    ref_net, net = ref_nn.TinySSD(spec=spec, seed=1), other_nn.TinySSD(spec=spec, seed=1)
    ref_net.eval()
    net.eval()
    expected = ref_net(X)
    actual = [host(t) for t in net(nn_tensor(other_nn, X))]
    assert [a.shape for a in actual] == [(1, 189, 4), (2, 189, 4), (2, 756)]
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)
    corners, _, _ = backends.load("numpy").grid_anchors()
    np.testing.assert_array_equal(expected[0][0], corners)  # the lesson's anchors, in the lesson's order
    boxes = expected[2].reshape(2, 189, 4)  # boxes, not offsets: near their anchors at the start
    assert np.abs(boxes - corners).max() < 0.5 * np.abs(corners).max()


def test_lesson_ssd_weights_follow_the_spec():
    spec = TinySSDSpec.lesson9(num_classes=2, dropout=0.4)
    names = list(spec.parameters())
    assert "cls_0.weight" not in names and "cls_3.weight" in names and "bbox_5.bias" in names  # 4x4, 2x2, 1x1 only
    assert spec.parameters()["cls_3.weight"][0] == (9 * 3, 128, 3, 3)
    assert TinySSDSpec.from_json(spec.to_json()) == spec


@needs_torch
@pytest.mark.parametrize("backend", [n for n in ("torch", "paddle") if n in BACKENDS])
def test_train_the_lessons_ssd_from_the_command_line(backend, tmp_path_factory, tmp_path, capsys):
    fruit = multissd.data.generate_bananas(tmp_path_factory.mktemp("fruit128"), seed=1, sizes={"train": 8, "val": 4},
                                           workers=1, image_size=128, kind="fruit")
    assert train.main(["--backend", backend, "--model", "lesson9", "--data", str(fruit), "--out", str(tmp_path / "run"),
                       "--batch-size", "4", "--epochs", "1", "--no-progress"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"] == "lesson9" and config["loss"]["cls_loss"] == "bce_focal"
    assert config["spec"]["anchors"] == "lesson" and config["spec"]["head"] == "sigmoid"
    image = fruit / "bananas_val" / "images" / "0.png"
    results = {}
    for name in ("numpy", backend):
        (_, _, rows), = predict.predict_images([image], tmp_path / "run" / "weights.safetensors", name,
                                               threshold=0.0)[0]
        results[name] = rows
    np.testing.assert_allclose(results[backend][:5], results["numpy"][:5], rtol=1e-4, atol=1e-2)
    assert train.main(["--backend", backend, "--model", "lesson9", "--data", str(fruit), "--out",
                       str(tmp_path / "small"), "--image-size", "64", "--no-progress"]) == 2
    assert "too small for TinySSD" in capsys.readouterr().err


# ---- the lesson's first models: the largest object, and several labels -----------------------------------

@pytest.mark.parametrize("task", ["largest", "multilabel"])
def test_classifiers_cross_backend(task, other_nn, ref_nn, rng):
    spec = multissd.ClassifierSpec(task=task, num_classes=3, dropout=0.25)
    ref_net, net = ref_nn.Classifier(spec, seed=2), other_nn.Classifier(spec, seed=2)
    ref_net.eval()
    net.eval()
    X = rng.uniform(0, 255, (4, 3, 64, 64)).astype(np.float32)
    expected, actual = ref_net(X), net(nn_tensor(other_nn, X))
    expected = expected if isinstance(expected, tuple) else (expected,)
    actual = actual if isinstance(actual, tuple) else (actual,)
    assert [e.shape for e in expected] == ([(4, 3), (4, 4)] if task == "largest" else [(4, 3)])
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(host(a), e, rtol=1e-4, atol=1e-5)
    if task == "largest":
        assert ((expected[1] >= 0) & (expected[1] <= 1)).all()  # a sigmoid-scaled box
    weights = other_nn.get_weights(net)
    assert weights["fc.weight"].shape == (spec.outputs, 64)  # (out, in) on every backend
    for name, value in ref_nn.get_weights(ref_net).items():
        np.testing.assert_array_equal(weights[name], value)
    assert list(weights) == list(spec.parameters())


@pytest.mark.parametrize("spec", [
    multissd.ClassifierSpec(task="grid", num_classes=3, dropout=0.25),              # the lesson's SSD_Head, k = 1
    multissd.ClassifierSpec(task="grid", num_classes=2, k=9, hidden=32),             # k = 9
    multissd.ClassifierSpec(task="largest", num_classes=3, head="lesson", dropout=0.5, hidden=64),   # head_reg4
    multissd.ClassifierSpec(task="multilabel", num_classes=3, head="lesson", dropout=0.5, hidden=64),
], ids=["grid-k1", "grid-k9", "largest-lesson", "multilabel-lesson"])
def test_lesson_heads_cross_backend(spec, other_nn, ref_nn, rng):
    """The lesson's heads on a 7 x 7 map: the SSD head's ``(B, 16 k, Q + 1)`` and ``(B, 16 k, 4)``
    outputs, ``head_reg4``'s ``(B, Q)`` and box, equal on every backend, in evaluation mode and in a
    training-mode forward's batch statistics (dropout off to compare)."""
    ref_net, net = ref_nn.Classifier(spec, seed=3), other_nn.Classifier(spec, seed=3)
    ref_net.eval()
    net.eval()
    for side in (64, 256):                                        # base maps of 8 x 8 and 32 x 32, both pooled to 7 x 7
        X = rng.uniform(0, 255, (2, 3, side, side)).astype(np.float32)
        expected, actual = ref_net(X), net(nn_tensor(other_nn, X))
        expected = expected if isinstance(expected, tuple) else (expected,)
        actual = actual if isinstance(actual, tuple) else (actual,)
        if spec.task == "grid":
            assert [e.shape for e in expected] == [(2, 16 * spec.k, spec.num_classes + 1), (2, 16 * spec.k, 4)]
        for a, e in zip(actual, expected):
            np.testing.assert_allclose(host(a), e, rtol=1e-4, atol=1e-5)
    weights = other_nn.get_weights(net)
    assert list(weights) == list(spec.parameters())
    for name, value in ref_nn.get_weights(ref_net).items():
        np.testing.assert_array_equal(weights[name], value)
    if spec.task == "grid":
        assert (weights["cls.bias"] == -3).all()                  # OutConv's bias.data.zero_().add_(-3)
    quiet = dataclasses.replace(spec, dropout=0.0)
    ref_net, net = ref_nn.Classifier(quiet, seed=3), other_nn.Classifier(quiet, seed=3)
    for layer in _dropouts(ref_net) + _dropouts(net):             # StdConv's fixed 0.1 too
        layer.p = 0.0
    X = rng.uniform(0, 255, (4, 3, 64, 64)).astype(np.float32)
    ref_net(X), net(nn_tensor(other_nn, X))                       # training mode: batch statistics
    for name, value in ref_nn.get_weights(ref_net).items():
        np.testing.assert_allclose(other_nn.get_weights(net)[name], value, rtol=1e-4, atol=1e-4, err_msg=name)


def _dropouts(net):
    """Every dropout layer of a native model (torch's and paddle's ``p``, NumPy's ``p``)."""
    found = []
    stack = [net]
    while stack:
        layer = stack.pop()
        if type(layer).__name__ == "Dropout":
            found.append(layer)
        children = getattr(layer, "_children", None) or getattr(layer, "_sub_layers", None) or getattr(
            layer, "_modules", None) or {}
        stack.extend(children.values())
    return found


def test_lesson_head_spec_checks():
    with pytest.raises(ValueError, match="Expected head"):
        multissd.ClassifierSpec(head="resnet")
    with pytest.raises(ValueError, match="Expected k"):
        multissd.ClassifierSpec(task="grid", k=0)
    with pytest.raises(ValueError, match="4 x 4 grid"):
        multissd.ClassifierSpec(task="grid", pool_size=5)
    spec = multissd.ClassifierSpec(task="grid", num_classes=3, k=9)
    assert multissd.ClassifierSpec.from_json(spec.to_json()) == spec
    assert spec.parameters()["cls.weight"][0] == (9 * 4, 256, 3, 3)


def test_classifier_base_is_tinyssds_base():
    """The same seed gives the classifier the base network a TinySSD gets."""
    spec = multissd.ClassifierSpec(task="largest", num_classes=2)
    tiny = multissd.init_weights(TinySSDSpec(), seed=4)
    mine = multissd.classifier.classifier_weights(spec, seed=4)
    assert all(np.array_equal(mine[k], tiny[k]) for k in mine if k.startswith("blk_0."))
    with pytest.raises(ValueError, match="Expected task"):
        multissd.ClassifierSpec(task="segment")


@needs_torch
def test_evaluate_reports_what_training_reported_for_a_sigmoid_model(tiny_data, tmp_path, capsys):
    from multissd import evaluate
    assert run_train(tiny_data, tmp_path / "run", "--cls-loss", "bce-focal", "--epochs", "2") == 0
    with open(tmp_path / "run" / "metrics.csv") as handle:
        last = handle.read().splitlines()[-1].split(",")
    assert evaluate.main(["--weights", str(tmp_path / "run" / "weights.safetensors"), "--backend", "numpy",
                          "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "eval.json").read_text())
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert result["map_50"] == pytest.approx(float(last[header.index("val_map_50")]), abs=1e-6)


def test_the_head_initialisation_is_one_option():
    """``--prior-prob``: RetinaNet's start at P (softmax: shared by the classes; sigmoid: per class), or
    ``book`` for the book's initialisation -- the one name the spec, ``TrainConfig`` and the CLI take;
    0 is refused by all three; recorded with the model's spec."""
    for argv, prior, head in ((["--prior-prob", "book"], BOOK_INIT, "softmax"),
                              (["--prior-prob", "0.05", "--cls-loss", "bce"], 0.05, "sigmoid"), ([], 0.01, "softmax")):
        config = train.config_from_args(train.parser().parse_args(argv))
        spec = config.model_spec(num_classes=3)
        assert (spec.prior_prob, spec.head) == (prior, head)
    assert TinySSDSpec(prior_prob=BOOK_INIT) == TinySSDSpec(prior_prob=None)  # how older files say it
    assert TrainConfig(prior_prob=BOOK_INIT).model_spec().prior_prob == BOOK_INIT
    for bad in ("1.5", "0", "0.0"):
        assert train.main(["--prior-prob", bad, "--backend", "numpy"]) == 2
        with pytest.raises(ValueError, match="prior_prob in"):
            train.config_from_args(train.parser().parse_args(["--prior-prob", bad]))
    for bad in (0, 0.0, 1.0, "none"):
        with pytest.raises(ValueError, match=r"^Expected prior_prob in \(0, 1\)"):
            TinySSDSpec(prior_prob=bad)
        with pytest.raises(ValueError, match=r"^Expected prior_prob in \(0, 1\)"):
            TrainConfig(prior_prob=bad)
