"""The benchmark runs and writes its files (on tiny sizes; it is not a timed test), and its table
computes ratios against the book's code and marks missed goals."""
from __future__ import annotations

import json

import pytest
from conftest import BACKENDS

from multissd.bench import __main__ as bench


@pytest.mark.skipif("torch" not in BACKENDS, reason="the baseline is the book's torch code")
def test_tiny_bench_writes_its_table_json_and_chart(tmp_path, capsys):
    only = ["train_book", "train_torch", "matmul_peak", "boxes_book", "boxes_numpy", "boxes_torch"]
    only += ["train_paddle", "boxes_paddle"] if "paddle" in BACKENDS else []
    assert bench.main(["--tiny", "--out", str(tmp_path), "--only", *only]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "bench.json").read_text())
    assert (tmp_path / "bench.png").stat().st_size > 1000
    assert (tmp_path / "bench.md").read_text() == bench.markdown_table(report["rows"]) + "\n"
    assert report["batch_size"] == 2 and report["image_size"] == 64
    whats = {row["what"] for row in report["rows"]}
    assert {"training step", "multibox_target, 8 objects/image", "multibox_detection per image, batch 1",
            "multibox_detection, the book's example input", "inference, 1 image (model + detection)"} <= whats
    impls = {row["implementation"] for row in report["rows"]}
    assert {"book, torch (baseline)", "multissd torch", "multissd numpy"} <= impls
    for row in report["rows"]:
        assert row["seconds"] > 0 and row["ratio"] > 0
        if row["implementation"].endswith("(baseline)"):
            assert row["ratio"] == pytest.approx(1.0)
    assert report["efficiency"]["step_flops"] > 0 and 0 < report["efficiency"]["fraction_of_peak"]
    assert "training step" in out and "vs book" in out and "GFLOP" in out


def test_summary_ratios_and_goals():
    results = {"train_book": {"median_s": 4.0}, "train_torch": {"median_s": 1.6, "flops": 1e9},
               "train_paddle": {"median_s": 8.0},
               "boxes_book": {"target_1": {"median_s": 0.2}, "target_8": {"median_s": 1.0},
                              "detection_1": {"per_image_s": 2.0}, "detection_example": {"median_s": 1.0},
                              "inference": {"median_s": 1.0}},
               "boxes_torch": {"target_1": {"median_s": 0.01}, "target_8": {"median_s": 0.2},
                               "detection_1": {"per_image_s": 0.05}, "detection_example": {"median_s": 0.04},
                               "inference": {"median_s": 0.5}},
               "boxes_paddle": {"target_8": {"median_s": 0.5}, "detection_1": {"per_image_s": 1.0}}}
    rows = {(row["what"], row["implementation"]): row for row in bench.summarise(results)}
    assert rows[("training step", "multissd torch")]["ratio"] == pytest.approx(2.5)
    assert rows[("training step", "multissd paddle")]["ratio"] == pytest.approx(0.5)
    assert rows[("multibox_target, 8 objects/image", "multissd torch")]["ratio"] == pytest.approx(5.0)
    assert rows[("multibox_detection per image, batch 1", "multissd torch")]["ratio"] == pytest.approx(40.0)
    table = bench.format_table(list(rows.values()))
    line = lambda what, impl: next(l for l in table.splitlines() if l.startswith(what) and impl in l)
    assert line("training step", "multissd torch ").rstrip().endswith("ok")
    assert "MISSED" in line("training step", "multissd paddle ")
    assert "MISSED" in line("multibox_target, 8", "multissd torch")
    assert ("training step", "multissd paddle, paddle's defaults") not in rows  # not measured: no row
    # goals per backend (issue #20): paddle's target 3x, paddle's detection 1.5x, torch's example 20x
    assert rows[("multibox_target, 8 objects/image", "multissd paddle")]["goal"] == 3.0
    assert "MISSED" in line("multibox_target, 8", "multissd paddle")
    assert rows[("multibox_detection per image, batch 1", "multissd paddle")]["goal"] == 1.5
    assert line("multibox_detection per image, batch 1", "multissd paddle").rstrip().endswith("ok")
    assert rows[("multibox_detection per image, batch 1", "multissd torch")]["goal"] is None
    example = rows[("multibox_detection, the book's example input", "multissd torch")]
    assert example["ratio"] == pytest.approx(25.0) and example["goal"] == 20.0


def test_example_detection_input_is_like_the_books():
    import numpy as np

    probs, offsets = bench.example_detection_input(np.random.default_rng(0), 5444)
    assert probs.shape == (1, 2, 5444) and offsets.shape == (1, 4 * 5444) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    assert 280 <= (probs[0, 1] > 0.5).sum() <= 300  # the 300 raised anchors, nearly all of them
    assert 900 <= (probs[0, 1] >= 0.01).sum() <= 1300  # candidates above the book's score floor
    assert abs(offsets.std() - 0.3) < 0.01


