"""Process settings: CPU count and glibc's memory policy."""
from __future__ import annotations

import subprocess
import sys

from multissd import host


def test_cpu_count_is_the_affinity_mask():
    assert 1 <= host.cpu_count() <= (__import__("os").cpu_count() or 1)


def test_keep_freed_memory_is_idempotent_and_not_done_on_import():
    code = ("import multissd, multissd.host as h; assert not h._kept; "
            "first = h.keep_freed_memory(); assert h.keep_freed_memory() == first; print(first)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() in ("True", "False")
    if sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()):
        assert out.strip() == "True"
