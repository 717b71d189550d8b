"""The documentation runs: every code block of every tab, on its backend, with its printed output
checked; every figure a page shows is drawn by the page's own code; ``mkdocs build --strict``."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BACKENDS
from doc_pages import DOCS, FIGURES, TABS, backends_of, figures_of, pages, parse, run_page

from multissd import backends

RUNS = [pytest.param(page, backend, id=f"{page.stem}-{backend or 'all'}")
        for page in pages() for backend in backends_of(parse(page))]


@pytest.mark.parametrize("page, backend", RUNS)
def test_page_runs_on_its_backend(page, backend, tmp_path, monkeypatch):
    if backend is not None and backend not in BACKENDS:
        pytest.skip(f"{backend} is not installed or not selected")
    if backend is None and not all(backends.is_installed(name) for name in TABS.values()):
        pytest.skip("the page's code uses every backend")
    monkeypatch.setenv("MULTISSD_DATA", str(tmp_path / "cache"))
    blocks = [b for b in parse(page) if b.backend in (None, backend)]
    assert run_page(page, backend, tmp_path) == len(blocks)
    for name in figures_of(page):
        assert (tmp_path / name).is_file(), f"{page.name} shows figures/{name}, which its code did not draw"
        assert (FIGURES / name).is_file(), f"docs/figures/{name} is missing: run python tests/doc_pages.py"


def test_pages_have_tabs_for_every_backend_and_output_after_code():
    counts = {name: 0 for name in TABS.values()}
    for page in pages():
        blocks = parse(page)
        tabbed = {b.backend for b in blocks if b.backend}
        assert not tabbed or tabbed == set(TABS.values()), f"{page.name} has tabs for {sorted(tabbed)} only"
        for name in counts:
            counts[name] += sum(b.backend in (None, name) for b in blocks)
    # report: python -m pytest tests/test_docs.py -rP
    print("code blocks run per backend:", counts)
    assert min(counts.values()) >= 30


def test_parser_reads_tabs_and_outputs(tmp_path):
    page = tmp_path / "page.md"
    page.write_text('Text\n\n```python\nx = 1\n```\n\n=== "NumPy"\n\n    ```python\n    print(x + 1)\n    ```\n\n'
                    '    ```text\n    2\n    ```\n\n=== "PyTorch"\n\n    ```python\n    print(x + 2)\n    ```\n\n'
                    'After.\n\n```text\nnot an output of the torch tab\n```\n')
    blocks = parse(page)
    assert [(b.backend, b.output) for b in blocks] == [(None, None), ("numpy", "2\n"), ("torch", None)]
    assert run_page(page, "numpy", tmp_path) == 2
    page.write_text('=== "NumPy"\n\n    ```python\n    print(3)\n    ```\n\n    ```text\n    4\n    ```\n')
    with pytest.raises(AssertionError, match="page.md:3 \\(numpy\\) printed\n3\nbut the page shows\n4"):
        run_page(page, "numpy", tmp_path)
    page.write_text('=== "Julia"\n\n    ```python\n    pass\n    ```\n')
    with pytest.raises(ValueError, match="unknown tab 'Julia'"):
        parse(page)


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed (extra [docs])")
def test_mkdocs_build_strict(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                            cwd=DOCS.parent, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tmp_path / "site" / "anchors" / "index.html").read_text()
    assert 'class="tabbed-set' in html and "PyTorch" in html and "Paddle" in html
    assert (tmp_path / "site" / "figures" / "anchors.png").is_file()
    assert "multibox_prior" in (tmp_path / "site" / "api" / "index.html").read_text()
    assert Path(tmp_path / "site" / "index.html").is_file()


def test_a_figure_names_the_backend_that_draws_it(tmp_path):
    page = tmp_path / "page.md"
    page.write_text('![a](figures/a.png)\n\n![b, as torch trained it](figures/b.png){ data-drawn-by="torch" }\n')
    assert figures_of(page) == {"a.png": None, "b.png": "torch"}
    training = figures_of(DOCS / "training.md")
    assert training["training_curves.png"] == "torch"  # the curves of a run that trained, not NumPy's point
