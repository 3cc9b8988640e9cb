"""The documentation runs as written: the Python snippets of the README and of ``docs/*.md`` (the long
pretraining call is left out), the walk-through of ``docs/extending.md`` (its files, then its shell
blocks in order, in one folder), and every relative link points at a file (and heading) that exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXTENDING = ROOT / "docs" / "extending.md"
SKIP_MARKER = "# or the building blocks, without the loop:"
FILE_SNIPPET = re.compile(r"# ([\w.-]+\.py)\n")
"""A snippet whose first line is ``# NAME.py`` is a file of a walk-through, not a script to run alone."""


def blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", page.read_text(), re.S)


SNIPPETS = [
    (page.relative_to(ROOT).as_posix(), index, code)
    for page in PAGES
    for index, code in enumerate(blocks(page, "python"))
    if not FILE_SNIPPET.match(code)
]


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd, check=False)


@pytest.mark.parametrize(("page", "index", "code"), SNIPPETS, ids=[f"{page}-{index}" for page, index, _ in SNIPPETS])
def test_python_snippet_runs(page: str, index: int, code: str) -> None:
    if "pretrain(config" in code:  # 30 epochs of pretraining: run only the building-blocks part
        code = code.split(SKIP_MARKER)[1]
    result = run([sys.executable, "-c", code], ROOT)
    assert result.returncode == 0, f"{page} python block {index}: {result.stderr[-2000:]}"


def test_extending_walkthrough_runs(tmp_path: Path) -> None:
    for code in blocks(EXTENDING, "python"):
        match = FILE_SNIPPET.match(code)
        if match:
            (tmp_path / match.group(1)).write_text(code)
    shell = blocks(EXTENDING, "bash")
    assert shell, "docs/extending.md has no shell blocks to run"
    for index, block in enumerate(shell):
        result = run(["bash", "-euo", "pipefail", "-c", block], tmp_path)
        assert result.returncode == 0, f"docs/extending.md bash block {index}: {result.stderr[-2000:]}"
    assert (tmp_path / "runs" / "toy" / "encoder.safetensors").is_file()
    assert "| centroid |" in (tmp_path / "runs" / "toy" / "eval" / "results.md").read_text()


def test_the_docs_have_snippets_and_the_readme_links_every_page() -> None:
    assert len(SNIPPETS) >= 5
    assert blocks(ROOT / "README.md", "python"), "the README's tour has no Python snippet"
    readme = (ROOT / "README.md").read_text()
    unlinked = [page.name for page in PAGES[1:] if f"(docs/{page.name})" not in readme]
    assert not unlinked, f"README.md does not link {unlinked}"


def prose(page: Path) -> str:
    """``page`` without its fenced code blocks (their ``#`` comments are not headings)."""
    return re.sub(r"```.*?```", "", page.read_text(), flags=re.S)


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of the headings of ``page``."""
    headings = re.findall(r"^#+ (.+)$", prose(page), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=[page.relative_to(ROOT).as_posix() for page in PAGES])
def test_relative_links_point_at_existing_files_and_headings(page: Path) -> None:
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(page)):
        if re.match(r"[a-z]+:", target):  # https: and the like
            continue
        path, _, anchor = target.partition("#")
        linked = page.parent / path if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{page.name}: broken links {broken}"
