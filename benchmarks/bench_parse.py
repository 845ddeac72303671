"""DAG parse time of `dags/` against an empty DAG file, and the proof that parsing makes no network call.

Run: .venv/bin/python benchmarks/bench_parse.py [--processes 5] [--repeats 7]

Each of `--processes` fresh interpreters imports Airflow's DagBag, then, with every socket call
patched to raise (and be recorded), parses an empty DAG file and the nightly DAG file once each
(cold: the first parse also imports the plugin package, as a DAG processor's fresh parse does), then
`--repeats` more times each, alternating (warm). Reported: the median cold and warm parse times,
the network calls attempted (any would have failed the parse), import errors and DAGs found.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EMPTY_DAG = '''"""An empty DAG: the baseline of the parse benchmark."""

from airflow.sdk import DAG

with DAG(dag_id="bench_empty", schedule=None):
    pass
'''


class NetworkCall(RuntimeError):
    pass


def _block_network(attempts: list[str]) -> None:
    def refuse(what: str):
        def call(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what}{args[1:] if what.startswith('socket.') else args}")
            raise NetworkCall(f"network call at DAG parse time: {what}")

        return call

    socket.socket.connect = refuse("socket.connect")  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse("socket.connect_ex")  # type: ignore[method-assign]
    socket.create_connection = refuse("create_connection")  # type: ignore[assignment]
    socket.getaddrinfo = refuse("getaddrinfo")  # type: ignore[assignment]


def probe(nightly: Path, empty: Path, repeats: int) -> dict[str, Any]:
    """Runs in a fresh interpreter: the parse times of both files and what parsing tried to reach."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0 / 3.1
        from airflow.models.dagbag import DagBag

    attempts: list[str] = []
    _block_network(attempts)
    times: dict[str, list[float]] = {"empty": [], "nightly": []}
    errors: dict[str, str] = {}
    dags: set[str] = set()
    for _ in range(repeats + 1):
        for name, path in (("empty", empty), ("nightly", nightly)):
            started = time.perf_counter()
            bag = DagBag(dag_folder=str(path))
            times[name].append(time.perf_counter() - started)
            errors.update(bag.import_errors)
            dags.update(bag.dags)
    return {"times": times, "network_attempts": attempts, "import_errors": errors, "dags": sorted(dags)}


def measure(processes: int, repeats: int, nightly: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-parse-") as folder:
        empty = Path(folder) / "bench_empty.py"
        empty.write_text(EMPTY_DAG)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT / "dags")]),
            "AIRFLOW_HOME": folder,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        }
        runs = []
        for _ in range(processes):
            answer = subprocess.run(
                [sys.executable, __file__, "--probe", str(nightly), str(empty), str(repeats)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            runs.append(json.loads(answer.stdout.strip().splitlines()[-1]))
    cold = {name: [r["times"][name][0] for r in runs] for name in ("empty", "nightly")}
    warm = {name: [t for r in runs for t in r["times"][name][1:]] for name in ("empty", "nightly")}
    return {
        "file": str(nightly.relative_to(ROOT)),
        "processes": processes,
        "repeats": repeats,
        "cold_ms": {k: round(statistics.median(v) * 1000, 1) for k, v in cold.items()},
        "warm_ms": {k: round(statistics.median(v) * 1000, 1) for k, v in warm.items()},
        "network_attempts": sorted({a for r in runs for a in r["network_attempts"]}),
        "import_errors": {k: v for r in runs for k, v in r["import_errors"].items()},
        "dags": sorted({d for r in runs for d in r["dags"]}),
    }


def run(processes: int = 5, repeats: int = 7) -> Any:
    from common import Section, Table

    started = time.perf_counter()
    print("  parse: fresh interpreters ...", flush=True)
    files = sorted((ROOT / "dags").glob("*.py"))
    results = [measure(processes, repeats, path) for path in files]
    rows = []
    for r in results:
        for kind in ("cold", "warm"):
            empty, nightly = r[f"{kind}_ms"]["empty"], r[f"{kind}_ms"]["nightly"]
            rows.append(
                [
                    r["file"],
                    kind,
                    f"{empty:.1f} ms",
                    f"{nightly:.1f} ms",
                    f"+{nightly - empty:.1f} ms",
                    len(r["network_attempts"]),
                    len(r["import_errors"]),
                    ", ".join(d for d in r["dags"] if d != "bench_empty"),
                ]
            )
    table = Table(
        "DAG parse time against an empty DAG, in the same process, with the network blocked",
        [
            "DAG file",
            "parse",
            "empty DAG",
            "this file",
            "difference",
            "network calls",
            "import errors",
            "DAGs",
        ],
        rows,
        [
            f"Median of {processes} fresh interpreters (cold: the first parse, which imports the plugin "
            f"package) and of their {repeats} later parses each (warm), alternating both files.",
            "Every socket call (connect, connect_ex, create_connection, getaddrinfo) raised during the "
            "parses and was recorded: `network calls` counts what they attempted (each would also fail the "
            "parse: an import error).",
            "The cold parse of our file includes importing the Amazon provider and boto3, as any DAG using "
            "the provider's operators would.",
        ],
    )
    return Section("parse", [table], results, time.perf_counter() - started)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--probe":
        sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "dags")]
        result = probe(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
        print(json.dumps(result))
        return
    sys.path.insert(0, str(ROOT / "benchmarks"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(run(args.processes, args.repeats).tables[0].markdown())


if __name__ == "__main__":
    main()
