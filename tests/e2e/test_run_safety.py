"""Exactly once, never orphaned, never off its window, and Clear as a redrive, under the real scheduler.

``airflow standalone`` (scheduler, dag-processor, triggerer, api-server) runs the nightly DAG over
the executing emulator: the REST API triggers, clears and marks runs failed as the UI does.
"""

from __future__ import annotations

import time
from collections import Counter

import boto3
import pytest

from ssm_fleet.plan import run_token_digest

pytestmark = pytest.mark.e2e
DAG = "cots_nightly_batch"
# Long runs poke every 30 s. When a poke's process takes longer to end than the poke interval (a
# loaded 2-core machine: ~6 s), LocalExecutor requeues the rescheduled sensor before it processes
# the previous poke's end, and the scheduler fails that try ("finished with state success, but the
# task instance's state attribute is queued"): an Airflow race, which production intervals avoid.
SLOW_POLL = 30


def commands_of(aws, run_id: str) -> list[dict]:
    """The SSM commands of one DAG run, found by their run token."""
    digest = run_token_digest(DAG, run_id, "run")
    ssm = boto3.client("ssm", endpoint_url=aws.endpoint_url, region_name="us-east-1")
    pages = ssm.get_paginator("list_commands").paginate()
    return [c for page in pages for c in page["Commands"] if f"[af:{digest} " in c["Comment"]]


def nothing_left_running(aws, run_id: str, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = {c["Status"] for c in commands_of(aws, run_id)}
        if (
            statuses <= {"Success", "Failed", "Cancelled", "TimedOut"}
            and not aws.control.live_process_groups()
        ):
            return True
        time.sleep(1)
    return False


def alerts_for(alerts, run_id: str, wait: int = 5) -> list[dict]:
    return [m for m in alerts(wait=wait) if run_id in m["Message"]]


class TestStartWindow:
    def test_the_scheduled_run_due_12_hours_ago_was_skipped_without_sending(self, api, aws):
        late = api.late_scheduled_run
        assert late["run_type"] == "scheduled" and late["state"] == "success"
        assert api.task_state(late["dag_run_id"], "window") == "success"
        for task_id in ("preflight", "run", "wait", "report"):
            assert api.task_state(late["dag_run_id"], task_id) == "skipped", task_id
        assert commands_of(aws, late["dag_run_id"]) == []

    def test_the_skipped_night_published_one_alert_saying_when_and_what_to_do(self, api):
        late = api.late_scheduled_run
        (alert,) = [m for m in api.late_scheduled_run_alerts if late["dag_run_id"] in m["Message"]]
        night = late["logical_date"][:10]  # the nightly job runs in UTC
        assert alert["Subject"] == f"Airflow: {DAG} - night {night} did not run (started late)"
        text = alert["Message"]
        assert f"The night of {night} did not run: nothing was sent to the fleet." in text
        lines = [line.strip() for line in text.splitlines()]
        assert any(line.startswith("Due:     ") for line in lines)
        assert any(
            line.startswith("Started: ") and "late (start_grace_minutes allows 1 h" in line for line in lines
        )
        assert "Clear this run" in text and f"/api/v2/dags/{DAG}/dagRuns/" in text

    def test_a_manual_run_at_the_same_moment_runs(self, api, aws):
        run_id = api.trigger({"script_arguments": ["--duration", "1"]})
        assert api.wait_for_run(run_id)["state"] == "success"
        assert aws.control.counters()["SendCommand"]["accepted"] == 1


class TestClearIsARedrive:
    def test_clear_reruns_exactly_the_3_failed_of_120_and_the_run_ends_green(
        self, api, aws, emulator, alerts
    ):
        fleet = emulator.add_instances(120, tags={"Role": "e2eclear"})
        bad = sorted([fleet[7], fleet[64], fleet[119]])
        for instance_id in bad:
            aws.control.force_exit(instance_id, 4)
        run_id = api.trigger({"target_tags": {"Role": ["e2eclear"]}, "script_arguments": ["--duration", "1"]})
        assert api.wait_for_run(run_id)["state"] == "failed"
        (alert,) = alerts_for(alerts, run_id)
        assert all(f"- {i}" in alert["Message"] for i in bad)

        for instance_id in bad:  # the support team fixed the hosts; now Clear the run
            aws.control.force_exit(instance_id, None)
        status, cleared = api.call(
            "POST",
            f"/api/v2/dags/{DAG}/clearTaskInstances",
            {"dry_run": False, "dag_run_id": run_id, "only_failed": False, "reset_dag_runs": True},
        )
        assert status == 200, cleared
        assert api.wait_for_run(run_id)["state"] == "success"

        executions = aws.control.executions()
        assert Counter(executions.get(i, 0) for i in fleet) == {1: 117, 2: 3}
        assert {i for i in fleet if executions.get(i) == 2} == set(bad), "exactly those 3 ran again"
        assert aws.control.counters()["SendCommand"]["accepted"] == 2, "the fleet once, the 3 once"
        rows = api.xcom(run_id, "wait", "results")
        assert len(rows) == 120 and Counter(r["attempt"] for r in rows) == {1: 117, 2: 3}
        assert {r["status"] for r in rows} == {"Success"}
        assert alerts_for(alerts, run_id, wait=1) == []


class TestNeverOrphaned:
    def test_a_run_marked_failed_mid_batch_alerts_and_leaves_nothing_running(self, api, aws, alerts):
        run_id = api.trigger({"script_arguments": ["--duration", "120"], "poll_interval_seconds": SLOW_POLL})
        api.wait_for(
            api.run_path(run_id) + "/taskInstances/wait",
            lambda ti: ti.get("state") in ("up_for_reschedule", "running"),
            time.monotonic() + 120,
            "the sensor to wait",
        )
        status, answer = api.call("PATCH", api.run_path(run_id), {"state": "failed"})
        assert status == 200, answer
        assert api.wait_for_run(run_id)["state"] == "failed"
        assert nothing_left_running(aws, run_id)
        # The teardown's alert: published after the run's end is seen (slower under load).
        messages = alerts_for(alerts, run_id, wait=20)  # SQS long polls at most 20 s
        assert len(messages) == 1, messages
        assert "stopped before its verdict" in messages[0]["Message"]
        assert messages[0]["Subject"].endswith("cots_nightly_batch - run stopped mid-batch, fleet cancelled")

    def test_a_run_killed_by_dagrun_timeout_alerts_and_leaves_nothing_running(self, api, aws, alerts):
        run_id = api.trigger({"script_arguments": ["--duration", "600"], "poll_interval_seconds": SLOW_POLL})
        finished = api.wait_for_run(run_id, timeout=420)
        assert finished["state"] == "failed"
        # The scheduler ended the run (a poke caught in flight may end failed rather than skipped).
        assert api.task_state(run_id, "wait") in ("skipped", "failed")
        assert api.task_state(run_id, "cancel_leftovers") == "skipped", (
            "dagrun_timeout skips the teardown too"
        )
        assert nothing_left_running(aws, run_id, timeout=60)
        messages = alerts_for(alerts, run_id, wait=10)
        assert len(messages) == 1, messages
        assert "dagrun_timeout" in messages[0]["Message"]
        assert messages[0]["Subject"] == "Airflow: cots_nightly_batch - run failed: timed_out"
