"""The DAG folder imports cleanly, without network, and every job's DAG is sound.

The nightly DAG is wired as documented.
"""

import socket
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.matrix

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
JOB_IDS = [job["id"] for job in yaml.safe_load((ROOT / "dags" / "cots_jobs.yaml").read_text())["jobs"]]


@pytest.fixture(scope="module")
def dagbag():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0 / 3.1
        from airflow.models.dagbag import DagBag

    real_connect = socket.socket.connect

    def no_network(self, address):
        raise AssertionError(f"network access at DAG parse time: {address}")

    socket.socket.connect = no_network
    try:
        return DagBag(dag_folder=str(ROOT / "dags"))
    finally:
        socket.socket.connect = real_connect


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["cots_nightly_batch"]


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_no_import_errors(dagbag, path):
    assert str(path) not in dagbag.import_errors, dagbag.import_errors.get(str(path))


def test_every_job_of_the_shipped_file_is_a_dag(dagbag):
    assert JOB_IDS[0] == "cots_nightly_batch" and len(JOB_IDS) >= 2
    assert set(JOB_IDS) <= set(dagbag.dags)


@pytest.mark.parametrize("dag_id", JOB_IDS)
def test_every_job_has_tags_retries_alerts_and_a_doc(dagbag, dag_id):
    job = dagbag.dags[dag_id]
    assert {"cots", "ssm", "batch"} <= set(job.tags)
    assert job.doc_md and "SSM Run Command" in job.doc_md
    assert job.task_ids == ["window", "preflight", "run", "wait", "report", "cancel_leftovers"]
    for task_id in ("preflight", "run", "wait", "cancel_leftovers"):
        assert job.task_dict[task_id].retries >= 1, task_id
        assert job.task_dict[task_id].on_failure_callback, task_id
    assert job.task_dict["wait"].mode == "reschedule"
    job.params.validate()


@pytest.mark.parametrize("dag_id", JOB_IDS)
def test_no_shipped_job_accepts_a_backfill(dagbag, dag_id):
    # None of the shipped scripts takes the night's date: a backfill would rerun the same batch.
    job = dagbag.dags[dag_id]
    assert job.task_dict["window"].op_kwargs["run_types"] == ["scheduled", "manual"]
    if hasattr(job, "allowed_run_types"):  # Airflow 3.2+: refused by the UI and the API too
        assert {str(getattr(t, "value", t)) for t in job.allowed_run_types} == {"scheduled", "manual"}


def test_nightly_schedule_in_the_dag_itself(dag):
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"
    timetable = dag.timetable  # the SDK's (Airflow 3.2+) or the core's (3.0 / 3.1) class
    assert (getattr(timetable, "expression", None) or timetable._expression) == "0 2 * * *"
    zone = getattr(timetable, "timezone", None) or timetable._timezone
    assert str(getattr(zone, "name", zone)) == "UTC"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.dagrun_timeout.total_seconds() == 8 * 3600


def test_tasks_and_order(dag):
    assert dag.task_ids == ["window", "preflight", "run", "wait", "report", "cancel_leftovers"]
    assert dag.task_dict["window"].downstream_task_ids == {"preflight"}
    assert dag.task_dict["run"].downstream_task_ids == {"wait", "report", "cancel_leftovers"}
    assert dag.task_dict["cancel_leftovers"].is_teardown
    assert dag.task_dict["cancel_leftovers"].trigger_rule == "all_done", "must run after a failed send too"


def test_one_red_task_per_incident_the_wait_decides_the_run(dag):
    # The report is a teardown that never fails the run: the wait stays a leaf whose failure fails
    # the run, and the report (green, printing the table) and the cleanup need not fail to say so.
    report = dag.task_dict["report"]
    assert report.is_teardown and not report.on_failure_fail_dagrun
    assert dag.task_dict["wait"].downstream_task_ids == {"report"}


def test_sensor_frees_the_worker_slot(dag):
    assert dag.task_dict["wait"].mode == "reschedule"


