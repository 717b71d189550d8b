"""What the command lines (``multissd.train``, ``multissd.predict``, ``multissd.evaluate``) share:
the backend and device options, written once from the registry, and how a failure is reported
(one line on stderr, exit status 2)."""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from multissd.backends._registry import BACKEND_NAMES, DEVICES

USER_ERRORS = (ValueError, TypeError, ImportError, OSError)
"""What bad input, a bad file or folder (missing, unreadable, read-only, a full disk) or a missing
framework raise: reported as one ``error: ...`` line, exit status 2."""


def describe(error: Exception) -> str:
    """One line for ``error``; an OS error names the path and what went wrong (``Permission denied``,
    ``No space left on device``, ...), not its errno."""
    if isinstance(error, OSError) and not isinstance(error, ImportError) and error.strerror:
        path = f" {error.filename}" if error.filename else ""
        return f"cannot use{path}: {error.strerror}"
    return str(error)


def new_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A parser whose help starts with the command's docstring, kept as written."""
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_backend(parser: argparse.ArgumentParser, help: str) -> None:
    """``--backend`` with every registered backend as a choice (default: None, the active backend)."""
    parser.add_argument("--backend", choices=list(BACKEND_NAMES), default=None, help=help)


def add_engine(parser: argparse.ArgumentParser) -> None:
    """``--engine``: what runs the model -- the backend (default), or ONNX Runtime on an exported file."""
    parser.add_argument("--engine", choices=["onnxruntime"], default=None,
                        help="run an ONNX file written by python -m multissd.export with ONNX Runtime, decoded by "
                             "the numpy backend (default: the backend runs a weights file; an .onnx --weights "
                             "file picks onnxruntime)")


def add_device(parser: argparse.ArgumentParser, help: str = "device (default auto)") -> None:
    """``--device`` with the devices every backend accepts (default auto)."""
    parser.add_argument("--device", choices=list(DEVICES), default="auto", help=help)


def report_errors(body: Callable[[], int]) -> int:
    """Run ``body``; a user error becomes one ``error: ...`` line on stderr and exit status 2, Ctrl-C
    one ``interrupted`` line and exit status 130."""
    try:
        return body()
    except USER_ERRORS as error:
        print(f"error: {describe(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
