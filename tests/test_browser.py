"""The page that runs TinySSD in the reader's browser (docs/try.md): its JavaScript box math against
the NumPy reference (``node --test``), and the built page in headless Chromium against
``python -m multissd.predict --engine onnxruntime``.

A test that needs Node or Chromium skips, saying so, on a machine without them; ``.ci/run`` installs
both and sets ``MULTISSD_REQUIRE_TOOLS=1``, which turns such a skip into a failure.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import browser_golden  # noqa: E402
from multissd.backends.numpy import boxes as ref  # noqa: E402
from conftest import require  # noqa: E402
import browser_page  # noqa: E402
import mkdocs_browser  # noqa: E402

SSD_JS = ROOT / "docs" / "javascripts" / "ssd"


def test_the_javascript_box_math_equals_numpys(tmp_path):
    """docs/javascripts/ssd/boxes.js and resize.js against golden cases from the NumPy reference:
    anchors bit for bit, kept indices and labels exactly, floats within 1e-5, Pillow's resize to the
    byte (``node --test docs/javascripts/ssd/boxes.test.mjs``)."""
    node = require("node", "the JavaScript tests run on Node.js")
    golden = tmp_path / "golden.json"
    golden.write_text(json.dumps(browser_golden.golden()))
    run = subprocess.run([node, "--test", str(SSD_JS / "boxes.test.mjs")], capture_output=True, text=True,
                         env={**os.environ, "MULTISSD_GOLDEN": str(golden)}, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout and "# pass 9" in run.stdout, run.stdout[-2000:]


def test_the_golden_cases_cover_ties_and_empty_inputs():
    cases = browser_golden.golden()
    assert any(not case["keep"] for case in cases["nms"])  # no box at all
    assert any(len(set(case["scores"])) < len(case["scores"]) for case in cases["nms"])  # tied scores
    assert any(case["boxes1"] == [] or case["boxes2"] == [] for case in cases["iou"])
    assert cases["assignment"][0]["class_labels"] == [0, 1, 2, 0, 2]  # the book's example


# ---- the built page in headless Chromium ---------------------------------------------------------

DOCS = ROOT / "docs"
TRUTH = json.loads((DOCS / "samples" / "truth.json").read_text())  # tools/try_samples.py


@pytest.fixture(scope="module")
def try_page(built_site):
    """The built site's try page, loaded offline in headless Chromium: ``(site, page, refused)``."""
    require("chromium", "the page is tested in headless Chromium; Debian: apt-get install -y chromium")
    require("playwright", "Playwright drives Chromium", module=True)
    site, result = built_site
    assert result.returncode == 0, result.stderr[-3000:]
    with browser_page.open_try_page(site) as (page, refused):
        yield site, page, refused


