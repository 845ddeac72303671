"""The COTS nightly batch: the script on every instance of the fleet, through SSM Run Command.

Runs the COTS batch script on every instance of the fleet through **SSM Run Command**, every night
on the schedule below and on demand from the trigger form.

| task | what it does |
|---|---|
| `preflight` | checks the form values and that every instance is SSM-managed and `Online` |
| `run` | sends the script (chunks of 50 ids, or one tag target); a retry adopts what was already sent |
| `wait` | reschedule-mode sensor: frees the worker slot between checks, fails naming every failed instance |
| `report` | prints the per-instance table (status, details, exit code, duration, stderr tail) |
| `cancel_leftovers` | teardown: cancels invocations still running when the run fails or times out |

A failure of any task sends an SNS alert naming the failed instances, their status details, exit
codes and stderr tails. Defaults come from `cots_ssm.config.BatchConfig` (`COTS_BATCH_*` variables);
AWS is reached only through the Airflow connection `aws_default` (or `COTS_BATCH_AWS_CONN_ID`).
Give **either** `instance_ids` **or** `target_tags` (clear the other one).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, task

from cots_ssm.compat import CronTriggerTimetable
from cots_ssm.config import BatchConfig
from cots_ssm.notifications.sns import SsmFailureSnsNotifier
from cots_ssm.operators.ssm import SsmCancelCommandsOperator, SsmFleetPreflightOperator, SsmRunCommandOperator
from cots_ssm.params import trigger_form
from cots_ssm.report import report_fleet
from cots_ssm.sensors.ssm import SsmRunCommandFleetSensor

CONFIG = BatchConfig.from_env()

alert = SsmFailureSnsNotifier(target_arn="{{ params.sns_topic_arn }}", aws_conn_id=CONFIG.aws_conn_id)

with DAG(
    dag_id="cots_nightly_batch",
    description="Nightly COTS batch on the EC2 fleet through SSM Run Command",
    schedule=CronTriggerTimetable(CONFIG.schedule, timezone=CONFIG.timezone),
    start_date=pendulum.datetime(2026, 1, 1, tz=CONFIG.timezone),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=CONFIG.dagrun_timeout_hours),
    default_args={
        "owner": CONFIG.owner,
        "retries": CONFIG.retries,
        "retry_delay": timedelta(minutes=1),
        "aws_conn_id": CONFIG.aws_conn_id,
        "on_failure_callback": alert,
    },
    params=trigger_form(CONFIG),
    render_template_as_native_obj=True,
    tags=["cots", "ssm", "batch", "nightly"],
    doc_md=__doc__,
) as dag:
    preflight = SsmFleetPreflightOperator(
        task_id="preflight",
        instance_ids="{{ params.instance_ids }}",
        target_tags="{{ params.target_tags }}",
        script_arguments="{{ params.script_arguments }}",
    )
    run = SsmRunCommandOperator(
        task_id="run",
        instance_ids="{{ params.instance_ids }}",
        target_tags="{{ params.target_tags }}",
        commands=[CONFIG.script],
        script_arguments="{{ params.script_arguments }}",
        working_directory=CONFIG.working_directory or None,
        execution_timeout_seconds="{{ params.execution_timeout_seconds }}",
        delivery_timeout_seconds="{{ params.delivery_timeout_seconds }}",
        max_concurrency=CONFIG.max_concurrency,
        max_errors=CONFIG.max_errors,
        comment="{{ dag.dag_id }}",
        preflight=False,  # the preflight task just checked the fleet
    )
    wait = SsmRunCommandFleetSensor(
        task_id="wait",
        command_ids=run.output["command_ids"],
        max_failed_instances="{{ params.max_failed_instances }}",
        poke_interval="{{ params.poll_interval_seconds }}",
        # Time out (cancel, fail, alert) before dagrun_timeout ends the run without any task failing.
        timeout=max(600, CONFIG.dagrun_timeout_hours * 3600 - 900),
    )
    report = task(task_id="report", trigger_rule="all_done", on_failure_callback=None, retries=0)(
        report_fleet
    )()
    cancel = SsmCancelCommandsOperator(
        task_id="cancel_leftovers",
        command_ids="{{ ti.xcom_pull(task_ids='run', key='command_ids') }}",
        on_failure_callback=None,
    )

    preflight >> run >> wait >> report >> cancel.as_teardown(setups=run)
    # Also after a failed run task: what it sent before failing is in its XCom and must not run unwatched.
    cancel.trigger_rule = "all_done"
