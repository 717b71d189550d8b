"""The second hardening round (issue #27, R59-R92): nothing read outside the data folder, nothing
overwritten that the user did not name, a run folder in use is locked, bounds checked before
anything is allocated, every malformed file one line, the model's input checked alike on every
backend. Each test is named after its case in docs/failures.md (``pytest -k R64``).

The full-disk cases write onto a real, small filesystem (a tmpfs mounted for the test, as root);
where the machine cannot mount one they skip, saying why."""
from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import BACKENDS
from PIL import Image
from test_datasets import COCO_SPLITS, VOC_IMAGES, voc_xml, write_book_folder, write_coco, write_voc
from test_failures import _error, needs_torch
from test_train_cli import run_train, tiny_data  # noqa: F401  (tiny_data: fixture)

import multissd
from multissd import backends, evaluate, export, predict, registry, save_weights, train
from multissd.data.datasets import load_splits

EXPORTERS = [n for n in ("torch", "paddle") if n in BACKENDS]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "weights.safetensors"
    save_weights(backends.load_nn("numpy").TinySSD(1, seed=0), path)
    return path


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.new("RGB", (80, 60), (30, 90, 200)).save(path)
    return path


def _mount_small_disk(folder: Path, megabytes: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(megabytes * 1024)}k", "tmpfs", str(folder)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill it (needs root): {result.stderr.strip()}")


@pytest.fixture
def small_disk(tmp_path):
    """A real filesystem of a few megabytes (tmpfs), unmounted after the test: ``small_disk(mb)``."""
    mounted = []

    def make(megabytes: float, name: str = "disk") -> Path:
        folder = tmp_path / name
        _mount_small_disk(folder, megabytes)
        mounted.append(folder)
        return folder
    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _fill(folder: Path) -> None:
    """Fill the filesystem of ``folder`` to the last byte (one file, ``filler``)."""
    handle = open(folder / "filler", "wb", buffering=0)
    for chunk in (65536, 512, 1):
        try:
            while True:
                handle.write(b"\0" * chunk)
        except OSError as error:
            assert error.errno == errno.ENOSPC
    handle.close()


# ---- Data loss, files escaping their folder, memory ------------------------------------------------

@pytest.mark.parametrize("exporter", EXPORTERS)
def test_export_refuses_to_overwrite_its_weights_R59(weights, tmp_path, capsys, exporter):
    copy = tmp_path / "w.safetensors"
    copy.write_bytes(weights.read_bytes())
    for out in (copy, tmp_path / "." / "w.safetensors"):
        assert export.main(["--weights", str(copy), "--out", str(out), "--backend", exporter]) == 2
        assert "an input of this command" in _error(capsys)
    assert copy.read_bytes() == weights.read_bytes()


@needs_torch
def test_a_run_folder_in_use_is_locked_R60(tiny_data, tmp_path, capsys):
    """While one run holds the folder (its lock), a second run on it is refused and writes nothing;
    a lock file left by a run that was killed is taken over, with a line that says so."""
    from multissd.files import LOCK_FILE, RunLock
    run = tmp_path / "race"
    run.mkdir()
    with RunLock(run):
        assert run_train(tiny_data, run) == 2
        assert "is in use by another run (pid " in _error(capsys)
        assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE]
    (run / LOCK_FILE).write_text("pid 999999999")  # killed: the file stays, the lock went with the process
    assert run_train(tiny_data, run) == 0
    assert "was left by a run that did not end (pid 999999999" in capsys.readouterr().out
    assert not (run / LOCK_FILE).exists()  # released when the run ended


@needs_torch
def test_two_runs_started_together_do_not_share_a_folder_R60(tiny_data, tmp_path):
    """Two processes on one --out, 0.3 s apart: one trains, the other is refused (exit 2)."""
    command = [sys.executable, "-m", "multissd.train", "--backend", "torch", "--data", str(tiny_data), "--out",
               str(tmp_path / "race"), "--batch-size", "4", "--epochs", "2", "--no-progress"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    import time
    time.sleep(0.3)
    second = subprocess.run(command, capture_output=True, text=True)
    first_err = first.communicate()[1]
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 2], (first_err, second.stderr)
    loser = second.stderr if second.returncode == 2 else first_err
    assert "in use by another run" in loser or "exists and is not empty" in loser
    config = json.loads((tmp_path / "race" / "config.json").read_text())
    assert config["epochs"] == 2 and (tmp_path / "race" / "checkpoint.safetensors").is_file()


