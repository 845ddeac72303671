"""`make docs`: paste the tables of the last `make bench` run into docs/benchmarks.md.

Run: .venv/bin/python docs/paste_bench.py [--bench build/bench/bench.md] [--check]

`benchmarks/run_all.py` writes `build/bench/bench.md`; this replaces what lies between the page's
`<!-- bench:start -->` and `<!-- bench:end -->` markers with it (its own `## make bench` heading
left out: the page has one). `--check` changes nothing and exits 1 when the page differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def pasted(page: str, bench: str) -> str:
    """The page with ``bench`` between its markers; a missing marker raises naming it."""
    for marker in (START, END):
        if page.count(marker) != 1:
            raise ValueError(f"{PAGE.name} must hold {marker} exactly once, found {page.count(marker)}")
    lines = bench.strip().splitlines()
    if lines and lines[0].startswith("## "):
        lines = lines[1:]
    before, rest = page.split(START)
    _, after = rest.split(END)
    return f"{before}{START}\n" + "\n".join(lines).strip() + f"\n{END}{after}"


def main() -> int:
    """Paste the last bench tables into docs/benchmarks.md; 1 when there is no bench output."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, default=ROOT / "build" / "bench" / "bench.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is not up to date")
    args = parser.parse_args()
    if not args.bench.exists():
        print(f"{args.bench} does not exist: run `make bench` first", file=sys.stderr)
        return 1
    page = PAGE.read_text()
    new = pasted(page, args.bench.read_text())
    if args.check:
        print(f"{PAGE} is {'up to date' if new == page else 'not up to date: run make docs'}")
        return 0 if new == page else 1
    PAGE.write_text(new)
    print(f"Pasted {args.bench} into {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