def test_sensor_times_out_before_the_run_does(dag):
    # A sensor timeout names the instances still running; dagrun_timeout is the DAG callback's backstop.
    assert dag.task_dict["wait"].timeout < dag.dagrun_timeout.total_seconds()


def test_the_run_itself_alerts_and_cancels_when_it_fails(dag):
    from ssm_fleet.notifications.sns import SsmDagRunFailureNotifier

    callbacks = (
        dag.on_failure_callback if isinstance(dag.on_failure_callback, list) else [dag.on_failure_callback]
    )
    assert any(isinstance(c, SsmDagRunFailureNotifier) for c in callbacks)


def test_owner_tags_doc_and_retries(dag):
    assert {"cots", "ssm", "nightly"} <= set(dag.tags)
    assert dag.doc_md and "SSM Run Command" in dag.doc_md
    for task_id in ("preflight", "run", "wait", "cancel_leftovers"):
        task = dag.task_dict[task_id]
        assert task.owner == "cots-support"
        assert task.retries >= 1, task_id


def test_failure_alert_on_every_task_but_report(dag):
    for task_id in ("preflight", "run", "wait", "cancel_leftovers"):
        assert dag.task_dict[task_id].on_failure_callback, task_id
    assert not dag.task_dict["report"].on_failure_callback
    teardown = dag.task_dict["cancel_leftovers"]
    assert teardown.fail_on_leftovers and teardown.on_failure_fail_dagrun, "a run cut short ends failed"
    assert teardown.fleet_run.wait_task_id == "wait", (
        "a verdict of this attempt tells a reported failure from a stop"
    )
    assert teardown.fleet_run.send_task_id == "run", "the run's token names the task that sent it"


def test_every_param_has_a_title_and_description(dag):
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.description, name


def test_defaults_need_no_conf(dag):
    dag.params.validate()


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        ({"instance_ids": ["i-0abc; touch pwned"]}, "instance_ids"),
        ({"instance_ids": ["i-0123456789abcdef0", "i-0123456789abcdef0"]}, "instance_ids"),
        ({"target_tags": {"Role": ["$(reboot)"]}}, "target_tags"),
        ({"target_tags": {"Role": []}}, "target_tags"),
        ({"poll_interval_seconds": 0}, "poll_interval_seconds"),
        ({"max_failed_instances": "1"}, "max_failed_instances"),  # above the job's bound (its own 0)
        ({"max_failed_instances": "100%"}, "max_failed_instances"),
        ({"delivery_timeout_seconds": 29}, "delivery_timeout_seconds"),
        ({"max_failed_instances": "101%"}, "max_failed_instances"),
        ({"script_arguments": ["ok", "two\nlines"]}, "script_arguments"),
    ],
)
def test_trigger_form_refuses(dag, conf, field):
    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(dag.params)
    with pytest.raises(Exception, match=field):
        params.update(conf)
        params.validate()


def test_poll_interval_accepts_one_second(dag):
    from airflow.sdk.definitions.param import ParamsDict

    params = ParamsDict(dag.params)
    params.update({"poll_interval_seconds": 1, "instance_ids": ["i-0123456789abcdef0"], "target_tags": {}})
    assert params.validate()["poll_interval_seconds"] == 1


def test_the_alert_topic_is_the_jobs_and_no_form_field(dag, monkeypatch):
    """A trigger cannot switch the alert off: the form has no topic, the notifiers hold the job's."""
    from ssm_fleet.notifications.sns import SsmFailureSnsNotifier

    assert "sns_topic_arn" not in dag.params
    notifiers = [dag.on_failure_callback] if not isinstance(dag.on_failure_callback, list) else []
    notifiers += dag.on_failure_callback if isinstance(dag.on_failure_callback, list) else []
    for task in dag.tasks:
        callbacks = task.on_failure_callback or []
        notifiers += callbacks if isinstance(callbacks, list) else [callbacks]
    topics = {n.target_arn for n in notifiers if isinstance(n, SsmFailureSnsNotifier)}
    assert topics == {""}, "the shipped jobs name no topic and the test environment sets none"