@pytest.mark.parametrize("line", ["../../../elsewhere/secret", "/etc/passwd", "a/../../b"])
def test_voc_ids_stay_inside_the_folder_R61(tmp_path, line):
    root = write_voc(tmp_path / "voc", VOC_IMAGES)
    (tmp_path / "elsewhere").mkdir()
    (root / "ImageSets" / "Main" / "train.txt").write_text(f"000001\n{line}\n")
    with pytest.raises(ValueError, match=r"train\.txt, line 2: the image id .* must name a file inside"):
        load_splits(str(root))


@pytest.mark.parametrize("name", ["../outside.png", "/etc/passwd", "sub/../../x.png"])
def test_coco_file_names_stay_inside_the_folder_R62(tmp_path, name):
    root = write_coco(tmp_path / "coco", COCO_SPLITS)
    path = root / "annotations" / "instances_train2017.json"
    data = json.loads(path.read_text())
    data["images"][1]["file_name"] = name
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"instances_train2017\.json, images\[1\]\.file_name .* must name a file inside"):
        load_splits(str(root))


def _limited(command, gigabytes=6):
    """``command`` in a subprocess whose address space is capped (RLIMIT_AS): a program that tried to
    allocate what it was asked for would fail with a MemoryError or be killed, not print one line."""
    limit = gigabytes << 30

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, preexec_fn=cap,
                          timeout=300)


@pytest.mark.parametrize("command, message", [
    (["multissd.export", "--image-size", "100000"], "--image-size: images of 100000x100000 are larger than"),
    (["multissd.train", "--image-size", "100000", "--backend", "numpy"], "--image-size: images of 100000x100000"),
], ids=["export", "train"])
def test_sizes_are_bounded_before_anything_is_allocated_R63(weights, tmp_path, command, message):
    if command[0] == "multissd.export":
        if "torch" not in BACKENDS:
            pytest.skip("needs torch")
        command = [*command, "--weights", str(weights), "--out", str(tmp_path / "m.onnx")]
    result = _limited(command)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert message in result.stderr


def test_a_huge_classes_file_is_refused_before_a_model_is_built_R63(tmp_path):
    root = write_book_folder(tmp_path / "b", [("0.png", 0)], [("0.png", 0)], classes=[f"c{i}" for i in range(100000)])
    result = _limited(["multissd.train", "--backend", "torch" if "torch" in BACKENDS else "numpy", "--data", str(root),
                       "--out", str(tmp_path / "run")])
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "classes.txt names 100000 classes; multissd trains at most 1000" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("exporter, opset", [(e, o) for e in EXPORTERS for o in (7, 999, -1)] +
                         ([("paddle", 22)] if "paddle" in EXPORTERS else []))
def test_export_opsets_outside_the_exporters_range_are_refused_R64(weights, tmp_path, capsys, exporter, opset):
    assert export.main(["--weights", str(weights), "--out", str(tmp_path / "m.onnx"), "--backend", exporter,
                        "--opset", str(opset)]) == 2
    assert f"error: --opset {opset}: the {exporter} exporter writes ONNX opsets" in _error(capsys)
    assert list(tmp_path.iterdir()) == []


# ---- Tracebacks instead of one line ------------------------------------------------------------------

@pytest.mark.parametrize("width", ["inf", "1e400", "nan", "-3", "2.5"])
def test_voc_sizes_must_be_finite_whole_numbers_R65_R72(tmp_path, width):
    root = write_voc(tmp_path / "voc", VOC_IMAGES)
    (root / "Annotations" / "000001.xml").write_text(voc_xml(100, 80, [("dog", (1, 1, 50, 40), False)])
                                                    .replace("<width>100</width>", f"<width>{width}</width>"))
    with pytest.raises(ValueError, match=r"000001\.xml <size>"):
        load_splits(str(root))


@pytest.mark.parametrize("label", ["inf", "1e400", "nan", "-inf"])
def test_label_csv_labels_must_be_finite_R66(tmp_path, label):
    root = write_book_folder(tmp_path / "b", [("0.png", 0), ("1.png", label)], [("0.png", 0)])
    with pytest.raises(ValueError, match=r"label\.csv, row 3: label must be an integer >= 0"):
        load_splits(str(root))


