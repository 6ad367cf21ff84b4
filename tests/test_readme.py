"""The README's Python examples run as written (only the server address is substituted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from zookapter.testing import ZookapterServer

README = Path(__file__).resolve().parent.parent / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.mark.parametrize("index", range(len(_python_blocks())))
def test_readme_python_example_runs(index: int) -> None:
    code = _python_blocks()[index]
    with ZookapterServer() as server:
        code = code.replace("127.0.0.1:2181", server.hosts)
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
