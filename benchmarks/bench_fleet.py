"""What the fleet page costs the API server: seconds and bytes by fleet size.

Run: .venv/bin/python benchmarks/bench_fleet.py [--sizes 10 120 1000] [--repeat 5]
Not a test: it prints what it measured. Each request goes through the plugin's FastAPI app with
Airflow's own auth dependency (a real token, a migrated SQLite DB in a temporary Airflow home);
the run's data comes from memory, so the figures are the page's own work (auth, model, HTML),
without the DB and SSM reads. "recorded" is a finished run (the sensor's rows, 1 in 40 failed
with 20 stderr lines); "live" is a running run built from ListCommandInvocations items.
"server ms" is the route's own work (the Server-Timing header: model and HTML); "request ms" is
the whole request through the app, Airflow's token check included.
"""

from __future__ import annotations

import argparse
import gzip
import os
import secrets
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins")]
_HOME = tempfile.mkdtemp(prefix="bench-airflow-")
os.environ.update(
    {
        "AIRFLOW_HOME": _HOME,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API_AUTH__JWT_ISSUER": "airflow",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(48),
    }
)

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from cots_ssm.fleet.data import LiveRead, RunFacts  # noqa: E402
from cots_ssm.fleet.model import HistoryPoint  # noqa: E402
from cots_ssm.fleet.urls import FLEET_URL_PREFIX, fleet_path  # noqa: E402
from ssm_fleet.invocations import InvocationResult  # noqa: E402
from ssm_fleet.render import as_row  # noqa: E402
from ssm_fleet.status import Status, StatusDetails  # noqa: E402

START = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)


def recorded_rows(size: int) -> list[dict]:
    rows = []
    for n in range(size):
        failed = n % 40 == 7
        result = InvocationResult(
            command_id=f"cmd-{n // 50:04d}-0000-0000-0000-000000000000",
            instance_id=f"i-{n:017x}",
            status=Status.FAILED if failed else Status.SUCCESS,
            status_details=(StatusDetails.FAILED if failed else StatusDetails.SUCCESS).value,
            exit_code=3 if failed else 0,
            instance_name=f"ip-10-0-{n // 250}-{n % 250}.ec2.internal",
            started_at=START,
            finished_at=START + timedelta(seconds=60 + n % 90),
            stdout=f"[i-{n:017x}] 5/5 doc-05.txt\nSUMMARY instance=i-{n:017x} documents=5 invoice=4",
            stderr="cots_batch: error: something went wrong on this host\n" * 20 if failed else "",
        )
        rows.append(as_row(result, tail_lines=20 if failed else 0, stdout_lines=1, tail_chars=2000))
    return rows


def live_items(size: int) -> LiveRead:
    command = {"CommandId": "cmd-live", "Status": Status.IN_PROGRESS.value, "TargetCount": size}
    items = [
        {
            "CommandId": "cmd-live",
            "InstanceId": f"i-{n:017x}",
            "Status": (Status.SUCCESS if n % 2 else Status.IN_PROGRESS).value,
            "StatusDetails": (StatusDetails.SUCCESS if n % 2 else StatusDetails.IN_PROGRESS).value,
            "CommandPlugins": [{"ResponseCode": 0 if n % 2 else -1, "Output": "SUMMARY ok"}],
        }
        for n in range(size)
    ]
    return LiveRead([command], items, "us-east-1")


class MemorySource:
    def __init__(self, facts: RunFacts, live: LiveRead):
        self.facts, self.live_read = facts, live

    def run(self, *args: object) -> RunFacts:
        return self.facts

    def history(self, *args: object) -> list[HistoryPoint]:
        return [HistoryPoint(f"scheduled__{n}", 3600.0 + n * 30, n % 4, "success") for n in range(30)]

    def live(self, *args: object) -> LiveRead:
        return self.live_read

    def links(self, facts: RunFacts, region: str):  # noqa: ANN201
        return lambda command_id, instance_id: [("SSM Run Command", f"https://console.example/{command_id}")]


def measure(client: TestClient, headers: dict[str, str], repeat: int) -> tuple[float, float, int, int]:
    seconds, server = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get(fleet_path("cots_nightly_batch", "scheduled__bench"), headers=headers)
        seconds.append(time.perf_counter() - started)
        server.append(float(answer.headers["server-timing"].split("dur=")[1]) / 1000)
        assert answer.status_code == 200, answer.text[:300]
    body = answer.content
    return statistics.median(server), statistics.median(seconds), len(body), len(gzip.compress(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 120, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.utils import db

    from cots_ssm.fleet.app import create_app

    warnings.simplefilter("ignore")
    db.initdb()
    token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="bench", role="VIEWER"))
    headers = {"Authorization": f"Bearer {token}"}
    titles = ("instances", "source", "server ms", "request ms", "page KB", "gzip KB")
    print("  ".join(t.rjust(9) if n != 1 else t.ljust(8) for n, t in enumerate(titles)))
    for size in args.sizes:
        for name, facts in (
            ("recorded", RunFacts(state="failed", rows=recorded_rows(size))),
            ("live", RunFacts(state="running")),
        ):
            parent = FastAPI()
            parent.mount(FLEET_URL_PREFIX, create_app(source=MemorySource(facts, live_items(size))))
            server, request, size_bytes, gzip_bytes = measure(TestClient(parent), headers, args.repeat)
            print(
                f"{size:>9}  {name:8}  {server * 1000:>9.1f}  {request * 1000:>9.1f}  "
                f"{size_bytes / 1024:>9.1f}  {gzip_bytes / 1024:>9.1f}"
            )


if __name__ == "__main__":
    main()