def _coco(tmp_path, change, split="train2017"):
    root = write_coco(tmp_path / "coco", COCO_SPLITS)
    path = root / "annotations" / f"instances_{split}.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps(change(data)) if callable(change) else change)
    return root


def _set(path, value):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return data
    return change


def _drop(path):
    def change(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return data
    return change


@pytest.mark.parametrize("change, message", [
    ("[]", "the file holds a list; expected an object with 'images'"),
    ("null", "the file holds null; expected an object"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
    (_drop(("categories", 0, "name")), "categories[0]: no 'name'"),
    (_drop(("categories", 1, "id")), "categories[1]: no 'id'"),
    (_set(("categories", 1, "id"), 7), "categories[1].id: 7 is the id of categories[0] too"),
    (_set(("categories", 1, "name"), 5), "categories[1].name: expected a non-empty string; found a int 5"),
    (_set(("annotations", 1), "banana"), "annotations[1]: expected an object; found a string 'banana'"),
    (_drop(("images", 0, "file_name")), "images[0]: no 'file_name'"),
    (_drop(("images", 2, "id")), "images[2]: no 'id'"),
    (_set(("images", 0, "width"), 1e400), "images[0].width: expected a whole number >= 1"),
    (_set(("images", 0, "width"), float("nan")), "images[0].width: expected a whole number >= 1"),
    (_set(("images", 0, "file_name"), ["a.png"]), "images[0].file_name: expected a string; found a list"),
    (_set(("images", 0, "id"), "1"), "images[0].id: expected an integer; found a string '1'"),
    (_set(("annotations", 0, "image_id"), [1]), "annotations[0].image_id (id 1): [1] is not the id of an entry"),
    (_set(("annotations", 0, "bbox"), "1,2,3,4"), "annotations[0].bbox (id 1): '1,2,3,4' is not [x, y, width, height]"),
    (_set(("annotations", 0, "category_id"), "3"), "annotations[0].category_id (id 1): unknown category '3'"),
    (_set(("categories",), {"id": 3}), "'categories' must be a list"),
], ids=["list", "null", "deep", "no-name", "no-id", "duplicate-id", "numeric-name", "string-annotation",
        "no-file-name", "no-image-id", "width-1e400", "width-nan", "file-name-list", "id-string", "image-id-list",
        "bbox-string", "category-id-string", "categories-object"])
def test_coco_files_are_checked_against_the_schema_R67_R72_R73(tmp_path, change, message):
    root = _coco(tmp_path, change)
    with pytest.raises(ValueError) as caught:
        load_splits(str(root))
    assert "instances_train2017.json" in str(caught.value) and message in str(caught.value), str(caught.value)


def test_coco_splits_need_the_same_categories_R67(tmp_path):
    root = _coco(tmp_path, _set(("categories",), [{"id": 7, "name": "pear"}, {"id": 3, "name": "banana"}]),
                 split="val2017")
    with pytest.raises(ValueError, match=r"instances_val2017\.json has the categories \['banana', 'pear'\] but "
                                         r".*instances_train2017\.json has \['apple', 'pear'\]"):
        load_splits(str(root))


@needs_torch
def test_a_full_disk_while_writing_a_checkpoint_is_one_line_R68(tiny_data, small_disk, capsys):
    """A real 16 MB filesystem: the first epoch's checkpoint and weights fit, the second epoch's
    checkpoint does not: one line naming the file, and the first checkpoint is intact."""
    disk = small_disk(16)
    assert run_train(tiny_data, disk / "run", "--epochs", "3") == 2
    line = _error(capsys)
    assert "No space left on device" in line and str(disk / "run") in line and ".tmp" not in line
    from multissd.training import load_checkpoint
    _, state = load_checkpoint(disk / "run")
    assert state["epoch"] >= 1
    assert not [p.name for p in (disk / "run").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_export_onto_a_full_disk_is_one_line_R69_R76(weights, small_disk, capsys, exporter):
    disk = small_disk(2)
    _fill(disk)
    assert export.main(["--weights", str(weights), "--out", str(disk / "m.onnx"), "--backend", exporter]) == 2
    assert f"error: cannot use {disk / 'm.onnx'}: No space left on device" == _error(capsys)
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_a_decompression_bomb_is_one_line_R70(weights, tmp_path, capsys):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20000, 20000)).save(bomb)  # 48 KB on disk, 400 million pixels
    assert bomb.stat().st_size < 100_000
    assert predict.main([str(bomb), "--weights", str(weights), "--backend", "numpy", "--out", str(tmp_path)]) == 2
    assert f"image {bomb} has more than the 178,956,970 pixels multissd opens" in _error(capsys)
    root = write_book_folder(tmp_path / "b", [("0.png", 0), ("1.png", 0)], [("0.png", 0)])
    Image.new("1", (20000, 20000)).save(root / "bananas_train" / "images" / "1.png")
    with pytest.raises(ValueError, match="more than the 178,956,970 pixels multissd opens"):
        load_splits(str(root))


@needs_torch
def test_ctrl_c_inside_the_exporter_waits_for_it_R71(weights, tmp_path, monkeypatch, capsys):
    """SIGINT sent from inside torch's exporter (a hook in its own step): the step runs to its end --
    a Python exception raised inside torch.onnx.export's C++ aborts the process -- then the export
    stops with ``interrupted``, exit 130, and leaves nothing behind."""
    import torch
    real, finished = torch.onnx.export, []

    def interrupted_export(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):  # give the signal every chance to be delivered inside the step
            sum(range(1000))
        result = real(*args, **kwargs)
        finished.append(True)
        return result

    monkeypatch.setattr(torch.onnx, "export", interrupted_export)
    assert export.main(["--weights", str(weights), "--out", str(tmp_path / "m.onnx")]) == 130
    assert finished == [True]
    assert "interrupted" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_evaluate_batch_size_is_checked_R75(weights, capsys):
    for size in ("0", "-3"):
        assert evaluate.main(["--weights", str(weights), "--backend", "numpy", "--batch-size", size]) == 2
        assert f"error: --batch-size must be a whole number >= 1; received {size}" == _error(capsys)


@pytest.mark.parametrize("tool", ["predict", "evaluate"])
def test_predict_and_evaluate_onto_a_full_disk_name_the_file_and_leave_nothing_R76_R90(
        weights, photo, tiny_data, small_disk, capsys, tool):
    disk = small_disk(1)
    _fill(disk)
    if tool == "predict":
        code = predict.main([str(photo), "--weights", str(weights), "--backend", "numpy", "--out", str(disk / "out")])
        name = disk / "out" / "photo_detections.png"
    else:
        code = evaluate.main(["--weights", str(weights), "--backend", "numpy", "--data", str(tiny_data),
                              "--out", str(disk / "out")])
        name = disk / "out" / "eval.json"
    assert code == 2
    line = _error(capsys)
    assert line == f"error: cannot use {name}: No space left on device", line
    leftovers = [p for p in disk.rglob("*") if p.is_file() and p.name != "filler"]
    assert leftovers == []


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_export_to_a_folder_is_refused_before_exporting_R77(weights, tmp_path, capsys, monkeypatch, exporter):
    monkeypatch.setattr(registry.load_exporter(exporter), "export_onnx",
                        lambda *a, **k: pytest.fail("exported before checking --out"))
    assert export.main(["--weights", str(weights), "--out", str(tmp_path), "--backend", exporter]) == 2
    assert _error(capsys) == f"error: ONNX file {tmp_path} is a folder; name a file"


def test_options_are_named_as_given_R78(weights, photo, capsys):
    assert train.main(["--seed", "-1", "--backend", "numpy"]) == 2
    assert _error(capsys) == "error: --seed must be a whole number >= 0; received -1"
    assert predict.main([str(photo), "--weights", str(weights), "--min-detections", "-1", "--backend", "numpy"]) == 2
    assert _error(capsys) == "error: --min-detections must be a whole number >= 0; received -1"


def test_weights_holding_nan_name_the_file_R79(weights, photo, tmp_path, capsys):
    from multissd.weights import read_file, write_file
    arrays, metadata = read_file(weights)
    name = next(iter(arrays))
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] = np.nan
    broken = write_file(tmp_path / "nan.safetensors", arrays, metadata)
    assert predict.main([str(photo), "--weights", str(broken), "--backend", "numpy", "--out", str(tmp_path)]) == 2
    assert f"Weights file {broken}: {name} holds 1 non-finite values" in _error(capsys)


