"""The figures the pages quote from training runs are the figures of the committed logs they come from.

``docs/logs/<run>/`` holds each quoted run's record: ``metrics.csv`` (a row per epoch, as
``python -m multissd.train`` writes it), ``config.json`` (the run's settings), ``eval.json``
(``python -m multissd.evaluate``) and ``train.log`` (the run's own lines -- the anchors it chose, its
last line -- and the wall time ``/usr/bin/time`` measured, or, for a run resumed across sessions, the
sum of its epochs' seconds, with how it was summed). ``docs/weights/*.csv`` and
``docs/weights/classifiers.log`` are the logs of the models the pages load. Each claim below is a
page and a piece of its text made from a log: when a run is redone, its log changes and the page
must change with it.
"""
from __future__ import annotations

import csv
import json
import re
import statistics
from functools import lru_cache
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
LOGS = DOCS / "logs"


QUOTED: set[str] = set()
"""The runs under docs/logs the claims read."""


def rows(path: str) -> list[dict[str, float]]:
    """The rows of a ``metrics.csv`` (``docs/logs/<run>`` or a path under ``docs/``), numbers as floats."""
    if (LOGS / path).is_dir():
        QUOTED.add(path)
    return _rows(path)


@lru_cache(maxsize=None)
def _rows(path: str) -> list[dict[str, float]]:
    file = LOGS / path / "metrics.csv" if (LOGS / path).is_dir() else DOCS / path
    with open(file) as handle:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]


def last(path: str) -> dict[str, float]:
    return rows(path)[-1]


def epoch(path: str, n: int) -> dict[str, float]:
    return next(row for row in rows(path) if row["epoch"] == n)


def wall(run: str) -> float:
    """The run's seconds from the last line of its ``train.log``: what ``/usr/bin/time`` measured, or for
    a run resumed across sessions (``bccd_paddle``) the sum of its epochs' seconds, the line saying how."""
    QUOTED.add(run)
    return float(re.search(r"([\d.]+) s wall", (LOGS / run / "train.log").read_text()).group(1))


def evaluation(run: str) -> dict:
    QUOTED.add(run)
    return json.loads((LOGS / run / "eval.json").read_text())


def ap50(run: str, name: str) -> float:
    return evaluation(run)["per_class"][name]["ap50"]


def classifier(name: str) -> list[float]:
    """The validation figures of the last line of model ``name`` in ``docs/weights/classifiers.log``
    (``make_classifiers.py``: an epoch's line, or the saved weights' with ``--evaluate``)."""
    lines = [line for line in (DOCS / "weights" / "classifiers.log").read_text().splitlines()
             if line.startswith(f"{name} epoch ") or line.startswith(f"{name} saved weights")]
    return [float(x) for x in re.findall(r"\d+\.\d+", lines[-1].split("|")[-1])]


def covered(run: str) -> int:
    """The share (%) of the training boxes the run's anchors covered at IoU 0.5, as its log printed
    it at the start (the fitted anchors' line when it fitted them)."""
    QUOTED.add(run)
    return int(re.findall(r"anchors give (\d+)% of the training boxes", (LOGS / run / "train.log").read_text())[-1])


def pct(value: float) -> str:
    return f"{value:.0%}"


def sci(value: float) -> str:
    """3 significant digits as the pages write the book's figures: ``4.25e-3``."""
    return f"{value:.2e}".replace("e-0", "e-")


