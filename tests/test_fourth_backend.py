"""A fourth backend written from docs/backends.md's "Adding a backend" alone (``tests/fourth_backend/``:
its package, ``boxes.py``, ``nn.py``, ``trainer.py``, ``exporter.py``), registered through the public
registry: the contract checks pass on it, dispatch reaches it, and multissd's own code (weights,
prediction, training's refusal, export's refusal) runs on it as on the built-in backends."""
from __future__ import annotations

import numpy as np
import pytest

import fourth_backend
import multissd
from multissd import registry, save_weights
from multissd.boxes import BOXES
from multissd.exporter import EXPORTER
from multissd.inference import predict_images
from multissd.nn import NN
from multissd.trainer import TRAINER
from multissd.training import TrainConfig, train

CONTRACTS = {"boxes": BOXES, "nn": NN, "trainer": TRAINER, "exporter": EXPORTER}


@pytest.fixture(autouse=True)
def fourth():
    """The fourth backend, registered for the test and removed after it."""
    registry.register(fourth_backend.ENTRY)
    yield "fourth"
    registry.unregister("fourth")


def test_the_docs_list_every_file_the_fourth_backend_has():
    text = (__import__("pathlib").Path(__file__).parents[1] / "docs" / "backends.md").read_text()
    section = text[text.index("## Adding a backend"):]
    for part in registry.PARTS:
        assert f"`{part}.py`" in section
    assert "register(" in section and "`__init__.py`" in section


@pytest.mark.parametrize("part", registry.PARTS)
def test_fourth_backend_implements_each_contract_in_order(part):
    module = registry.load_part("fourth", part)
    contract = CONTRACTS[part]
    assert contract.missing(module) == []
    assert [name for name in vars(module) if name in contract.names] == list(contract.names)


def test_registering_twice_or_removing_a_built_in_backend_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(fourth_backend.ENTRY)
    with pytest.raises(ValueError, match="built-in"):
        registry.unregister("numpy")


def test_dispatch_reaches_the_fourth_backend_and_agrees_with_numpy():
    """The book's labelling example on the fourth backend's tensors: its own tensor type back, the
    book's class labels ``[0, 1, 2, 0, 2]``, and NMS's kept boxes as NumPy's."""
    ground_truth = np.array([[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]], np.float32)
    anchors = np.array([[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                        [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]], np.float32)
    with multissd.use_backend("fourth"):
        labels = multissd.multibox_target(multissd.asarray(anchors[None]), multissd.asarray(ground_truth[None]))[2]
        iou = multissd.box_iou(multissd.asarray(anchors), multissd.asarray(anchors))
    assert type(labels) is fourth_backend.Tensor and registry.backend_name_of(labels) == "fourth"
    assert multissd.to_numpy(labels).tolist() == [[0, 1, 2, 0, 2]]
    np.testing.assert_array_equal(multissd.to_numpy(iou), multissd.box_iou(anchors, anchors))
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    kept = multissd.nms(anchors.view(fourth_backend.Tensor), scores.view(fourth_backend.Tensor), 0.3)
    np.testing.assert_array_equal(multissd.to_numpy(kept), multissd.nms(anchors, scores, 0.3))


def test_tinyssd_built_weights_loaded_and_predicted_on_the_fourth_backend(tmp_path):
    """``multissd.TinySSD`` builds the fourth backend's model (the book's shapes), a weights file
    saved from NumPy loads into it by name, and ``predict_images`` gives NumPy's detections."""
    reference = multissd.backends.load_nn("numpy").TinySSD(num_classes=1, seed=3)
    weights = save_weights(reference, tmp_path / "w.safetensors")
    with multissd.use_backend("fourth"):
        net = multissd.load_model(weights)
    assert registry.backend_name_of(net) == "fourth"
    images = np.random.default_rng(0).uniform(0, 255, (2, 3, 256, 256)).astype(np.float32)
    anchors, cls_preds, bbox_preds = net(images.view(fourth_backend.Tensor))
    assert (anchors.shape, cls_preds.shape, bbox_preds.shape) == ((1, 5444, 4), (2, 5444, 2), (2, 21776))
    assert type(cls_preds) is fourth_backend.Tensor
    np.testing.assert_array_equal(np.asarray(cls_preds), reference(images)[1])
    from PIL import Image
    Image.fromarray(images[0].transpose(1, 2, 0).astype(np.uint8)).save(tmp_path / "x.png")
    (_, _, mine), = predict_images([tmp_path / "x.png"], weights, "fourth", threshold=0.0)[0]
    (_, _, theirs), = predict_images([tmp_path / "x.png"], weights, "numpy", threshold=0.0)[0]
    np.testing.assert_array_equal(mine, theirs)


def test_training_and_export_refuse_as_the_capabilities_say(tmp_path):
    assert registry.load_trainer("fourth").CAN_TRAIN is False
    with pytest.raises(ValueError, match="cannot train"):
        train(TrainConfig(backend="fourth", out=str(tmp_path / "run")))
    with pytest.raises(ValueError, match="no ONNX exporter"):
        registry.load_exporter("fourth").export_onnx(None, tmp_path / "m.onnx", 256, 256, 18)