@needs_torch
def test_a_tampered_onnx_image_size_names_the_file_R79(weights, photo, tmp_path, capsys):
    import onnx
    onnx_file = export.export_onnx(weights, tmp_path / "m.onnx")
    model = onnx.load(str(onnx_file))
    for prop in model.metadata_props:
        if prop.key == "multissd.image_size":
            prop.value = "[0, -5]"
    onnx.save(model, str(onnx_file))
    assert predict.main([str(photo), "--weights", str(onnx_file), "--out", str(tmp_path / "p")]) == 2
    assert f"{onnx_file}: its metadata's multissd.image_size: images of -5x0 are too small" in _error(capsys)


# ---- Silently wrong ------------------------------------------------------------------------------------

def test_images_of_one_name_in_two_folders_get_two_drawings_R80(weights, tmp_path, capsys):
    for folder, colour in (("d1", (200, 0, 0)), ("d2", (0, 0, 200))):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (64, 64), colour).save(tmp_path / folder / "x.png")
    out = tmp_path / "out"
    assert predict.main([str(tmp_path / "d1" / "x.png"), str(tmp_path / "d2" / "x.png"), "--weights", str(weights),
                         "--backend", "numpy", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["d1_x_png_detections.png", "d2_x_png_detections.png"]
    capsys.readouterr()


@pytest.mark.parametrize("value", ["nan", "-1", "2", "inf"])
def test_predict_thresholds_are_probabilities_R81(weights, photo, capsys, value):
    assert predict.main([str(photo), "--weights", str(weights), "--threshold", value, "--backend", "numpy"]) == 2
    assert _error(capsys).startswith(f"error: --threshold must be a number in [0, 1]; received {float(value)}")
    assert predict.main([str(photo), "--weights", str(weights), "--nms-threshold", value, "--backend", "numpy"]) == 2
    assert _error(capsys).startswith("error: --nms-threshold must be a number in [0, 1]")


@needs_torch
@pytest.mark.parametrize("layout", ["voc", "coco", "voc-empty"])
def test_data_with_nothing_to_train_on_is_refused_R74_R82(tmp_path, capsys, layout):
    if layout == "coco":
        root = write_coco(tmp_path / "data", {name: (images, [{**a, "iscrowd": 1} for a in annotations])
                                              for name, (images, annotations) in COCO_SPLITS.items()})
        message = "every object of the training split is marked difficult (VOC) or iscrowd (COCO)"
    else:
        empty = layout == "voc-empty"
        root = write_voc(tmp_path / "data", {split: {i: (w, h, [] if empty else [(n, b, True) for n, b, _ in objects])
                                                     for i, (w, h, objects) in entries.items()}
                                             for split, entries in VOC_IMAGES.items()})
        message = ("the training split has no objects" if empty else
                   "every object of the training split is marked difficult")
    assert train.main(["--backend", "torch", "--data", str(root), "--out", str(tmp_path / "run"), "--image-size", "64",
                       "--no-progress"]) == 2
    assert message in _error(capsys)
    assert not (tmp_path / "run").exists()


def test_duplicate_class_names_are_refused_R83(tmp_path):
    root = write_book_folder(tmp_path / "b", [("0.png", 0), ("1.png", 1)], [("0.png", 0)], classes=["banana", "banana"])
    with pytest.raises(ValueError, match=r"classes\.txt names the class 'banana' twice"):
        load_splits(str(root))
    coco = _coco(tmp_path, _set(("categories", 1, "name"), "pear"))
    with pytest.raises(ValueError, match=r"categories\[1\]\.name: 'pear' names categories\[0\] too"):
        load_splits(str(coco))


def test_a_float_tiff_of_intensities_is_not_black_R84(weights, tmp_path):
    from multissd.data.images import read_image
    values = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    Image.fromarray(values, mode="F").save(tmp_path / "f.tif")
    pixels = np.asarray(read_image(tmp_path / "f.tif"))
    assert pixels.shape == (64, 64, 3) and pixels.max() == 255 and pixels[0, 0, 0] == 0
    np.testing.assert_array_equal(pixels[..., 0], np.round(values * 255).astype(np.uint8))


# ---- The model's input, checked alike on every backend (R85-R89) ------------------------------------

def _forward(name, images):
    with multissd.use_backend(name):
        net = multissd.TinySSD(num_classes=1)
        net.eval()
        return net(multissd.asarray(images) if isinstance(images, np.ndarray) and images.dtype == np.float32
                   else _native(name, images))


def _native(name, images):
    """``images`` as the backend's tensor, keeping its dtype (asarray would keep it too)."""
    return backends.load(name).asarray(images, dtype=str(images.dtype))


BAD_INPUTS = {
    "32px": (np.zeros((1, 3, 32, 32), np.float32), ValueError, r"Expected images of 64 to 2048 pixels a side"),
    "64x32": (np.zeros((1, 3, 64, 32), np.float32), ValueError, r"received 32x64"),
    "empty": (np.zeros((0, 3, 64, 64), np.float32), ValueError, r"Expected at least one image; received an empty batch"),
    "uint8": (np.zeros((1, 3, 64, 64), np.uint8), TypeError, r"Expected float32 images .* received uint8"),
    "float64": (np.zeros((1, 3, 64, 64), np.float64), TypeError, r"Expected float32 images .* received float64"),
    "nan": (np.full((1, 3, 64, 64), np.nan, np.float32), ValueError, r"Expected finite pixel values; the images hold 12288"),
    "3d": (np.zeros((3, 64, 64), np.float32), ValueError, r"Expected images of shape \(B, 3, H, W\)"),
    "1-channel": (np.zeros((1, 1, 64, 64), np.float32), ValueError, r"Expected images of shape \(B, 3, H, W\)"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=[f"R85-R89-{case}" for case in BAD_INPUTS])
@pytest.mark.parametrize("name", BACKENDS)
def test_model_input_is_checked_alike_cross_backend(name, case):
    images, kind, message = BAD_INPUTS[case]
    with pytest.raises(kind, match=message):
        _forward(name, images)


@pytest.mark.parametrize("name", BACKENDS)
def test_the_lessons_model_takes_square_images_cross_backend(name):
    with multissd.use_backend(name):
        net = multissd.TinySSD(spec=multissd.TinySSDSpec.lesson9(2))
        with pytest.raises(ValueError, match="Expected square images"):
            net(multissd.asarray(np.zeros((1, 3, 128, 256), np.float32)))


# ---- Left behind ----------------------------------------------------------------------------------------

@pytest.mark.skipif("paddle" not in EXPORTERS, reason="needs paddle")
def test_a_killed_exports_leftovers_are_removed_and_tmp_is_untouched_R91(weights, tmp_path):
    """What a killed paddle export leaves (its work folder beside the output, named after the writer's
    process) is removed by the next export; paddle2onnx's own static model goes there, not to $TMPDIR."""
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".m.onnx.999999999-0.tmp.onnx.d"
    stale.mkdir()
    (stale / "model.pdiparams").write_bytes(b"x" * 1000)
    (out / ".m.onnx.999999999-0.tmp.onnx").write_bytes(b"half")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    result = subprocess.run([sys.executable, "-m", "multissd.export", "--weights", str(weights), "--out",
                             str(out / "m.onnx"), "--backend", "paddle"], capture_output=True, text=True,
                            env={**os.environ, "TMPDIR": str(scratch)}, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["m.onnx"]
    assert [p for p in scratch.rglob("*") if p.suffix in (".pdiparams", ".json", ".pdmodel", ".onnx")] == []


@needs_torch
@pytest.mark.parametrize("argv, message", [
    (["--compile", "--backend", "paddle"], "--compile is available with --backend torch only"),
    (["--data", "fruit-typo"], "Data folder not found"),
    (["--image-size", "32"], "too small"),
], ids=["paddle-compile", "bad-data", "small-image"])
def test_a_mistake_leaves_no_run_folder_R92(tiny_data, tmp_path, capsys, argv, message):
    if "--compile" in argv and "paddle" not in BACKENDS:
        pytest.skip("needs paddle")
    args = ["--data", str(tiny_data), "--backend", "torch", "--out", str(tmp_path / "run"), "--batch-size", "4",
            "--epochs", "1", "--no-progress"]
    assert train.main(args + argv) == 2
    assert message in _error(capsys)
    assert not (tmp_path / "run").exists()


def test_the_pixel_bound_holds_where_pillows_is_switched_off_R70(tmp_path, monkeypatch):
    """A program that switched Pillow's own limit off (``Image.MAX_IMAGE_PIXELS = None``) still gets
    multissd's, checked from the header before decoding."""
    from multissd.data.images import open_rgb
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    big = tmp_path / "big.png"
    Image.new("1", (14000, 13000)).save(big)  # 182 million pixels
    with pytest.raises(ValueError, match=r"is 14000x13000: 182,000,000 pixels, more than the 178,956,970 pixels"):
        open_rgb(big)
