"""Airflow 3.1+'s Deadline Alert callback (``cots_ssm.watch.deadline_missed``), as the triggerer calls it.

Airflow gives it a simple context (the run as the REST API shows it, and the deadline); it reads the
run's hosts from SSM (the emulator) and publishes to the job's topic (read back from SQS).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from cots_ssm.fleet.urls import fleet_path
from cots_ssm.watch import deadline_missed

pytestmark = pytest.mark.matrix

DEADLINE = datetime.now(UTC) - timedelta(seconds=5)


def context(started: datetime | None) -> dict:
    run = {
        "dag_id": "cots_nightly_batch",
        "dag_run_id": "manual__callback-test",
        "logical_date": (DEADLINE - timedelta(hours=4)).isoformat(),
        "run_after": (DEADLINE - timedelta(hours=4)).isoformat(),
        "start_date": started.isoformat() if started else None,
    }
    return {"dag_run": run, "deadline": {"id": "x", "deadline_time": DEADLINE}}


def call(topic: str, started: datetime | None) -> str:
    return asyncio.run(
        deadline_missed(
            target_arn=topic,
            aws_conn_id="aws_default",
            deadline="06:00",
            timezone="UTC",
            schedule="0 2 * * *",
            context=context(started),
        )
    )


def test_a_run_begun_before_its_deadline_alerts_once_with_its_fleet_page(aws, alerts):
    said = call(aws.topic_arn, DEADLINE - timedelta(hours=4))

    (message,) = alerts(wait=2)
    assert message["Subject"] == said
    assert said.startswith("Airflow: cots_nightly_batch - deadline 06:00 missed:")
    assert "Run:      manual__callback-test" in message["Message"]
    assert fleet_path("cots_nightly_batch", "manual__callback-test") in message["Message"]
    assert "No host listed as running by SSM: the batch may not have been sent yet." in message["Message"]


def test_a_run_begun_after_its_deadline_sends_nothing(aws, alerts):
    assert call(aws.topic_arn, DEADLINE + timedelta(minutes=1)).startswith("not sent")
    assert call(aws.topic_arn, None).startswith("not sent")
    assert alerts(wait=1) == []
