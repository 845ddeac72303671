from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace

import boto3
import pytest


class RecordingTaskInstance:
    """The part of Airflow's runtime task instance the operators use: identity and XCom."""

    def __init__(self, task_id="run", run_id="manual__2026-11-26T02:00:00", dag_id="cots_test", store=None):
        self.dag_id, self.run_id, self.task_id, self.map_index, self.try_number = (
            dag_id,
            run_id,
            task_id,
            -1,
            1,
        )
        self.store = {} if store is None else store

    def xcom_push(self, key, value):
        self.store[(self.task_id, key)] = value

    def xcom_pull(self, task_ids=None, key="return_value"):
        return self.store.get((task_ids or self.task_id, key))


@pytest.fixture
def make_context():
    """Contexts of one DAG run (a run id of its own per test) sharing one XCom store."""
    store: dict = {}
    default_run_id = f"manual__{uuid.uuid4().hex[:12]}"
    created = datetime.now(UTC)

    def make(task_id="run", run_id=None, clear_number=0):
        # Unique per test: commands of other tests' runs must never look like this run's.
        run_id = f"{run_id}-{default_run_id}" if run_id else default_run_id
        ti = RecordingTaskInstance(task_id=task_id, run_id=run_id, store=store)
        run = SimpleNamespace(
            run_after=created, start_date=datetime.now(UTC), clear_number=clear_number, run_id=run_id
        )
        return {"ti": ti, "dag_run": run}

    return make


@pytest.fixture
def ssm(aws):
    return boto3.client("ssm", endpoint_url=aws.endpoint_url, region_name="us-east-1")


@pytest.fixture
def accepted(aws):
    """How many calls of an action the emulator accepted (``accepted()``: every action, all calls)."""

    def count(action: str | None = None) -> int:
        counters = aws.control.counters()
        if action is None:
            return sum(c.get("calls", 0) for c in counters.values())
        return counters.get(action, {}).get("accepted", 0)

    return count


@pytest.fixture
def fast_retries(monkeypatch):
    """No real pauses between SendCommand attempts and look-ups (the logic is the same)."""
    import ssm_fleet.send as send

    monkeypatch.setattr(send, "SEND_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(send, "LOOKUP_PAUSES", (0.0, 0.01, 0.01))
