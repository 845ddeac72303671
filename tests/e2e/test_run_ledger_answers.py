"""One run ledger (issue 16), items 6, 4 and 9 of its "Why": the deadline, a duplicate, odd answers.

``airflow standalone`` runs ``cots_short_wait`` (tests/e2e/deferrable_dags): the jobs' own DAG with
a 30 s wait timeout and a short retry delay of the send. Each run has a fleet of its own (a fresh
tag) and is judged by what really ran on each host (the emulator's execution log), the run's and
tasks' states through REST, and the alerts read back from SQS. Runs that set no global fault run
side by side (the DAG takes four at once) to keep the module short.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

pytestmark = pytest.mark.e2e
DAG = "cots_short_wait"
DAGS = Path(__file__).resolve().parent / "deferrable_dags"
#: The wait's timeout in that DAG.
TIMEOUT = 30
MODES = {"deferrable": True, "reschedule": False}
#: Seconds of a batch that ends after the wait's first reads (even with a slow scheduler between the
#: send and the wait) and before its deadline (TIMEOUT after the wait starts, so after the send).
FINISHED_BATCH = 24
TERMINAL_RUN = ("success", "failed")


@pytest.fixture(scope="module")
def airflow(emulator, tmp_path_factory, start_standalone):
    with start_standalone(emulator, tmp_path_factory.mktemp("airflow-answers"), DAG, dags_folder=DAGS) as api:
        yield api


@pytest.fixture
def runs(airflow) -> Iterator[list[str]]:
    """The runs a test started: any not ended is marked failed after it."""
    started: list[str] = []
    yield started
    for run_id in started:
        status, run = airflow.call("GET", airflow.run_path(run_id))
        if status == 200 and run.get("state") not in TERMINAL_RUN:
            airflow.call("PATCH", airflow.run_path(run_id), {"state": "failed"})
            airflow.wait_for_run(run_id, timeout=120)


# -- fleets, what ran on them, what SSM says -----------------------------------------------------
def new_fleet(emulator, n: int) -> tuple[list[str], dict[str, list[str]]]:
    role = f"answers-{uuid.uuid4().hex[:8]}"
    return emulator.add_instances(n, tags={"Role": role}), {"Role": [role]}


def trigger(airflow, runs: list[str], tags: dict[str, list[str]], seconds: float, **conf: Any) -> str:
    run_id = airflow.trigger({"target_tags": tags, "script_arguments": ["--duration", str(seconds)], **conf})
    runs.append(run_id)
    return run_id


def executions(aws, fleet: list[str]) -> dict[str, int]:
    ran = Counter(e.instance_id for e in aws.control.execution_log())
    return {instance_id: ran[instance_id] for instance_id in fleet}


def overlaps(aws, fleet: list[str]) -> list[tuple[str, str, str]]:
    return [
        (a.instance_id, a.command_id, b.command_id)
        for a, b in aws.control.overlapping_executions()
        if a.instance_id in fleet
    ]


def ssm(aws) -> Any:
    return boto3.client("ssm", endpoint_url=aws.endpoint_url, region_name="us-east-1")


def invocation_statuses(aws, fleet: list[str]) -> dict[str, list[str]]:
    """Every invocation SSM lists on each host of ``fleet``, oldest first: its statuses."""
    client, found = ssm(aws), {}
    for instance_id in fleet:
        pages = client.get_paginator("list_command_invocations").paginate(InstanceId=instance_id)
        rows = sorted(
            (i for page in pages for i in page["CommandInvocations"]), key=lambda i: i["RequestedDateTime"]
        )
        found[instance_id] = [i["Status"] for i in rows]
    return found


def tag_commands(aws, tags: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The commands sent to the fleet's tag, oldest first."""
    pages = ssm(aws).get_paginator("list_commands").paginate()
    found = [
        c
        for page in pages
        for c in page["Commands"]
        if c["Targets"] == [{"Key": "tag:Role", "Values": tags["Role"]}]
    ]
    return sorted(found, key=lambda c: c["RequestedDateTime"])