def predicted(onnx_file: Path, image: Path, *flags: str) -> list[dict]:
    """What ``python -m multissd.predict --engine onnxruntime`` prints for ``image``: one dict a line."""
    run = subprocess.run([sys.executable, "-m", "multissd.predict", "--engine", "onnxruntime", "--weights",
                          str(onnx_file), str(image), "--out", str(onnx_file.parent.parent / "_predicted"), *flags],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


def assert_same_detections(page_rows: list[dict], cli_rows: list[dict], image: Path) -> None:
    """Same classes in the same order, boxes within 1e-3 of the image's size, scores within 1e-4."""
    width, height = Image.open(image).size
    assert [r["class_id"] for r in page_rows] == [r["class_id"] for r in cli_rows], (page_rows, cli_rows)
    for mine, theirs in zip(page_rows, cli_rows):
        assert abs(mine["score"] - theirs["score"]) <= 1e-4, (mine, theirs)
        assert mine["below_threshold"] == theirs.get("below_threshold", False), (mine, theirs)
        limits = np.array([width, height, width, height]) * 1e-3
        assert np.all(np.abs(np.array(mine["box"]) - np.array(theirs["box"])) <= limits), (mine, theirs, image)


def test_the_page_finds_the_banana_offline_as_predict_does(try_page):
    """On the built site with no network: the page's detections on each banana sample (one of them
    413 x 311) equal ``predict --engine onnxruntime``'s, and each best box finds the sample's banana (IoU >= 0.5)."""
    site, page, refused = try_page
    browser_page.choose_model(page, 0)
    banana = mkdocs_browser.MODELS[0]
    for src in banana["samples"]:
        browser_page.choose_sample(page, src)
        mine = page.evaluate("window.multissdResult")
        assert_same_detections(mine, predicted(site / "models" / "banana.onnx", DOCS / src), DOCS / src)
        truth = np.array(TRUTH[src], np.float32)                                # (G, 5) in pixels
        iou = ref.box_iou(np.array([mine[0]["box"]], np.float32), truth[:, 1:])
        assert mine[0]["class"] == "banana" and iou.max() >= 0.5, (mine, truth)  # the banana is found
    assert refused == []


def test_the_fruit_model_agrees_on_an_image_of_another_shape(try_page):
    site, page, refused = try_page
    browser_page.choose_model(page, 1)
    fruit = mkdocs_browser.MODELS[1]
    src = next(s for s in fruit["samples"] if "x" in Path(s).stem.split("_")[-1])  # e.g. _380x520
    browser_page.choose_sample(page, src)
    assert_same_detections(page.evaluate("window.multissdResult"),
                           predicted(site / "models" / "fruit.onnx", DOCS / src), DOCS / src)
    assert Image.open(DOCS / src).size != (256, 256) and refused == []


def _numpy_candidates(onnx_file: Path, image: Path, threshold: float) -> int:
    """How many (anchor, class) pairs score >= ``threshold`` on ``image``: the page's "before NMS"."""
    from multissd.engine import open_model
    runner = open_model(onnx_file, None, "onnxruntime", "cpu", "fp32")
    height, width = runner.settings.image_size
    pixels = np.asarray(Image.open(image).convert("RGB").resize((width, height), Image.BILINEAR), np.float32)
    _, cls_probs, _ = runner.adapter.predict(runner.net, pixels.transpose(2, 0, 1)[None], runner.device, "fp32")
    return int((np.asarray(cls_probs)[0, 1:] >= np.float32(threshold)).sum())


@pytest.mark.parametrize("decode, threshold, nms", [("per-class", 0.3, 0.3), ("per-class", 0.05, 0.7),
                                                     ("book", 0.2, 0.5), ("book", 0.5, 0.9)])
def test_the_sliders_move_the_counts_as_numpy_counts_them(try_page, decode, threshold, nms):
    site, page, _ = try_page
    model = mkdocs_browser.MODELS[1]
    browser_page.choose_model(page, 1)
    src = model["samples"][0]
    browser_page.choose_sample(page, src)
    browser_page.select(page, "ssd-decode", decode)
    browser_page.set_slider(page, "ssd-threshold", threshold)
    seen = browser_page.set_slider(page, "ssd-nms", nms)
    onnx_file = site / "models" / "fruit.onnx"
    cli = predicted(onnx_file, DOCS / src, "--decode", decode, "--threshold", str(threshold),
                    "--nms-threshold", str(nms))
    assert (seen["decode"], seen["threshold"], seen["nms"]) == (decode, threshold, nms)
    assert seen["after"] == len(cli)
    assert_same_detections(page.evaluate("window.multissdResult"), cli, DOCS / src)
    assert seen["before"] == _numpy_candidates(onnx_file, DOCS / src, threshold)
    browser_page.set_slider(page, "ssd-threshold", 0.9)


def test_clicking_a_pixel_draws_the_anchors_of_its_cell(try_page):
    site, page, _ = try_page
    browser_page.choose_model(page, 0)
    spec = json.loads((site / "models" / "models.json").read_text())[0]["spec"]
    browser_page.select(page, "ssd-mode", "anchors")
    for scale, (sizes, ratios) in enumerate(zip(spec["sizes"], spec["ratios"])):
        browser_page.select(page, "ssd-scale", str(scale))
        seen = browser_page.click_at(page, 0.7, 0.2)
        assert seen["anchors_drawn"] == len(sizes) + len(ratios) - 1
        text = page.inner_text("#ssd-anchor-info")
        assert f"{len(sizes) + len(ratios) - 1} anchors" in text, text
    assert "(6, 22) of 32 x 32" in page.evaluate("""() => { document.querySelector('#ssd-scale').value = '0';
        document.querySelector('#ssd-scale').dispatchEvent(new Event('change'));
        return document.querySelector('#ssd-anchor-info').textContent; }""")
    browser_page.select(page, "ssd-mode", "detect")


def test_a_drawn_box_gets_the_anchors_multibox_target_assigns(try_page):
    site, page, _ = try_page
    browser_page.choose_model(page, 0)
    browser_page.select(page, "ssd-mode", "label")
    anchors = None
    for start, end in [((0.3, 0.3), (0.62, 0.58)), ((0.05, 0.1), (0.2, 0.9)), ((0.4, 0.45), (0.47, 0.5))]:
        seen = browser_page.drag(page, start, end)
        truth = np.array(seen["truth"], np.float32)
        assert np.allclose(truth, [*start, *end], atol=0.02)
        if anchors is None:
            anchors = _model_anchors(site)
        assigned = ref.assign_anchor_to_bbox(truth[None], anchors, iou_threshold=0.5)
        assert seen["assigned"] == int((assigned == 0).sum()) >= 1
    browser_page.select(page, "ssd-mode", "detect")


def _model_anchors(site: Path) -> np.ndarray:
    """The banana model's anchors ``(A, 4)`` as its ONNX file outputs them."""
    import onnxruntime
    session = onnxruntime.InferenceSession(str(site / "models" / "banana.onnx"))
    anchors = session.run(["anchors"], {"images": np.zeros((1, 3, 256, 256), np.float32)})[0]
    return anchors.reshape(-1, 4)


def test_a_missing_npm_ci_stops_the_site_build_with_what_to_run(monkeypatch, tmp_path):
    from mkdocs.exceptions import PluginError
    monkeypatch.setattr(mkdocs_browser, "ORT", tmp_path / "node_modules" / "onnxruntime-web" / "dist")
    with pytest.raises(PluginError, match="run `npm ci`"):
        mkdocs_browser.ort_files()
