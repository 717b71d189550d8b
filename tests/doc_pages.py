"""Run the code of the documentation pages, tab by tab, as a reader would.

A page's Python blocks run in page order, in one namespace per (page, backend): a block inside a
Material tab (``=== "NumPy"``, ``=== "PyTorch"``, ``=== "Paddle"``) runs for that tab's backend
only, a block outside tabs for every backend. A ````text`` block right after a Python block (in the
same tab) is the output the page shows: the block's printed output must equal it line by line.
Each run happens in a fresh working folder, where ``weights/`` is ``docs/weights`` (trained models a
page loads); the figures a page's code saves there are the ones the page shows from ``figures/``.

    python tests/doc_pages.py            # run every page on every installed backend, refresh docs/figures
    python tests/doc_pages.py anchors    # one page
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parent.parent / "docs"
sys.path.insert(0, str(DOCS.parent / "tools"))  # page_notebooks: the pages as notebooks
from page_notebooks import TAB_HEADER, TABS  # noqa: E402  (the tab names, defined once)
FIGURES = DOCS / "figures"
_FENCE = re.compile(r"^(\s*)```(\w*)")
_FIGURE = re.compile(r"!\[[^\]]*\]\(figures/([^)\s]+)\)(?:\{[^}]*data-drawn-by=\"(\w+)\"[^}]*\})?")


@dataclass
class Block:
    """One fenced block: ``kind`` "python" or "text", ``backend`` (None outside tabs), its code and line."""

    kind: str
    backend: str | None
    code: str
    line: int
    output: str | None = None  # for python blocks: the text block that follows, if any


def parse(page: Path) -> list[Block]:
    """The python blocks of ``page`` (each with the output block that follows it), in page order."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    backend, i = None, 0
    while i < len(lines):
        line = lines[i]
        tab = TAB_HEADER.match(line)
        if tab:
            if tab.group(1) not in TABS:
                raise ValueError(f"{page.name}:{i + 1}: unknown tab {tab.group(1)!r}; expected one of {list(TABS)}")
            backend = TABS[tab.group(1)]
        elif line and not line.startswith(" "):
            backend = None  # text at the margin closes the tab group
        fence = _FENCE.match(line)
        if fence:
            indent, kind = fence.group(1), fence.group(2)
            if backend is not None and len(indent) < 4:
                backend = None
            body, start = [], i + 1
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i][len(indent):])
                i += 1
            if i == len(lines):
                raise ValueError(f"{page.name}:{start}: unclosed code block")
            code = "\n".join(body) + "\n"
            if kind == "python":
                blocks.append(Block("python", backend, code, start))
            elif kind == "text" and blocks and blocks[-1].backend == backend and blocks[-1].output is None:
                blocks[-1].output = code
        i += 1
    return blocks


def backends_of(blocks: list[Block]) -> list[str | None]:
    """The backends a page's code runs on: its tabs'; ``[None]`` (one run, no backend chosen) when
    it has no tabs."""
    tabbed = {b.backend for b in blocks if b.backend}
    return [name for name in TABS.values() if name in tabbed] if tabbed else [None]


def figures_of(page: Path) -> dict[str, str | None]:
    """The ``figures/NAME`` images ``page`` shows -> the backend whose run draws each (an image
    followed by ``{ data-drawn-by="torch" }``), or ``None``: the page's first backend."""
    return {name: backend or None for name, backend in _FIGURE.findall(page.read_text())}


