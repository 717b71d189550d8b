"""The fruit dataset, the Pascal VOC and COCO readers (on small fixture datasets written here),
box-aware augmentation and batch padding."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from multissd.data import AugmentConfig, BatchSource, augment, generate_bananas, load_splits, read_split
from multissd.data.augment import trim_padding
from multissd.data.fruit import CLASS_NAMES, MAX_OBJECTS, fruit_rng, render_fruit
from multissd.data.sampler import EpochBatchSampler

# ---- the fruit dataset ----------------------------------------------------------------------------


def test_fruit_is_deterministic_with_several_objects_and_classes():
    image, boxes, classes = render_fruit(fruit_rng(0, "train", 3))
    again, boxes_again, classes_again = render_fruit(fruit_rng(0, "train", 3))
    assert np.array_equal(image, again) and np.array_equal(boxes, boxes_again) and np.array_equal(classes, classes_again)
    counts, seen = [], set()
    for i in range(30):
        image, boxes, classes = render_fruit(fruit_rng(1, "val", i))
        assert image.shape == (256, 256, 3) and image.dtype == np.uint8
        assert 1 <= len(boxes) <= MAX_OBJECTS and len(boxes) == len(classes)
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 256).all() and (boxes[:, 2:] > boxes[:, :2]).all()
        counts.append(len(boxes))
        seen.update(classes.tolist())
    assert seen == {0, 1, 2} and max(counts) >= 4 and min(counts) <= 2


@pytest.fixture(scope="module")
def tiny_fruit(tmp_path_factory):
    return generate_bananas(tmp_path_factory.mktemp("fruit"), seed=2, sizes={"train": 6, "val": 3}, workers=1,
                            image_size=96, kind="fruit")


def test_fruit_folder_has_class_names_and_padding(tiny_fruit):
    assert (tiny_fruit / "classes.txt").read_text().split() == list(CLASS_NAMES)
    split = read_split(tiny_fruit, "train")
    assert split.class_names == list(CLASS_NAMES)
    assert split.labels.shape[1] == max((split.labels[:, :, 0] >= 0).sum(axis=1))  # padded to the most objects
    assert set(np.unique(split.labels[..., 0])) <= {-1, 0, 1, 2}


def test_unknown_synthetic_dataset(tmp_path):
    with pytest.raises(ValueError, match="Unknown synthetic dataset 'cars'; expected one of bananas, fruit, small-bananas"):
        generate_bananas(tmp_path, kind="cars")


# ---- Pascal VOC ---------------------------------------------------------------------------------------

def voc_xml(width, height, objects):
    parts = [f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for name, box, difficult in objects:
        parts.append(f"<object><name>{name}</name><difficult>{int(difficult)}</difficult><bndbox>"
                     f"<xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax>"
                     f"</bndbox></object>")
    return "".join(parts) + "</annotation>"


def write_voc(root, images):
    """``images``: {split: {image_id: (width, height, objects)}}."""
    for folder in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for split, entries in images.items():
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(entries) + "\n")
        for image_id, (width, height, objects) in entries.items():
            Image.new("RGB", (width, height), (40, 80, 120)).save(root / "JPEGImages" / f"{image_id}.jpg")
            (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(width, height, objects))
    return root


VOC_IMAGES = {
    "train": {"000001": (100, 80, [("dog", (1, 1, 50, 40), False), ("person", (51, 11, 100, 80), False)]),
              "000002": (60, 60, [("cat", (11, 11, 30, 30), False), ("dog", (31, 31, 60, 60), True)])},
    "val": {"000003": (120, 90, [("person", (21, 21, 60, 90), False)])},
}


def test_voc_reader(tmp_path):
    train, val = load_splits(str(write_voc(tmp_path / "VOC2007", VOC_IMAGES)), image_size=(64, 64))
    assert train.class_names == val.class_names == ["cat", "dog", "person"]  # from the data, sorted
    assert train.images.shape == (2, 3, 64, 64) and val.images.shape == (1, 3, 64, 64)
    assert train.names == ["000001.jpg", "000002.jpg"]
    # VOC pixels start at 1: xmin 1 of a 100-pixel-wide image is 0.0; xmax 50 is 0.5
    np.testing.assert_allclose(train.labels[0, 0], [1, 0.0, 0.0, 0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(val.labels[0, 0], [2, 20 / 120, 20 / 90, 0.5, 1.0], atol=1e-6)
    assert train.ignored(1).tolist() == [False, True]  # the difficult dog
    training = train.for_training()
    assert training.labels[1, 1, 0] == -1 and training.labels[1, 0, 0] == 0


@pytest.mark.parametrize("objects, message", [
    ([("dog", (0, 1, 50, 40), False)], "000001.xml, object 0 (dog): box (0, 1, 50, 40) lies outside the 100x80 image"),
    ([("dog", (30, 1, 20, 40), False)], "000001.xml, object 0 (dog): box (30, 1, 20, 40) has a negative or zero size"),
    ([("dog", (1, 1, 50, 90), False)], "lies outside the 100x80 image"),
])
def test_voc_bad_objects_name_the_file_and_object(tmp_path, objects, message):
    images = {"train": {"000001": (100, 80, objects + [("cat", (2, 2, 20, 20), False)])}, "val": VOC_IMAGES["val"]}
    root = write_voc(tmp_path / "voc", images)
    with pytest.raises(ValueError, match="--skip-bad skips such annotations") as caught:
        load_splits(str(root))
    assert message in str(caught.value)
    with pytest.warns(UserWarning, match="skipped: .*000001.xml, object 0"):
        train, _ = load_splits(str(root), skip_bad=True)
    assert (train.labels[0, :, 0] >= 0).sum() == 1 and train.class_names == ["cat", "person"]


def test_voc_missing_files(tmp_path):
    root = write_voc(tmp_path / "voc", VOC_IMAGES)
    (root / "JPEGImages" / "000002.jpg").unlink()
    with pytest.raises(ValueError, match=r"image .*000002.jpg does not exist \(listed in .*train.txt\)"):
        load_splits(str(root))
    with pytest.warns(UserWarning):
        train, _ = load_splits(str(root), skip_bad=True)
    assert train.names == ["000001.jpg"]


def test_voc_broken_annotation(tmp_path):
    root = write_voc(tmp_path / "voc", VOC_IMAGES)
    (root / "Annotations" / "000003.xml").write_text("<annotation><size>")
    with pytest.raises(ValueError, match="000003.xml: not valid XML"):
        load_splits(str(root))
    # skipped, it leaves the val split empty
    with pytest.raises(ValueError, match="the val split has no usable images"), pytest.warns(UserWarning):
        load_splits(str(root), skip_bad=True)


# ---- COCO -------------------------------------------------------------------------------------------

def write_coco(root, splits):
    """``splits``: {name: (images [(file, w, h)], annotations [dict])}; categories 3 (apple) and 7 (pear)."""
    (root / "annotations").mkdir(parents=True)
    for name, (images, annotations) in splits.items():
        (root / name).mkdir()
        for file, width, height in images:
            Image.new("RGB", (width, height), (200, 100, 50)).save(root / name / file)
        data = {"images": [{"id": i + 1, "file_name": f, "width": w, "height": h} for i, (f, w, h) in enumerate(images)],
                "annotations": [{"id": j + 1, **a} for j, a in enumerate(annotations)],
                "categories": [{"id": 7, "name": "pear"}, {"id": 3, "name": "apple"}]}
        (root / "annotations" / f"instances_{name}.json").write_text(json.dumps(data))
    return root


COCO_SPLITS = {
    "train2017": ([("a.png", 100, 50), ("b.png", 40, 40), ("empty.png", 30, 30)],
                  [{"image_id": 1, "category_id": 3, "bbox": [10, 5, 40, 20], "iscrowd": 0},
                   {"image_id": 1, "category_id": 7, "bbox": [0, 0, 100, 50], "iscrowd": 1},
                   {"image_id": 2, "category_id": 7, "bbox": [20, 20, 20, 20], "iscrowd": 0}]),
    "val2017": ([("c.png", 64, 64)], [{"image_id": 1, "category_id": 7, "bbox": [0, 32, 32, 32], "iscrowd": 0}]),
}


def test_coco_reader(tmp_path):
    train, val = load_splits(str(write_coco(tmp_path / "coco", COCO_SPLITS)), image_size=(32, 32))
    assert train.class_names == ["apple", "pear"]  # categories in id order, numbered from 0
    assert train.names == ["a.png", "b.png", "empty.png"] and train.images.shape == (3, 3, 32, 32)
    np.testing.assert_allclose(train.labels[0, 0], [0, 0.1, 0.1, 0.5, 0.5], atol=1e-6)
    assert train.ignored(0).tolist() == [False, True]  # the crowd region
    assert (train.labels[2, :, 0] == -1).all()  # an image without annotations: all background
    assert train.for_training().labels[0, 1, 0] == -1  # crowd regions are not trained on
    np.testing.assert_allclose(val.labels[0, 0], [1, 0, 0.5, 0.5, 1.0], atol=1e-6)


@pytest.mark.parametrize("annotation, message", [
    ({"image_id": 1, "category_id": 5, "bbox": [1, 1, 5, 5]}, "annotations[0].category_id (id 1): unknown category 5"),
    ({"image_id": 1, "category_id": 3, "bbox": [1, 1, -5, 5]}, "annotations[0] (id 1, image a.png): bbox [1, 1, -5, 5] has a negative"),
    ({"image_id": 1, "category_id": 3, "bbox": [90, 1, 50, 5]}, "bbox [90, 1, 50, 5] lies outside the 100x50 image"),
    ({"image_id": 9, "category_id": 3, "bbox": [1, 1, 5, 5]}, "image_id (id 1): 9 is not the id of an entry of 'images'"),
])
def test_coco_bad_annotations(tmp_path, annotation, message):
    splits = {"train2017": ([("a.png", 100, 50)], [annotation]), "val2017": COCO_SPLITS["val2017"]}
    root = write_coco(tmp_path / "coco", splits)
    with pytest.raises(ValueError) as caught:
        load_splits(str(root))
    assert message in str(caught.value) and "instances_train2017.json" in str(caught.value)
    with warnings.catch_warnings(record=True) as caught_warnings:
        warnings.simplefilter("always")
        train, _ = load_splits(str(root), skip_bad=True)
    assert any(message in str(w.message) for w in caught_warnings)
    assert (train.labels[..., 0] == -1).all()


def test_unknown_layout(tmp_path):
    with pytest.raises(ValueError, match="in none of the layouts multissd reads"):
        load_splits(str(tmp_path))
    with pytest.raises(ValueError, match="Data folder not found"):
        load_splits(str(tmp_path / "nowhere"))


# ---- augmentation -------------------------------------------------------------------------------------

def bright_square(size=64, box=(10, 20, 30, 50)):
    """Black image with a white rectangle at ``box`` (pixels) and its label row."""
    image = np.zeros((3, size, size), np.uint8)
    image[:, box[1]:box[3], box[0]:box[2]] = 255
    label = np.full((3, 5), -1, np.float32)
    label[0] = [1, *(np.array(box) / size)]
    return image, label


def test_boxes_move_with_the_image():
    image, label = bright_square()
    config = AugmentConfig(jitter=0.0)  # keep the colours so that the rectangle can be found
    flipped = cropped = 0
    for seed in range(60):
        out, out_label = augment(image, label, np.random.default_rng(seed), config)
        assert out.shape == image.shape and out_label.shape == label.shape
        rows = out_label[out_label[:, 0] >= 0]
        assert len(rows) == 1 and rows[0, 0] == 1  # one object: its centre always stays in the crop
        lit = np.argwhere(out[0] > 127)
        found = np.array([lit[:, 1].min(), lit[:, 0].min(), lit[:, 1].max() + 1, lit[:, 0].max() + 1]) / 64
        np.testing.assert_allclose(rows[0, 1:], found, atol=2.5 / 64)  # within the resampling blur
        flipped += rows[0, 1] > 0.5
        cropped += not np.allclose(rows[0, 3] - rows[0, 1], 20 / 64, atol=1e-3)
    assert flipped > 10 and cropped > 10  # both happened


def test_objects_mostly_outside_a_crop_are_dropped():
    image = np.zeros((3, 64, 64), np.uint8)
    label = np.full((2, 5), -1, np.float32)
    label[0] = [0, 0.0, 0.0, 0.2, 0.2]
    label[1] = [1, 0.7, 0.7, 1.0, 1.0]
    counts = {len(augment(image, label, np.random.default_rng(s))[1][:, 0].__ge__(0).nonzero()[0]) for s in range(80)}
    assert counts == {1, 2}


def test_augmentation_is_deterministic_per_epoch_and_image():
    image, label = bright_square()
    split = type("Split", (), {"images": np.stack([image] * 4), "labels": np.stack([label] * 4), "__len__": lambda s: 4})()
    source = BatchSource(split, AugmentConfig(), seed=3)
    sampler = EpochBatchSampler(4, 2, shuffle=False)
    first = [source[b] for b in sampler]
    again = [source[b] for b in (sampler.set_epoch(0) or sampler)]
    later = [source[b] for b in sampler]  # epoch 1
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, later))
    images = np.concatenate([batch[0] for batch in first])
    assert len({image.tobytes() for image in images}) > 1  # the same picture, augmented differently


def test_batches_are_padded_to_their_largest_object_count():
    labels = np.full((3, 5, 5), -1, np.float32)
    labels[0, 3] = [2, 0.1, 0.1, 0.2, 0.2]  # an object after padding rows (an ignored one was removed)
    labels[1, :2] = [[0, 0, 0, 1, 1], [1, 0.5, 0.5, 1, 1]]
    trimmed = trim_padding(labels)
    assert trimmed.shape == (3, 2, 5)
    np.testing.assert_array_equal(trimmed[0], np.array([[2, 0.1, 0.1, 0.2, 0.2], [-1] * 5], np.float32))
    np.testing.assert_array_equal(trimmed[1], labels[1, :2])
    assert trim_padding(np.full((2, 4, 5), -1, np.float32)).shape == (2, 1, 5)


def test_named_augmentations():
    image, label = bright_square()
    light = AugmentConfig.named("light")
    for seed in range(20):
        _, out = augment(image, label, np.random.default_rng(seed), light)
        np.testing.assert_allclose(out[0, 3] - out[0, 1], label[0, 3] - label[0, 1], atol=1e-6)  # sizes kept
        np.testing.assert_allclose(out[0, 4] - out[0, 2], label[0, 4] - label[0, 2], atol=1e-6)
    assert AugmentConfig.named("ssd") == AugmentConfig() and AugmentConfig.named("none") is None
    with pytest.raises(ValueError, match="Unknown augmentation 'heavy'; expected one of light, ssd, photo, none"):
        AugmentConfig.named("heavy")
    photo = AugmentConfig.named("photo")
    assert (photo.max_zoom, photo.hue) == (4.0, 18.0) and AugmentConfig.named("photo", max_zoom=2).max_zoom == 2.0
    from multissd.training import TrainConfig
    assert TrainConfig(augment=True).augment == "ssd" and TrainConfig(augment=False).augment == "none"
    from multissd.train import parser
    assert parser().parse_args(["--no-augment"]).augment == "none"
    from multissd.training import RECIPES
    assert parser().parse_args([]).augment is None  # taken from the recipe: light for the default, none for the book
    assert TrainConfig().augment == RECIPES["ssd"]["augment"] == "light" and RECIPES["book"]["augment"] == "none"


# ---- hardening (issue #19): data the user can get wrong --------------------------------------------

def write_book_folder(root, train_rows, val_rows, size=64, classes=None):
    """A banana-detection folder: ``*_rows`` are ``(img_name, label)``; every image is blank, its box fixed."""
    for split, rows in (("bananas_train", train_rows), ("bananas_val", val_rows)):
        (root / split / "images").mkdir(parents=True)
        lines = ["img_name,label,xmin,ymin,xmax,ymax"]
        for name, label in rows:
            if "/" not in name:
                Image.new("RGB", (size, size), (90, 120, 60)).save(root / split / "images" / name)
            lines.append(f"{name},{label},8,8,40,40")
        (root / split / "label.csv").write_text("\n".join(lines) + "\n")
    if classes:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def test_class_names_come_from_both_splits_R44(tmp_path):
    """A class only in train is a class of val too, and the other way round (classes were per split)."""
    root = write_book_folder(tmp_path / "b", [("0.png", 0), ("1.png", 1)], [("0.png", 0)])
    train, val = load_splits(str(root))
    assert train.class_names == val.class_names == ["0", "1"]
    root = write_book_folder(tmp_path / "c", [("0.png", 0)], [("0.png", 2), ("1.png", 1)])
    train, val = load_splits(str(root))
    assert train.class_names == val.class_names == ["0", "1", "2"]


def test_a_label_typo_is_named_by_its_row_R43(tmp_path):
    root = write_book_folder(tmp_path / "b", [("0.png", 0), ("1.png", 100000), ("2.png", 1)], [("0.png", 0)])
    with pytest.raises(ValueError, match=r"bananas_train.label\.csv, row 3: label 100000, but no row uses label 2"):
        load_splits(str(root))
    root = write_book_folder(tmp_path / "c", [("0.png", 0), ("1.png", 5)], [("0.png", 1)], classes=["a", "b"])
    with pytest.raises(ValueError, match=r"bananas_train.label\.csv, row 3: label 5 is not a class of .*classes\.txt, "
                                         r"which names 2"):
        load_splits(str(root))


def test_many_classes_load_R43(tmp_path):
    names = [f"thing{i}" for i in range(99)]
    root = write_book_folder(tmp_path / "b", [("0.png", 98), ("1.png", 0)], [("0.png", 50)], classes=names)
    train, val = load_splits(str(root))
    assert len(train.class_names) == len(val.class_names) == 99


@pytest.mark.parametrize("name", ["../outside.png", "/etc/passwd", "sub/../../x.png"])
def test_image_names_stay_inside_the_folder_R57(tmp_path, name):
    root = write_book_folder(tmp_path / "b", [("0.png", 0), (name, 0)], [("0.png", 0)])
    with pytest.raises(ValueError, match=r"label\.csv, row 3: img_name .* must name a file inside the split's images/"):
        load_splits(str(root))


def test_sixteen_bit_images_are_scaled_not_saturated_R53(tmp_path):
    root = write_book_folder(tmp_path / "b", [("0.png", 0)], [("0.png", 0)])
    grey = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(grey).save(root / "bananas_train" / "images" / "0.png")
    train, _ = load_splits(str(root))
    pixels = train.images[0, 0]
    expected = np.round(grey / 65535 * 255).astype(np.uint8)
    assert np.array_equal(pixels, expected) and (pixels < 255).mean() > 0.9  # PIL's convert clipped 99% to 255


@pytest.mark.parametrize("bbox, message", [
    ([float("nan"), 1, 5, 5], "bbox (id 1): [nan, 1, 5, 5] is not [x, y, width, height] of finite numbers"),
    ([1, 1, float("inf"), 5], "is not [x, y, width, height] of finite numbers"),
])
def test_coco_non_finite_box_is_reported_R51(tmp_path, bbox, message):
    splits = {"train2017": ([("a.png", 100, 50)], [{"image_id": 1, "category_id": 3, "bbox": bbox}]),
              "val2017": COCO_SPLITS["val2017"]}
    root = write_coco(tmp_path / "coco", splits)
    with pytest.raises(ValueError) as caught:
        load_splits(str(root))
    assert message in str(caught.value) and "instances_train2017.json, annotations[0]" in str(caught.value)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        train, _ = load_splits(str(root), skip_bad=True)  # skipped: the image has no object left
    assert (train.labels[..., 0] == -1).all()


def test_coco_image_size_must_match_the_file_R51(tmp_path):
    splits = {"train2017": ([("a.png", 100, 50)], [{"image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5]}]),
              "val2017": COCO_SPLITS["val2017"]}
    root = write_coco(tmp_path / "coco", splits)
    data = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    data["images"][0]["width"] = 120
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"image 'a.png': the file .*a.png is 100x50 but the annotations say 120x50"):
        load_splits(str(root))


def test_example_image_frames_two_fruits_in_the_books_dog_and_cat_boxes():
    """The docs' stand-in for catdog.jpg: same size, and the book's two boxes each hold a fruit."""
    from multissd.data import example_image

    img, boxes, names = example_image()
    assert img.shape == (561, 728, 3) and img.dtype == np.uint8
    assert names == ["banana", "apple"]
    book = np.array([[60, 45, 378, 516], [400, 112, 655, 493]], np.float64)  # the book's dog and cat
    np.testing.assert_allclose(boxes, book, atol=2.5)  # each fruit's own extent (pixels half covered)
    again, _, _ = example_image()
    np.testing.assert_array_equal(img, again)  # deterministic
