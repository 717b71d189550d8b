"""Portable weights: one safetensors file moves between every backend, bit for bit."""
from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import BACKENDS, backend_name, backend_params

import multissd
from multissd import backends, weights
from multissd.model import TinySSDSpec


def trained_like(nn, seed):
    """A TinySSD whose every weight, batch-norm statistics included, is distinct and non-default."""
    net = nn.TinySSD(1, seed=seed)
    rng = np.random.default_rng(seed + 100)
    values = {k: (v + rng.normal(0, 0.1, v.shape).astype(np.float32)) for k, v in nn.get_weights(net).items()}
    values = {k: (np.abs(v) + 0.5 if k.endswith("running_var") else v) for k, v in values.items()}
    nn.set_weights(net, values)
    return net, values


@pytest.mark.parametrize("chain", [("torch", "paddle", "torch"), ("paddle", "numpy", "paddle"),
                                   ("numpy", "torch", "paddle", "numpy")], ids="->".join)
def test_round_trip_is_bit_identical_cross_backend(tmp_path, chain):
    if not set(chain) <= set(BACKENDS):
        pytest.skip("needs " + ", ".join(chain))
    first, values = trained_like(backends.load_nn(chain[0]), seed=1)
    path = multissd.save_weights(first, tmp_path / "w0.safetensors")
    for i, name in enumerate(chain[1:], start=1):
        net = multissd.load_weights(backends.load_nn(name).TinySSD(1, seed=99), path)
        path = multissd.save_weights(net, tmp_path / f"w{i}.safetensors")
    final = backends.load_nn(chain[-1]).get_weights(net)
    assert list(final) == list(values)
    for key in values:
        assert final[key].tobytes() == values[key].tobytes(), key


@pytest.mark.parametrize("source", backend_params(BACKENDS))
def test_same_file_same_detections_cross_backend(tmp_path, source):
    # PyTorch's default initialisation (prior_prob="book"): scores spread out, so there are many detections
    net = backends.load_nn(source).TinySSD(spec=TinySSDSpec(num_classes=1, prior_prob="book"), seed=2)
    path = multissd.save_weights(net, tmp_path / "w.safetensors")
    X = np.random.default_rng(3).uniform(0, 255, (2, 3, 64, 64)).astype(np.float32)
    ref = backends.load("numpy")
    outputs = {}
    for name in BACKENDS:
        model = multissd.load_model(path, backend=name)
        model.eval()
        anchors, cls_preds, bbox_preds = (backends.to_host(t) for t in model(backends.load(name).asarray(X)))
        probs = np.exp(cls_preds - cls_preds.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        outputs[name] = ref.multibox_detection(probs.transpose(0, 2, 1), bbox_preds, anchors, pos_threshold=0.3)
    assert (outputs["numpy"][..., 0] >= 0).sum() > 10
    for name, out in outputs.items():
        np.testing.assert_array_equal(out[..., 0], outputs["numpy"][..., 0], err_msg=name)
        np.testing.assert_allclose(out[..., 1:], outputs["numpy"][..., 1:], rtol=1e-4, atol=1e-4, err_msg=name)


def test_file_stores_the_spec(tmp_path, backend):
    spec = TinySSDSpec(num_classes=3, base_channels=(8, 16), block_channels=(16,),
                       sizes=((0.2,), (0.5,), (0.9,)), ratios=((1, 2),) * 3)
    net = backends.load_nn(backend_name(backend)).TinySSD(spec=spec)
    path = multissd.save_weights(net, tmp_path / "small.safetensors")
    arrays, stored = weights.read_weights(path)
    assert stored == spec and set(arrays) == set(spec.parameters())
    rebuilt = multissd.load_model(path, backend=backend_name(backend))
    assert rebuilt.spec == spec


def test_mismatched_shapes_name_the_first_parameter(tmp_path, backend):
    nn = backends.load_nn(backend_name(backend))
    path = multissd.save_weights(nn.TinySSD(num_classes=2), tmp_path / "two.safetensors")
    with pytest.raises(ValueError, match=r"Parameter 'cls_0.weight': weights file .*two.safetensors has shape "
                                         r"\[12, 64, 3, 3\], the model expects \[8, 64, 3, 3\]"):
        multissd.load_weights(nn.TinySSD(num_classes=1), path)


def test_missing_and_unexpected_names(tmp_path, backend):
    from safetensors.numpy import save_file
    nn = backends.load_nn(backend_name(backend))
    arrays = dict(nn.get_weights(nn.TinySSD(1)))
    del arrays["blk_2.1.running_var"]
    save_file(arrays, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match=r"has no parameter 'blk_2.1.running_var' \(shape \[128\]\)"):
        multissd.load_weights(nn.TinySSD(1), tmp_path / "missing.safetensors")
    arrays = dict(nn.get_weights(nn.TinySSD(1)))
    arrays["extra.weight"] = np.zeros(3, np.float32)
    save_file(arrays, str(tmp_path / "extra.safetensors"))
    with pytest.raises(ValueError, match=r"has parameter 'extra.weight', which the model does not have"):
        multissd.load_weights(nn.TinySSD(1), tmp_path / "extra.safetensors")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_file_names_the_path_R39(tmp_path, backend, damage):
    nn = backends.load_nn(backend_name(backend))
    path = multissd.save_weights(nn.TinySSD(1), tmp_path / "w.safetensors")
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": b"\x00garbage" * 100, "empty": b""}[damage])
    with pytest.raises(ValueError, match=r"Cannot read weights file .*w.safetensors: it is truncated or not a"):
        multissd.load_weights(nn.TinySSD(1), path)


def test_missing_file(tmp_path, backend):
    with pytest.raises(ValueError, match=r"Weights file not found: .*nope.safetensors"):
        multissd.load_weights(backends.load_nn(backend_name(backend)).TinySSD(1), tmp_path / "nope.safetensors")


def test_crash_during_save_keeps_previous_file_R37(tmp_path, backend, monkeypatch):
    nn = backends.load_nn(backend_name(backend))
    first = nn.TinySSD(1, seed=1)
    path = multissd.save_weights(first, tmp_path / "w.safetensors")
    before = path.read_bytes()
    import pathlib

    def broken_write(self, data):  # the one writer's write of the file's bytes, cut off
        with open(self, "wb") as handle:
            handle.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(pathlib.Path, "write_bytes", broken_write)
    with pytest.raises(OSError, match="disk full"):
        multissd.save_weights(nn.TinySSD(1, seed=2), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["w.safetensors"]  # no stray temporary file


def test_save_rejects_non_models(tmp_path):
    with pytest.raises(TypeError, match="Expected a multissd TinySSD"):
        multissd.save_weights(object(), tmp_path / "x.safetensors")