def run_page(page: Path, backend: str | None, workdir: Path) -> int:
    """Run ``page``'s blocks for ``backend`` (``None``: the blocks outside tabs only) in
    ``workdir``; returns how many blocks ran. Raises ``AssertionError`` naming the page and line
    when a block fails or its output differs from the page's."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {"__name__": f"docs.{page.stem}"}
    ran = 0
    old = Path.cwd()
    if (DOCS / "weights").is_dir() and not (workdir / "weights").exists():
        (workdir / "weights").symlink_to(DOCS / "weights")  # as a reader running the page from docs/ has them
    printing = np.get_printoptions()  # a page's np.set_printoptions must not reach the next page
    os.chdir(workdir)
    try:
        for block in parse(page):
            if block.backend not in (None, backend):
                continue
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    exec(compile(block.code, f"{page.name}:{block.line}", "exec"), namespace)
                except Exception as error:
                    raise AssertionError(f"{page.name}:{block.line} ({backend}): {type(error).__name__}: "
                                         f"{error}") from error
            if block.output is not None:
                assert_prints(page, block, str(backend), out.getvalue())
            plt.close("all")
            ran += 1
    finally:
        os.chdir(old)
        np.set_printoptions(**printing)
    return ran


def run_notebook(page: Path, backend: str | None, workdir: Path) -> int:
    """Run ``page``'s notebook for ``backend`` (``tools/page_notebooks.py``) in a Jupyter kernel in
    ``workdir``, as a reader who downloaded it would; returns how many code cells ran. Its code
    cells must be the page's blocks for ``backend``, and each one's printed output the page's.
    Raises ``AssertionError`` naming the page and line otherwise."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from page_notebooks import notebook

    nb = notebook(page, backend)
    if (DOCS / "weights").is_dir() and not (workdir / "weights").exists():
        (workdir / "weights").symlink_to(DOCS / "weights")
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    blocks = [block for block in parse(page) if block.backend in (None, backend)]
    assert [c.source for c in cells] == [b.code.rstrip("\n") for b in blocks], \
        f"{page.name} ({backend}): the notebook's code cells are not the page's blocks"
    client = NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute()
    except CellExecutionError as error:
        ran = next((i for i, c in enumerate(cells) if any(o.output_type == "error" for o in c.get("outputs", []))), 0)
        raise AssertionError(f"{page.name}:{blocks[ran].line} ({backend}, notebook): {error}") from error
    for cell, block in zip(cells, blocks):
        if block.output is not None:
            assert_prints(page, block, f"{backend}, notebook",
                          "".join(o.get("text", "") for o in cell.outputs
                                  if o.output_type == "stream" and o.name == "stdout"))
    return len(cells)


def assert_prints(page: Path, block: Block, how: str, printed: str) -> None:
    """``printed`` (what ``block`` of ``page`` printed, run as ``how`` says) must be the page's
    output block, line by line (trailing spaces aside); else an ``AssertionError`` naming the line."""
    got = [line.rstrip() for line in printed.rstrip().splitlines()]
    want = [line.rstrip() for line in block.output.rstrip().splitlines()]
    assert got == want, (f"{page.name}:{block.line} ({how}) printed\n" + "\n".join(got) +
                         "\nbut the page shows\n" + "\n".join(want))


def pages() -> list[Path]:
    """The documentation pages that hold Python code."""
    return sorted(p for p in DOCS.glob("*.md") if any(b.kind == "python" for b in parse(p)))


def main(argv: list[str]) -> int:
    from multissd import backends

    chosen = [p for p in pages() if not argv or p.stem in argv]
    FIGURES.mkdir(exist_ok=True)
    failed = False
    for page in chosen:
        for backend in backends_of(parse(page)):
            if backend is not None and not backends.is_installed(backend):
                print(f"{page.name}: {backend} not installed, skipped")
                continue
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    run_page(page, backend, Path(tmp))
                except AssertionError as error:  # report and go on to the next page
                    print(f"FAILED {error}")
                    failed = True
                    continue
                for name, drawn_by in figures_of(page).items():
                    if not (Path(tmp) / name).is_file():
                        raise SystemExit(f"{page.name} shows figures/{name}, which its {backend} code did not save")
                    if backend == (drawn_by or backends_of(parse(page))[0]):
                        shutil.copyfile(Path(tmp) / name, FIGURES / name)
            print(f"{page.name}: {backend or 'no tabs'} ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(DOCS.parent))
    raise SystemExit(main(sys.argv[1:]))