def claims():
    """``(page, text)``: each text must appear on its page."""
    seed0, seed1, fp32, before = "banana_default_seed0", "banana_default_seed1", "banana_default_seed0_fp32", "banana_before"
    yield "training.md", (f"| **{pct(last(seed0)['val_top1_iou50'])}** ({pct(epoch(seed0, 6)['val_top1_iou50'])} / "
                          f"{epoch(seed0, 6)['val_map_50']:.3f} after epoch 6) | **{last(seed0)['val_map_50']:.3f}** | "
                          f"**{wall(seed0):.0f} s** |")
    yield "training.md", (f"| the same, seed 1 | {pct(last(seed1)['val_top1_iou50'])} | {last(seed1)['val_map_50']:.3f} | "
                          f"{wall(seed1):.0f} s |")
    yield "training.md", (f"| the same in float32 (`--precision fp32`) | {pct(last(fp32)['val_top1_iou50'])} | "
                          f"{last(fp32)['val_map_50']:.3f} | {wall(fp32):.0f} s |")
    yield "training.md", (f"(the previous default, at commit b371388) | {pct(last(before)['val_top1_iou50'])} | "
                          f"{last(before)['val_map_50']:.3f} | {wall(before):.0f} s |")
    yield "../README.md", f"validation mAP@0.5 {last(seed0)['val_map_50']:.3f}, in {wall(seed0):.0f} s"
    yield "../README.md", (f"took {wall(before):.0f} s for {pct(last(before)['val_top1_iou50'])} and "
                           f"{last(before)['val_map_50']:.3f}")
    yield "performance.md", (f"val top-1 {pct(last(seed0)['val_top1_iou50'])} and mAP@0.5 {last(seed0)['val_map_50']:.3f}\n"
                             f"in bfloat16 ({wall(seed0):.0f} s) against {pct(last(fp32)['val_top1_iou50'])} and "
                             f"{last(fp32)['val_map_50']:.3f} in float32 ({wall(fp32):.0f} s")
    banana, fruit = last("weights/banana.csv"), last("weights/fruit.csv")
    yield "try.md", f"{pct(banana['val_top1_iou50'])} top-1, mAP@0.5 {banana['val_map_50']:.3f} (`docs/weights/banana.csv`)"
    yield "try.md", f"mAP@0.5 {fruit['val_map_50']:.3f} (`docs/weights/fruit.csv`)"
    yield "training.md", f"val mAP@0.5 {fruit['val_map_50']:.3f} (`docs/weights/fruit.csv`)"
    yield "lesson9.md", f"`docs/weights/fruit.csv`) | torch | {fruit['val_map_50']:.3f} | {pct(fruit['val_top1_iou50'])} |"
    for backend, row in (("torch", "| **multissd, torch** (these weights"), ("paddle", "| **multissd, paddle**, 2-core CPU")):
        book = last(f"weights/book_run_{backend}.csv")
        yield "training.md", (f"{row}{'' if backend == 'paddle' else ': `docs/weights/banana_book.safetensors`)'} | "
                              f"**{sci(book['class_err'])}** | **{sci(book['bbox_mae'])}** | {pct(book['val_top1_iou50'])} | "
                              f"{book['val_map_50']:.3f} |")
    accuracy, l1 = classifier("largest")
    lesson_accuracy, lesson_l1 = classifier("largest_lesson")
    labels, exact = classifier("multilabel")
    grid = classifier("grid")[-1]                                     # "mAP@0.5 X": the last number
    yield "lesson9.md", f"it names the largest object of {accuracy:.0f}% of the 100\nvalidation images and misses its box by {l1:.0f} pixels"
    yield "lesson9.md", f"| global max pool, one linear layer (`head=\"pool\"`) | 455 | {accuracy:.0f}% | {l1:.0f} |"
    yield "lesson9.md", f"(`head=\"lesson\"`) | 805,383 | {lesson_accuracy:.0f}% | {lesson_l1:.0f} |"
    yield "lesson9.md", f"`head=\"lesson\"`: {lesson_accuracy:.0f}%, {lesson_l1:.0f} pixels"
    yield "lesson9.md", f"make_classifiers.py: {labels:.0f}% of the labels, {exact:.0f}% of"
    yield "lesson9.md", f"| {labels:.0f}% of the labels, {exact:.0f}% of the images exactly |"
    yield "lesson9.md", f"mAP@0.5 of {grid:.3f} on the 100 validation images"
    yield "lesson9.md", f"| val mAP@0.5 {grid:.3f} after 8 epochs (`docs/weights/classifiers.log`) |"
    retina, book_prior = last("prior_retinanet"), last("prior_book")
    yield "model.md", (f"this initialisation gave {pct(retina['val_top1_iou50'])} correct top detections\nand val mAP@0.5 "
                       f"{retina['val_map_50']:.3f}, the book's {pct(book_prior['val_top1_iou50'])} and {book_prior['val_map_50']:.3f}.")
    focal, book = last("book_focal_smoothl1"), last("weights/book_run_torch.csv")
    yield "exercises.md", (f"| multissd: cross-entropy + L1 (`docs/weights/book_run_torch.csv`) | {sci(book['class_err'])} | "
                           f"{sci(book['bbox_mae'])} | {pct(book['val_top1_iou50'])} | {book['val_map_50']:.3f} |")
    yield "exercises.md", (f"| multissd: focal + smooth L1 (sigma 2) | {sci(focal['class_err'])} | {sci(focal['bbox_mae'])} | "
                           f"{pct(focal['val_top1_iou50'])} | {focal['val_map_50']:.3f} |")
    yield "exercises.md", f"({wall('book_focal_smoothl1'):.0f} s on the 2-core CPU"
    cells = ["bccd_default", "ablation_bccd_light", "ablation_bccd_book", "ablation_bccd_ep12"]
    yield "photos.md", "| **BCCD** mAP@0.5 | " + " | ".join(
        (f"**{evaluation(c)['map_50']:.3f}**" if c == cells[0] else f"{evaluation(c)['map_50']:.3f}") for c in cells)
    yield "photos.md", "| BCCD Platelets AP50 | " + " | ".join(
        (f"**{ap50(c, 'Platelets'):.3f}**" if c == cells[0] else f"{ap50(c, 'Platelets'):.3f}") for c in cells)
    yield "photos.md", (f"| **raccoon** AP50 | **{evaluation('raccoon_default')['map_50']:.3f}** | "
                        f"{evaluation('ablation_raccoon_light')['map_50']:.3f} | {evaluation('raccoon_default')['map_50']:.3f} "
                        f"(the same run: `auto` keeps the book's anchors here) | {evaluation('ablation_raccoon_ep12')['map_50']:.3f} | "
                        f"{evaluation('raccoon_before')['map_50']:.3f} |")
    bccd = "bccd_default"
    yield "photos.md", (f"| **{ap50(bccd, 'Platelets'):.3f}** | **{ap50(bccd, 'RBC'):.3f}** | **{ap50(bccd, 'WBC'):.3f}** | "
                        f"**{evaluation(bccd)['map_50']:.3f}** (COCO mAP {evaluation(bccd)['map']:.3f})")
    yield "photos.md", f"(4000 steps, {last(bccd)['epoch']:.0f} epochs)"
    paddle = "bccd_paddle"
    yield "photos.md", (f"| {ap50(paddle, 'Platelets'):.3f} | {ap50(paddle, 'RBC'):.3f} | {ap50(paddle, 'WBC'):.3f} | "
                        f"{evaluation(paddle)['map_50']:.3f} (COCO mAP {evaluation(paddle)['map']:.3f}) | "
                        f"{statistics.median(r['epoch_seconds'] for r in rows(paddle)):.0f} s an epoch (the median")
    yield "photos.md", f"{wall(paddle) / 3600:.1f} h of training |"
    yield "photos.md", (f"The {abs(evaluation(paddle)['map_50'] - evaluation(bccd)['map_50']):.3f} "
                        "between their mAP")
    yield "photos.md", (f"| {evaluation('raccoon_before')['map_50']:.3f} | {evaluation('raccoon_before')['map']:.3f} |")
    yield "photos.md", (f"4000 steps, {last('raccoon_default')['epoch']:.0f} epochs) | "
                        f"**{evaluation('raccoon_default')['map_50']:.3f}** | **{evaluation('raccoon_default')['map']:.3f}** |")

    small = (("bananas", "256 x 256", "book", "banana_default_seed0"), ("bananas", "512 x 512", "book", "banana_512"),
             ("small bananas", "256 x 256", "book", "small_256_book"), ("small bananas", "512 x 512", "book", "small_512_book"),
             ("small bananas", "256 x 256", "fit", "small_256_fit"), ("small bananas", "512 x 512", "fit", "small_512_fit"))
    for data, size, anchors, run in small:
        yield "exercises.md", (f"| {data} | {size} | {anchors} | {covered(run)}% | {pct(last(run)['val_top1_iou50'])} | "
                               f"{last(run)['val_map_50']:.3f} |")
    yield "exercises.md", f"{wall('banana_512'):.0f} s against {wall('banana_default_seed0'):.0f} s"
    yield "exercises.md", f"({wall('small_512_fit'):,.0f} s against {wall('small_256_fit'):.0f} s"
    yield "exercises.md", f"at 512 the default run falls\nfrom {pct(last('banana_default_seed0')['val_top1_iou50'])} / " \
                          f"{last('banana_default_seed0')['val_map_50']:.3f} to {pct(last('banana_512')['val_top1_iou50'])} / " \
                          f"{last('banana_512')['val_map_50']:.3f}"


CLAIMS = list(claims())


@pytest.mark.parametrize("page, text", CLAIMS, ids=[f"{page}:{i}" for i, (page, _) in enumerate(CLAIMS)])
def test_page_quotes_its_log(page, text):
    assert text in (DOCS / page).read_text(), f"{page} should say, from its log: {text!r}"


def test_every_committed_run_is_quoted_and_complete():
    """Every run folder under docs/logs has its settings, its epochs and its time, and is the source
    of at least one claim above (a log no page reads is not evidence of anything)."""
    runs = sorted(path.name for path in LOGS.iterdir() if path.is_dir())
    assert runs
    for run in runs:
        for name in ("config.json", "metrics.csv", "train.log"):
            assert (LOGS / run / name).is_file(), f"docs/logs/{run} has no {name}"
        assert rows(run), f"docs/logs/{run}/metrics.csv has no epochs"
        assert run in QUOTED, f"docs/logs/{run} is quoted by no claim"
        wall(run)
