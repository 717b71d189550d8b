"""The built documentation site as a browser loads it: no broken internal link, image or anchor, no
Sphinx role shown as text, and (where Chromium is installed) every formula typeset and the linked
tabs switching together (tools/check_site.py; screenshots by hand with --screenshots)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import check_site  # noqa: E402
from conftest import require  # noqa: E402

HEADER_YELLOW = np.array([255, 193, 5])
"""The site header's colour (Material's amber), as Chromium paints it."""


def test_the_checker_finds_broken_links_anchors_images_and_roles(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "index.html").write_text(
        '<h1 id="top">A</h1><a href="../b/">b</a><a href="#top">up</a><a href="https://d2l.ai">book</a>'
        '<img src="../fig.png">')
    (tmp_path / "fig.png").write_bytes(b"png")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "index.html").write_text('<a href="../a/#nowhere">x</a><img src="missing.png">'
                                               '<p>see :func:`nms`</p><script>":class:`x`"</script>')
    problems = check_site.check(tmp_path)
    assert sorted(problems) == sorted([
        "b/index.html: shows a Sphinx role as text: :func:`",
        "b/index.html: '../a/#nowhere' names no element of a/index.html",
        "b/index.html: broken src 'missing.png'",
    ])


def test_built_site_has_no_broken_link_and_no_literal_role(built_site):
    site, result = built_site
    assert result.returncode == 0, result.stderr[-3000:]
    assert check_site.check(site) == []


def test_the_browser_findings_that_count_as_problems():
    fine = dict(before=["NumPy", "NumPy", "Other"], after=["Paddle", "Paddle", "Other"], formulas=3, typeset=3)
    assert check_site._page_problems("anchors", fine) == []
    broken = dict(before=["NumPy", "NumPy"], after=["Paddle", "NumPy"], formulas=3, typeset=1,
                  broken=["../figures/gone.png"])
    assert check_site._page_problems("nms", broken) == [
        "nms: 2 of 3 formulas not typeset",
        "nms: after clicking Paddle the tab sets show ['Paddle', 'NumPy']",
        "nms: image '../figures/gone.png' did not load",
    ]


def test_in_a_headless_browser_formulas_render_and_linked_tabs_switch_together(built_site):
    require("chromium", "Debian: apt-get install -y chromium")
    site, result = built_site
    assert result.returncode == 0, result.stderr[-3000:]
    with check_site.serve(site) as base_url:
        seen = check_site.probe(site, "anchors", base_url)
    assert seen["formulas"] >= 3 and seen["typeset"] == seen["formulas"]
    assert len(seen["before"]) >= 3 and set(seen["after"]) == {"Paddle"}
    assert check_site.browser_problems(site) == []


def test_a_figure_that_does_not_decode_is_a_problem_in_the_browser(tmp_path):
    """An image file that exists but is not an image (a truncated download, an LFS pointer) passes the
    link check and shows as a broken icon: the browser pass reports it."""
    require("chromium", "Debian: apt-get install -y chromium")
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text('<html><body><article><img src="../fig.png"></article></body></html>')
    (tmp_path / "fig.png").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    assert check_site.check(tmp_path) == []
    assert check_site.browser_problems(tmp_path) == ["page: image '../fig.png' did not load"]


def test_figures_are_captured_as_their_pages_show_them(built_site, tmp_path):
    require("chromium", "Debian: apt-get install -y chromium")
    require("playwright", "pip install playwright (the test extra)", module=True)
    from PIL import Image
    site, result = built_site
    assert result.returncode == 0, result.stderr[-3000:]
    shots = check_site.figure_shots(site, tmp_path, ["lesson9_nms.png", "prediction.png", "bench.png",
                                                     "logs/small_objects.png"])
    assert [shot.name for shot in shots] == ["lesson9_nms.png", "prediction.png", "bench.png", "small_objects.png"]
    for shot in shots:
        with Image.open(shot) as image:
            assert image.width >= 300 and image.height >= 150, (shot, image.size)
            pixels = np.asarray(image.convert("RGB")).astype(int)
            header = (abs(pixels - HEADER_YELLOW).sum(axis=-1) < 30).mean(axis=1)   # (H,): share per row
            assert header.max() < 0.9, f"{shot.name}: the site's header lies over the figure"
    with pytest.raises(ValueError, match="shows"):
        check_site.figure_shots(site, tmp_path, ["no_such_figure.png"])
