"""ONNX export (torch.onnx and paddle2onnx) and the onnxruntime engine, on tiny models trained here.

A run trained with torch (softmax head, cross-entropy) and one trained with paddle (sigmoid head,
focal loss) are each exported through both frameworks' exporters; ONNX Runtime's outputs must equal
the NumPy backend's forward within 1e-4 of the output's largest magnitude, at batch 1 and 8, at the
run's size and another; ``predict`` and ``evaluate`` on the onnx engine give the NumPy backend's
detections and mAP.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import BACKENDS

from multissd import backends, evaluate, onnx_export as export, predict, save_weights, train
from multissd.classifier import ClassifierSpec
from multissd.data import generate_bananas
from multissd.engine import ONNX_FORMAT, OUTPUT_NAMES, OnnxModel, open_model
from multissd.model import TinySSDSpec

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

EXPORTERS = [n for n in ("torch", "paddle") if n in BACKENDS]
RELATIVE = 1e-4  # of the output's largest magnitude


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return generate_bananas(tmp_path_factory.mktemp("bananas"), seed=3, sizes={"train": 8, "val": 4}, workers=1,
                            image_size=64)


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    """``{"torch": weights file (softmax head), "paddle": weights file (sigmoid head, focal loss)}``."""
    out = {}
    for backend, extra in (("torch", []), ("paddle", ["--cls-loss", "bce-focal"])):
        if backend in BACKENDS:
            run = tmp_path_factory.mktemp(f"run_{backend}")
            assert train.main(["--backend", backend, "--data", str(tiny_data), "--out", str(run), "--batch-size", "4",
                               "--epochs", "1", "--no-progress", *extra]) == 0
            out[backend] = run / "weights.safetensors"
    return out


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    """``exported(trained_by, exporter)``: the run's ONNX file at its own size, exported once per module."""
    cache, folder = {}, tmp_path_factory.mktemp("exported")

    def get(trained_by, exporter):
        if (trained_by, exporter) not in cache:
            cache[trained_by, exporter] = export.export_onnx(runs[trained_by], folder / f"{trained_by}_{exporter}.onnx",
                                                             backend=exporter)
        return cache[trained_by, exporter]
    return get


def assert_equal_to_numpy(onnx_file, weights):
    """ONNX Runtime's three outputs at batch 1 and 8 within RELATIVE of the NumPy forward's."""
    worst = export.compare_with_numpy(onnx_file, weights, batches=(1, 8))
    assert set(worst) == set(OUTPUT_NAMES)
    assert max(worst.values()) <= RELATIVE, worst


def pixels(batch, height, width, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, 3, height, width)).astype(np.float32)


@pytest.mark.parametrize("trained_by", ["torch", "paddle"])
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_cross_backend_onnx_runtime_equals_the_numpy_forward(runs, exported, trained_by, exporter):
    """Either framework's weights, exported by either framework, run by ONNX Runtime at batch 1 and 8
    (a dynamic batch): the NumPy forward's anchors, logits and box predictions."""
    if trained_by not in runs:
        pytest.skip(f"needs {trained_by}")
    onnx_file = exported(trained_by, exporter)
    assert OnnxModel(onnx_file).image_size == (64, 64)
    assert_equal_to_numpy(onnx_file, runs[trained_by])


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_cross_backend_export_at_another_size(runs, exporter, tmp_path):
    """--image-size exports the same weights for another input (96 x 128): ONNX Runtime equals the
    NumPy forward there too, and the file says which size it takes."""
    weights = runs.get(exporter) or next(iter(runs.values()))
    onnx_file = export.export_onnx(weights, tmp_path / "model.onnx", backend=exporter, image_size=(96, 128))
    model = OnnxModel(onnx_file)
    assert model.image_size == (96, 128)
    assert_equal_to_numpy(onnx_file, weights)
    anchors, cls_preds, bbox_preds = model(pixels(8, 96, 128))
    assert cls_preds.shape == (8, anchors.shape[1], 2) and bbox_preds.shape == (8, 4 * anchors.shape[1])
    with pytest.raises(ValueError, match=r"takes images of shape \[B, 3, 96, 128\].*received shape \[1, 3, 64, 64\]"):
        model(pixels(1, 64, 64))


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_cross_backend_lesson9_model_exports(exporter, tmp_path):
    """The lesson's SSD (grid anchors, tanh-decoded boxes in the graph, a sigmoid head) exports too."""
    spec = TinySSDSpec.lesson9(num_classes=2, base_channels=(8, 8, 8), block_channels=(8, 8, 8, 8))
    net = backends.load_nn(exporter).TinySSD(spec=spec)
    weights = save_weights(net, tmp_path / "lesson9.safetensors")
    onnx_file = export.export_onnx(weights, backend=exporter, image_size=128)
    model = OnnxModel(onnx_file)
    assert model.spec == spec and model.spec.coding is None
    assert_equal_to_numpy(onnx_file, weights)


