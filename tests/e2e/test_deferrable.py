"""The fleet sensor in deferrable mode under ``airflow standalone`` (its triggerer runs the trigger).

A DAG of its own (tests/e2e/deferrable_dags: a run and a wait, no teardown; in the ``side_airflow``
of tests/e2e/conftest.py), so that marking the wait failed shows the trigger's own on_kill
cancelling (the jobs' teardown would cancel anyway). The jobs' ``deferrable`` Param is exercised on
the Celery stack (tests/distributed).
"""

from __future__ import annotations

import json
import re
import time

import boto3
import pytest
from airflow.triggers.base import BaseTrigger

pytestmark = pytest.mark.e2e
DAG = "cots_deferrable_wait"


@pytest.fixture(scope="module")
def airflow(side_airflow):
    return side_airflow.for_dag(DAG)


def run_and_watch(airflow, conf: dict) -> tuple[str, dict, list[str]]:
    """Trigger a run; return its path, its end and the states the wait task went through."""
    path = airflow.run_path(airflow.trigger(conf))
    seen: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = airflow.call("GET", f"{path}/taskInstances/wait")[1].get("state")
        if state and (not seen or seen[-1] != state):
            seen.append(state)
        if airflow.call("GET", path)[1].get("state") in ("success", "failed"):
            break
        time.sleep(0.5)
    return path, airflow.call("GET", path)[1], seen


def test_the_wait_is_deferred_to_the_triggerer_and_succeeds(airflow, aws):
    path, finished, seen = run_and_watch(airflow, {})
    assert finished["state"] == "success", (finished, seen)
    assert "deferred" in seen and "up_for_reschedule" not in seen, seen
    status, entry = airflow.call("GET", f"{path}/taskInstances/wait/xcomEntries/verdict")
    assert status == 200, entry
    verdict = json.loads(entry["value"]) if isinstance(entry["value"], str) else entry["value"]
    assert verdict["outcome"] == "succeeded" and verdict["expected"] >= 3
    status, log = airflow.call("GET", f"{path}/taskInstances/wait/logs/1?full_content=true")
    assert status == 200, log
    text = json.dumps(log)
    assert "Deferring the wait" in text and "hosts done" in text, "the progress lines reach the log"


def test_a_run_can_choose_reschedule_from_the_param(airflow, aws):
    _, finished, seen = run_and_watch(airflow, {"deferrable": False, "seconds": 6})
    assert finished["state"] == "success", (finished, seen)
    assert "up_for_reschedule" in seen and "deferred" not in seen, seen


@pytest.mark.skipif(
    not hasattr(BaseTrigger, "on_kill"), reason="this Airflow never calls a trigger's on_kill"
)
def test_marking_the_deferred_wait_failed_cancels_the_commands(airflow, aws):
    """Airflow calls the trigger's on_kill on a user action (not on a triggerer restart).

    Only a trigger the triggerer has started can be killed: a wait marked failed before that (the
    triggerer picks new triggers up every few seconds) leaves its commands to the DAG's teardown,
    which the jobs' DAGs have. So the test marks it failed once the trigger has logged its start.
    """
    path = airflow.run_path(airflow.trigger({"seconds": 300}))
    airflow.wait_for(
        f"{path}/taskInstances/wait",
        lambda ti: ti.get("state") == "deferred",
        time.monotonic() + 120,
        "deferral",
    )
    airflow.wait_for(
        f"{path}/taskInstances/wait/logs/1?full_content=true",
        lambda log: re.search(r"\(ID \d+\) starting", json.dumps(log)) is not None,  # the triggerer's line
        time.monotonic() + 120,
        "the triggerer to start the trigger",
    )
    status, _ = airflow.call("PATCH", f"{path}/taskInstances/wait", {"new_state": "failed"})
    assert status == 200
    command_ids = airflow.wait_for(
        f"{path}/taskInstances/run/xcomEntries/command_ids",
        lambda entry: entry.get("value"),
        time.monotonic() + 30,
        "the ids",
    )["value"]
    command_ids = json.loads(command_ids) if isinstance(command_ids, str) else command_ids
    ssm = boto3.client("ssm", endpoint_url=aws.endpoint_url, region_name="us-east-1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = {ssm.list_commands(CommandId=c)["Commands"][0]["Status"] for c in command_ids}
        if found == {"Cancelled"} and not aws.control.live_process_groups():
            return
        time.sleep(1)
    raise AssertionError(f"still running after the wait was marked failed: {found}")
