"""A griffe extension for the API page: the docstrings' Sphinx roles (``:func:`nms```,
``:class:`~multissd.TinySSDSpec```, ``:mod:`multissd.boxes```, ...) become links to the page's
entries (mkdocs-autorefs' optional references: a name the site does not document stays code, with
no broken link), so the page never shows a role as literal text.

Used by ``mkdocs.yml`` (``mkdocstrings`` -> ``python`` -> ``options`` -> ``extensions``).
"""
from __future__ import annotations

import importlib
import re

import griffe

ROLE = re.compile(r":(?:py:)?(func|class|meth|data|mod|attr|obj|exc):`(~?)([\w.]+)(\(\))?`")


def canonical(path: str) -> str:
    """The documented path of ``path``: where a function or class is defined (``multissd.nms`` ->
    ``multissd.boxes.nms``); a module, or a name that does not import, as given."""
    parts = path.split(".")
    if "torch" in parts or "paddle" in parts:  # a backend's module: documented under its own path, not imported
        return path
    for split in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for name in parts[split:]:
            value = getattr(value, name, None)
        module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
        if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
            return f"{module}.{qualname}"
        return path
    return path


def link(match: re.Match, scope: str) -> str:
    """One role as an optional autoref; ``scope`` qualifies a bare name (its module or class)."""
    _, short, target, call = match.groups()
    path = target if target.startswith("multissd") else f"{scope}.{target}"
    shown = (target.rsplit(".", 1)[-1] if short else target) + (call or "")
    return f'<autoref identifier="{canonical(path)}" optional><code>{shown}</code></autoref>'


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is None or ":" not in obj.docstring.value:
            return
        scope = obj.path if obj.is_module else (obj.parent.path if obj.parent else obj.path)
        obj.docstring.value = ROLE.sub(lambda match: link(match, scope), obj.docstring.value)
