"""The host process: how many CPU cores it may use, and how it keeps freed memory.

A TinySSD training step on a 32 x 3 x 256 x 256 batch allocates and frees about 1.5 GB of
activations and gradients, in blocks of up to 134 MB. glibc's ``malloc`` serves blocks that large
with ``mmap`` and gives them back to the kernel on ``free``, so every step page-faults all of that
memory in again: on the 2-core CPUs multissd is tested on, a third of a torch step went to page
faults. :func:`keep_freed_memory` tells glibc to serve every block from the heap and never trim it,
so a step reuses the pages of the one before (measured: torch step 2.8 s -> 1.8 s; paddle 12.0 s ->
11.9 s single-threaded, its own allocator caches more). The process keeps its peak memory (about
3 GB for that step instead of 1.7 GB); training, benchmarking and prediction turn it on, importing
multissd does not.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1   # mallopt parameters, from glibc's <malloc.h>
_M_MMAP_MAX = -4
_kept = False


def cpu_count() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the kernel.

    Returns True when the setting took effect (Linux with glibc), False elsewhere, where it does
    nothing. Calling it again does nothing more.
    """
    global _kept
    if _kept:
        return True
    name = ctypes.util.find_library("c")
    if not name or os.name != "posix":
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    _kept = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _kept
