"""One run ledger (issue 16): every gesture on a run ends with each host's batch run as often as it must.

``airflow standalone`` runs the nightly DAG over the executing emulator; the REST API triggers,
clears and marks runs failed as the UI does. Each test has a fleet of its own (a fresh tag), and is
judged by what really ran on each host (the emulator's execution log: how often, never two at once),
the run's and tasks' states, and the alerts read back from SQS: not by the package's XCom.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import boto3
import pytest

pytestmark = pytest.mark.e2e
DAG = "cots_nightly_batch"
#: Poll interval of the reschedule sensor: shorter invites an Airflow requeue race (see test_run_safety).
POLL = 10
#: A batch long enough to be cleared mid-run and still run when the new attempt looks, under load.
LONG_BATCH = 40
#: Seconds of batch that must be left at the Clear for the test to mean "Clear while running".
MID_BATCH_MARGIN = 15
TERMINAL_RUN = ("success", "failed")


# -- fleets and what ran on them ------------------------------------------------------------------
def new_fleet(emulator, n: int) -> tuple[list[str], dict[str, list[str]]]:
    """``n`` fresh hosts with a tag of their own; return their ids and the run's ``target_tags``."""
    role = f"ledger-{uuid.uuid4().hex[:8]}"
    return emulator.add_instances(n, tags={"Role": role}), {"Role": [role]}


def executions(aws, fleet: list[str]) -> dict[str, int]:
    """How many script processes each host of ``fleet`` ran (0 included)."""
    ran = Counter(e.instance_id for e in aws.control.execution_log())
    return {instance_id: ran[instance_id] for instance_id in fleet}


def overlaps(aws, fleet: list[str]) -> list[tuple[str, str, str]]:
    """(host, command, command) of every two executions on one host of ``fleet`` at the same time."""
    return [
        (a.instance_id, a.command_id, b.command_id)
        for a, b in aws.control.overlapping_executions()
        if a.instance_id in fleet
    ]


def invocation_statuses(aws, fleet: list[str]) -> dict[str, list[str]]:
    """Every invocation SSM lists on each host of ``fleet``, oldest first: its statuses."""
    ssm = boto3.client("ssm", endpoint_url=aws.endpoint_url, region_name="us-east-1")
    found: dict[str, list[str]] = {}
    for instance_id in fleet:
        pages = ssm.get_paginator("list_command_invocations").paginate(InstanceId=instance_id)
        rows = [i for page in pages for i in page["CommandInvocations"]]
        found[instance_id] = [i["Status"] for i in sorted(rows, key=lambda i: i["RequestedDateTime"])]
    return found


def nothing_running(aws, fleet: list[str], timeout: float = 30) -> bool:
    """True once no execution on ``fleet`` runs any more (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(e.running for e in aws.control.execution_log() if e.instance_id in fleet):
            return True
        time.sleep(1)
    return False


def alerts_for(alerts, run_id: str, wait: int = 5) -> list[dict]:
    return [m for m in alerts(wait=wait) if run_id in m["Message"]]


# -- the REST gestures --------------------------------------------------------------------------------
def clear(api, run_id: str) -> None:
    """Clear the whole run, as the UI's Clear of a DAG run does (REFERENCE 10: not a dry run)."""
    status, answer = api.call("POST", f"{api.run_path(run_id)}/clear", {"dry_run": False})
    assert status == 200, answer


def task(api, run_id: str, task_id: str) -> dict:
    return api.call("GET", f"{api.run_path(run_id)}/taskInstances/{task_id}")[1]


def wait_for_task(api, run_id: str, task_id: str, states: tuple[str, ...], timeout: float = 120) -> dict:
    return api.wait_for(
        f"{api.run_path(run_id)}/taskInstances/{task_id}",
        lambda ti: ti.get("state") in states,
        time.monotonic() + timeout,
        f"task {task_id} of {run_id} to be {'/'.join(states)}",
    )


def task_log(api, run_id: str, task_id: str, try_number: int | None = None) -> str:
    number = try_number or task(api, run_id, task_id).get("try_number") or 1
    status, log = api.call(
        "GET", f"{api.run_path(run_id)}/taskInstances/{task_id}/logs/{number}?full_content=true"
    )
    return json.dumps(log) if status == 200 else ""


