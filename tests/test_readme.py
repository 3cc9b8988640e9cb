"""The README's Python snippets run as written (the long pretraining call is left out)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SNIPPETS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
SKIP_MARKER = "# or the building blocks, without the loop:"


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index: int) -> None:
    code = SNIPPETS[index]
    if "pretrain(config" in code:  # 30 epochs of pretraining: run only the building-blocks part
        code = code.split(SKIP_MARKER)[1]
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 3
