"""`make bench`: every figure of the README's Performance section in one run, ours beside the provider's.

Run: .venv/bin/python benchmarks/run_all.py [--quick] [--only checks send parse slots]

Prints each table as it is measured and writes them, with the machine and the versions, to
`build/bench/bench.md` and `build/bench/bench.json` (rewritten after each section, so a run that
stops half-way keeps what it measured). About 20 minutes on 2 cores, most of it the scheduler run
(`--quick` takes about 3: fewer sizes, a 60 s batch checked every 30 s).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import common
from common import ROOT, Section

SECTIONS = ("parse", "checks", "send", "slots")


def header(started: datetime, sections: list[Section]) -> dict[str, object]:
    return {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "revision": common.git_revision(),
        "machine": common.machine(),
        "versions": common.versions(),
        "seconds": {s.name: round(s.seconds, 1) for s in sections},
    }


def markdown(info: dict[str, object], sections: list[Section]) -> str:
    machine, versions = info["machine"], info["versions"]
    assert isinstance(machine, dict) and isinstance(versions, dict)
    lines = [
        "## `make bench`",
        "",
        f"Run {info['started']} to {info['finished']} (UTC) at revision {info['revision']}.",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, "
        f"{machine['os']}, Python {machine['python']}; load average at the end {machine['load_average']}.",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()) + ".",
        "- Seconds per part: "
        + ", ".join(f"{name} {s:g}" for name, s in dict(info["seconds"]).items())
        + ".",
        "",
    ]
    return "\n".join(lines) + "\n" + "\n".join(t.markdown() for s in sections for t in s.tables)


def write(out: Path, started: datetime, sections: list[Section]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    info = header(started, sections)
    (out / "bench.md").write_text(markdown(info, sections))
    payload = {
        **info,
        "sections": {s.name: {"tables": [t.as_json() for t in s.tables], "data": s.data} for s in sections},
    }
    (out / "bench.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")


def measure(name: str, args: argparse.Namespace) -> Section:
    if name == "parse":
        import bench_parse

        return bench_parse.run(*((2, 3) if args.quick else (5, 7)))
    if name == "checks":
        import bench_checks

        return bench_checks.run(args.sizes or ((1, 10, 120) if args.quick else bench_checks.SIZES))
    if name == "send":
        import bench_send

        return bench_send.run(1000, 0.4)
    import bench_slots

    poke, batch = (30, 60) if args.quick else (args.poke_interval, args.batch_seconds)
    return bench_slots.run(poke, batch, args.out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and a short scheduler run")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--sizes", type=int, nargs="+", help="fleet sizes of the checks")
    parser.add_argument("--poke-interval", type=int, default=300, help="of the scheduler run (default: 300)")
    parser.add_argument("--batch-seconds", type=int, default=780, help="of the scheduler run (default: 780)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    args = parser.parse_args()
    started, sections = datetime.now(UTC), []
    for name in args.only:
        began = time.perf_counter()
        print(f"== {name}", flush=True)
        section = measure(name, args)
        section.seconds = time.perf_counter() - began
        sections.append(section)
        for table in section.tables:
            print(table.markdown(), flush=True)
        write(args.out, started, sections)
    print(f"Written: {args.out / 'bench.md'} and {args.out / 'bench.json'}")


if __name__ == "__main__":
    main()
