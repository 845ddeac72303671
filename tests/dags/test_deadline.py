"""A job's deadline in its DAG: Airflow's Deadline Alert on 3.1+, the watch tasks on every version.

The wiring is read from the DAGs Airflow parses; the behaviour runs through ``dag.test()`` on the
executing emulator (3 hosts), with a deadline a few seconds after the run's start: a manual run is
due at its logical date plus the job's budget (``02:00`` -> ``02:01``: 60 s), so a logical date
20 s ago leaves 40 s. ``dag.test()`` has no scheduler, and Airflow 3.3.2's cannot finish a run of a
DAG with a Deadline Alert (``DagRun.update_state`` looks the SDK's alert objects up as ids): the
behaviour runs on the DAG as Airflow 3.0 builds it (the watch sends the deadline alert) on every
version, and Airflow's own Deadline Alert (3.1+) is proven end to end in tests/e2e/test_deadline.py.
"""

from __future__ import annotations

import inspect
import socket
from datetime import datetime, timedelta
from pathlib import Path

import pendulum
import pytest
import yaml

pytestmark = pytest.mark.matrix
ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "cots_jobs.py"
FLEET = {"target_tags": {"Role": ["cots"]}, "poll_interval_seconds": 1, "retries": 0, "script": "echo"}
WATCHED = {"id": "deadline_batch", "schedule": "0 2 * * *", "deadline": "02:01", **FLEET}
UNWATCHED = {"id": "no_deadline_batch", **FLEET}
BUDGET = timedelta(minutes=1)


def deadline_alerts_supported() -> bool:
    from airflow.sdk import DAG

    return "deadline" in inspect.signature(DAG).parameters


@pytest.fixture(scope="module")
def dags(tmp_path_factory, emulator):
    yield from parsed(tmp_path_factory, emulator)


