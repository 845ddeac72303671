"""Run types are the job's decision, checked on the DAGs Airflow parses and through ``dag.test()``.

Airflow 3.2+ refuses a run type the DAG does not list (``allowed_run_types``: UI, REST API and
scheduler; tests/e2e/test_backfill.py shows the REST refusal). On every version the ``window`` task
refuses it too, which is all there is on 3.0 and 3.1: here three nights of a backfill run through
``dag.test()`` on the executing emulator (each run created as a backfill run, the type Airflow's
backfill gives its runs), and send nothing; a job that opts in sends one command per night, each
with that night's date in its command line.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
from pathlib import Path

import boto3
import pendulum
import pytest
import yaml

pytestmark = pytest.mark.matrix

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "cots_jobs.py"
NIGHTS = ["2026-11-27", "2026-11-28", "2026-11-29"]
FLEET = {"target_tags": {"Role": ["cots"]}, "poll_interval_seconds": 1, "retries": 0}
NIGHTLY = {"id": "cots_nightly_batch", "script": "echo", **FLEET}
DATED = {
    "id": "dated_batch",
    "schedule": "30 2 * * *",
    "timezone": "Europe/Paris",
    "script": "echo",
    "script_arguments": ["--date", "{logical_date}"],
    "run_types": ["scheduled", "manual", "backfill"],
    **FLEET,
}
SKIPPED = ("preflight", "run", "wait", "report", "cancel_leftovers")


def allowed_run_types_supported() -> bool:
    from airflow.sdk import DAG

    return "allowed_run_types" in inspect.signature(DAG).parameters


@pytest.fixture(scope="module")
def dags(tmp_path_factory):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0 / 3.1
        from airflow.models.dagbag import DagBag

    jobs_file = tmp_path_factory.mktemp("run-types") / "cots_jobs.yaml"
    jobs_file.write_text(yaml.safe_dump({"jobs": [NIGHTLY, DATED]}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COTS_JOBS_FILE", str(jobs_file))
        patch.setattr(socket.socket, "connect", lambda *_: pytest.fail("network access at parse time"))
        bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    # dag.test() of Airflow 3.2+ parses the DAG folder again: it must read the same jobs file.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COTS_JOBS_FILE", str(jobs_file))
        yield bag.dags


@pytest.mark.parametrize(
    ("dag_id", "types"),
    [("cots_nightly_batch", {"scheduled", "manual"}), ("dated_batch", {"scheduled", "manual", "backfill"})],
)
def test_the_dag_and_its_window_accept_the_jobs_run_types(dags, dag_id, types):
    dag = dags[dag_id]
    assert set(dag.task_dict["window"].op_kwargs["run_types"]) == types
    if allowed_run_types_supported():  # Airflow 3.2+: the UI and the API refuse the others up front
        assert {str(getattr(t, "value", t)) for t in dag.allowed_run_types} == types


@pytest.fixture(scope="module")
def airflow_db():
    from airflow.utils import db

    db.resetdb()


@contextlib.contextmanager
def runs_created_as_backfills():
    """Every DAG run created meanwhile is a backfill run: dag.test() itself only makes manual ones."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import event

    def backfill(_mapper, _connection, run):
        run.run_type = "backfill"

    event.listen(DagRun, "before_insert", backfill)
    try:
        yield
    finally:
        event.remove(DagRun, "before_insert", backfill)


def backfill_nights(dag) -> list:
    with runs_created_as_backfills():
        return [
            dag.test(logical_date=pendulum.parse(night, tz="Europe/Paris").add(hours=2, minutes=30))
            for night in NIGHTS
        ]


def states(run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


def xcom(run, task_id: str, key: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key=key)
            .one()
        )
        return XComModel.deserialize_value(row)


def commands_of(aws, run) -> list[dict]:
    """The SSM commands of one DAG run, found by its run token."""
    from ssm_fleet.plan import run_token_digest

    token = f"[af:{run_token_digest(run.dag_id, run.run_id, 'run')} "
    ssm = boto3.client("ssm", endpoint_url=aws.endpoint_url, region_name="us-east-1")
    pages = ssm.get_paginator("list_commands").paginate()
    return [c for page in pages for c in page["Commands"] if token in c["Comment"]]


def test_a_backfill_of_three_nights_sends_nothing_and_each_run_says_why(dags, airflow_db, aws):
    runs = backfill_nights(dags["cots_nightly_batch"])

    assert [run.run_type for run in runs] == ["backfill"] * 3
    for night, run in zip(NIGHTS, runs, strict=True):
        assert str(getattr(run.state, "value", run.state)) == "success"
        assert states(run) == {"window": "success", **dict.fromkeys(SKIPPED, "skipped")}
        assert xcom(run, "window", "in_window") is False
        reason = xcom(run, "window", "skipped_because")
        assert reason.startswith(f"Refused: a backfill run for the night of {night}.")
        assert "Nothing was sent" in reason and "Clear that night's scheduled run" in reason
    assert aws.control.counters().get("SendCommand", {}).get("accepted", 0) == 0
    assert [commands_of(aws, run) for run in runs] == [[], [], []]


def test_a_job_that_takes_the_date_runs_once_per_night_with_that_nights_date(dags, airflow_db, aws):
    runs = backfill_nights(dags["dated_batch"])

    assert [str(getattr(r.state, "value", r.state)) for r in runs] == ["success"] * 3
    for night, run in zip(NIGHTS, runs, strict=True):
        (command,) = commands_of(aws, run)  # one command per night, no more
        assert f"echo --date {night}" in "\n".join(command["Parameters"]["commands"]), command
