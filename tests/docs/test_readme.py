"""The README stays one sitting, and what it and docs/ cite exists: tests, files, links, anchors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
TEST_FILES = sorted((ROOT / "tests").rglob("test_*.py"))
#: `operators/test_ssm.py::TestX::test_y`, `test_ledger.py::TestX`, or a bare `test_name`.
CITED = re.compile(r"`((?:[\w/]+/)?test_\w+\.py(?:::\w+)*|test_\w+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in page.read_text().splitlines() if line.startswith("#")}


def defined(names: list[str], files: list[Path]) -> bool:
    """Whether one of ``files`` defines the class/function chain ``names`` (each name in turn)."""
    for file in files:
        source = file.read_text()
        if all(re.search(rf"^\s*(?:class|def) {re.escape(name)}\b", source, re.M) for name in names):
            return True
    return False


def citations() -> list[tuple[str, str]]:
    return [(page.name, ref) for page in PAGES for ref in CITED.findall(page.read_text())]


def test_the_readme_fits_in_a_sitting():
    lines = len(README.read_text().splitlines())
    assert lines <= 300, f"README.md has {lines} lines, at most 300: move the detail to docs/"


@pytest.mark.parametrize(("page", "ref"), citations(), ids=lambda value: value)
def test_every_cited_test_exists(page, ref):
    path, *names = ref.split("::")
    if path.endswith(".py"):
        files, where = [f for f in TEST_FILES if f.as_posix().endswith("/" + path)], path
        assert files, f"{page} cites {ref}: no file {path} under tests/"
    else:
        files, names, where = TEST_FILES, [path], "any test file"
    assert defined(names, files), f"{page} cites {ref}: {'::'.join(names)} is not defined in {where}"


def links() -> list[tuple[Path, str]]:
    return [
        (page, target)
        for page in PAGES
        for target in LINK.findall(page.read_text())
        if not target.startswith(("http://", "https://", "mailto:"))
    ]


@pytest.mark.parametrize(("page", "target"), links(), ids=lambda value: str(value).rsplit("/", 1)[-1])
def test_every_link_leads_somewhere(page, target):
    path, _, anchor = target.partition("#")
    file = (page.parent / path).resolve() if path else page
    assert file.exists(), f"{page.name} links to {target}: {file} does not exist"
    if anchor and file.suffix == ".md":
        assert anchor in anchors(file), f"{page.name} links to {target}: {file.name} has no heading #{anchor}"
