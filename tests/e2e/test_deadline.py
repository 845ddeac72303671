"""The night's deadline end to end (issue 19, acceptance 1): ``airflow standalone`` on the emulator.

A job whose schedule is 2 minutes before its deadline gives a manual run 2 minutes from its logical
date (its budget). Six hosts, two of them slowed to 135 s by the emulator: one "running late"
alert before the deadline naming the two (from the run's progress: 4/6 finished early), then one
deadline alert at the deadline (Airflow 3.1+: Airflow's Deadline Alert, run by the triggerer; 3.0:
the ``deadline`` watch task), the run itself green. A run on fast hosts ends before its deadline
and sends neither. Alerts are read back from the emulator's SQS subscription, with the time SNS
took them.
"""

from __future__ import annotations

import inspect
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from devenv import drain_alerts

pytestmark = pytest.mark.e2e
DAG = "cots_nightly_batch"
BUDGET = timedelta(minutes=2)
SLOW_SECONDS = 135
POLL = "10"


def airflow_sends_the_deadline_alert() -> bool:
    from airflow.sdk import DAG as SdkDag

    return "deadline" in inspect.signature(SdkDag).parameters


@pytest.fixture(scope="module")
def api(emulator, tmp_path_factory, start_standalone):
    # The nightly tick and its deadline were 12 hours ago: unpausing creates that scheduled run, which
    # the window skips; it began after its deadline, so it must not alert either.
    due = datetime.now(UTC) - timedelta(hours=12)
    deadline = due + BUDGET
    with start_standalone(
        emulator,
        tmp_path_factory.mktemp("airflow-deadline"),
        DAG,
        POLL_SECONDS=POLL,
        SCHEDULE=f"{due.minute} {due.hour} * * *",
        DEADLINE=f"{deadline:%H:%M}",
    ) as client:
        yield client


def new_fleet(emulator, n: int) -> tuple[list[str], dict[str, list[str]]]:
    role = f"deadline-{uuid.uuid4().hex[:8]}"
    return emulator.add_instances(n, tags={"Role": role}), {"Role": [role]}


def sent_at(message: dict) -> datetime:
    """When SNS took the alert (the envelope's ``Timestamp``)."""
    return datetime.fromisoformat(message["Timestamp"].replace("Z", "+00:00"))


def task_log(api, run_id: str, task_id: str) -> str:
    status, log = api.call("GET", f"{api.run_path(run_id)}/taskInstances/{task_id}/logs/1?full_content=true")
    return json.dumps(log) if status == 200 else ""


def trigger(api, tags) -> tuple[str, datetime]:
    """A manual run with a logical date (as the UI's trigger form gives), so that Airflow 3.1+ alerts."""
    logical = datetime.now(UTC)
    conf = {"target_tags": tags, "script_arguments": ["--duration", "1"]}
    status, run = api.call(
        "POST", f"/api/v2/dags/{DAG}/dagRuns", {"logical_date": logical.isoformat(), "conf": conf}
    )
    assert status == 200, run
    return run["dag_run_id"], logical


def about(messages: list[dict], run_id: str) -> list[dict]:
    return [m for m in messages if run_id in m["Message"]]


def test_late_then_at_the_deadline_for_two_slow_hosts_and_neither_for_a_run_in_time(api, aws, emulator):
    """One late alert, then one at the deadline, for two slow hosts; none for a run in time.

    One standalone, one queue read as a whole: the run in time goes first, so that its deadline
    passes (and an alert Airflow would wrongly send comes) while the slow run runs.
    """
    received: list[dict] = []
    _, fast_tags = new_fleet(emulator, 6)
    in_time, in_time_logical = trigger(api, fast_tags)
    in_time_run = api.wait_for_run(in_time, timeout=180)
    received += drain_alerts(emulator.endpoint_url, emulator.queue_url, wait=0)

    fleet, tags = new_fleet(emulator, 6)
    slow = sorted(fleet[:2])
    for instance_id in slow:
        aws.control.extra_duration(instance_id, SLOW_SECONDS)
    run_id, logical = trigger(api, tags)
    run = api.wait_for_run(run_id, timeout=SLOW_SECONDS + 180)
    deadline = logical + BUDGET
    assert datetime.now(UTC) > in_time_logical + BUDGET + timedelta(seconds=15)
    received += drain_alerts(emulator.endpoint_url, emulator.queue_url, wait=10)

    # The run in time: green, ended before its deadline, no alert at all.
    ended = datetime.fromisoformat(in_time_run["end_date"].replace("Z", "+00:00"))
    assert in_time_run["state"] == "success" and ended < in_time_logical + BUDGET, in_time_run
    assert about(received, in_time) == []
    # The slow run: green, one early alert before the deadline, one at it, each naming the two.
    mine = about(received, run_id)
    assert run["state"] == "success", "a late night is not a failed night"
    late = [m for m in mine if "running late" in m["Subject"]]
    missed = [m for m in mine if "missed" in m["Subject"]]
    assert len(late) == 1 and len(missed) == 1 and len(mine) == 2, [m["Subject"] for m in mine]
    assert sent_at(late[0]) < deadline <= sent_at(missed[0]) + timedelta(seconds=1)
    assert "(2/6 host(s) running)" in late[0]["Subject"]
    assert "4/6 host(s) finished in" in late[0]["Message"]
    assert "2/6 host(s) still running" in missed[0]["Subject"]
    for message in (late[0], missed[0]):
        named = [line.split()[1] for line in message["Message"].splitlines() if line.startswith("- i-")]
        assert sorted(named) == slow, message["Message"]
        assert f"Fleet:    {api.base}/" in message["Message"]
    assert api.task_state(run_id, "running_late") == api.task_state(run_id, "deadline") == "success"
    said = "Airflow's Deadline Alert covers this run"
    assert (said in task_log(api, run_id, "deadline")) is airflow_sends_the_deadline_alert()
    # The late night that unpausing created and the window skipped began after its deadline: nothing.
    scheduled = api.call("GET", f"/api/v2/dags/{DAG}/dagRuns?run_type=scheduled")[1]["dag_runs"]
    assert scheduled, "unpausing created the missed night's run"
    for night in scheduled:
        subjects = [m["Subject"] for m in about(received, night["dag_run_id"])]
        assert not [s for s in subjects if "deadline" in s or "running late" in s], subjects
