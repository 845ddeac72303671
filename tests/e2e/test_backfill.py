"""A backfill of a job that does not take the date is refused up front on Airflow 3.2+ (REST API and UI).

``airflow standalone`` on the emulator, the shared ``api`` fixture: the nightly job lists scheduled and
manual runs only, so Airflow refuses the backfill before any run exists, and nothing reaches SSM.
(On 3.0 and 3.1 the window task refuses each backfill run: tests/dags/test_run_types.py.)
"""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.e2e
DAG = "cots_nightly_batch"
THREE_NIGHTS = {
    "dag_id": DAG,
    "from_date": "2026-11-27T00:00:00Z",
    "to_date": "2026-11-29T23:00:00Z",
    "max_active_runs": 1,
    "reprocess_behavior": "completed",
}


def test_a_backfill_of_three_nights_is_refused_and_nothing_is_sent(api, aws):
    status, dag = api.call("GET", f"/api/v2/dags/{DAG}")
    assert status == 200 and sorted(dag["allowed_run_types"]) == ["manual", "scheduled"]
    assert dag["is_backfillable"] is False, "the UI offers no backfill"

    for path in ("/api/v2/backfills/dry_run", "/api/v2/backfills"):
        status, answer = api.call("POST", path, THREE_NIGHTS)
        assert status == 400, (path, answer)
        assert "does not allow backfill runs" in answer["detail"], answer

    time.sleep(5)  # a backfill the scheduler had accepted would have created its runs by now
    assert api.call("GET", f"/api/v2/backfills?dag_id={DAG}")[1]["backfills"] == []
    runs = api.call("GET", f"/api/v2/dags/{DAG}/dagRuns?run_type=backfill")[1]
    assert runs["total_entries"] == 0, runs
    assert aws.control.counters().get("SendCommand", {}).get("accepted", 0) == 0
