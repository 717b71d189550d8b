"""The synthetic banana dataset, the book's folder layout and its reader's errors, batches."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import BACKENDS, backend_params
from PIL import Image

import multissd
from multissd.data import EpochBatchSampler, bananas, generate_bananas, read_split
from multissd.data.synthetic import MAX_SIDE, MIN_SIDE, SMALL_SIDES, banana_rng, render_banana


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """8 training and 4 validation images of 64 x 64, drawn once for the module."""
    return generate_bananas(tmp_path_factory.mktemp("bananas"), seed=3, sizes={"train": 8, "val": 4}, workers=1,
                            image_size=64)


def test_generator_is_deterministic_and_boxes_fit():
    image, box = render_banana(banana_rng(0, "train", 5))
    again, box_again = render_banana(banana_rng(0, "train", 5))
    assert np.array_equal(image, again) and box == box_again
    other, _ = render_banana(banana_rng(0, "train", 6))
    assert not np.array_equal(image, other)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    for i in range(20):
        _, (x1, y1, x2, y2) = render_banana(banana_rng(1, "val", i))
        assert 0 <= x1 < x2 <= 256 and 0 <= y1 < y2 <= 256
        assert MIN_SIDE <= max(x2 - x1, y2 - y1) / 256 <= MAX_SIDE


def test_small_bananas_are_at_most_a_tenth_of_the_image(tmp_path):
    """``--data small-bananas`` (the book's exercise on objects much smaller than the image): every
    box's longer side is 0.04-0.10 of the image, below the book's smallest anchor (0.2)."""
    sides = []
    for i in range(20):
        image, (x1, y1, x2, y2) = render_banana(banana_rng(0, "train", i), 128, SMALL_SIDES)
        assert image.shape == (128, 128, 3) and 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
        sides.append(max(x2 - x1, y2 - y1) / 128)
    assert SMALL_SIDES[0] <= min(sides) and max(sides) <= SMALL_SIDES[1] == 0.10
    folder = generate_bananas(tmp_path, sizes={"train": 4, "val": 2}, workers=1, image_size=128, kind="small-bananas")
    train = read_split(folder, "train")
    assert train.class_names == ["banana"] and train.labels.shape == (4, 1, 5)
    extent = np.maximum(train.labels[:, 0, 3] - train.labels[:, 0, 1], train.labels[:, 0, 4] - train.labels[:, 0, 2])
    assert (extent <= SMALL_SIDES[1]).all()


def test_layout_is_the_books(tiny_data):
    for split, count in (("bananas_train", 8), ("bananas_val", 4)):
        with open(tiny_data / split / "label.csv") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["img_name", "label", "xmin", "ymin", "xmax", "ymax"]
        assert [r[0] for r in rows[1:]] == [f"{i}.png" for i in range(count)]
        assert all(r[1] == "0" for r in rows[1:])
        with Image.open(tiny_data / split / "images" / "0.png") as image:
            assert image.size == (64, 64) and image.mode == "RGB"


def test_same_seed_same_dataset(tiny_data, tmp_path):
    again = generate_bananas(tmp_path / "again", seed=3, sizes={"train": 8, "val": 4}, workers=2, image_size=64)
    assert (again / "bananas_train" / "label.csv").read_bytes() == (tiny_data / "bananas_train" / "label.csv").read_bytes()
    a, b = read_split(tiny_data, "train"), read_split(again, "train")
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)


def test_reader_normalises_labels(tiny_data):
    train, val = bananas(tiny_data)
    assert train.images.shape == (8, 3, 64, 64) and train.images.dtype == np.uint8
    assert train.labels.shape == (8, 1, 5) and train.labels.dtype == np.float32
    assert (train.labels[..., 0] == 0).all() and (0 <= train.labels[..., 1:]).all() and (train.labels[..., 1:] <= 1).all()
    with open(tiny_data / "bananas_train" / "label.csv") as handle:
        first = next(iter(list(csv.reader(handle))[1:]))
    np.testing.assert_allclose(train.labels[0, 0, 1:], np.array(first[2:], np.float32) / 64)


def _copy(tiny_data, tmp_path):
    import shutil
    target = tmp_path / "copy"
    shutil.copytree(tiny_data, target)
    return target


def _edit_csv(folder, edit):
    path = folder / "bananas_train" / "label.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


@pytest.mark.parametrize("edit, match", [
    (lambda lines: ["img_name,label,x1,y1,x2,y2"] + lines[1:], r"label.csv, row 1: expected the header"),
    (lambda lines: lines[:3] + ["3.png,0,10,10"] + lines[4:], r"label.csv, row 4: expected 6 values"),
    (lambda lines: lines[:2] + ["1.png,0,10,10,90,20"] + lines[3:], r"label.csv, row 3: box .* lies outside the 64x64 image 1.png"),
    (lambda lines: lines[:2] + ["1.png,0,30,10,20,20"] + lines[3:], r"label.csv, row 3: box .* must have xmin < xmax"),
    (lambda lines: lines[:2] + ["1.png,banana,1,2,3,4"] + lines[3:], r"row 3: label and box must be numbers"),
    (lambda lines: lines[:2] + ["nope.png,0,1,2,30,40"] + lines[3:], r"row 3: image .*nope.png does not exist"),
], ids=["header", "short-row", "outside", "inverted", "not-a-number", "missing-image"])
def test_reader_errors_name_file_and_row(tiny_data, tmp_path, edit, match):
    folder = _copy(tiny_data, tmp_path)
    _edit_csv(folder, edit)
    with pytest.raises(ValueError, match=match):
        read_split(folder, "train")


def test_undecodable_image_is_named(tiny_data, tmp_path):
    folder = _copy(tiny_data, tmp_path)
    (folder / "bananas_train" / "images" / "2.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"2.png: cannot be decoded as an image"):
        read_split(folder, "train")


def test_missing_folder_and_csv(tmp_path):
    with pytest.raises(ValueError, match=r"Data folder not found: .*nothing"):
        read_split(tmp_path / "nothing", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"Missing label file: .*bananas_train.label.csv"):
        read_split(tmp_path / "empty", "train")


def test_interrupted_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = Image.Image.save

    def failing_save(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        generate_bananas(tmp_path / "gen", sizes={"train": 5, "val": 2}, workers=1, image_size=64)
    assert list((tmp_path / "gen").iterdir()) == []


def test_sampler_order_resume_and_shards():
    sampler = EpochBatchSampler(10, 4, shuffle=True, seed=1)
    sampler.set_epoch(2)
    epoch2 = list(sampler)
    assert sorted(i for b in epoch2 for i in b) == list(range(10)) and [len(b) for b in epoch2] == [4, 4, 2]
    sampler.set_epoch(2)
    assert list(sampler) == epoch2
    sampler.set_epoch(2, skip_batches=1)
    assert list(sampler) == epoch2[1:]
    assert list(sampler) != epoch2  # a finished pass moves on to the next order
    shards = [EpochBatchSampler(10, 4, shuffle=True, seed=1, rank=r, world_size=2) for r in range(2)]
    for s in shards:
        s.set_epoch(2)
    merged = [sorted(a + b) for a, b in zip(*(list(s) for s in shards))]
    assert merged == [sorted(b) for b in epoch2]
    with pytest.raises(ValueError, match="batch_size"):
        EpochBatchSampler(10, 0, shuffle=True)


@pytest.mark.parametrize("name", backend_params(BACKENDS))
def test_load_data_bananas_gives_the_books_batches(tiny_data, name):
    with multissd.use_backend(name):
        train_iter, val_iter = multissd.load_data_bananas(4, data=tiny_data)
    features, labels = next(iter(train_iter))
    assert multissd.backends.backend_name_of(features) == name
    assert tuple(features.shape) == (4, 3, 64, 64) and tuple(labels.shape) == (4, 1, 5)
    assert str(features.dtype).endswith("float32")
    host = multissd.to_numpy(features)
    assert host.min() >= 0 and host.max() <= 255 and host.max() > 1
    assert sum(int(f.shape[0]) for f, _ in val_iter) == 4
