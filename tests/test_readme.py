"""The README's Python examples run, in order, and print what the README says they print."""
from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from conftest import BACKENDS

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


@pytest.mark.skipif(not {"torch", "paddle"} <= set(BACKENDS), reason="the README uses torch and paddle")
def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    printed = io.StringIO()
    for block in python_blocks():
        with contextlib.redirect_stdout(printed):
            exec(compile(block.replace("    ...\n", "    pass\n"), str(README), "exec"), namespace)
    output = printed.getvalue()
    # every "# value" comment on a print line is what that line prints
    for expected in re.findall(r"print\(.*\)\s+# (.+)", "\n".join(python_blocks())):
        if expected.startswith(("torch.", "tensor", "paddle", "[")):
            assert expected.split("  ")[0] in output, expected
    assert "tensor([[0, 1, 2, 0, 2]])" in output and "torch.Size([1, 2042040, 4])" in output
