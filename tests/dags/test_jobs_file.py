"""The DAG file over other jobs files (``COTS_JOBS_FILE``), parsed by Airflow's own DagBag.

Each bad job must become one import error of the DAG file naming the jobs file, the job and the
field, while the good jobs of the same file still load as DAGs.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.matrix

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "cots_jobs.py"

NIGHTLY = {"id": "cots_nightly_batch", "tags": ["nightly"]}
INDEXER = {
    "id": "document_indexer",
    "schedule": "30 2 * * *",
    "timezone": "Europe/Paris",
    "target_tags": {"Role": ["indexer"]},
}
RECONCILIATION = {
    "id": "monthly_reconciliation",
    "schedule": "0 5 1 * *",
    "timezone": "America/New_York",
    "instance_ids": ["i-0123456789abcdef0", "i-0fedcba9876543210"],
    "script": "/opt/ledger/bin/reconcile.sh",
}


def dagbag_of(tmp_path, monkeypatch, data):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0 / 3.1
        from airflow.models.dagbag import DagBag

    jobs_file = tmp_path / "cots_jobs.yaml"
    jobs_file.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("COTS_JOBS_FILE", str(jobs_file))

    def no_network(self, address):
        raise AssertionError(f"network access at DAG parse time: {address}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    return DagBag(dag_folder=str(DAG_FILE))


def cron_of(dag):
    timetable = dag.timetable  # the SDK's (Airflow 3.2+) or the core's (3.0 / 3.1) class
    zone = getattr(timetable, "timezone", None) or timetable._timezone
    return (getattr(timetable, "expression", None) or timetable._expression), str(getattr(zone, "name", zone))


def test_three_jobs_load_as_three_dags_with_their_own_schedules(tmp_path, monkeypatch):
    bag = dagbag_of(tmp_path, monkeypatch, {"jobs": [NIGHTLY, INDEXER, RECONCILIATION]})

    assert not bag.import_errors
    assert sorted(bag.dags) == ["cots_nightly_batch", "document_indexer", "monthly_reconciliation"]
    assert cron_of(bag.dags["cots_nightly_batch"]) == ("0 2 * * *", "UTC")
    assert cron_of(bag.dags["document_indexer"]) == ("30 2 * * *", "Europe/Paris")
    assert cron_of(bag.dags["monthly_reconciliation"]) == ("0 5 1 * *", "America/New_York")


def test_each_job_has_its_own_form_defaults_and_tasks(tmp_path, monkeypatch):
    bag = dagbag_of(tmp_path, monkeypatch, {"defaults": {"owner": "ops"}, "jobs": [INDEXER, RECONCILIATION]})

    indexer, reconciliation = bag.dags["document_indexer"], bag.dags["monthly_reconciliation"]
    assert indexer.params["target_tags"] == {"Role": ["indexer"]} and indexer.params["instance_ids"] == []
    assert reconciliation.params["instance_ids"] == RECONCILIATION["instance_ids"]
    assert reconciliation.params["target_tags"] == {}
    assert reconciliation.task_dict["run"].commands == ["/opt/ledger/bin/reconcile.sh"]
    assert indexer.task_dict["run"].commands == ["/opt/cots/bin/run_batch.sh"]
    assert indexer.task_dict["run"].owner == reconciliation.task_dict["wait"].owner == "ops"
    for dag in (indexer, reconciliation):
        assert dag.task_ids == ["window", "preflight", "run", "wait", "report", "cancel_leftovers"]
        dag.params.validate()  # the defaults need no conf


BAD = {
    "unknown key": ({**INDEXER, "shedule": "0 1 * * *"}, "shedule"),
    "bad cron": ({**INDEXER, "schedule": "0 25 * * *"}, "schedule"),
    "bad timezone": ({**INDEXER, "timezone": "Europe/Pariss"}, "timezone"),
    "bad instance id": ({**RECONCILIATION, "instance_ids": ["i-0abc; reboot"]}, "instance_ids.0"),
    "bad tag": ({**INDEXER, "target_tags": {"Role": ["$(reboot)"]}}, "target_tags.Role.0"),
    "topic not an ARN": (
        {**INDEXER, "sns_topic_arn": "arn:aws:sqs:us-east-1:123456789012:q"},
        "sns_topic_arn",
    ),
    "duplicate id": ({**INDEXER, "id": "cots_nightly_batch"}, "id"),
}


@pytest.mark.parametrize(("job", "field"), BAD.values(), ids=BAD.keys())
def test_a_bad_job_is_an_import_error_naming_file_job_and_field_while_the_good_ones_load(
    tmp_path, monkeypatch, job, field
):
    good = RECONCILIATION if job["id"] != RECONCILIATION["id"] else INDEXER
    bag = dagbag_of(tmp_path, monkeypatch, {"jobs": [NIGHTLY, job, good]})

    assert sorted(bag.dags) == sorted(["cots_nightly_batch", good["id"]])
    assert list(bag.import_errors) == [str(DAG_FILE)], bag.import_errors
    message = bag.import_errors[str(DAG_FILE)]
    assert str(tmp_path / "cots_jobs.yaml") in message
    assert f"job {job['id']!r} (jobs[1]), field {field!r}" in message


def test_every_bad_job_is_listed_in_the_one_import_error(tmp_path, monkeypatch):
    jobs = [NIGHTLY, {**INDEXER, "timezone": "Mars/Base"}, {**RECONCILIATION, "schedule": "daily"}]
    bag = dagbag_of(tmp_path, monkeypatch, {"jobs": jobs})

    assert sorted(bag.dags) == ["cots_nightly_batch"]
    message = bag.import_errors[str(DAG_FILE)]
    assert "2 job(s) refused" in message
    assert "job 'document_indexer' (jobs[1]), field 'timezone'" in message
    assert "job 'monthly_reconciliation' (jobs[2]), field 'schedule'" in message


def test_a_file_that_is_not_usable_at_all_is_one_import_error_naming_it(tmp_path, monkeypatch):
    bag = dagbag_of(tmp_path, monkeypatch, {"defaults": {"polling": 5}, "jobs": [NIGHTLY]})

    assert not bag.dags
    assert "'defaults.polling'" in bag.import_errors[str(DAG_FILE)]


def test_a_job_chooses_how_its_wait_holds_a_worker(tmp_path, monkeypatch):
    deferred = {**INDEXER, "deferrable": True}
    bag = dagbag_of(tmp_path, monkeypatch, {"jobs": [NIGHTLY, deferred]})

    assert bag.dags["cots_nightly_batch"].params["deferrable"] is False, "reschedule stays the default"
    assert bag.dags["document_indexer"].params["deferrable"] is True
    # The sensor reads the run's Param, so a manual run may choose the other mode from the form.
    assert bag.dags["document_indexer"].task_dict["wait"].deferrable == "{{ params.deferrable }}"


def test_a_jobs_topic_reaches_every_notifier_and_the_form_has_none(tmp_path, monkeypatch):
    from ssm_fleet.notifications.sns import SsmFailureSnsNotifier

    topic = "arn:aws:sns:eu-west-1:123456789012:ledger-alerts"
    bag = dagbag_of(tmp_path, monkeypatch, {"jobs": [{**RECONCILIATION, "sns_topic_arn": topic}]})
    dag = bag.dags["monthly_reconciliation"]
    callbacks = [dag.on_failure_callback, *(t.on_failure_callback for t in dag.tasks)]
    notifiers = [n for c in callbacks for n in (c if isinstance(c, list) else [c]) if n]
    assert {n.target_arn for n in notifiers if isinstance(n, SsmFailureSnsNotifier)} == {topic}
    assert "sns_topic_arn" not in dag.params


def test_a_raised_tolerance_is_refused_past_the_jobs_bound_and_accepted_within(tmp_path, monkeypatch):
    from airflow.sdk.definitions.param import ParamsDict

    job = {**INDEXER, "max_failed_instances": "10%", "max_failed_instances_bound": "25%"}
    dag = dagbag_of(tmp_path, monkeypatch, {"jobs": [job]}).dags["document_indexer"]
    for value in ("25%", "0", "10%"):
        params = ParamsDict(dag.params)
        params.update({"max_failed_instances": value})
        assert params.validate()["max_failed_instances"] == value
    for value in ("26%", "3", "100%"):
        with pytest.raises(Exception, match=f"param max_failed_instances: '{value}' is not one of"):
            params = ParamsDict(dag.params)
            params.update({"max_failed_instances": value})
            params.validate()


def test_a_jobs_resend_settings_reach_its_wait(tmp_path, monkeypatch):
    retried = {**INDEXER, "host_retries": 2, "retry_exit_codes": [75]}
    bag = dagbag_of(tmp_path, monkeypatch, {"jobs": [NIGHTLY, retried]})

    nightly, indexer = (
        bag.dags["cots_nightly_batch"].task_dict["wait"],
        bag.dags["document_indexer"].task_dict["wait"],
    )
    assert (nightly.host_retries, nightly.retry_exit_codes) == (1, [])
    assert (indexer.host_retries, indexer.retry_exit_codes) == (2, [75])
