"""The nightly DAG end to end: ``airflow dags test`` in a subprocess, AWS = the executing emulator.

Airflow talks to the emulator over real HTTP through the ``aws_default`` connection, exactly as
it would talk to AWS; only the endpoint differs. Trigger values refused before anything is sent are
not run through the CLI here: the form's refusals are tests/dags/test_dag_integrity.py (Params) and
tests/e2e/test_scheduler.py (REST), the operator's (ids and tags together, an injected id: nothing
sent) tests/plugins/cots_ssm/operators/test_ssm.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_BATCH = ROOT / "local" / "sample_batch" / "cots_batch.sh"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def airflow(emulator, tmp_path_factory):
    """Run the DAG through the Airflow CLI with a migrated SQLite home of its own."""
    home = tmp_path_factory.mktemp("airflow-e2e")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "COTS_BATCH_SCRIPT": str(SAMPLE_BATCH),
        "COTS_BATCH_SNS_TOPIC_ARN": emulator.topic_arn,
        "COTS_BATCH_POLL_SECONDS": "1",
        "COTS_BATCH_DELIVERY_TIMEOUT": "60",
        "COTS_BATCH_EXECUTION_TIMEOUT": "120",
    }
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, capture_output=True)

    def run(conf: dict, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["airflow", "dags", "test", "cots_nightly_batch", "--conf", json.dumps(conf)],
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=600,
        )

    return run


def output_of(result) -> str:
    return result.stdout + result.stderr


def test_all_instances_succeed(airflow, aws, alerts):
    result = airflow({"script_arguments": ["--keywords", "invoice,refund", "--duration", "2"]})
    out = output_of(result)
    assert result.returncode == 0, out[-5000:]
    assert "3/3 hosts done: 3 Success" in out
    assert "up_for_reschedule" in out.lower() or "rescheduling" in out.lower(), "the sensor must reschedule"
    counters = aws.control.counters()
    assert counters["SendCommand"]["accepted"] == 1
    assert alerts() == []


def test_one_failure_alert_names_instance_exit_code_and_stderr(airflow, aws, alerts):
    bad = aws.instance_ids[2]
    # failure_policy=cancel: the others are cancelled as soon as one fails (the default lets them end).
    result = airflow({"script_arguments": ["--duration", "30", "--fail-on", bad], "failure_policy": "cancel"})
    out = output_of(result)
    assert result.returncode != 0
    assert f"{bad}" in out and "exit code 3" in out
    messages = alerts()
    assert len(messages) == 1, out[-5000:]
    alert = messages[0]
    assert alert["Subject"] == "Airflow: cots_nightly_batch - 1/3 host(s) failed"
    assert f"- {bad}" in alert["Message"] and "Failed (Failed), exit code 3" in alert["Message"]
    stderr_tail = alert["Message"].split("stderr (last lines):")[1].split("SSM commands:")[0]
    assert f"instance {bad} is configured to fail" in stderr_tail, "the alert carries the batch's stderr"
    # The sensor cancelled the two instances still running their 30 s batch.
    ssm = boto3.client("ssm", endpoint_url=aws.endpoint_url, region_name="us-east-1")
    command_id = alert["Message"].split("SSM commands:\n- ")[1].split(":")[0]
    invocations = ssm.list_command_invocations(CommandId=command_id)["CommandInvocations"]
    statuses = {i["InstanceId"]: i["Status"] for i in invocations}
    assert statuses.pop(bad) == "Failed"
    assert set(statuses.values()) <= {"Cancelled", "Cancelling"}, statuses
    assert "Cancelled command" in out


def test_120_instances_by_tag_failure_on_page_2(emulator, airflow, aws, alerts):
    fleet = emulator.add_instances(120, tags={"Role": "e2e120"})
    bad = fleet[80]
    aws.control.force_exit(bad, 5)
    result = airflow({"target_tags": {"Role": ["e2e120"]}, "script_arguments": ["--duration", "0"]})
    out = output_of(result)
    assert result.returncode != 0
    assert f"{bad}" in out and "1 of 120 host(s) failed" in out, out[-5000:]
    assert aws.control.counters()["SendCommand"]["accepted"] == 1
    (alert,) = alerts()
    assert f"- {bad}" in alert["Message"] and "exit code 5" in alert["Message"]


def test_throttling_is_absorbed(airflow, aws):
    aws.control.throttle("ListCommandInvocations", rate=0.5)
    aws.control.throttle("DescribeInstanceInformation", count=2)
    result = airflow({"script_arguments": ["--duration", "1"]})
    assert result.returncode == 0, output_of(result)[-5000:]
    counters = aws.control.counters()
    assert counters["ListCommandInvocations"]["throttled"] > 0
    assert counters["SendCommand"]["accepted"] == 1


def test_lost_sendcommand_answers_run_every_instance_exactly_once(emulator, airflow, aws, alerts):
    fleet = emulator.add_instances(60, tags={"Role": "e2elost"})
    # Chunk 1: SSM runs it, then answers 500. Chunk 2: SSM runs it, then drops the connection.
    aws.control.lost_answer("SendCommand", mode="500")
    aws.control.lost_answer("SendCommand", mode="drop")
    result = airflow({"instance_ids": fleet, "script_arguments": ["--duration", "1"]})
    out = output_of(result)
    assert result.returncode == 0, out[-5000:]
    assert out.count("the answer was lost") == 2 and "60/60 hosts done: 60 Success" in out
    counters = aws.control.counters()["SendCommand"]
    assert (counters["accepted"], counters["lost_answers"]) == (2, 2), counters
    executions = aws.control.executions()
    assert {executions.get(i) for i in fleet} == {1}, "every instance ran the batch exactly once"
    assert alerts() == []


def test_permanent_error_on_chunk_2_fails_once_and_leaves_nothing_running(emulator, airflow, aws, alerts):
    fleet = emulator.add_instances(120, tags={"Role": "e2eperm"})
    aws.control.require_tag("Role", "e2eperm")  # the execution role's tag condition
    aws.control.untag(fleet[70], "Role")  # a host in chunk 2 lost its tag after the fleet was listed
    result = airflow({"instance_ids": fleet, "script_arguments": ["--duration", "60"]})
    out = output_of(result)
    assert result.returncode != 0
    assert out.count("SendCommand refused for chunk 2/3") >= 1 and "AccessDeniedException" in out, out[-5000:]
    assert "up_for_retry" not in out.lower(), "a permanent error is not retried"
    assert aws.control.counters()["SendCommand"]["accepted"] <= 2
    (alert,) = alerts()
    assert "chunk 2/3" in alert["Message"] and fleet[70] in alert["Message"]
    deadline = time.monotonic() + 30
    while aws.control.live_process_groups() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert aws.control.live_process_groups() == [], "nothing is left running"
    assert sum(aws.control.executions().get(i, 0) for i in fleet[50:]) == 0, "chunks 2 and 3 never ran"


def test_only_instance_ids_in_the_trigger_runs_on_exactly_those(airflow, aws):
    one = aws.instance_ids[0]
    result = airflow({"instance_ids": [one], "script_arguments": ["--duration", "0"]})
    out = output_of(result)
    assert result.returncode == 0, out[-5000:]
    assert "1/1 hosts done: 1 Success" in out
    assert set(aws.control.executions()) == {one}
