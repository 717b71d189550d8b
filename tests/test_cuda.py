"""The CUDA paths of the torch backend: the box contract, a training step, training and prediction.

Skipped where torch sees no CUDA device (CI has none); run them on a GPU machine with
``pytest tests/test_cuda.py``. cuDNN's TF32 convolutions are switched off inside these tests so
that GPU and CPU can be compared at float32 tolerances.
"""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from conftest import TOL
from test_train_cli import tiny_data  # noqa: F401  (fixture)

from multissd import BOOK_LOSS, backends, predict, train

HAS_CUDA = importlib.util.find_spec("torch") is not None and __import__("torch").cuda.is_available()
pytestmark = pytest.mark.skipif(not HAS_CUDA, reason="torch sees no CUDA device")


@pytest.fixture(autouse=True)
def no_tf32():
    import torch
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def _labels(rng, batch=4, objects=3):
    labels = np.full((batch, objects + 1, 5), -1, np.float32)  # one padding row per image
    for b in range(batch):
        for o in range(objects):
            xy = rng.uniform(0, 0.6, 2)
            labels[b, o] = [o % 2, *xy, *(xy + rng.uniform(0.1, 0.4, 2))]
    return labels


def test_box_contract_on_cuda_matches_numpy():
    import torch
    ref, tb = backends.load("numpy"), backends.load("torch")
    rng = np.random.default_rng(0)
    cuda = torch.device("cuda")
    feature = np.zeros((1, 3, 16, 16), np.float32)
    anchors = ref.multibox_prior(feature, sizes=[0.2, 0.4], ratios=[1, 2, 0.5])  # (1, 16*16*4, 4)
    got = tb.multibox_prior(torch.zeros(1, 3, 16, 16, device=cuda), sizes=[0.2, 0.4], ratios=[1, 2, 0.5])
    assert got.device.type == "cuda"
    np.testing.assert_allclose(got.cpu().numpy(), anchors, **TOL["float32"])

    labels = _labels(rng)
    expected = ref.multibox_target(anchors, labels)
    actual = tb.multibox_target(torch.from_numpy(anchors).to(cuda), torch.from_numpy(labels).to(cuda))
    for e, a in zip(expected, actual):
        assert a.device.type == "cuda"
        np.testing.assert_allclose(a.cpu().numpy(), e, rtol=1e-5, atol=1e-4)

    a = anchors.shape[1]
    cls_probs = rng.dirichlet(np.ones(3), size=(2, a)).transpose(0, 2, 1).astype(np.float32)  # (2, 3, A)
    offsets = rng.normal(0, 0.5, (2, a * 4)).astype(np.float32)  # (2, 4A)
    expected = ref.multibox_detection(cls_probs, offsets, anchors, nms_threshold=0.5)
    actual = tb.multibox_detection(*(torch.from_numpy(x).to(cuda) for x in (cls_probs, offsets, anchors)),
                                   nms_threshold=0.5)
    np.testing.assert_array_equal(actual[..., 0].cpu().numpy(), expected[..., 0])
    np.testing.assert_allclose(actual.cpu().numpy(), expected, rtol=1e-5, atol=1e-5)

    expected = ref.multibox_detection_per_class(cls_probs, offsets, anchors)
    actual = tb.multibox_detection_per_class(*(torch.from_numpy(x).to(cuda) for x in (cls_probs, offsets, anchors)))
    for e, g in zip(expected, actual):
        np.testing.assert_array_equal(g["labels"].cpu().numpy(), e["labels"])
        np.testing.assert_allclose(g["scores"].cpu().numpy(), e["scores"], **TOL["float32"])
        np.testing.assert_allclose(g["boxes"].cpu().numpy(), e["boxes"], rtol=1e-5, atol=1e-5)


def test_cuda_training_step_reads_no_values_back_for_checks(monkeypatch):
    """On the GPU the argument checks of the step read shapes only: no device-to-host copy."""
    import torch
    from multissd import checks
    from multissd.backends.torch import train as torch_train
    monkeypatch.delenv(checks.DEVICE_VALUES_ENV, raising=False)
    reads = []
    monkeypatch.setattr(checks, "to_host", lambda x: reads.append(x) or x.cpu().numpy())
    rng, device = np.random.default_rng(1), torch.device("cuda")
    images, labels = (torch.from_numpy(rng.uniform(0, 255, (4, 3, 64, 64)).astype(np.float32)),
                      torch.from_numpy(_labels(rng)))
    net = torch_train.prepare(backends.load_nn("torch").TinySSD(2, seed=3), device)
    optimizer = torch_train.make_optimizer(net, lr=0.2, weight_decay=5e-4)
    torch_train.train_step(net, optimizer, images, labels, BOOK_LOSS, device)
    assert reads == []


def test_training_step_on_cuda_matches_cpu():
    import torch
    from multissd.backends.torch import train as torch_train
    nn = backends.load_nn("torch")
    rng = np.random.default_rng(1)
    images = torch.from_numpy(rng.uniform(0, 255, (4, 3, 64, 64)).astype(np.float32))
    labels = torch.from_numpy(_labels(rng))
    results = {}
    for name in ("cpu", "cuda"):
        device = torch.device(name)
        net = torch_train.prepare(nn.TinySSD(2, seed=3), device)
        optimizer = torch_train.make_optimizer(net, lr=0.2, weight_decay=5e-4)
        figures = torch_train.train_step(net, optimizer, images, labels, BOOK_LOSS, device)
        results[name] = figures, {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    (cpu_figures, cpu_weights), (gpu_figures, gpu_weights) = results["cpu"], results["cuda"]
    assert gpu_figures["loss"] == pytest.approx(cpu_figures["loss"], rel=1e-4)
    assert gpu_figures["cls_correct"] == cpu_figures["cls_correct"]
    for key, value in cpu_weights.items():
        np.testing.assert_allclose(gpu_weights[key], value, rtol=1e-3, atol=1e-4, err_msg=key)


def test_train_on_cuda_then_predict_on_numpy(tiny_data, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    assert train.main(["--backend", "torch", "--device", "cuda", "--data", str(tiny_data), "--out", str(run),
                       "--batch-size", "4", "--epochs", "1", "--no-progress"]) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["device"] == "cuda"
    images = [str(tiny_data / "bananas_val" / "images" / f"{i}.png") for i in range(2)]
    expected, _ = predict.predict_images(images, run / "weights.safetensors", "numpy", threshold=0.0)
    actual, _ = predict.predict_images(images, run / "weights.safetensors", "torch", threshold=0.0)
    for (_, _, e), (_, _, a) in zip(expected, actual):
        np.testing.assert_array_equal(a[:, 0], e[:, 0])
        np.testing.assert_allclose(a[:, 1:], e[:, 1:], rtol=1e-4, atol=1e-3)