def parsed(tmp_path_factory, emulator):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0 / 3.1
        from airflow.models.dagbag import DagBag

    topic = {"sns_topic_arn": emulator.topic_arn}
    jobs_file = tmp_path_factory.mktemp("deadline") / "cots_jobs.yaml"
    jobs_file.write_text(yaml.safe_dump({"jobs": [{**WATCHED, **topic}, {**UNWATCHED, **topic}]}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COTS_JOBS_FILE", str(jobs_file))
        patch.setattr(socket.socket, "connect", lambda *_: pytest.fail("network access at parse time"))
        bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    with pytest.MonkeyPatch.context() as patch:  # dag.test() of Airflow 3.2+ parses the folder again
        patch.setenv("COTS_JOBS_FILE", str(jobs_file))
        yield bag.dags


WATCHES = {"running_late", "deadline"}


def test_a_job_with_a_deadline_watches_next_to_the_wait_as_leaves(dags):
    dag = dags["deadline_batch"]
    assert WATCHES <= set(dag.task_dict)
    for task_id in WATCHES:
        task = dag.task_dict[task_id]
        assert task.upstream_task_ids == {"run"}, "it watches what the run task sent"
        assert not task.downstream_task_ids, "a leaf: it ends the run's watching, never its work"
        assert (task.mode, task.retries, task.soft_fail) == ("reschedule", 0, True)
        assert task.target_arn == dags["deadline_batch"].task_dict["wait"].on_failure_callback[0].target_arn


def test_on_airflow_3_1_and_later_the_deadline_is_airflows_deadline_alert(dags):
    dag = dags["deadline_batch"]
    watch = dag.task_dict["deadline"]
    if not deadline_alerts_supported():
        assert not watch.airflow_alerts, "Airflow 3.0: the watch sends the deadline alert"
        return
    # Never both: the watch steps aside for every run with a logical date, which Airflow alerts.
    assert watch.airflow_alerts
    (alert,) = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert type(alert.reference).__name__ == "DagRunLogicalDateDeadline"
    assert alert.interval == BUDGET
    assert alert.callback.path == "cots_ssm.watch.deadline_missed"
    assert alert.callback.kwargs["target_arn"] == dag.task_dict["running_late"].target_arn
    assert alert.callback.kwargs["deadline"] == "02:01"


def test_a_job_without_a_deadline_has_no_watch_and_no_alert(dags):
    dag = dags["no_deadline_batch"]
    assert not WATCHES & set(dag.task_dict)
    assert not getattr(dag, "deadline", None)


@pytest.fixture(scope="module")
def fallback(tmp_path_factory, emulator):
    """The jobs' DAGs as Airflow 3.0 builds them (no Deadline Alert: the ``deadline`` watch).

    Kept so while the tests run (``dag.test()`` of Airflow 3.2+ parses the folder again).
    """
    import cots_ssm.jobs.dag

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cots_ssm.jobs.dag, "DEADLINE_ALERTS", False)
        yield from parsed(tmp_path_factory, emulator)


@pytest.fixture(autouse=True)
def reschedule_dates_are_datetimes(monkeypatch):
    """Read the first reschedule date as the datetime it is, on Airflow 3.0.6's ``dag.test()``.

    ``dag.test()`` of 3.0.6 hands a sensor that date as text, which fails every reschedule sensor
    from its second check (``datetime - str`` in ``BaseSensorOperator``); the supervisor of a real
    deployment gives a datetime.
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    original = RuntimeTaskInstance.get_first_reschedule_date

    def as_datetime(self, context):
        found = original(self, context)
        return datetime.fromisoformat(found.replace("Z", "+00:00")) if isinstance(found, str) else found

    monkeypatch.setattr(RuntimeTaskInstance, "get_first_reschedule_date", as_datetime)


@pytest.fixture(scope="module")
def airflow_db():
    from airflow.utils import db

    db.resetdb()


def states(run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


def subjects(messages) -> list[str]:
    return [m["Subject"] for m in messages]


def test_slow_hosts_get_one_late_alert_naming_them_then_one_deadline_alert(fallback, airflow_db, aws, alerts):
    dag = fallback["deadline_batch"]
    # One host of three finishes at once: the estimate triples the time it has run (a third of the
    # hosts is past a quarter), so the early alert comes a third of the way to the deadline.
    slow = sorted(aws.instance_ids[:2])
    for instance_id in slow:
        aws.control.extra_duration(instance_id, 55)
    run = dag.test(logical_date=pendulum.now("UTC") - BUDGET + timedelta(seconds=40))

    assert str(getattr(run.state, "value", run.state)) == "success", "late is not failed"
    assert states(run)["running_late"] == states(run)["deadline"] == "success"
    received = alerts(wait=5)
    late = [m for m in received if "running late" in m["Subject"]]
    missed = [m for m in received if "deadline 02:01 missed" in m["Subject"]]
    assert len(late) == 1, subjects(received)
    assert "(2/3 host(s) running)" in late[0]["Subject"]
    assert "Estimate: the fleet finishes ~" in late[0]["Message"]
    assert "1/3 host(s) finished in" in late[0]["Message"]
    assert len(missed) == 1, subjects(received)
    assert "deadline 02:01 missed: 2/3 host(s) still running" in missed[0]["Subject"]
    for message in (late[0], missed[0]):
        named = sorted(line.split()[1] for line in message["Message"].splitlines() if line.startswith("- i-"))
        assert named == slow, message["Message"]
    assert len(received) == len(late) + len(missed), subjects(received)


def test_a_run_that_ends_before_its_deadline_sends_nothing(fallback, airflow_db, aws, alerts):
    dag = fallback["deadline_batch"]
    run = dag.test(logical_date=pendulum.now("UTC"))

    assert str(getattr(run.state, "value", run.state)) == "success"
    assert states(run)["running_late"] == states(run)["deadline"] == "success", "they end with the wait"
    assert alerts(wait=2) == []


def test_no_host_is_re_sent_after_the_runs_deadline(dags):
    from types import SimpleNamespace

    from cots_ssm.jobs.dag import resend_until

    wait = dags["deadline_batch"].task_dict["wait"]
    assert wait.resend_until == "{{ resend_until(dag_run) }}"
    assert dags["no_deadline_batch"].task_dict["wait"].resend_until is None, "no deadline: until the timeout"
    night = SimpleNamespace(logical_date=pendulum.datetime(2026, 12, 1, 2, 0, tz="UTC"), run_type="scheduled")
    macro = dags["deadline_batch"].user_defined_macros["resend_until"]
    assert datetime.fromisoformat(macro(night)) == pendulum.datetime(2026, 12, 1, 2, 1, tz="UTC")
    assert macro(SimpleNamespace(logical_date=None, run_after=None)) == "", "no date: only the timeout"
    assert resend_until(night, config=macro.keywords["config"]) == macro(night)
