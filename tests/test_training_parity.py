"""Same weights, same batch: gradients and one SGD step agree between torch and paddle."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import BACKENDS
from test_losses import CONFIGS, loss_batch

from multissd import backends

pytestmark = pytest.mark.skipif(not {"torch", "paddle"} <= set(BACKENDS), reason="needs torch and paddle")


def _conv_bias_before_batch_norm(name: str) -> bool:
    parts = name.split(".")
    return parts[0].startswith("blk_") and parts[-1] == "bias" and parts[-2] in ("0", "3")


def labels_batch(seed=0, batch=4):
    rng = np.random.default_rng(seed)
    labels = np.full((batch, 2, 5), -1, np.float32)
    for b in range(batch):
        xy = rng.uniform(0, 0.6, 2)
        labels[b, 0] = [0, *xy, *(xy + rng.uniform(0.15, 0.4, 2))]
    images = rng.uniform(0, 255, (batch, 3, 64, 64)).astype(np.float32)
    return images, labels


def step(name, config, seed=0, lr=0.2, weight_decay=5e-4):
    """One training step of the book's loop; returns (loss, grads by neutral name, weights after)."""
    box, nn = backends.load(name), backends.load_nn(name)
    images, labels = labels_batch(seed)
    net = nn.TinySSD(1, seed=seed)
    net.train()
    if name == "torch":
        import torch
        trainer = torch.optim.SGD(net.parameters(), lr=lr, weight_decay=weight_decay)
        trainer.zero_grad()
    else:
        import paddle
        trainer = paddle.optimizer.SGD(learning_rate=lr, parameters=net.parameters(), weight_decay=weight_decay)
        trainer.clear_grad()
    anchors, cls_preds, bbox_preds = net(box.asarray(images))
    bbox_labels, bbox_masks, cls_labels = box.multibox_target(anchors, box.asarray(labels))
    loss = nn.calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks, config=config)
    loss.mean().backward()
    names = list(net.spec.parameters())
    grads = {}
    for n, p in net.named_parameters():  # trainable parameters have the same names on both
        if getattr(p, "stop_gradient", False):  # paddle lists batch-norm statistics as parameters
            continue
        grads[n] = box.to_numpy(p.grad).copy()
    trainer.step()
    return float(box.to_numpy(loss.mean())), grads, nn.get_weights(net), names


@pytest.mark.parametrize("config", ["book", "exercise", "mining", "bce_focal"])
def test_gradients_and_sgd_step_cross_backend(config):
    t_loss, t_grads, t_weights, names = step("torch", CONFIGS[config])
    p_loss, p_grads, p_weights, _ = step("paddle", CONFIGS[config])
    assert t_loss == pytest.approx(p_loss, rel=1e-5)
    assert set(t_grads) == set(p_grads) and len(t_grads) == 68
    for name, g in t_grads.items():
        if _conv_bias_before_batch_norm(name):
            # Batch norm subtracts the batch mean, so these gradients are 0 up to rounding on both
            # backends (about 1e-10): check that, relative to the same conv's weight gradient.
            scale = np.abs(t_grads[name.replace(".bias", ".weight")]).max()
            assert np.abs(g).max() <= 1e-5 * scale and np.abs(p_grads[name]).max() <= 1e-5 * scale, name
            continue
        scale = max(np.abs(g).max(), 1e-12)
        np.testing.assert_allclose(p_grads[name], g, rtol=1e-4, atol=1e-4 * scale, err_msg=name)
    for name in names:
        np.testing.assert_allclose(p_weights[name], t_weights[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_loss_values_match_numpy_cross_backend():
    inputs = loss_batch(seed=8)
    expected = backends.load_nn("numpy").calc_loss(*inputs)
    for name in ("torch", "paddle"):
        box, nn = backends.load(name), backends.load_nn(name)
        np.testing.assert_allclose(box.to_numpy(nn.calc_loss(*[box.asarray(x) for x in inputs])), expected, rtol=1e-5)


def adamw_steps(name, steps=3, lr=1e-3, weight_decay=0.05):
    """Three AdamW steps of the trainer adapter (fastai's optimiser) on one batch; the weights after
    them, and the optimiser state as the checkpoint keeps it."""
    box, nn, adapter = backends.load(name), backends.load_nn(name), backends.load_trainer(name)
    images, labels = labels_batch(1)
    net = nn.TinySSD(1, seed=1)
    optimizer = adapter.make_optimizer(net, lr, weight_decay, 0.9, "adamw")
    config = CONFIGS["mining"]
    for _ in range(steps):
        adapter.train_step(net, optimizer, box.asarray(images), box.asarray(labels), config, adapter.resolve_device("cpu"))
    return nn.get_weights(net), adapter.get_momentum(optimizer, net)


def test_adamw_steps_cross_backend():
    """Three AdamW steps agree between torch and paddle: each tensor's update within 1% (relative to
    its size), and no element further apart than the steps' bound ``2 x 3 x lr``. Adam divides each
    gradient by its own running size, so where a gradient is rounding noise (a convolution's bias
    before batch norm; a few weights whose gradient is near 0) the two frameworks' noise becomes steps
    of about ``lr`` in different directions: element-wise equality is not to be had there."""
    numpy_nn = backends.load_nn("numpy")
    start = numpy_nn.get_weights(numpy_nn.TinySSD(1, seed=1))
    t_weights, t_state = adamw_steps("torch")
    p_weights, p_state = adamw_steps("paddle")
    for name, value in t_weights.items():
        if "running" in name or "num_batches" in name or _conv_bias_before_batch_norm(name):
            continue  # batch-norm statistics follow the noisy biases; the biases are bounded below
        t_step, p_step = value - start[name], p_weights[name] - start[name]
        assert np.linalg.norm(p_step - t_step) <= 1e-2 * np.linalg.norm(t_step) + 1e-7, name
    for name in t_weights:
        if "running" not in name and "num_batches" not in name:
            assert np.abs(p_weights[name] - t_weights[name]).max() <= 2 * 3 * 1e-3 * 1.01, name
    first = "blk_0.0.0.weight"
    moment = t_state[f"exp_avg/{first}"]
    assert np.linalg.norm(p_state[f"exp_avg/{first}"] - moment) <= 1e-2 * np.linalg.norm(moment)
    # torch counts the steps; paddle keeps the next step's power of beta1 (0.9 ** 4 after 3 steps)
    assert float(t_state[f"step/{first}"]) == 3 and np.allclose(p_state[f"beta1_pow/{first}"], 0.9 ** 4)
