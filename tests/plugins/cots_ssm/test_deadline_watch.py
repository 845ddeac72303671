"""The deadline watch task on the emulator: one alert when due, and never a failure of its own.

The context is the test's (tests/plugins/conftest.py) plus what the watch asks of Airflow: the wait's
state and the first check's time (a try that began before the deadline).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cots_ssm.watch import CotsDeadlineWatch
from ssm_fleet.operators.ssm import SsmRunCommandOperator

pytestmark = pytest.mark.matrix

MISSING_TOPIC = "arn:aws:sns:us-east-1:123456789012:no-such-topic"


class WatchedRun:
    """The task instance's questions the watch asks Airflow: the wait's state, its first check."""

    def __init__(self, ti, wait_state=None, first_check=None):
        self.ti, self.wait_state, self.first_check = ti, wait_state, first_check

    def get_task_states(self, dag_id, task_ids, run_ids):
        return {run_ids[0]: {task_ids[0]: self.wait_state}}

    def get_first_reschedule_date(self, context):
        return self.first_check

    def __getattr__(self, name):
        return getattr(self.ti, name)


@pytest.fixture
def running(aws, make_context):
    """A run whose one host still runs its batch, 2 minutes after its logical date (deadline: 1)."""
    sent_context = make_context()
    sent = SsmRunCommandOperator(
        task_id="run", instance_ids=aws.instance_ids[:1], commands=["sleep 30"]
    ).execute(sent_context)

    def context(wait_state=None, began=timedelta(minutes=2)):
        made = make_context(task_id="deadline")
        run = made["dag_run"]
        run.dag_id, run.run_type = "cots_nightly_batch", "manual"
        run.logical_date = run.run_after = datetime.now(UTC) - timedelta(minutes=2)
        made["ti"] = WatchedRun(made["ti"], wait_state, datetime.now(UTC) - began)
        return made

    return sent["command_ids"], context


def watch(command_ids, topic, late=False):
    return CotsDeadlineWatch(
        task_id="running_late" if late else "deadline",
        late=late,
        deadline="02:01",
        timezone="UTC",
        schedule="0 2 * * *",
        target_arn=topic,
        command_ids=command_ids,
    )


def test_past_the_deadline_the_watch_alerts_once_naming_the_host_and_ends(aws, running, alerts):
    command_ids, context = running
    assert watch(command_ids, aws.topic_arn).poke(context()) is True
    (message,) = alerts(wait=2)
    assert "deadline 02:01 missed: 1/1 host(s) still running" in message["Subject"]
    assert f"- {aws.instance_ids[0]} (" in message["Message"]


def test_an_alert_that_cannot_be_published_is_tried_again_never_failing_the_task(aws, running, alerts):
    command_ids, context = running
    assert watch(command_ids, MISSING_TOPIC).poke(context()) is False, (
        "logged, and the next check tries again"
    )
    assert alerts(wait=1) == []


def test_a_watch_begun_after_the_deadline_ends_without_alert(aws, running, alerts):
    command_ids, context = running
    assert watch(command_ids, aws.topic_arn).poke(context(began=timedelta(seconds=10))) is True
    assert alerts(wait=1) == []


@pytest.mark.parametrize("late", [True, False])
def test_both_watches_end_with_the_wait_sending_nothing(aws, running, alerts, late):
    command_ids, context = running
    assert watch(command_ids, aws.topic_arn, late=late).poke(context(wait_state="failed")) is True
    assert alerts(wait=1) == []