def test_worker_that_fails_is_reported_not_fatal(tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(bench, "WORKERS", {"boom": ("numpy", None)})
    assert bench.run_worker("boom", str(tmp_path / "missing.npz"), 1, log=logged.append) is None
    assert "boom: failed" in logged[0]


@pytest.mark.skipif("paddle" not in BACKENDS, reason="profiles the paddle training step")
@pytest.mark.parametrize("mode", [[], ["--before"], ["--case", "target"]])
def test_paddle_profile_prints_its_operator_table(mode):
    """benchmarks/profile_paddle.py (the performance page's operator tables) runs and prints a
    table whose shares add up to at most 100%: convolutions in the training step, IoU work in
    multibox_target."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "profile_paddle.py"
    run = subprocess.run([sys.executable, str(script), "--batch-size", "2", "--image-size", "64", "--steps", "1",
                          "--rows", "40", *mode], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    what = "multibox_target, 8 objects" if "target" in mode else "training step"
    header = "before (conv adds its bias)" if "--before" in mode else "multissd"
    assert f"{what}, {header}, batch 2 x 3 x 64 x 64: " in run.stdout and "ms a call" in run.stdout
    rows = re.findall(r"^\| ([^|]+?) \| (\d+) \| ([\d.]+) \| ([\d.]+)% \|$", run.stdout, flags=re.M)
    names = [row[0] for row in rows]
    assert any(name.startswith("conv2d" if "target" not in mode else "amax") for name in names), run.stdout
    assert 0 < sum(float(row[3]) for row in rows) <= 100 + 0.05 * len(rows)  # each share rounded to 0.1


def test_paddle_profile_refuses_bad_options():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "profile_paddle.py"
    run = subprocess.run([sys.executable, str(script), "--batch-size", "0"], capture_output=True, text=True)
    assert run.returncode == 2 and "--batch-size must be at least 1, got 0" in run.stderr
    run = subprocess.run([sys.executable, str(script), "--before", "--case", "target"], capture_output=True, text=True)
    assert run.returncode == 2 and "means nothing with --case target" in run.stderr


def test_markdown_table_marks_goals_met_and_missed():
    rows = [dict(what="step", implementation="book", seconds=2.0, ratio=1.0, goal=None, note=""),
            dict(what="step", implementation="fast", seconds=0.5, ratio=4.0, goal=2.0, note="warm"),
            dict(what="step", implementation="slow", seconds=0.05, ratio=0.5, goal=0.6, note="")]
    assert bench.markdown_table(rows).splitlines()[2:] == [
        "| step | book | 2.000 s | 1.00x |  |",
        "|  | fast, warm | 0.500 s | **4.00x** | 2x, met |",
        "|  | slow | 50.00 ms | 0.50x | 0.6x, **missed** |"]


def test_performance_page_table_is_the_committed_bench_run():
    """docs/performance.md's results table is bench.json's rows, as markdown_table writes them: the
    page and the chart (drawn from the same file) cannot tell two different runs."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    rows = json.loads((root / "benchmarks" / "results" / "bench.json").read_text())["rows"]
    page = (root / "docs" / "performance.md").read_text().splitlines()
    expected = bench.markdown_table(rows).splitlines()
    start = page.index(expected[0])
    table = page[start:start + len(expected)]
    assert table == expected, "docs/performance.md's table is not benchmarks/results/bench.json's: " \
                              "paste the table that markdown_table(rows) prints"
    assert not page[start + len(expected)].startswith("|"), "the page's table has rows bench.json lacks"


@pytest.mark.skipif("torch" not in BACKENDS, reason="needs torch")
def test_time_to_accuracy_reads_the_runs_curve(tmp_path):
    """``--time-to-accuracy``: a training run in its own process, the time at which its validation
    top-1 first reached the target (start-up included), and a row beside the ssd recipe's."""
    from multissd.data import generate_bananas
    data = generate_bananas(tmp_path / "bananas", seed=3, sizes={"train": 8, "val": 4}, workers=1, image_size=64)
    args = ["--data", str(data), "--epochs", "2", "--batch-size", "4", "--backend", "torch"]
    reached = bench.time_to_accuracy(args, target=0.0)
    assert len(reached["epochs"]) == 2 and 0 < reached["median_s"] <= reached["wall_s"]
    assert bench.time_to_accuracy(args, target=1.01)["median_s"] is None
    rows = bench.summarise({"time_to_accuracy_fastai": reached, "time_to_accuracy_ssd": {**reached, "median_s": 2 * reached["median_s"]}})
    fastai = next(row for row in rows if row["implementation"] == "multissd torch --recipe fastai")
    assert fastai["ratio"] == pytest.approx(2.0) and fastai["what"] == "training to 95% top-1 (wall time)"


@pytest.mark.skipif("paddle" not in BACKENDS, reason="measures paddle's layouts")
def test_paddle_layout_and_amp_measurement_runs():
    """benchmarks/paddle_layout_amp.py (the performance page's NHWC and bfloat16 figures for paddle)
    runs each layout and precision and prints its ratio to NCHW float32."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "paddle_layout_amp.py"
    run = subprocess.run([sys.executable, str(script), "--batch-size", "1", "--image-size", "128", "--repeat", "1"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.findall(r"^paddle [\d.]+ (NCHW|NHWC) (fp32|bf16): [\d.]+ s .* \(([\d.]+)x NCHW fp32\)$", run.stdout,
                       flags=re.M)
    assert [(layout, precision) for layout, precision, _ in found] == [
        ("NCHW", "fp32"), ("NCHW", "bf16"), ("NHWC", "fp32"), ("NHWC", "bf16")]
    assert found[0][2] == "1.00"