def test_export_writes_the_models_config(runs, exported):
    """The metadata carries what predict and evaluate need; the graph's names are the contract's."""
    import onnx

    trained_by = "paddle" if "paddle" in runs else next(iter(runs))
    weights = runs[trained_by]
    config = json.loads((weights.parent / "config.json").read_text())
    onnx_file = exported(trained_by, EXPORTERS[-1])
    model = onnx.load(str(onnx_file))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["multissd.format"] == ONNX_FORMAT
    assert TinySSDSpec.from_json(meta["multissd.spec"]).head == config["spec"]["head"]
    assert json.loads(meta["multissd.class_names"]) == config["class_names"] == ["banana"]
    assert json.loads(meta["multissd.image_size"]) == [64, 64]
    assert meta["multissd.head"] == config["spec"]["head"]
    assert json.loads(meta["multissd.run"])["data"] == config["data"]
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch
    assert not list(onnx_file.parent.glob(".*.tmp"))  # the temporary file is gone


@pytest.mark.parametrize("trained_by", ["torch", "paddle"])
def test_predict_on_the_onnx_engine_prints_the_numpy_backends_detections(runs, exported, tiny_data, trained_by,
                                                                         tmp_path, capsys):
    if trained_by not in runs:
        pytest.skip(f"needs {trained_by}")
    onnx_file = exported(trained_by, EXPORTERS[0])
    images = [str(tiny_data / "bananas_val" / "images" / f"{i}.png") for i in range(3)]
    printed = {}
    for weights, extra in ((runs[trained_by], ["--backend", "numpy"]), (onnx_file, ["--engine", "onnxruntime"])):
        assert predict.main([*images, "--weights", str(weights), *extra, "--threshold", "0.0",
                             "--out", str(tmp_path / "out")]) == 0
        printed[weights.suffix] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed[".onnx"] and printed[".onnx"] == printed[".safetensors"]


def test_evaluate_on_the_onnx_engine_reports_the_numpy_backends_map(runs, exported, tmp_path, capsys):
    weights = next(iter(runs.values()))
    onnx_file = exported(next(iter(runs)), EXPORTERS[0])
    reports = []
    for args in (["--weights", str(weights), "--backend", "numpy"], ["--weights", str(onnx_file)]):
        assert evaluate.main([*args, "--out", str(tmp_path)]) == 0
        reports.append(capsys.readouterr().out.splitlines())
    assert reports[1][0] == "4 val images, engine onnxruntime"
    assert reports[1][1:] == reports[0][1:]


def test_export_and_engine_errors(runs, tmp_path):
    weights = next(iter(runs.values()))
    with pytest.raises(ValueError, match="numpy backend has no ONNX exporter"):
        export.export_onnx(weights, tmp_path / "m.onnx", backend="numpy")
    with pytest.raises(ValueError, match="at least 64 x 64 pixels"):
        export.export_onnx(weights, tmp_path / "m.onnx", backend=EXPORTERS[0], image_size=32)
    classifier = save_weights(backends.load_nn("numpy").Classifier(ClassifierSpec(num_classes=2)),
                              tmp_path / "classifier.safetensors")
    with pytest.raises(ValueError, match="classifier.safetensors holds a ClassifierSpec"):
        export.export_onnx(classifier, backend=EXPORTERS[0])
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07 not a protobuf" * 10)
    with pytest.raises(ValueError, match=f"Cannot load ONNX file {corrupt}"):
        OnnxModel(corrupt)
    with pytest.raises(ValueError, match="ONNX file not found"):
        OnnxModel(tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="is a weights file, not an ONNX graph"):
        open_model(weights, engine="onnxruntime")
    with pytest.raises(ValueError, match="leave out --backend"):
        open_model(tmp_path / "m.onnx", backend="torch", engine="onnxruntime")


def test_a_foreign_onnx_file_is_refused(tmp_path):
    """An ONNX graph multissd did not write (no multissd metadata) is named and refused."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "foreign",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(foreign))
    with pytest.raises(ValueError, match=f"{foreign} was not written by multissd.export"):
        OnnxModel(foreign)


def test_a_model_exported_for_another_class_count_is_refused(runs, exported, tmp_path, capsys):
    """Evaluating a 1-class export on 3-class data names the file and both counts."""
    onnx_file = exported(next(iter(runs)), EXPORTERS[0])
    fruit = generate_bananas(tmp_path / "fruit", seed=1, sizes={"train": 2, "val": 2}, workers=1, image_size=64,
                             kind="fruit")
    assert evaluate.main(["--weights", str(onnx_file), "--data", str(fruit), "--out", str(tmp_path)]) == 2
    assert f"{onnx_file} detects 1 classes but the data has 3" in capsys.readouterr().err


def test_missing_onnxruntime_names_the_extra(runs, exported, monkeypatch):
    onnx_file = exported(next(iter(runs)), EXPORTERS[0])
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"multissd\[export\]"):
        OnnxModel(onnx_file)