def wait_for_trigger_start(api, run_id: str, timeout: float = 120) -> None:
    """Deferred, and the triggerer has started the trigger (only a started trigger can be killed)."""
    ti = wait_for_task(api, run_id, "wait", ("deferred",), timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(r"\(ID \d+\) starting", task_log(api, run_id, "wait", ti.get("try_number"))):
            return
        time.sleep(1)
    raise AssertionError(f"the triggerer did not start the trigger of {run_id}")


def run_to_end(api, run_id: str, timeout: float = 240) -> str:
    """Wait for the run (after any Clear) to end; return its state."""
    return str(api.wait_for_run(run_id, timeout=timeout)["state"])


@pytest.fixture
def runs(api) -> Iterator[list[str]]:
    """The runs a test started: any not ended is marked failed after it (max_active_runs is 1)."""
    started: list[str] = []
    yield started
    for run_id in started:
        status, run = api.call("GET", api.run_path(run_id))
        if status == 200 and run.get("state") not in TERMINAL_RUN:
            api.call("PATCH", api.run_path(run_id), {"state": "failed"})
            api.wait_for_run(run_id, timeout=120)


def trigger(api, runs: list[str], conf: dict) -> str:
    run_id = api.trigger(conf)
    runs.append(run_id)
    return run_id


# -- Item 1: Clear while the run is running -----------------------------------------------------------
@pytest.mark.parametrize("redrive", [True, False], ids=["redrive-on", "redrive-off"])
@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "reschedule"])
def test_clear_while_the_wait_waits_runs_every_host_exactly_once(
    api, aws, emulator, alerts, runs, deferrable, redrive
):
    """A Clear never kills a host's batch and never starts a second copy beside a running one."""
    fleet, tags = new_fleet(emulator, 6)
    run_id = trigger(
        api,
        runs,
        {
            "target_tags": tags,
            "script_arguments": ["--duration", str(LONG_BATCH)],
            "poll_interval_seconds": POLL,
            "deferrable": deferrable,
            "redrive": redrive,
        },
    )
    if deferrable:
        wait_for_trigger_start(api, run_id)
    else:
        wait_for_task(api, run_id, "wait", ("up_for_reschedule",))
    # The emulator runs in this process: its execution log and this test share one monotonic clock.
    batch = [e for e in aws.control.execution_log() if e.instance_id in fleet]
    assert {e.instance_id for e in batch if e.running} == set(fleet), "the Clear comes mid-batch"
    into = time.monotonic() - min(e.started for e in batch)
    assert into < LONG_BATCH - MID_BATCH_MARGIN, f"precondition: the Clear came {into:.0f} s into the batch"
    clear(api, run_id)

    assert run_to_end(api, run_id) == "success"
    assert nothing_running(aws, fleet)
    statuses = invocation_statuses(aws, fleet)
    assert not [i for i, s in statuses.items() if "Cancelled" in s or "Cancelling" in s], statuses
    assert executions(aws, fleet) == dict.fromkeys(fleet, 1), "every host ran the batch exactly once"
    assert overlaps(aws, fleet) == [], "never two copies of the batch at once on a host"
    assert alerts_for(alerts, run_id) == []


# -- Item 2: a Clear is judged by its own attempt ----------------------------------------------------
def test_a_cleared_green_run_whose_preflight_refuses_a_host_ends_failed_with_one_alert(
    api, aws, emulator, alerts, runs
):
    fleet, tags = new_fleet(emulator, 3)
    conf = {"target_tags": tags, "script_arguments": ["--duration", "1"], "redrive": False}
    run_id = trigger(api, runs, conf)
    assert run_to_end(api, run_id) == "success"
    assert alerts_for(alerts, run_id, wait=1) == []

    offline = fleet[1]
    aws.control.set_offline([offline])
    clear(api, run_id)
    assert run_to_end(api, run_id) == "failed", "nothing ran: the first attempt's verdict must not count"
    assert task(api, run_id, "preflight")["state"] == "failed"
    messages = alerts_for(alerts, run_id, wait=10)
    assert len(messages) == 1, [m["Subject"] for m in messages]
    assert offline in messages[0]["Message"]
    assert executions(aws, fleet) == dict.fromkeys(fleet, 1), "the refused attempt sent nothing"


# -- Item 3: SSM's reads lag its writes ----------------------------------------------------------------
def test_a_lost_send_answer_under_read_lag_runs_every_host_once(api, aws, emulator, alerts, runs):
    """A new command invisible for 8 s plus one lost SendCommand answer: the look-up must not re-send."""
    fleet, tags = new_fleet(emulator, 3)
    aws.control.consistency_delay(8)
    aws.control.lost_answer("SendCommand", mode="500")
    run_id = trigger(api, runs, {"target_tags": tags, "script_arguments": ["--duration", "5"]})
    # The run task may fail retryably and its next try (retry_delay 1 min) adopt what the first sent.
    assert run_to_end(api, run_id, timeout=300) == "success"
    assert aws.control.counters()["SendCommand"]["lost_answers"] == 1
    assert executions(aws, fleet) == dict.fromkeys(fleet, 1), "every host ran the batch exactly once"
    assert overlaps(aws, fleet) == []
    assert alerts_for(alerts, run_id, wait=1) == []


