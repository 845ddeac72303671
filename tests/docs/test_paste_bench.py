"""`make docs` pastes the last `make bench` run into docs/benchmarks.md, between its markers only."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("paste_bench", ROOT / "docs" / "paste_bench.py")
assert _spec and _spec.loader
paste_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(paste_bench)

BENCH = "## `make bench`\n\nRun 2026-12-01.\n\n### Calls\n\n| N | calls |\n|---|---|\n| 1 | 1 |\n"


def test_the_run_replaces_what_is_between_the_markers_and_nothing_else():
    page = (
        f"# Benchmarks\n\nprose\n\n{paste_bench.START}\nold tables\n{paste_bench.END}\n\n## Other figures\n"
    )
    new = paste_bench.pasted(page, BENCH)
    assert new.startswith("# Benchmarks\n\nprose\n\n") and new.endswith("\n\n## Other figures\n")
    between = new.split(paste_bench.START)[1].split(paste_bench.END)[0]
    assert "old tables" not in between and "### Calls" in between and "| 1 | 1 |" in between
    assert "## `make bench`" not in new  # the page has its own heading
    assert paste_bench.pasted(new, BENCH) == new  # pasting the same run again changes nothing


def test_a_page_without_its_markers_is_refused_naming_the_marker():
    with pytest.raises(ValueError, match="bench:end"):
        paste_bench.pasted(f"{paste_bench.START}\nno end", BENCH)


def test_the_shipped_page_has_its_markers_once():
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    assert page.count(paste_bench.START) == 1 and page.count(paste_bench.END) == 1
