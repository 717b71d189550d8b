"""Files multissd reads and writes: the paths a data file names, resolved inside its folder; one writer
for every output file; a lock on a run folder while a run uses it.

- :func:`inside` -- a name read from an annotation or list file (``ImageSets/Main/train.txt``, a COCO
  ``file_name``, a ``label.csv`` ``img_name``) is a file inside the data folder, never an absolute
  path or one that climbs out with ``..``.
- :func:`write_file` -- every file multissd writes (weights, checkpoints, config, metrics, pictures,
  ``eval.json``, ONNX) is written to a temporary file beside it and renamed into place, so a reader
  never sees half a file; it refuses a path that is a folder or an input of the same command, names
  the user's path (not the temporary one) when the operating system refuses -- ``No space left on
  device`` included, also where a library hides the error -- and removes its temporary file on any
  exit, and those of earlier writers that were killed.
- :class:`RunLock` -- ``fcntl.flock`` on ``RUN/.lock``: a second run on the same folder is refused
  while the first holds it; a killed run cannot keep it (the kernel drops the lock with the process),
  and the next run says that it found its lock file.
- :func:`deferred_interrupt` -- Ctrl-C during a framework's call that must not be interrupted (an
  exporter inside C++) is held until the call returns, then raised.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path, PurePosixPath

from multissd.errors import InputError

__all__ = ["inside", "check_output", "errors_naming", "write_file", "write_bytes", "write_text", "RunLock", "LOCK_FILE",
           "deferred_interrupt", "TEMP_MARK"]

TEMP_MARK = ".tmp"
"""Temporary files are named ``.<name>.<pid>-<n>.tmp<suffix>``: hidden, and their writer's process id
tells a stale one (its process is gone) from one being written."""

LOCK_FILE = ".lock"
"""The lock file of a run folder."""

_LOW_SPACE = 64 * 1024  # bytes: below this, a failed write is taken for a full disk
_counter = itertools.count()


def inside(folder: Path, name: str, where: str, within: str | None = None) -> Path:
    """The file ``name`` -- as an annotation or list file writes it (relative, ``/``-separated) --
    inside ``folder``; ``InputError`` starting with ``where`` (the file and row or field that names
    it) when it is empty, absolute, or has a ``..`` part: it would be read from outside the data
    folder. ``within`` describes ``folder`` in the message (default: its path)."""
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        raise InputError(f"{where} {name!r} is not a file name")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if PurePosixPath(name).is_absolute() or Path(name).is_absolute() or ".." in parts or not parts:
        raise InputError(f"{where} {name!r} must name a file inside {within or folder} (no absolute path, "
                         f"no '..')")
    return Path(folder, *parts)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path, inputs: Iterable = (), what: str = "output") -> Path:
    """``path`` as an output of a command: ``InputError`` when it is a folder or the same file as one
    of ``inputs`` (the command would overwrite what it reads). Call it before the work, so a mistake
    costs nothing; :func:`write_file` calls it again."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a folder; name a file")
    for source in inputs:
        if source is not None and (Path(source) == path or _same_file(Path(source), path)):
            raise InputError(f"{what} {path} is {source}, an input of this command: writing it would destroy "
                             f"the input; choose another file")
    return path


def _writer_alive(temp: Path) -> bool:
    """Whether the process that named the temporary file ``temp`` is still running."""
    try:
        pid = int(temp.name.rsplit(TEMP_MARK, 1)[0].rsplit(".", 1)[1].split("-")[0])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale_temps(path: Path) -> None:
    """Remove the temporary files (and folders) of ``path`` that writers killed before they finished
    left behind (their process is gone)."""
    for temp in path.parent.glob(f".{path.name}.*{TEMP_MARK}*"):
        if not _writer_alive(temp):
            _remove(temp)


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside ``path``, with its suffix (libraries choose the format by it)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{next(_counter)}{TEMP_MARK}{path.suffix}")


def _disk_full(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < _LOW_SPACE
    except OSError:
        return False


def _named(error: OSError, path: Path) -> OSError:
    """``error`` with ``path`` (the user's) as its file name, not the temporary one (an error without
    an errno is passed on as it is)."""
    if error.errno is None:
        return error
    return type(error)(error.errno, error.strerror or os.strerror(error.errno), str(path))


@contextlib.contextmanager
def errors_naming(path: Path) -> Iterator[None]:
    """Errors of the block that writes ``path`` name ``path`` (not a temporary name): an ``OSError``
    keeps its errno with ``path`` as its file name; a library's failure on a full disk (safetensors,
    paddle2onnx, ... report it in their own words) becomes ``OSError(ENOSPC)`` naming ``path``."""
    try:
        yield
    except OSError as error:
        if error.errno == errno.ENOSPC or _disk_full(path.parent):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
        raise _named(error, path) from None
    except Exception:
        if _disk_full(path.parent):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
        raise


def write_file(path, write: Callable[[Path], None], inputs: Iterable = (), what: str = "output") -> Path:
    """Write ``path`` atomically: ``write(temp)`` writes a temporary file beside it, which is then
    renamed to ``path``. Refuses a folder and an input of the command (:func:`check_output`);
    an ``OSError`` names ``path``; a library's failure on a full disk becomes ``OSError(ENOSPC)``
    naming ``path``; the temporary file is removed on any exit (Ctrl-C and errors included).
    Returns ``path``."""
    path = check_output(path, inputs, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _named(error, path.parent) from None
    remove_stale_temps(path)
    temp = temp_path(path)
    try:
        with errors_naming(path):
            write(temp)
            os.replace(temp, path)
    finally:
        _remove(temp)
    return path


def write_bytes(path, data: bytes, inputs: Iterable = (), what: str = "output") -> Path:
    """:func:`write_file` for ``data``."""
    return write_file(path, lambda temp: temp.write_bytes(data), inputs, what)


def write_text(path, text: str, inputs: Iterable = (), what: str = "output") -> Path:
    """:func:`write_file` for ``text`` (UTF-8)."""
    return write_file(path, lambda temp: temp.write_text(text, encoding="utf-8"), inputs, what)


class RunLock:
    """An exclusive lock on the run folder ``folder`` while a run uses it (``fcntl.flock`` on
    ``folder/.lock``, which holds the owner's process id).

    :meth:`acquire` raises ``InputError`` when another process holds it; a lock file left by a run
    that was killed is not held (the kernel released it with the process) and is taken over, and
    :attr:`stale` names the process that left it. :meth:`release` unlocks and removes the file.
    """

    def __init__(self, folder):
        self.path = Path(folder) / LOCK_FILE
        self.stale: str | None = None
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise _named(error, self.path) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise InputError(f"{self.path.parent} is in use by another run ({owner}); wait for it to end, or "
                                 f"choose another --out") from None
            try:  # the file may have been removed by its last owner between our open and our lock
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        left = os.pread(fd, 64, 0).decode(errors="replace").strip()
        self.stale = left or None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) while the block runs and raise ``KeyboardInterrupt`` when it ends: for a
    framework call that a Python exception raised inside its C++ would abort (``torch.onnx.export``).
    Outside the main thread, or where a handler cannot be set, the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
