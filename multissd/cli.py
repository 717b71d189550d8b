"""What the command lines (``multissd.train``, ``multissd.predict``, ``multissd.evaluate``,
``multissd.export``) share: the backend and device options, written once from the registry, how a
failure is reported, and the console script.

A mistake of the user's (a :class:`~multissd.errors.MultissdError`: an option out of range, a bad
file, a missing framework) and a problem with a file or folder (an ``OSError``: missing, unreadable,
read-only, a full disk) end in one ``error: ...`` line and exit status 2. Any other exception is a
bug and keeps its traceback. ``MULTISSD_DEBUG=1`` shows the traceback of the one-line errors too.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Callable

from multissd.errors import FieldError, MultissdError
from multissd.registry import BACKEND_NAMES, DEVICES
from multissd.trainer import PRECISIONS

USER_ERRORS = (MultissdError, OSError)
"""What a user's mistake, a bad file or folder (missing, unreadable, read-only, a full disk) or a
missing framework raise: reported as one ``error: ...`` line, exit status 2."""

DEBUG_ENV = "MULTISSD_DEBUG"
"""Set to 1 to see the traceback of an error that is otherwise one line."""


def describe(error: Exception, flags: dict[str, str] | None = None) -> str:
    """One line for ``error``; an OS error names the path and what went wrong (``Permission denied``,
    ``No space left on device``, ...), not its errno; a :class:`~multissd.errors.FieldError` names
    the option of its field when ``flags`` (field -> option) has one."""
    if isinstance(error, FieldError) and flags and error.field in flags:
        return error.named(flags[error.field])
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


def add_precision(parser: argparse.ArgumentParser, default: str = "fp32") -> None:
    """``--precision`` of the forward passes: fp32, bf16 (autocast), or auto (bf16 where the backend runs
    it faster: torch on a CPU with AVX-512 BF16 or AMX, or a GPU with bfloat16)."""
    parser.add_argument("--precision", choices=list(PRECISIONS), default=default,
                        help=f"forward passes in fp32, in bf16 (autocast; weights and results stay float32), or "
                             f"auto: bf16 where the backend runs it faster (torch on a CPU with AVX-512 BF16 or AMX, "
                             f"or a GPU), else fp32 (default {default})")


def add_device(parser: argparse.ArgumentParser, help: str = "device (default auto)") -> None:
    """``--device`` with the devices every backend accepts (default auto)."""
    parser.add_argument("--device", choices=list(DEVICES), default="auto", help=help)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as a command line shows it: ``warning: ...`` (not the source line that raised it)."""
    return f"warning: {message}\n"


def report_errors(body: Callable[[], int], flags: dict[str, str] | None = None) -> int:
    """Run ``body``; a user error (:data:`USER_ERRORS`) becomes one ``error: ...`` line on stderr
    and exit status 2 (``flags`` maps a config field to its option, for the message), Ctrl-C one
    ``interrupted`` line and exit status 130. Anything else propagates with its traceback. Warnings
    (a skipped annotation, a truncated photo) are one ``warning: ...`` line each."""
    if os.environ.get(DEBUG_ENV, "").strip() in ("", "0"):
        warnings.formatwarning = _one_line_warning
    try:
        return body()
    except USER_ERRORS as error:
        if os.environ.get(DEBUG_ENV, "").strip() not in ("", "0"):
            raise
        print(f"error: {describe(error, flags)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def script(main: Callable[[], int]) -> Callable[[], None]:
    """The console script of a command line whose ``main(argv=None)`` returns its exit status (the
    ``multissd-*`` entry points, and ``python -m multissd.*``)."""
    def run() -> None:
        sys.exit(main())
    run.__doc__ = f"The console script of {main.__module__} (the same as ``python -m {main.__module__}``)."
    return run