def alerts_for(alerts, run_id: str, wait: int = 5) -> list[dict]:
    return [m for m in alerts(wait=wait) if run_id in m["Message"]]


def task(airflow, run_id: str, task_id: str) -> dict:
    return airflow.call("GET", f"{airflow.run_path(run_id)}/taskInstances/{task_id}")[1]


def task_log(airflow, run_id: str, task_id: str) -> str:
    number = task(airflow, run_id, task_id).get("try_number") or 1
    path = f"{airflow.run_path(run_id)}/taskInstances/{task_id}/logs/{number}?full_content=true"
    status, log = airflow.call("GET", path)
    return json.dumps(log) if status == 200 else ""


def until(predicate: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def nothing_running(aws, fleet: list[str]) -> bool:
    return until(
        lambda: not any(e.running for e in aws.control.execution_log() if e.instance_id in fleet) or None,
        "the fleet's scripts to end",
        timeout=30,
    )


# -- Items 6 and 9: the last read comes before a timeout verdict, in both modes; a timeout names --------
def test_the_wait_reads_once_more_at_its_deadline_in_both_modes(airflow, aws, emulator, alerts, runs):
    """A fleet that finished after the last regular read ends green; one still running times out.

    The poll interval (40 s) is longer than the wait's timeout (30 s): the only regular reads come
    at the start of the wait, so a 24 s batch finishes between them and the deadline. In the fleet
    still running there, one host's batch runs 90 s more and the other's ended long before but
    SSM answers it with a status it does not document ("Paused", item 9): the timeout cancels
    the first, and the alert and the report name both. Four runs side by side.
    """
    started: dict[tuple[str, str], tuple[str, list[str]]] = {}
    for mode, deferrable in MODES.items():
        finished, tags = new_fleet(emulator, 2)
        conf = {"poll_interval_seconds": 40, "deferrable": deferrable}
        started[mode, "finished"] = trigger(airflow, runs, tags, FINISHED_BATCH, **conf), finished
        running, tags = new_fleet(emulator, 2)
        aws.control.extra_duration(running[0], 90)
        aws.control.odd_status(running[1], "Paused")
        started[mode, "running"] = trigger(airflow, runs, tags, 2, **conf), running
    ended = {key: airflow.wait_for_run(run_id, timeout=180)["state"] for key, (run_id, _) in started.items()}
    assert ended == {key: ("success" if key[1] == "finished" else "failed") for key in started}, ended
    messages = alerts(wait=10)

    for mode in MODES:
        run_id, fleet = started[mode, "finished"]
        run_end = instant(task(airflow, run_id, "run")["end_date"])
        wait_end = instant(task(airflow, run_id, "wait")["end_date"])
        batch_end = max(instant(e.ended_at) for e in aws.control.execution_log() if e.instance_id in fleet)
        # The fleet had finished before the wait's deadline (at least TIMEOUT after the send), and the
        # wait decided only at or after it: its last read, not a regular one, saw the fleet finished.
        assert (batch_end - run_end).total_seconds() < TIMEOUT <= (wait_end - run_end).total_seconds(), mode
        assert invocation_statuses(aws, fleet) == dict.fromkeys(fleet, ["Success"]), (
            f"{mode}: nothing cancelled"
        )
        assert executions(aws, fleet) == dict.fromkeys(fleet, 1)
        assert [m for m in messages if run_id in m["Message"]] == [], mode

        run_id, (cut, paused) = started[mode, "running"]
        assert nothing_running(aws, [cut, paused])
        states = {t: task(airflow, run_id, t)["state"] for t in ("wait", "report", "cancel_leftovers")}
        assert states == {"wait": "failed", "report": "success", "cancel_leftovers": "success"}, mode
        ran = {
            e.instance_id: e.exit_code for e in aws.control.execution_log() if e.instance_id in (cut, paused)
        }
        assert ran == {cut: 137, paused: 0}, f"{mode}: the running batch was stopped"
        assert executions(aws, [cut, paused]) == {cut: 1, paused: 1}, mode
        mine = [m for m in messages if run_id in m["Message"]]
        assert len(mine) == 1, (mode, [m["Subject"] for m in mine])
        alert = mine[0]["Message"]
        assert "timed out" in alert and cut in alert and paused in alert and "'Paused'" in alert, (
            mode,
            alert,
        )
        report = task_log(airflow, run_id, "report")
        assert paused in report and "Paused" in report, f"{mode}: the report names the host and its status"
    aws.control.reset()  # the real statuses now
    for mode in MODES:
        _, (cut, paused) = started[mode, "running"]
        assert invocation_statuses(aws, [cut, paused]) == {cut: ["Cancelled"], paused: ["Success"]}, mode


# -- Item 4: a duplicate tag command cancelled before SSM resolved its targets ------------------------
def test_a_duplicate_tag_command_cancelled_before_its_targets_resolved_leaves_the_run_green(
    airflow, aws, emulator, alerts, runs
):
    """Two sends of the one tag chunk, both answers lost: the third try keeps the first, cancels the copy.

    ListCommands hides every new command until the test lets SSM's reads catch up, so neither try's
    look-up finds its command and each fails retryably; SSM does not resolve the second command's
    targets meanwhile. The third try reads both: the copy is cancelled before it has any host.
    """
    fleet, tags = new_fleet(emulator, 3)
    aws.control.consistency_delay(600, actions=["ListCommands"])
    aws.control.lost_answer("SendCommand", count=2)
    # Deferrable: a reschedule wait poking every 2 s invites Airflow's requeue race under load.
    run_id = trigger(airflow, runs, tags, 3, poll_interval_seconds=2, deferrable=True)

    sends = lambda: aws.control.counters().get("SendCommand", {}).get("accepted", 0)  # noqa: E731
    until(lambda: sends() == 1, "the first send")
    aws.control.resolve_delay(600, count=1)  # the copy the second try sends never resolves by itself
    until(lambda: sends() == 2, "the second send (the first try's look-up found nothing)")
    until(lambda: task(airflow, run_id, "run").get("state") == "up_for_retry", "the second try to give up")
    aws.control.consistency_delay(0)
    aws.control.catch_up()

    assert airflow.wait_for_run(run_id, timeout=120)["state"] == "success"
    first, copy = tag_commands(aws, tags)
    assert (first["Status"], copy["Status"], copy["TargetCount"]) == ("Success", "Cancelled", 0)
    listed = ssm(aws).list_command_invocations(CommandId=copy["CommandId"])["CommandInvocations"]
    assert listed == [], "the copy was cancelled before SSM gave it any host"
    assert aws.control.counters()["SendCommand"]["lost_answers"] == 2
    assert executions(aws, fleet) == dict.fromkeys(fleet, 1), "every host ran the batch exactly once"
    assert overlaps(aws, fleet) == []
    assert alerts_for(alerts, run_id) == []


# -- Item 9: answers SSM does not document ------------------------------------------------------------
def test_an_unknown_status_for_a_few_reads_is_waited_for_and_the_run_ends_green(
    airflow, aws, emulator, alerts, runs
):
    """An undocumented "Paused" in the first reads: still running, not a crash; green once SSM says Success.

    Another host of the fleet is listed with empty CommandPlugins (no exit code, no output).
    """
    fleet, tags = new_fleet(emulator, 3)
    paused, no_plugins = fleet[0], fleet[1]
    aws.control.odd_status(paused, "Paused", reads=4)
    aws.control.empty_plugins(no_plugins)
    run_id = trigger(airflow, runs, tags, 2, poll_interval_seconds=2, deferrable=True)

    assert airflow.wait_for_run(run_id, timeout=120)["state"] == "success"
    assert "1 Unknown" in task_log(airflow, run_id, "wait"), "the wait saw the unknown status, and waited"
    assert aws.control.faults()["odd_status"] == {}, "it ended once the reads showed Success"
    assert executions(aws, fleet) == dict.fromkeys(fleet, 1)
    assert alerts_for(alerts, run_id) == []