# -- Item 5: redrive forgets a host that left the fleet ------------------------------------------------
@pytest.mark.parametrize("leaves", ["terminated", "untagged"])
def test_clear_after_a_failed_host_left_the_fleet_sends_nothing_to_it_and_cancels_nothing(
    api, aws, emulator, alerts, runs, leaves
):
    fleet, tags = new_fleet(emulator, 4)
    gone = fleet[2]
    aws.control.force_exit(gone, 4)
    run_id = trigger(
        api, runs, {"target_tags": tags, "script_arguments": ["--duration", "3"], "redrive": True}
    )
    assert run_to_end(api, run_id) == "failed"
    alerts_for(alerts, run_id, wait=5)  # the first attempt's alert: not what this test is about

    if leaves == "terminated":  # the host was replaced; the others were fine
        aws.control.terminate(gone)  # SendCommand naming it: InvalidInstanceId
    else:  # moved out of the fleet; the execution role may only send to the fleet's tag
        aws.control.require_tag("Role", tags["Role"][0])
        aws.control.untag(gone, "Role")  # SendCommand naming it: AccessDeniedException
    sends_before = aws.control.counters()["SendCommand"]["calls"]
    clear(api, run_id)
    state = run_to_end(api, run_id)

    assert executions(aws, fleet) == dict.fromkeys(fleet, 1), "nobody ran again: the others succeeded"
    statuses = invocation_statuses(aws, fleet)
    assert not [i for i, s in statuses.items() if "Cancelled" in s or "Cancelling" in s], statuses
    assert aws.control.counters()["SendCommand"]["calls"] == sends_before, "nothing sent to the gone host"
    logs = "".join(task_log(api, run_id, t) for t in ("run", "wait", "report", "cancel_leftovers"))
    assert gone in logs, "the attempt names the host that left the fleet"
    # The lead's rule: a host gone from the fleet is named, not counted in the verdict.
    assert state == "success"


# -- Items 7 and 8: one incident, one alert, one red task ---------------------------------------------
def test_one_failed_host_gives_one_red_task_and_one_alert_counting_hosts(api, aws, emulator, alerts, runs):
    fleet, tags = new_fleet(emulator, 3)
    bad = fleet[0]
    aws.control.force_exit(bad, 4)
    run_id = trigger(api, runs, {"target_tags": tags, "script_arguments": ["--duration", "2"]})
    assert run_to_end(api, run_id) == "failed"
    states = {t: task(api, run_id, t)["state"] for t in ("run", "wait", "report", "cancel_leftovers")}
    subjects = [m["Subject"] for m in alerts_for(alerts, run_id, wait=10)]
    # One red task, the one that saw the failure; report and cleanup did their job.
    assert (states, len(subjects)) == (
        {"run": "success", "wait": "failed", "report": "success", "cancel_leftovers": "success"},
        1,
    ), subjects
    assert "1/3" in subjects[0], "the subject counts hosts"


def test_a_deferred_run_marked_failed_stops_its_fleet_with_one_alert_about_the_fleet(
    api, aws, emulator, alerts, runs
):
    """Marking the run failed is not a Clear: the trigger's on_kill cancels, and one alert says so."""
    fleet, tags = new_fleet(emulator, 3)
    conf = {"target_tags": tags, "script_arguments": ["--duration", str(LONG_BATCH)], "deferrable": True}
    run_id = trigger(api, runs, conf)
    wait_for_trigger_start(api, run_id)
    status, answer = api.call("PATCH", api.run_path(run_id), {"state": "failed"})
    assert status == 200, answer
    assert run_to_end(api, run_id) == "failed"
    assert nothing_running(aws, fleet, timeout=60), "nothing is left running"
    assert all(e.exit_code == 137 for e in aws.control.execution_log() if e.instance_id in fleet), (
        "every batch was stopped, none ran to its end"
    )
    assert executions(aws, fleet) == dict.fromkeys(fleet, 1)
    subjects = [m["Subject"] for m in alerts_for(alerts, run_id, wait=20)]
    assert len(subjects) == 1, subjects
    assert "cancel_leftovers" not in subjects[0], "the subject says what happened to the fleet, not a task"


def test_a_run_task_failing_for_good_gives_one_alert(api, aws, emulator, alerts, runs):
    fleet, tags = new_fleet(emulator, 60)
    aws.control.require_tag("Role", tags["Role"][0])  # the execution role's tag condition
    aws.control.untag(fleet[55], "Role")  # a host of chunk 2 lost its tag: AccessDenied for good
    run_id = trigger(api, runs, {"instance_ids": fleet, "script_arguments": ["--duration", "3"]})
    assert run_to_end(api, run_id) == "failed"
    assert task(api, run_id, "run")["state"] == "failed"
    messages = alerts_for(alerts, run_id, wait=10)
    assert len(messages) == 1, [m["Subject"] for m in messages]
    assert fleet[55] in messages[0]["Message"]
    assert nothing_running(aws, fleet)


# -- Clear twice: a host that failed twice runs three times, the others once ---------------------------
def test_clear_twice_reruns_only_the_failing_host(api, aws, emulator, alerts, runs):
    fleet, tags = new_fleet(emulator, 3)
    bad = fleet[1]
    aws.control.force_exit(bad, 4)
    run_id = trigger(api, runs, {"target_tags": tags, "script_arguments": ["--duration", "2"]})
    assert run_to_end(api, run_id) == "failed"

    clear(api, run_id)  # the host is still broken
    assert run_to_end(api, run_id) == "failed"

    aws.control.force_exit(bad, None)  # fixed
    clear(api, run_id)
    assert run_to_end(api, run_id) == "success"

    assert executions(aws, fleet) == {fleet[0]: 1, bad: 3, fleet[2]: 1}
    assert overlaps(aws, fleet) == []
    assert [e.exit_code for e in aws.control.execution_log() if e.instance_id == bad] == [4, 4, 0]
