"""The COTS nightly batch: the script on every instance of the fleet, through SSM Run Command.

Runs the COTS batch script on every instance of the fleet through **SSM Run Command**, every night
on the schedule below and on demand from the trigger form.

| task | what it does |
|---|---|
| `window` | skips a scheduled run that starts over an hour late (unpaused mid-day); manual runs go |
| `preflight` | checks the form values and that every instance is SSM-managed and `Online` |
| `run` | sends the script once per chunk of 50 ids or tag target; a Clear re-runs only what failed |
| `wait` | reschedule-mode sensor: frees the worker slot between checks, fails naming every failed instance |
| `report` | prints the per-instance table (status, details, exit code, duration, attempt, stderr tail) |
| `cancel_leftovers` | teardown: cancels what still runs (found by token); decides the run's state |

A failure of any task sends an SNS alert naming the failed instances, their status details, exit
codes and stderr tails; so does a run that ends by `dagrun_timeout` or is marked failed, after its
commands are cancelled. Defaults come from `cots_ssm.config.BatchConfig` (`COTS_BATCH_*`
variables); AWS is reached only through the Airflow connection `aws_default` (or
`COTS_BATCH_AWS_CONN_ID`). Give `instance_ids` **or** `target_tags`: given alone, instance ids
replace the default tags; a trigger giving both is refused.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pendulum
from airflow.sdk import DAG, task

from cots_ssm.compat import CronTriggerTimetable
from cots_ssm.config import BatchConfig
from cots_ssm.notifications.sns import SsmDagRunFailureNotifier, SsmFailureSnsNotifier
from cots_ssm.operators.ssm import SsmCancelCommandsOperator, SsmFleetPreflightOperator, SsmRunCommandOperator
from cots_ssm.params import choose_targets, trigger_form
from cots_ssm.report import report_fleet
from cots_ssm.sensors.ssm import SsmRunCommandFleetSensor
from cots_ssm.window import in_start_window

CONFIG = BatchConfig.from_env()

alert = SsmFailureSnsNotifier(target_arn="{{ params.sns_topic_arn }}", aws_conn_id=CONFIG.aws_conn_id)
run_alert = SsmDagRunFailureNotifier(target_arn="{{ params.sns_topic_arn }}", aws_conn_id=CONFIG.aws_conn_id)
fleet_targets = partial(choose_targets, default_ids=CONFIG.instance_ids, default_tags=CONFIG.target_tags)
INSTANCE_IDS = "{{ fleet_targets(params.instance_ids, params.target_tags)['instance_ids'] }}"
TARGET_TAGS = "{{ fleet_targets(params.instance_ids, params.target_tags)['target_tags'] }}"

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
    on_failure_callback=run_alert,
    params=trigger_form(CONFIG),
    user_defined_macros={"fleet_targets": fleet_targets},
    render_template_as_native_obj=True,
    tags=["cots", "ssm", "batch", "nightly"],
    doc_md=__doc__,
) as dag:
    window = task.short_circuit(task_id="window", retries=0)(in_start_window)(
        start_grace_minutes=CONFIG.start_grace_minutes
    )
    preflight = SsmFleetPreflightOperator(
        task_id="preflight",
        instance_ids=INSTANCE_IDS,
        target_tags=TARGET_TAGS,
        script_arguments="{{ params.script_arguments }}",
    )
    run = SsmRunCommandOperator(
        task_id="run",
        instance_ids=INSTANCE_IDS,
        target_tags=TARGET_TAGS,
        commands=[CONFIG.script],
        script_arguments="{{ params.script_arguments }}",
        working_directory=CONFIG.working_directory or None,
        execution_timeout_seconds="{{ params.execution_timeout_seconds }}",
        delivery_timeout_seconds="{{ params.delivery_timeout_seconds }}",
        max_concurrency=CONFIG.max_concurrency,
        max_errors=CONFIG.max_errors,
        comment="{{ dag.dag_id }}",
        preflight=False,  # the preflight task just checked the fleet
        redrive="{{ params.redrive }}",
    )
    wait = SsmRunCommandFleetSensor(
        task_id="wait",
        command_ids=run.output["command_ids"],
        max_failed_instances="{{ params.max_failed_instances }}",
        failure_policy="{{ params.failure_policy }}",
        poke_interval="{{ params.poll_interval_seconds }}",
        # Time out (cancel, fail, alert) before dagrun_timeout ends the run without any task failing.
        timeout=max(600.0, CONFIG.dagrun_timeout_hours * 3600 - 900),
    )
    report = task(task_id="report", trigger_rule="all_done", on_failure_callback=None, retries=0)(
        report_fleet
    )()
    cancel = SsmCancelCommandsOperator(
        task_id="cancel_leftovers",
        command_ids="{{ ti.xcom_pull(task_ids='run', key='command_ids') }}",  # found by token anyway
        run_task_id="run",
        verdict_task_id="wait",
        run_skipped="{{ ti.xcom_pull(task_ids='window', key='in_window') == False }}",  # nothing sent
        on_failure_callback=alert,  # it cancelled a fleet still running, or could not: say so
    )

    # Airflow judges the run by this teardown alone (on_failure_fail_dagrun): it fails when it had
    # to cancel a fleet still running (a run marked failed mid-batch would otherwise end "success",
    # its other leaves skipped), when it cannot cancel, and when the fleet's verdict is not success.
    teardown = cancel.as_teardown(setups=run, on_failure_fail_dagrun=True)
    window >> preflight >> run >> wait >> report >> teardown
    # Also after a failed run task: what it sent before failing must not run unwatched.
    cancel.trigger_rule = "all_done"
