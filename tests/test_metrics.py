"""mean_average_precision against pycocotools (COCO figures) and the VOC2007 devkit (11-point AP).

The R-numbers are the mAP cases of ../shared/RELIABILITY.md.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from multissd.metrics import mean_average_precision

pycocotools = pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402

STATS = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large",
         "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]  # pycocotools' stats order


def _xywh(box):
    x, y = float(box[0]), float(box[1])
    return [x, y, float(box[2]) - x, float(box[3]) - y]


def coco_reference(preds, targets):
    """pycocotools' COCOeval on the same images (ids 0..n-1; annotation ids from 1, as COCO needs)."""
    labels = [t["labels"] for t in targets] + [p["labels"] for p in preds]
    classes = sorted(set(np.concatenate(labels).astype(int).tolist())) if labels else []
    images = [{"id": i} for i in range(len(targets))]
    categories = [{"id": c} for c in classes]
    gts, dts = [], []
    for i, t in enumerate(targets):
        crowd = t.get("iscrowd", np.zeros(len(t["labels"]), int))
        for j, (box, label) in enumerate(zip(t["boxes"], t["labels"])):
            bbox = _xywh(box)
            area = float(t["area"][j]) if "area" in t else bbox[2] * bbox[3]
            gts.append({"id": len(gts) + 1, "image_id": i, "category_id": int(label), "bbox": bbox,
                        "area": area, "iscrowd": int(crowd[j])})
    for i, p in enumerate(preds):
        for box, score, label in zip(p["boxes"], p["scores"], p["labels"]):
            bbox = _xywh(box)
            dts.append({"id": len(dts) + 1, "image_id": i, "category_id": int(label), "bbox": bbox,
                        "area": bbox[2] * bbox[3], "score": float(score), "iscrowd": 0})
    with contextlib.redirect_stdout(io.StringIO()):
        gt, dt = COCO(), COCO()
        gt.dataset = {"images": images, "categories": categories, "annotations": gts}
        dt.dataset = {"images": images, "categories": categories, "annotations": dts}
        gt.createIndex()
        dt.createIndex()
        evaluation = COCOeval(gt, dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


def voc07_reference(preds, targets, classes):
    """The VOC2007 devkit's voc_eval, loop for loop (continuous IoU, no +1 pixel)."""
    result = []
    for c in classes:
        boxes = {i: np.asarray(t["boxes"], float)[np.asarray(t["labels"]) == c] for i, t in enumerate(targets)}
        difficult = {i: np.asarray(t.get("difficult", np.zeros(len(t["labels"]))), bool)[np.asarray(t["labels"]) == c]
                     for i, t in enumerate(targets)}
        found = {i: np.zeros(len(b), bool) for i, b in boxes.items()}
        npos = sum(int((~d).sum()) for d in difficult.values())
        if npos == 0:
            result.append(-1.0)
            continue
        dets = [(float(s), i, np.asarray(b, float)) for i, p in enumerate(preds)
                for b, s, label in zip(p["boxes"], p["scores"], p["labels"]) if label == c]
        order = np.argsort([-s for s, _, _ in dets], kind="stable")
        tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
        for rank, d in enumerate(order):
            _, i, bb = dets[d]
            gt = boxes[i]
            ovmax = -np.inf
            if len(gt):
                iw = np.maximum(np.minimum(gt[:, 2], bb[2]) - np.maximum(gt[:, 0], bb[0]), 0)
                ih = np.maximum(np.minimum(gt[:, 3], bb[3]) - np.maximum(gt[:, 1], bb[1]), 0)
                inter = iw * ih
                union = (bb[2] - bb[0]) * (bb[3] - bb[1]) + (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]) - inter
                overlaps = np.where(inter > 0, inter / np.where(union > 0, union, 1), 0)
                ovmax, jmax = overlaps.max(), overlaps.argmax()
            if ovmax > 0.5:
                if not difficult[i][jmax]:
                    if not found[i][jmax]:
                        tp[rank], found[i][jmax] = 1, True
                    else:
                        fp[rank] = 1
            else:
                fp[rank] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        rec, prec = tp / npos, tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
        ap = sum((prec[rec >= t].max() if (rec >= t).any() else 0.0) / 11 for t in np.arange(0, 1.1, 0.1))
        result.append(ap)
    return np.array(result)


