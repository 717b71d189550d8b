"""The fastai lesson 9 road (issue #15): a sigmoid (BCE / focal) head that works end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import BACKENDS, OTHER_BACKENDS, assert_close, backend_name, host, nn_tensor
from test_train_cli import run_train, tiny_data  # noqa: F401  (tiny_data: fixture)

import multissd
from multissd import LossConfig, TinySSDSpec, backends, predict, train
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
