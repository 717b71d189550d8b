"""Every documentation page with code as a Jupyter notebook, one per backend tab.

A page's prose becomes markdown cells and its Python blocks code cells, in page order: the blocks
outside tabs and those of one tab (``=== "NumPy"``, ``=== "PyTorch"``, ``=== "Paddle"``), the
other tabs left out. Output blocks (````text``) are left out: running the notebook prints them.
The notebooks are made from the pages when the site is built (``tools/mkdocs_notebooks.py``, not
committed) and executed by the tests (``tests/test_docs.py``), which compare each cell's printed
output with the page's, so a notebook cannot drift from its page.

    python tools/page_notebooks.py docs/anchors.md torch > anchors-torch.ipynb
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

TABS = {"NumPy": "numpy", "PyTorch": "torch", "Paddle": "paddle"}
TAB_NAMES = {backend: tab for tab, backend in TABS.items()}
EXTRAS = {"numpy": "", "torch": "[torch]", "paddle": "[paddle]", None: "[torch,paddle]"}
TAB_HEADER = re.compile(r'^=== "([^"]+)"\s*$')
_FENCE = re.compile(r"^```(\w*)")
_ATTRS = re.compile(r"\)\{[^}]*\}")  # an attribute list after a link or image: ![..](..){ .. }


def page_backends(page: Path) -> list[str | None]:
    """The backends of ``page``'s tabs, in tab order; ``[None]`` when it has none (one notebook)."""
    found = {TABS.get(m.group(1)) for m in map(TAB_HEADER.match, page.read_text().splitlines()) if m}
    return [b for b in TABS.values() if b in found] or [None]


def notebook_name(page: Path, backend: str | None) -> str:
    """``anchors-torch.ipynb``: the file name of ``page``'s notebook for ``backend``."""
    return f"{page.stem}-{backend}.ipynb" if backend else f"{page.stem}.ipynb"


def _lines_for(lines: list[str], backend: str | None):
    """The page's lines as the ``backend`` reader sees them: other tabs dropped, this tab's content
    dedented, the tab headers gone."""
    tab = None  # the backend of the tab being read, or None at the margin
    for line in lines:
        header = TAB_HEADER.match(line)
        if header:
            tab = TABS.get(header.group(1), header.group(1))
            continue
        if tab is not None and line and not line.startswith(" "):
            tab = None  # text at the margin closes the tab group
        if tab is None:
            yield line
        elif tab == backend:
            yield line[4:] if line.startswith("    ") else line.lstrip()


def notebook(page: Path, backend: str | None):
    """``page`` (a docs Markdown file) as an ``nbformat`` v4 notebook for ``backend``."""
    import nbformat
    from nbformat import v4

    lines = list(_lines_for(page.read_text().splitlines(), backend))
    title = next((line[2:].strip() for line in lines if line.startswith("# ")), page.stem)
    where = f", the {TAB_NAMES[backend]} tab" if backend else ""
    cells = [v4.new_markdown_cell(
        f"*This notebook is the page \"{title}\" of the multissd documentation{where}, made from "
        f"`docs/{page.name}`. It needs `pip install \"multissd{EXTRAS[backend]}\"`; pages that load "
        "trained models read them from `weights/`, the repository's `docs/weights` folder, which "
        "should sit beside the notebook.*")]
    markdown: list[str] = []

    def flush():
        text = "\n".join(markdown).strip("\n")
        if text:
            cells.append(v4.new_markdown_cell(text))
        markdown.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence and fence.group(1) in ("python", "text"):
            body = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            if fence.group(1) == "python":  # a text block is the previous cell's output: running prints it
                flush()
                cells.append(v4.new_code_cell("\n".join(body).rstrip("\n")))
        elif line.startswith("!["):
            pass  # the page's figure: the cell above draws it
        elif line.startswith("!!! "):  # an admonition -> a quote
            kind = line[4:].split(" ", 1)
            markdown.append(f"> **{kind[1].strip(chr(34))}**" if len(kind) > 1 else "")
            while i + 1 < len(lines) and (lines[i + 1].startswith("    ") or not lines[i + 1].strip()):
                i += 1
                if lines[i].strip():
                    markdown.append("> " + lines[i].strip())
            markdown.append("")
        else:
            markdown.append(_ATTRS.sub(")", line))
        i += 1
    flush()
    nb = v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    nbformat.validate(nb)
    return nb


def main(argv: list[str]) -> int:
    import nbformat

    page, backend = Path(argv[0]), (argv[1] if len(argv) > 1 else None)
    sys.stdout.write(nbformat.writes(notebook(page, backend)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