def random_case(rng, n_images, n_classes, difficult=False):
    """Boxes at integer and fractional pixels, noisy and duplicate detections, false positives of
    unseen classes, crowd regions, tied scores, images without boxes or detections."""
    preds, targets = [], []
    for _ in range(n_images):
        m = int(rng.integers(0, 7))
        corner = rng.uniform(0, 300, (m, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(1, 160, (m, 2))], 1).round(int(rng.integers(0, 3)))
        labels = rng.integers(0, n_classes, m)
        target = {"boxes": boxes, "labels": labels, "iscrowd": (rng.random(m) < 0.1).astype(int)}
        if difficult:
            target = {"boxes": boxes, "labels": labels, "difficult": (rng.random(m) < 0.15).astype(int)}
        n = int(rng.integers(0, 16))
        corner = rng.uniform(0, 300, (n, 2))
        det = np.concatenate([corner, corner + rng.uniform(1, 160, (n, 2))], 1)
        det_labels = rng.integers(0, n_classes + 1, n)
        if m:
            source = rng.integers(0, m, n)
            near = rng.random(n) < 0.7
            det[near] = boxes[source[near]] + rng.normal(0, rng.choice([0.0, 2.0, 10.0]), (int(near.sum()), 4))
            det[:, 2:] = np.maximum(det[:, 2:], det[:, :2])
            det_labels[near] = labels[source[near]]
        scores = rng.choice([0.2, 0.5, 0.9], n) if rng.random() < 0.3 else rng.random(n)
        preds.append({"boxes": det, "scores": scores, "labels": det_labels})
        targets.append(target)
    return preds, targets


