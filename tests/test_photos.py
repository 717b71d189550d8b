"""Real photos (issue #28): anchors fitted to the data, the SSD paper's whole augmentation, a run's
length counted in optimizer steps per kind of data, a folder of VOC files as labelling tools write
them, starting from another run's weights, and the photo model built alike on every backend."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import BACKENDS, OTHER_BACKENDS, assert_close
from PIL import Image
from test_datasets import bright_square, voc_xml
from test_train_cli import run_train, tiny_data  # noqa: F401  (tiny_data: fixture)

import multissd
from multissd import backends, save_weights, train
from multissd.anchor_fit import coverage, fit_anchors, fitted_spec, needs_fitting
from multissd.data import generate_bananas
from multissd.data.augment import AugmentConfig, augment
from multissd.data.datasets import data_kind, load_splits
from multissd.model import TinySSDSpec
from multissd.training import TrainConfig
from multissd.training.config import DEFAULT_STEPS, default_epochs

needs_torch = pytest.mark.skipif("torch" not in BACKENDS, reason="needs torch")


def platelets(count=40, seed=0, size=0.07):
    """Labels ``(count, 3, 5)`` of small objects (BCCD's platelets are about 0.07 of the image) at
    random places, two classes: one small, one as large as the book's anchors."""
    rng = np.random.default_rng(seed)
    labels = np.full((count, 3, 5), -1, np.float32)
    for i in range(count):
        for j, (cls, side) in enumerate(((0, size), (0, size * 1.2), (1, 0.35))):
            xy = rng.uniform(0.02, 0.98 - side, 2)
            labels[i, j] = [cls, *xy, *(xy + side * rng.uniform(0.85, 1.15, 2))]
    return labels


# ---- anchors fitted to the data ------------------------------------------------------------------

def test_small_boxes_get_no_anchor_from_the_book_but_do_from_fitted_anchors():
    """Platelet-sized boxes: no book anchor overlaps one at IoU 0.5 (TinySSD's smallest is 0.2 of the
    image), so matching labels none by threshold; anchors fitted to the boxes cover them."""
    labels = platelets()
    book = TinySSDSpec(num_classes=2)
    shares = coverage(book, labels, (256, 256), ["platelet", "cell"])
    assert shares["platelet"] == 0.0 and shares["cell"] > 0.9 and needs_fitting(shares)
    fitted = fitted_spec(book, labels, (256, 256))
    shares = coverage(fitted, labels, (256, 256), ["platelet", "cell"])
    assert shares["platelet"] > 0.8 and shares["cell"] > 0.8 and not needs_fitting(shares)
    assert fitted.num_anchors(0) == book.num_anchors(0) == 4  # the book's layout kept: 2 sizes, 3 ratios
    sizes, _ = fit_anchors(labels, book, (256, 256))
    assert sizes[0][0] < 0.08 and all(a[0] < b[0] for a, b in zip(sizes, sizes[1:]))  # smallest first, rising


def test_fitted_anchors_travel_with_the_weights_to_every_backend(tmp_path):
    spec = fitted_spec(TinySSDSpec(num_classes=2), platelets(), (256, 256))
    net = backends.load_nn("numpy").TinySSD(spec=spec, seed=0)
    path = save_weights(net, tmp_path / "w.safetensors")
    images = np.random.default_rng(0).uniform(0, 255, (1, 3, 128, 128)).astype(np.float32)
    expected = net(images)[0]
    for name in BACKENDS:
        with multissd.use_backend(name):
            other = multissd.load_model(path)
            other.eval()
            anchors = other(multissd.asarray(images))[0]
        assert other.spec.sizes == spec.sizes and other.spec.ratios == spec.ratios
        assert_close(multissd.to_numpy(anchors), expected)


@needs_torch
def test_a_run_prints_the_coverage_and_fits_anchors_when_asked(tiny_data, tmp_path, capsys):
    assert run_train(tiny_data, tmp_path / "run", "--anchor-sizes", "fit") == 0
    out = capsys.readouterr().out
    assert "the model's anchors give" in out and "anchors fitted to the training boxes: sizes" in out
    spec = json.loads((tmp_path / "run" / "config.json").read_text())["spec"]
    assert spec["sizes"] != [list(s) for s in TinySSDSpec().sizes]


@needs_torch
def test_a_run_whose_anchors_miss_the_boxes_says_how_to_fit_them(tmp_path, capsys):
    """The small bananas (0.04-0.10 of the image) with the book's anchors: no box has an anchor at IoU
    0.5, and the run says so and names --anchor-sizes fit; the bananas of the book's size get no hint."""
    small = generate_bananas(tmp_path / "small", sizes={"train": 4, "val": 2}, workers=1, image_size=128,
                             kind="small-bananas")
    assert run_train(small, tmp_path / "run", "--anchor-sizes", "book") == 0
    out = capsys.readouterr().out
    assert "the model's anchors give 0% of the training boxes" in out
    assert "these anchors leave 100% of the training boxes without an anchor at IoU 0.5" in out
    assert "--anchor-sizes fit fits the anchors to the boxes" in out
    book = generate_bananas(tmp_path / "book", sizes={"train": 4, "val": 2}, workers=1, image_size=128)
    assert run_train(book, tmp_path / "book_run", "--anchor-sizes", "book") == 0
    assert "--anchor-sizes fit" not in capsys.readouterr().out


# ---- augmentation ---------------------------------------------------------------------------------

def test_photo_augmentation_moves_the_boxes_with_the_image_and_zooms_out_up_to_4x():
    """The SSD paper's recipe: zoom-out up to 4x (the object shrinks to a quarter), crops, flips, hue;
    the box still frames the (shrunk, moved) bright rectangle."""
    image, label = bright_square()
    config = AugmentConfig.named("photo")
    config = type(config)(**{**config.__dict__, "jitter": 0.0, "crop": False, "zoom_out": 1.0})
    smallest = 1.0
    for seed in range(40):
        out, out_label = augment(image, label, np.random.default_rng(seed), config)
        rows = out_label[out_label[:, 0] >= 0]
        lit = np.argwhere(out[0] > 127)
        found = np.array([lit[:, 1].min(), lit[:, 0].min(), lit[:, 1].max() + 1, lit[:, 0].max() + 1]) / 64
        np.testing.assert_allclose(rows[0, 1:], found, atol=2.5 / 64)
        smallest = min(smallest, rows[0, 3] - rows[0, 1])
    assert smallest < (20 / 64) / 2.5  # zoomed out well past the 2x of --augment ssd


def test_hue_rotation_keeps_grey_and_brightness():
    from multissd.data.augment import _hue_rotation
    turn = _hue_rotation(np.radians(18))
    grey = np.full((1, 3), 100.0, np.float32)
    np.testing.assert_allclose(grey @ turn, grey, atol=1e-3)
    colour = np.array([[200.0, 50.0, 30.0]], np.float32)
    luma = np.array([0.299, 0.587, 0.114])
    assert abs(float(((colour @ turn) @ luma)[0] - (colour @ luma)[0])) < 1e-2 and not np.allclose(colour @ turn, colour)


# ---- the length of a run ----------------------------------------------------------------------------

def test_a_small_photo_folder_gets_as_many_steps_as_the_banana_default(tmp_path):
    """The default length is counted in optimizer steps per kind of data: 200 photos in batches of 32
    (7 steps an epoch) are not trained for the bananas' 12 epochs (84 steps), but for at least the
    steps the banana default takes."""
    banana_steps = default_epochs("book", 1000, 32) * 32
    epochs = default_epochs("photos", 200, 32)
    assert epochs * 7 >= banana_steps and epochs * 7 >= DEFAULT_STEPS["photos"]
    root = write_flat_voc(tmp_path / "photos", 10)
    assert data_kind(str(root)) == "photos" and data_kind(None) == "book" and data_kind("fruit") == "book"


@needs_torch
def test_the_still_rising_check_says_so(tiny_data, tmp_path, capsys, monkeypatch):
    from multissd.training import loop
    rising = iter([0.1, 0.2, 0.3, 0.4, 0.6])
    real = loop.validation_figures

    def figures(*args, **kwargs):
        return {**real(*args, **kwargs), "val_map_50": next(rising)}
    monkeypatch.setattr(loop, "validation_figures", figures)
    assert run_train(tiny_data, tmp_path / "run", "--epochs", "5") == 0
    assert "the validation mAP@0.5 still rose 0.200 in the last quarter of the epochs" in capsys.readouterr().out


# ---- a folder of VOC files as labelling tools write them -------------------------------------------

def write_flat_voc(root, count, folder="annots", truncated=None):
    """``count`` photos with LabelImg-style XML files (``<filename>`` naming the image) in ``folder``."""
    (root / folder).mkdir(parents=True)
    (root / "images").mkdir()
    for i in range(count):
        name = f"photo{i:03d}"
        Image.new("RGB", (120, 90), (20 * (i % 10), 100, 50)).save(root / "images" / f"{name}.jpg")
        xml = voc_xml(120, 90, [("kangaroo" if i % 2 else "raccoon", (1, 1, 60, 45), False)])
        (root / folder / f"{name}.xml").write_text(xml.replace("<annotation>", f"<annotation><filename>{name}.jpg"
                                                                                f"</filename>"))
    if truncated is not None:
        data = (root / "images" / f"photo{truncated:03d}.jpg").read_bytes()
        (root / "images" / f"photo{truncated:03d}.jpg").write_bytes(data[:-20])
    return root


def test_a_folder_of_labelling_tool_files_is_read_with_a_stable_split(tmp_path):
    root = write_flat_voc(tmp_path / "flat", 40, truncated=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_split, val = load_splits(str(root), image_size=(64, 64))
    assert train_split.class_names == ["kangaroo", "raccoon"] and len(train_split) + len(val) == 40
    assert 3 <= len(val) <= 14 and not set(train_split.names) & set(val.names)
    assert any("photo003.jpg is truncated: read as far as it goes" in str(w.message) for w in caught)
    again, _ = load_splits(str(root), image_size=(64, 64))
    assert again.names == train_split.names  # the same photo always in the same split


# ---- starting from other weights -------------------------------------------------------------------

@needs_torch
def test_init_starts_from_the_matching_tensors_of_another_run(tiny_data, tmp_path, capsys):
    """``--init``: every tensor whose name and shape match is copied (a 3-class run's base network
    into a 1-class run); the class heads, of another shape, are drawn afresh."""
    other = backends.load_nn("numpy").TinySSD(num_classes=3, seed=7)
    path = save_weights(other, tmp_path / "fruit.safetensors")
    assert run_train(tiny_data, tmp_path / "run", "--init", str(path), "--epochs", "1", "--lr", "1e-9") == 0
    assert "started from" in capsys.readouterr().out
    from multissd.weights import read_weights
    trained, _ = read_weights(tmp_path / "run" / "weights.safetensors")
    start = other.spec  # a 3-class model: cls_* differ in shape, everything else matches
    source, _ = read_weights(path)
    np.testing.assert_allclose(trained["blk_1.0.weight"], source["blk_1.0.weight"], atol=1e-5)
    assert trained["cls_0.weight"].shape != source["cls_0.weight"].shape and start.num_classes == 3
    assert train.main(["--init", str(tmp_path / "missing.safetensors"), "--data", str(tiny_data), "--out",
                       str(tmp_path / "x"), "--backend", "torch"]) == 2


# ---- the photo model -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", OTHER_BACKENDS)
def test_photo_model_forward_cross_backend(name):
    spec = TinySSDSpec.photo(3)
    reference = backends.load_nn("numpy").TinySSD(spec=spec, seed=4)
    reference.eval()
    images = np.random.default_rng(1).uniform(0, 255, (2, 3, 128, 128)).astype(np.float32)
    expected = reference(images)
    net = backends.load_nn(name).TinySSD(spec=spec, seed=4)
    net.eval()
    box = backends.load(name)
    for actual, wanted in zip(net(box.asarray(images)), expected):
        np.testing.assert_allclose(box.to_numpy(actual), wanted, rtol=1e-4, atol=1e-4)
    assert spec.num_scales == 6 and expected[1].shape == (2, spec.total_anchors(128, 128), 4)


def test_photo_model_is_a_choice_of_the_config():
    assert TrainConfig(model="ssd-photo").model_spec(2) == TinySSDSpec.photo(2, prior_prob=0.01)


# ---- bfloat16 (issue #29) ---------------------------------------------------------------------------

@needs_torch
def test_a_bf16_runs_weights_are_float32_and_predict_on_every_backend(tiny_data, tmp_path):
    """A run trained with ``--precision bf16`` records it, keeps float32 weights, and its weights file
    gives the same detections on numpy, torch and paddle (float32 inference everywhere)."""
    from multissd.inference import predict_images
    from multissd.weights import read_weights
    assert run_train(tiny_data, tmp_path / "run", "--precision", "bf16", "--epochs", "2") == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "bf16"
    arrays, _ = read_weights(tmp_path / "run" / "weights.safetensors")
    assert {str(a.dtype) for a in arrays.values()} == {"float32"}
    images = [tiny_data / "bananas_val" / "images" / f"{i}.png" for i in range(2)]
    reference, _ = predict_images(images, tmp_path / "run" / "weights.safetensors", "numpy", threshold=0.0)
    for name in BACKENDS:
        mine, _ = predict_images(images, tmp_path / "run" / "weights.safetensors", name, threshold=0.0)
        for (_, _, a), (_, _, b) in zip(mine, reference):
            np.testing.assert_allclose(a[:5], b[:5], rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="numpy backend computes in float32 only"):
        predict_images(images, tmp_path / "run" / "weights.safetensors", "numpy", precision="bf16")
    bf16, _ = predict_images(images, tmp_path / "run" / "weights.safetensors", "torch", threshold=0.0,
                             precision="bf16")
    assert all(len(rows) for _, _, rows in bf16)  # bfloat16 inference runs, its scores close to float32's
    np.testing.assert_allclose(bf16[0][2][0, 1], reference[0][2][0, 1], atol=0.05)
