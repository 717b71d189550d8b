"""TinySSD from one spec on every backend: the book's shapes, and parity from the same weights."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import backend_name, host, nn_tensor

import multissd
from multissd import backends
from multissd.model import BOOK_SIZES, TinySSDSpec


def shape(x):
    return tuple(int(d) for d in x.shape)


tensor = nn_tensor


def set_mode(net, training):
    net.train() if training else net.eval()


# ---- the book's printed shapes ------------------------------------------------------------------

def test_book_predictor_shapes(nn):
    Y1 = nn.cls_predictor(8, 5, 10)(tensor(nn, np.zeros((2, 8, 20, 20), np.float32)))
    Y2 = nn.cls_predictor(16, 3, 10)(tensor(nn, np.zeros((2, 16, 10, 10), np.float32)))
    assert (shape(Y1), shape(Y2)) == ((2, 55, 20, 20), (2, 33, 10, 10))
    assert shape(nn.concat_preds([Y1, Y2])) == (2, 25300)
    assert shape(nn.bbox_predictor(8, 5)(tensor(nn, np.zeros((2, 8, 20, 20), np.float32)))) == (2, 20, 20, 20)


def test_book_block_shapes(nn):
    assert shape(nn.down_sample_blk(3, 10)(tensor(nn, np.zeros((2, 3, 20, 20), np.float32)))) == (2, 10, 10, 10)
    assert shape(nn.base_net()(tensor(nn, np.zeros((2, 3, 256, 256), np.float32)))) == (2, 64, 32, 32)
    assert shape(nn.get_blk(4)(tensor(nn, np.zeros((2, 128, 2, 2), np.float32)))) == (2, 128, 1, 1)


def test_book_tinyssd_shapes(nn):
    net = nn.TinySSD(num_classes=1)
    anchors, cls_preds, bbox_preds = net(tensor(nn, np.zeros((32, 3, 256, 256), np.float32)))
    assert shape(anchors) == (1, 5444, 4)
    assert shape(cls_preds) == (32, 5444, 2)
    assert shape(bbox_preds) == (32, 21776)


def test_top_level_builder_uses_active_backend(nn):
    name = backend_name(nn)
    with multissd.use_backend(name):
        net = multissd.TinySSD(1)
    assert backends.backend_name_of(net) == name and isinstance(net, nn.TinySSD)


def test_blk_forward_book_names(nn):
    X = tensor(nn, np.zeros((2, 3, 64, 64), np.float32))
    Y, anchors, cls_preds, bbox_preds = nn.blk_forward(X, nn.get_blk(0), BOOK_SIZES[0], [1, 2, 0.5],
                                                       nn.cls_predictor(64, 4, 1), nn.bbox_predictor(64, 4))
    assert shape(Y) == (2, 64, 8, 8) and shape(anchors) == (1, 256, 4)
    assert shape(cls_preds) == (2, 8, 8, 8) and shape(bbox_preds) == (2, 16, 8, 8)


# ---- the spec ---------------------------------------------------------------------------------

def test_spec_allows_other_sizes_classes_anchors_and_widths(nn):
    spec = TinySSDSpec(num_classes=3, base_channels=(8, 16), block_channels=(24, 32),
                       sizes=((0.1,), (0.3, 0.4), (0.5, 0.6), (0.9,)), ratios=((1, 2), (1,), (1, 2, 0.5), (1, 3)))
    net = nn.TinySSD(spec=spec)
    anchors, cls_preds, bbox_preds = net(tensor(nn, np.zeros((2, 3, 96, 64), np.float32)))
    assert shape(anchors)[1] == spec.total_anchors(96, 64) == 24 * 16 * 2 + 12 * 8 * 2 + 6 * 4 * 4 + 1 * 2
    assert shape(cls_preds) == (2, shape(anchors)[1], 4) and shape(bbox_preds) == (2, 4 * shape(anchors)[1])
    assert list(nn.get_weights(net)) == list(spec.parameters())


@pytest.mark.parametrize("kwargs, match", [
    (dict(sizes=BOOK_SIZES[:4]), "needs 5 lists of sizes"),
    (dict(ratios=((1, 2),) * 4), "needs 5 lists of sizes and of ratios"),
    (dict(block_channels=(128, 128)), "needs 4 lists"),
    (dict(num_classes=0), "num_classes"),
    (dict(sizes=((0.2, -1),) + BOOK_SIZES[1:]), "Scale 0"),
    (dict(bn_momentum=1.5), "bn_momentum"),
], ids=["sizes", "ratios", "blocks", "classes", "negative-size", "momentum"])
def test_spec_rejects_mismatched_config_R09(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TinySSDSpec(**kwargs)


def test_spec_parameter_names_match_the_native_models(nn):
    net = nn.TinySSD(num_classes=2)
    weights = nn.get_weights(net)
    expected = TinySSDSpec(num_classes=2).parameters()
    assert list(weights) == list(expected)
    assert all(weights[k].shape == v[0] and weights[k].dtype == np.float32 for k, v in expected.items())


def test_same_seed_same_weights_everywhere(nn, ref_nn):
    a, b = nn.get_weights(nn.TinySSD(1, seed=3)), ref_nn.get_weights(ref_nn.TinySSD(1, seed=3))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    c = nn.get_weights(nn.TinySSD(1, seed=4))
    assert not np.array_equal(a["cls_0.weight"], c["cls_0.weight"])


def test_get_blk_out_of_range(nn):
    with pytest.raises(ValueError, match=r"stage index in \[0, 5\)"):
        nn.get_blk(5)


# ---- parity -----------------------------------------------------------------------------------

@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_forward_cross_backend(other_nn, ref_nn, training):
    X = np.random.default_rng(0).uniform(0, 255, size=(2, 3, 64, 64)).astype(np.float32)
    ref_net, net = ref_nn.TinySSD(1, seed=1), other_nn.TinySSD(1, seed=1)
    set_mode(ref_net, training)
    set_mode(net, training)
    expected = ref_net(X)
    actual = [host(t) for t in net(tensor(other_nn, X))]
    np.testing.assert_array_equal(actual[0], expected[0])
    for a, e in zip(actual[1:], expected[1:]):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4)
    if training:  # batch statistics updated the same way (paddle's biased variance is corrected)
        ref_w, w = ref_nn.get_weights(ref_net), other_nn.get_weights(net)
        for name in ref_w:
            np.testing.assert_allclose(w[name], ref_w[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_detections_cross_backend_from_same_weights(other_nn, ref_nn, ref):
    X = np.random.default_rng(1).uniform(0, 255, size=(1, 3, 64, 64)).astype(np.float32)
    spec = TinySSDSpec(num_classes=1, prior_prob="book")  # scores spread out: many detections to compare
    ref_net, net = ref_nn.TinySSD(spec=spec, seed=2), other_nn.TinySSD(spec=spec, seed=2)
    ref_net.eval()
    net.eval()

    def detect(net, x):
        anchors, cls_preds, bbox_preds = (host(t) for t in net(x))
        probs = np.exp(cls_preds) / np.exp(cls_preds).sum(-1, keepdims=True)
        return ref.multibox_detection(probs.transpose(0, 2, 1), bbox_preds, anchors)

    expected = detect(ref_net, X)
    actual = detect(net, tensor(other_nn, X))
    assert (expected[..., 0] >= 0).sum() > 10
    np.testing.assert_array_equal(actual[..., 0], expected[..., 0])
    np.testing.assert_allclose(actual[..., 1:], expected[..., 1:], rtol=1e-4, atol=1e-4)


def test_predictor_heads_start_at_the_prior(nn):
    # RetinaNet's initialisation: an anchor starts as an object (of any class) with probability near
    # prior_prob, shared by the classes; every box at its anchor.
    spec = TinySSDSpec(num_classes=2)
    net = nn.TinySSD(spec=spec, seed=0)
    net.train()  # batch statistics: normalised features, as in training
    X = np.random.default_rng(0).uniform(0, 255, size=(2, 3, 64, 64)).astype(np.float32)
    _, cls_preds, bbox_preds = (host(t) for t in net(tensor(nn, X)))
    probs = np.exp(cls_preds - cls_preds.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs[..., 1:].sum(-1).mean(), spec.prior_prob, rtol=0.3)
    np.testing.assert_allclose(probs[..., 1].mean(), probs[..., 2].mean(), rtol=0.3)
    assert np.abs(bbox_preds).mean() < 0.5  # a predicted box moves a few percent of its anchor's size
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="prior_prob"):
            TinySSDSpec(num_classes=2, prior_prob=bad)


@pytest.mark.parametrize("num_classes", [99, 150])
def test_any_class_count_starts_at_the_prior_R43(num_classes):
    """99 or more classes: the default head initialisation is defined ("Expected prior_prob in
    (0, 1/(num_classes+1))" before) and an anchor starts as an object with probability prior_prob."""
    spec = TinySSDSpec(num_classes=num_classes, base_channels=(4,), block_channels=(4,),
                       sizes=((0.3,),) * 3, ratios=((1.0,),) * 3)
    weights = multissd.init_weights(spec, seed=0)
    background = weights["cls_0.bias"].reshape(-1, num_classes + 1)
    logits = background  # the weights are N(0, 0.01): the biases decide the start
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs[:, 1:].sum(-1), spec.prior_prob, rtol=1e-5)