def assert_matches_pycocotools(preds, targets, **kwargs):
    mine = mean_average_precision(preds, targets, **kwargs)
    reference = coco_reference(preds, targets)
    np.testing.assert_allclose([mine[k] for k in STATS], reference.stats, rtol=0, atol=1e-10)
    np.testing.assert_allclose(mine["precision"], reference.eval["precision"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(mine["recall"], reference.eval["recall"], rtol=0, atol=1e-10)
    return mine


@pytest.mark.parametrize("seed", range(40))
def test_random_cases_match_pycocotools_R34(seed):
    rng = np.random.default_rng(seed)
    preds, targets = random_case(rng, int(rng.integers(1, 40)), int(rng.integers(1, 5)))
    assert_matches_pycocotools(preds, targets)


@pytest.mark.parametrize("seed", range(15))
def test_voc07_matches_the_devkit(seed):
    rng = np.random.default_rng(100 + seed)
    preds, targets = random_case(rng, int(rng.integers(1, 40)), int(rng.integers(1, 5)), difficult=True)
    mine = mean_average_precision(preds, targets)
    expected = voc07_reference(preds, targets, mine["classes"])
    np.testing.assert_allclose(mine["voc07_ap_50_per_class"], expected, rtol=0, atol=1e-12)
    defined = expected[expected > -1]
    assert mine["voc07_map_50"] == pytest.approx(defined.mean() if defined.size else -1, abs=1e-12)


def test_difficult_is_a_crowd_region_for_the_coco_figures():
    rng = np.random.default_rng(7)
    preds, targets = random_case(rng, 30, 3, difficult=True)
    as_crowd = [{"boxes": t["boxes"], "labels": t["labels"], "iscrowd": t["difficult"]} for t in targets]
    assert_matches_pycocotools(preds, as_crowd)
    mine = mean_average_precision(preds, targets)
    reference = mean_average_precision(preds, as_crowd)
    assert [mine[k] for k in STATS] == [reference[k] for k in STATS]


def one_image(gt_boxes, det_boxes, scores, gt_labels=None, det_labels=None, **target_keys):
    gt_boxes, det_boxes = np.asarray(gt_boxes, float).reshape(-1, 4), np.asarray(det_boxes, float).reshape(-1, 4)
    target = {"boxes": gt_boxes, "labels": np.zeros(len(gt_boxes), int) if gt_labels is None else np.asarray(gt_labels)}
    target.update({k: np.asarray(v) for k, v in target_keys.items()})
    pred = {"boxes": det_boxes, "scores": np.asarray(scores, float),
            "labels": np.zeros(len(det_boxes), int) if det_labels is None else np.asarray(det_labels)}
    return [pred], [target]


def test_perfect_predictions_on_the_four_box_dummy_R27():
    boxes = [[0, 0, 20, 20], [50, 50, 80, 80], [100, 0, 140, 40], [200, 200, 300, 300]]  # areas 400/900/1600/10000
    preds, targets = one_image(boxes, boxes, [0.9, 0.8, 0.7, 0.6])
    result = assert_matches_pycocotools(preds, targets)
    for key in ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "voc07_map_50"):
        assert result[key] == pytest.approx(1.0, abs=1e-12)


A_GT = [[0, 0, 10, 10], [20, 20, 30, 30]]


@pytest.mark.parametrize("name, gt, dets, coco, voc07", [
    # A: true positive, duplicate (false positive), true positive
    ("A", A_GT, [[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]], 0.834983, 0.848485),
    # B: false positive, true positive, true positive
    ("B", A_GT, [[50, 50, 60, 60], [0, 0, 10, 10], [20, 20, 30, 30]], 0.666667, 0.666667),
    # E: one true positive of three boxes
    ("E", A_GT + [[40, 40, 50, 50]], [[0, 0, 10, 10]], 0.336634, 0.363636),
])
def test_precision_recall_golden_values_R28(name, gt, dets, coco, voc07):
    preds, targets = one_image(gt, dets, [0.9, 0.8, 0.7][:len(dets)])
    result = assert_matches_pycocotools(preds, targets)
    assert result["map_50"] == pytest.approx(coco, abs=1e-6)
    assert result["voc07_map_50"] == pytest.approx(voc07, abs=1e-6)


def test_no_detections_at_all_R29():
    targets = [{"boxes": np.array([[0, 0, 10, 10.]]), "labels": np.array([1])},
               {"boxes": np.array([[5, 5, 50, 50.]]), "labels": np.array([2])}]
    preds = [{"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, int)} for _ in targets]
    result = mean_average_precision(preds, targets)  # pycocotools itself raises IndexError in loadRes here
    assert result["map"] == 0.0 and result["map_50"] == 0.0 and result["voc07_map_50"] == 0.0
    assert result["classes"].tolist() == [1, 2] and result["map_per_class"].tolist() == [0.0, 0.0]
    assert result["map_large"] == -1 and result["mar_100"] == 0.0
    assert_matches_pycocotools(preds, targets)
    nothing = mean_average_precision([], [])
    assert nothing["map"] == -1 and nothing["classes"].size == 0


def test_classes_and_images_without_ground_truth_R30():
    preds, targets = one_image([[0, 0, 10, 10]], [[0, 0, 10, 10], [30, 30, 40, 40]], [0.9, 0.8], det_labels=[0, 5])
    result = assert_matches_pycocotools(preds, targets)
    assert result["classes"].tolist() == [0, 5]
    assert result["map_per_class"].tolist() == pytest.approx([1.0, -1.0], abs=1e-12)  # class 5 has no ground truth: -1, not in the mean
    assert result["map"] == pytest.approx(1.0, abs=1e-12)
    empty = {"boxes": np.zeros((0, 4)), "labels": np.zeros(0, int)}
    with_empty = mean_average_precision(preds + [{**empty, "scores": np.zeros(0)}], targets + [empty])
    assert [with_empty[k] for k in STATS] == [result[k] for k in STATS]  # an image with neither: no effect
    # a false positive on an image without ground truth, scored above the true positive: AP50 0.5
    fp_image = {"boxes": np.array([[0, 0, 10, 10.]]), "scores": np.array([0.95]), "labels": np.array([0])}
    preds, targets = one_image([[0, 0, 10, 10]], [[0, 0, 10, 10]], [0.9])
    result = assert_matches_pycocotools(preds + [fp_image], targets + [empty])
    assert result["map_50"] == pytest.approx(0.5, abs=1e-12) and result["voc07_map_50"] == pytest.approx(0.5, abs=1e-12)


def test_crowd_regions_R31():
    gt = [[0, 0, 10, 10], [100, 100, 200, 200]]
    dets = [[0, 0, 10, 10], [110, 110, 150, 150], [150, 150, 190, 190], [120, 160, 160, 199]]
    preds, targets = one_image(gt, dets, [0.9, 0.8, 0.7, 0.6], iscrowd=[0, 1])
    crowd = assert_matches_pycocotools(preds, targets)
    assert crowd["map"] == pytest.approx(1.0, abs=1e-12)  # the crowd region absorbs the three detections inside it
    preds, targets = one_image(gt, dets, [0.9, 0.8, 0.7, 0.6], iscrowd=[0, 0])
    plain = assert_matches_pycocotools(preds, targets)
    assert plain["map"] < 0.6


def test_area_ranges_R32():
    # a 32 x 32 box has area 1024: small and medium both
    preds, targets = one_image([[0, 0, 32, 32]], [[0, 0, 32, 32]], [0.9])
    result = assert_matches_pycocotools(preds, targets)
    assert result["map_small"] == result["map_medium"] == pytest.approx(1.0, abs=1e-12)
    assert result["map_large"] == -1
    # the ground truth's area comes from the annotation when it has one
    preds, targets = one_image([[0, 0, 32, 32]], [[0, 0, 32, 32]], [0.9], area=[10000.0])
    result = assert_matches_pycocotools(preds, targets)
    assert result["map_small"] == -1 and result["map_large"] == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("position, expected", [(100, 0.01), (101, 0.0)])
def test_only_the_best_100_detections_count_R33(position, expected):
    far = [[500 + i, 500, 510 + i, 510] for i in range(position - 1)]
    dets = far + [[0, 0, 10, 10]]
    scores = np.linspace(0.99, 0.5, position)
    preds, targets = one_image([[0, 0, 10, 10]], dets, scores)
    result = assert_matches_pycocotools(preds, targets)
    assert result["map_50"] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("true_first, expected", [(True, 1.0), (False, 0.5)])
def test_equal_scores_keep_their_order_R33(true_first, expected):
    dets = [[0, 0, 10, 10], [50, 50, 60, 60]]
    preds, targets = one_image([[0, 0, 10, 10]], dets if true_first else dets[::-1], [0.7, 0.7])
    result = assert_matches_pycocotools(preds, targets)
    assert result["map_50"] == pytest.approx(expected, abs=1e-12)


def test_zero_area_boxes_give_zero_iou_not_nan_R05():
    preds, targets = one_image([[5, 5, 5, 5], [0, 0, 10, 10]], [[5, 5, 5, 5], [0, 0, 10, 10]], [0.9, 0.8])
    result = assert_matches_pycocotools(preds, targets)
    # the zero-area box can be matched by nothing, so the zero-area detection is a false positive
    # ranked first, then the true positive: precision 0.5 up to recall 0.5
    assert result["map_50"] == pytest.approx(0.252475, abs=1e-6)


def test_box_formats_and_tensors_give_the_same_figures():
    rng = np.random.default_rng(3)
    preds, targets = random_case(rng, 20, 3)
    xyxy = mean_average_precision(preds, targets)

    def convert(items, fmt):
        out = []
        for item in items:
            b = np.asarray(item["boxes"], float)
            if fmt == "xywh":
                b = np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
            out.append({**item, "boxes": b})
        return out

    xywh = mean_average_precision(convert(preds, "xywh"), convert(targets, "xywh"), box_format="xywh")
    assert [xywh[k] for k in STATS] == [xyxy[k] for k in STATS]
    torch = pytest.importorskip("torch")
    as_tensors = [{k: torch.as_tensor(v) for k, v in p.items()} for p in preds]
    tensors = mean_average_precision(as_tensors, targets)
    assert [tensors[k] for k in STATS] == [xyxy[k] for k in STATS]


def test_custom_iou_thresholds():
    rng = np.random.default_rng(5)
    preds, targets = random_case(rng, 20, 2)
    full = mean_average_precision(preds, targets)
    at_half = mean_average_precision(preds, targets, iou_thresholds=[0.5])
    assert at_half["map"] == pytest.approx(full["map_50"], abs=1e-12) and at_half["map_75"] == -1


@pytest.mark.parametrize("preds, targets, error, message", [
    ([{}], [], ValueError, "preds has 1 images but targets has 0"),
    ([{"boxes": np.zeros((1, 4)), "labels": [0]}], [{"boxes": np.zeros((0, 4)), "labels": []}], ValueError,
     "preds[0] has no 'scores'"),
    ([{"boxes": np.zeros((1, 5)), "scores": [1.0], "labels": [0]}], [{"boxes": np.zeros((0, 4)), "labels": []}],
     ValueError, "preds[0]['boxes'] must have shape (N, 4); received shape [1, 5]"),
    ([{"boxes": np.zeros((1, 4)), "scores": [1.0, 2.0], "labels": [0]}], [{"boxes": np.zeros((0, 4)), "labels": []}],
     ValueError, "preds[0]['scores'] has 2 entries but preds[0]['boxes'] has 1"),
    ([{"boxes": [[0, 0, np.nan, 1]], "scores": [1.0], "labels": [0]}], [{"boxes": np.zeros((0, 4)), "labels": []}],
     ValueError, "preds[0]['boxes'] has a non-finite value (nan or inf) at index 0"),
    ([{"boxes": np.zeros((0, 4)), "scores": [], "labels": []}], [{"boxes": [[0, 0, 1, 1]], "labels": [0.5]}],
     TypeError, "targets[0]['labels'] must hold integer class ids"),
    ([{"boxes": np.zeros((0, 4)), "scores": [], "labels": []}], [{"boxes": [[5, 0, 1, 1]], "labels": [0]}],
     ValueError, "targets[0]['boxes'] has a box of negative width or height at index 0"),
    ([None], [{"boxes": np.zeros((0, 4)), "labels": []}], TypeError, "preds[0] must be a dict of arrays"),
])
def test_bad_input_names_the_image_and_key(preds, targets, error, message):
    with pytest.raises(error) as caught:
        mean_average_precision(preds, targets)
    assert message in str(caught.value)


def test_bad_options():
    with pytest.raises(ValueError, match="box_format must be one of"):
        mean_average_precision([], [], box_format="yxyx")
    with pytest.raises(ValueError, match="iou_thresholds must be a non-empty list of values in"):
        mean_average_precision([], [], iou_thresholds=[1.5])
