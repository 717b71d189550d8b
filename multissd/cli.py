"""What the command lines (``multissd.train``, ``multissd.predict``, ``multissd.evaluate``) share:
the backend and device options, written once from the registry, and how a failure is reported
(one line on stderr, exit status 2)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from multissd.backends._registry import BACKEND_NAMES, DEVICES

USER_ERRORS = (ValueError, TypeError, ImportError)
"""What bad input, a bad file or a missing framework raise: reported as ``error: ...``, exit status 2."""


def new_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A parser whose help starts with the command's docstring, kept as written."""
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_backend(parser: argparse.ArgumentParser, help: str) -> None:
    """``--backend`` with every registered backend as a choice (default: None, the active backend)."""
    parser.add_argument("--backend", choices=list(BACKEND_NAMES), default=None, help=help)


def add_device(parser: argparse.ArgumentParser, help: str = "device (default auto)") -> None:
    """``--device`` with the devices every backend accepts (default auto)."""
    parser.add_argument("--device", choices=list(DEVICES), default="auto", help=help)


def report_errors(body: Callable[[], int]) -> int:
    """Run ``body``; a user error becomes one ``error: ...`` line on stderr and exit status 2."""
    try:
        return body()
    except USER_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
