"""Backfills through the REST API of ``airflow standalone`` on the emulator (Airflow 3.2+).

The nightly job lists scheduled and manual runs only (the shared ``api`` fixture): Airflow refuses
its backfill before any run exists, and nothing reaches SSM. A job whose script takes the date and
lists ``backfill`` (in the ``side_airflow`` of tests/e2e/conftest.py) runs once per night, each
with that night's date. (On 3.0 and 3.1 the window task refuses each backfill run:
tests/dags/test_run_types.py.)
"""

from __future__ import annotations

import time

import boto3
import pytest

from ssm_fleet.plan import run_token_digest

pytestmark = pytest.mark.e2e
DAG = "cots_nightly_batch"
THREE_NIGHTS = {
    "dag_id": DAG,
    "from_date": "2026-11-27T00:00:00Z",
    "to_date": "2026-11-29T23:00:00Z",
    "max_active_runs": 1,
    "reprocess_behavior": "completed",
}


def post(api, path: str, body: dict) -> tuple[int, dict]:
    """POST, again while SQLite is locked: Airflow then answers 503 "Database is locked"."""
    deadline = time.monotonic() + 60
    while True:
        status, answer = api.call("POST", path, body)
        if status != 503 or time.monotonic() > deadline:
            return status, answer
        time.sleep(2)


def test_a_backfill_of_three_nights_is_refused_and_nothing_is_sent(api, aws):
    status, dag = api.call("GET", f"/api/v2/dags/{DAG}")
    assert status == 200 and sorted(dag["allowed_run_types"]) == ["manual", "scheduled"]
    assert dag["is_backfillable"] is False, "the UI offers no backfill"

    for path in ("/api/v2/backfills/dry_run", "/api/v2/backfills"):
        status, answer = post(api, path, THREE_NIGHTS)
        assert status == 400, (path, answer)
        assert "does not allow backfill runs" in answer["detail"], answer

    time.sleep(5)  # a backfill the scheduler had accepted would have created its runs by now
    assert api.call("GET", f"/api/v2/backfills?dag_id={DAG}")[1]["backfills"] == []
    runs = api.call("GET", f"/api/v2/dags/{DAG}/dagRuns?run_type=backfill")[1]
    assert runs["total_entries"] == 0, runs
    assert aws.control.counters().get("SendCommand", {}).get("accepted", 0) == 0


@pytest.fixture(scope="module")
def dated(side_airflow):
    """The Airflow whose jobs file has one job, ``dated_batch``, which accepts backfills."""
    return side_airflow.for_dag("dated_batch")


def test_a_job_that_takes_the_date_is_backfilled_once_per_night_with_its_date(dated, aws):
    status, backfill = post(dated, "/api/v2/backfills", {**THREE_NIGHTS, "dag_id": "dated_batch"})
    assert status == 200, backfill
    runs = dated.wait_for(
        "/api/v2/dags/dated_batch/dagRuns?run_type=backfill",
        lambda r: r["total_entries"] == 3 and all(x["state"] in ("success", "failed") for x in r["dag_runs"]),
        time.monotonic() + 300,
        "three backfill runs",
    )["dag_runs"]
    assert sorted((r["logical_date"][:10], r["state"]) for r in runs) == [
        ("2026-11-27", "success"),
        ("2026-11-28", "success"),
        ("2026-11-29", "success"),
    ]
    ssm = boto3.client("ssm", endpoint_url=aws.endpoint_url, region_name="us-east-1")
    commands = [c for page in ssm.get_paginator("list_commands").paginate() for c in page["Commands"]]
    for run in runs:  # the job's scheduled run may run meanwhile: look at the backfill's runs only
        token = f"[af:{run_token_digest('dated_batch', run['dag_run_id'], 'run')} "
        (command,) = [c for c in commands if token in c["Comment"]]  # one command per night
        night = run["logical_date"][:10]
        assert f"echo --date {night}" in "\n".join(command["Parameters"]["commands"]), command
