"""MkDocs hook: every page with code downloadable as a notebook, one per backend tab.

At build time each docs page holding Python blocks is turned into notebooks
(``tools/page_notebooks.py``: ``notebooks/<page>-<backend>.ipynb``, not committed), and the page
gets a "Run this page as a notebook" box under its title linking them. The tests execute the same
notebooks (``tests/test_docs.py``), so what a reader downloads is what was run.
"""
from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))
from page_notebooks import TAB_NAMES, notebook, notebook_name, page_backends  # noqa: E402


def _has_code(path: Path) -> bool:
    return "```python" in path.read_text(encoding="utf-8")


def on_files(files, config):
    import nbformat

    for page in sorted(Path(config.docs_dir).glob("*.md")):
        if _has_code(page):
            for backend in page_backends(page):
                files.append(File.generated(config, f"notebooks/{notebook_name(page, backend)}",
                                            content=nbformat.writes(notebook(page, backend))))
    return files


def _box(page: Path) -> list[str]:
    backends = page_backends(page)
    links = " · ".join(f"[{TAB_NAMES.get(backend, 'all backends')}](notebooks/{notebook_name(page, backend)}){{ download }}"
                       for backend in backends)
    what = "this page's code for one backend" if backends != [None] else "this page's code"
    return ['!!! tip "Run this page as a notebook"',
            f"    {links}: {what}, in Jupyter (made from the page; the tests run it).", ""]


def on_page_markdown(markdown, page, config, files):
    """Put the notebook links under the page's title and its "In the book" box, if it has one."""
    path = Path(page.file.abs_src_path)
    if not _has_code(path):
        return markdown
    lines = markdown.splitlines()
    at = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)
    while at < len(lines) and not lines[at].strip():
        at += 1
    if at < len(lines) and lines[at].startswith("!!! "):  # skip the admonition and its body
        at += 1
        while at < len(lines) and (lines[at].startswith("    ") or not lines[at].strip()):
            at += 1
    return "\n".join(lines[:at] + _box(path) + lines[at:]) + "\n"
