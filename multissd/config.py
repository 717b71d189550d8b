"""The one owner of the backend choice.

Precedence, read at call time (never at import time): an explicit :func:`use_backend` beats the
``MULTISSD_BACKEND`` environment variable, which beats the default (the first installed of torch,
paddle, numpy). Nothing is written to disk.
"""
from __future__ import annotations

import os

from multissd.backends import _registry

ENV_VAR = "MULTISSD_BACKEND"

_explicit: str | None = None


class _BackendChoice:
    """Returned by :func:`use_backend`; as a context manager it restores the previous choice on exit."""

    def __init__(self, name: str, previous: str | None):
        self.name = name
        self._previous = previous

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc_info) -> None:
        global _explicit
        _explicit = self._previous

    def __repr__(self) -> str:
        return f"use_backend({self.name!r})"


def use_backend(name: str) -> _BackendChoice:
    """Make ``name`` ("numpy", "torch" or "paddle") the active backend.

    Works as a plain call (the choice stays until changed) and as a context manager
    (``with multissd.use_backend("paddle"): ...`` restores the previous choice afterwards).
    An unknown name raises ``ValueError`` listing the valid names; a backend whose framework is not
    installed raises :class:`multissd.BackendNotAvailableError` naming the pip extra. The
    framework itself is imported on first use, not here.
    """
    global _explicit
    _registry.info(name)  # validates the name
    if not _registry.is_installed(name):
        _registry.load(name)  # raises the error that names the pip extra
    previous = _explicit
    _explicit = name
    return _BackendChoice(name, previous)


def get_backend() -> str:
    """The name of the active backend: explicit choice, else ``$MULTISSD_BACKEND``, else the default."""
    if _explicit is not None:
        return _explicit
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        if from_env not in _registry.REGISTRY:
            raise ValueError(
                f"Unknown multissd backend in the environment variable {ENV_VAR}. Expected one of "
                f"{sorted(_registry.REGISTRY)}. Received: {ENV_VAR}={from_env!r}")
        return from_env
    return _registry.available_backends()[0]
