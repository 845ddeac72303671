"""The nightly DAG under the real scheduler: ``airflow standalone`` (what ``make run`` starts).

A run triggered through the REST API (what the UI's trigger form posts) is scheduled, rescheduled
and failed by the scheduler, and the SNS alert fires there too. An invalid form value is refused
with HTTP 400 before any run exists.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

pytestmark = pytest.mark.e2e
DAG = "cots_nightly_batch"


def test_invalid_form_value_is_refused_before_any_run(api):
    status, answer = api.call(
        "POST",
        f"/api/v2/dags/{DAG}/dagRuns",
        {"logical_date": None, "conf": {"instance_ids": ["i-0abc; touch pwned"]}},
    )
    assert status == 400, answer
    assert "instance_ids" in json.dumps(answer)


def test_failure_under_the_scheduler_alerts_naming_the_instance(api, aws, alerts):
    bad = aws.instance_ids[0]
    conf = {"poll_interval_seconds": 10, "script_arguments": ["--duration", "2", "--fail-on", bad]}
    status, run = api.call("POST", f"/api/v2/dags/{DAG}/dagRuns", {"logical_date": None, "conf": conf})
    assert status == 200, run
    path = f"/api/v2/dags/{DAG}/dagRuns/{urllib.request.quote(run['dag_run_id'], safe='')}"
    finished = api.wait_for(
        path, lambda r: r["state"] in ("success", "failed"), time.monotonic() + 240, "the run"
    )
    assert finished["state"] == "failed"
    status, wait = api.call("GET", f"{path}/taskInstances/wait")
    assert wait["state"] == "failed"
    messages = [m for m in alerts(wait=5) if run["dag_run_id"] in m["Message"]]
    assert len(messages) == 1
    assert f"- {bad}" in messages[0]["Message"] and "exit code 3" in messages[0]["Message"]
