"""The page that runs TinySSD in the reader's browser (docs/try.md): its JavaScript box math against
the NumPy reference (``node --test``), and the built page in headless Chromium against
``python -m multissd.predict --engine onnxruntime``.

A test that needs Node or Chromium skips, saying so, on a machine without them; ``.ci/run`` installs
both and sets ``MULTISSD_REQUIRE_TOOLS=1``, which turns such a skip into a failure.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import browser_golden  # noqa: E402

SSD_JS = ROOT / "docs" / "javascripts" / "ssd"


def require(tool: str, why: str) -> str:
    """The path of ``tool``; skip (or, under ``MULTISSD_REQUIRE_TOOLS=1``, fail) without it."""
    found = shutil.which(tool)
    if found is None:
        message = f"needs {tool} ({why})"
        if os.environ.get("MULTISSD_REQUIRE_TOOLS", "").strip() not in ("", "0"):
            pytest.fail(message + "; MULTISSD_REQUIRE_TOOLS=1 says it must be here")
        pytest.skip(message)
    return found


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