@pytest.mark.skipif("paddle" not in backends.BACKEND_NAMES or not backends.is_installed("paddle"),
                    reason="paddle is not installed")
def test_paddle_bias_before_batch_norm_is_the_plain_sequential():
    """Paddle's down-sampling blocks hand each convolution's bias to the batch norm after it
    (no (B, C, H, W) broadcast add, no reduction back): outputs, running statistics and gradients
    are the plain ``conv -> add bias -> batch norm`` ones, in training and in eval."""
    import paddle
    from paddle import nn as pnn

    from multissd.backends.paddle import nn as pd

    X = np.random.default_rng(3).normal(size=(4, 3, 16, 16)).astype(np.float32)
    paddle.seed(0)
    fused = pd.down_sample_blk(3, 8)
    plain = pnn.Sequential(*pd.down_sample_blk(3, 8).children())
    plain.set_state_dict(fused.state_dict())
    for layer in fused.sublayers():
        if isinstance(layer, pnn.Conv2D):
            layer.bias.set_value(paddle.uniform(layer.bias.shape, min=-2.0, max=2.0))
    plain.set_state_dict(fused.state_dict())
    assert type(fused) is pd.ConvNormSequential and type(plain) is pnn.Sequential
    for step in range(2):  # twice: the second step starts from updated running statistics
        outs = []
        for net in (fused, plain):
            net.train()
            net.clear_gradients()
            x = paddle.to_tensor(X)
            out = net(x)
            (out * out).sum().backward()
            grads = {n: p.grad.numpy().copy() for n, p in net.named_parameters() if p.grad is not None}
            outs.append((out.numpy(), {n: v.numpy().copy() for n, v in net.state_dict().items()}, grads))
        (f_out, f_state, f_grads), (p_out, p_state, p_grads) = outs
        np.testing.assert_allclose(f_out, p_out, rtol=1e-5, atol=1e-5)
        assert set(f_state) == set(p_state)
        for name in p_state:  # running mean includes the bias, exactly as the plain block's does
            np.testing.assert_allclose(f_state[name], p_state[name], rtol=1e-5, atol=1e-5, err_msg=name)
        assert set(f_grads) == set(p_grads)  # the biases keep a gradient (weight decay applies)
        for name, g in p_grads.items():
            if name.endswith("bias") and name.split(".")[0] in ("0", "3"):
                assert np.abs(f_grads[name]).max() == 0.0  # exactly zero: batch norm cancels it
                assert np.abs(g).max() <= 1e-4 * np.abs(p_grads[name.replace("bias", "weight")]).max()
            else:
                np.testing.assert_allclose(f_grads[name], g, rtol=1e-4, atol=1e-4 * np.abs(g).max(), err_msg=name)
    fused.eval()
    plain.eval()
    np.testing.assert_allclose(fused(paddle.to_tensor(X)).numpy(), plain(paddle.to_tensor(X)).numpy(),
                               rtol=1e-5, atol=1e-5)
