"""The documentation runs: every code block of every tab, on its backend, with its printed output
checked; every figure a page shows is drawn by the page's own code; ``mkdocs build --strict``."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from conftest import BACKENDS
from doc_pages import DOCS, FIGURES, TABS, backends_of, figures_of, pages, parse, run_notebook, run_page

from multissd import backends

HAS_JUPYTER = all(importlib.util.find_spec(m) is not None for m in ("nbclient", "nbformat", "ipykernel"))
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
    # The page runs as its downloadable notebook (a Jupyter kernel), or in-process without Jupyter.
    run = run_notebook if HAS_JUPYTER else run_page
    assert run(page, backend, tmp_path) == len(blocks)
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


def test_mkdocs_build_strict(built_site):
    site, result = built_site
    assert result.returncode == 0, result.stderr[-3000:]
    html = (site / "anchors" / "index.html").read_text()
    assert 'class="tabbed-set' in html and "PyTorch" in html and "Paddle" in html
    assert (site / "figures" / "anchors.png").is_file()
    assert "multibox_prior" in (site / "api" / "index.html").read_text()
    assert Path(site / "index.html").is_file()


def test_a_figure_names_the_backend_that_draws_it(tmp_path):
    page = tmp_path / "page.md"
    page.write_text('![a](figures/a.png)\n\n![b, as torch trained it](figures/b.png){ data-drawn-by="torch" }\n')
    assert figures_of(page) == {"a.png": None, "b.png": "torch"}
    training = figures_of(DOCS / "training.md")
    assert training["training_curves.png"] == "torch"  # the curves of a run that trained, not NumPy's point


@pytest.mark.skipif(importlib.util.find_spec("nbformat") is None, reason="needs nbformat (docs or test extra)")
def test_page_as_notebook_keeps_one_tab_drops_outputs_and_figures(tmp_path):
    from page_notebooks import notebook, notebook_name, page_backends

    page = tmp_path / "page.md"
    page.write_text('# Title\n\n!!! info "In the book"\n    [14.7 SSD](https://d2l.ai)\n\nProse with '
                    '[a link](other.md).\n\n```python\nx = 1\n```\n\n=== "NumPy"\n\n    Numpy words.\n\n'
                    '    ```python\n    print(x + 1)\n    ```\n\n    ```text\n    2\n    ```\n\n=== "PyTorch"\n\n'
                    '    ```python\n    print(x + 2)\n    ```\n\n![A figure](figures/f.png){ data-drawn-by="torch" }\n\n'
                    'After.\n')
    assert page_backends(page) == ["numpy", "torch"]
    assert notebook_name(page, "torch") == "page-torch.ipynb" and notebook_name(page, None) == "page.ipynb"
    nb = notebook(page, "numpy")
    cells = [(c.cell_type, c.source) for c in nb.cells[1:]]
    assert cells == [("markdown", "# Title\n\n> **In the book**\n> [14.7 SSD](https://d2l.ai)\n\nProse with "
                                  "[a link](other.md)."),
                     ("code", "x = 1"), ("markdown", "Numpy words."), ("code", "print(x + 1)"),
                     ("markdown", "After.")]
    assert "the NumPy tab" in nb.cells[0].source and nb.metadata.kernelspec.name == "python3"
    assert [c.source for c in notebook(page, "torch").cells if c.cell_type == "code"] == ["x = 1", "print(x + 2)"]


def test_built_site_offers_each_page_as_a_notebook_per_backend(built_site):
    import json

    from page_notebooks import notebook_name

    site, result = built_site
    assert result.returncode == 0, result.stderr[-3000:]
    for page in pages():
        for backend in backends_of(parse(page)):
            name = notebook_name(page, backend)
            nb = json.loads((site / "notebooks" / name).read_text())
            code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
            assert code == [b.code.rstrip("\n") for b in parse(page) if b.backend in (None, backend)], name
            html = (site / ("" if page.stem == "index" else page.stem) / "index.html").read_text()
            assert f'href="{"" if page.stem == "index" else "../"}notebooks/{name}"' in html, (page.name, name)
