"""MkDocs hook: formulas rendered offline by MathJax 3, shipped from a registry package.

The pages write TeX between ``\\(...\\)`` and ``\\[...\\]`` (``$...$`` and ``$$...$$`` too), which
``pymdownx.arithmatex`` (generic mode) leaves in ``<span class="arithmatex">``. This hook adds
MathJax's self-contained SVG build (``tex-svg.js``: no web fonts to fetch) from the
``sphinx-mathjax-offline`` wheel on PyPI to the site as ``javascripts/mathjax/tex-svg.js``, so the
built site renders formulas with no CDN and no network. ``docs/javascripts/mathjax.js`` configures
it and re-typesets after Material's instant navigation.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

SITE_PATH = "javascripts/mathjax/tex-svg.js"
PACKAGE, PACKAGE_PATH = "sphinx-mathjax-offline", "sphinx-mathjax-offline/static/mathjax/tex-svg.js"


def mathjax_script() -> Path:
    """Where the installed package keeps MathJax's ``tex-svg.js``; a ``PluginError`` naming the
    package to install when it is missing."""
    try:
        path = Path(distribution(PACKAGE).locate_file(PACKAGE_PATH))
    except PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise PluginError(f"MathJax for the formulas comes from the {PACKAGE!r} package: "
                          f"pip install 'multissd[docs]' (or pip install {PACKAGE})")
    return path


def on_files(files, config):
    """Add MathJax to the site's files (copied into the build like a page's image)."""
    files.append(File.generated(config, SITE_PATH, abs_src_path=str(mathjax_script())))
    return files
