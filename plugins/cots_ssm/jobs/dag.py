"""One DAG per job of the jobs file, from the package's operators, sensor and notifiers.

Refused jobs do not stop the others: they become one placeholder DAG whose timetable refuses it when
the DagBag validates it (``Timetable.validate``, the documented hook for that), so the DAG file gets
one import error naming the jobs file, each refused job and its field, and the good DAGs still load.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from datetime import timedelta
from functools import partial
from typing import Any

import pendulum
from airflow.providers.standard.operators.python import PythonOperator, ShortCircuitOperator
from airflow.sdk import DAG
from airflow.timetables.base import DagRunInfo, DataInterval, Timetable

from cots_ssm.config import BatchConfig
from cots_ssm.deadline import budget, parse_deadline, run_deadline
from cots_ssm.jobs.loader import Job, JobError, JobsFile
from cots_ssm.params import choose_targets, trigger_form
from cots_ssm.report import report_fleet
from cots_ssm.tasks import FLEET_RUN, CotsFailureNotifier, CotsFleetSensor, CotsRunFailureNotifier
from cots_ssm.watch import DEADLINE_TASK_ID, LATE_TASK_ID, CotsDeadlineWatch, deadline_missed
from cots_ssm.window import in_start_window, with_logical_date
from ssm_fleet.compat import CronTriggerTimetable
from ssm_fleet.operators.cancel import SsmCancelCommandsOperator
from ssm_fleet.operators.ssm import SsmFleetPreflightOperator, SsmRunCommandOperator

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowTimetableInvalid
except ImportError:  # pragma: no cover - Airflow 3.0 / 3.1
    from airflow.exceptions import AirflowTimetableInvalid  # type: ignore[no-redef,attr-defined,unused-ignore]

COMMON_TAGS = ("cots", "ssm", "batch")
REFUSED_DAG_ID = "cots_jobs_refused"
INSTANCE_IDS = "{{ fleet_targets(params.instance_ids, params.target_tags)['instance_ids'] }}"
TARGET_TAGS = "{{ fleet_targets(params.instance_ids, params.target_tags)['target_tags'] }}"
# {logical_date} in a job's arguments becomes the night of the run (cots_ssm.window.with_logical_date).
SCRIPT_ARGUMENTS = "{{ with_logical_date(params.script_arguments, dag_run) }}"
# Airflow 3.2+ refuses the run types a DAG does not list, in the UI, the REST API and the scheduler;
# on 3.0 and 3.1 the window task refuses them (cots_ssm.window).
ALLOWED_RUN_TYPES = "allowed_run_types" in inspect.signature(DAG).parameters
# Airflow 3.1+ sends the deadline alert itself (Deadline Alerts) for runs with a logical date; a watch
# task of the run sends it on 3.0, and for runs triggered without a logical date.
DEADLINE_ALERTS = "deadline" in inspect.signature(DAG).parameters
# The watches end at their first check after the wait ends: at most a minute later, whatever the poll.
WATCH_POKE = "{{ [params.poll_interval_seconds, 60] | min }}"
# A template, not an XComArg: a run task that failed before handing on leaves the cleanup None, not an error.
SENT_COMMAND_IDS = "{{ ti.xcom_pull(task_ids='" + FLEET_RUN.send_task_id + "', key='command_ids') }}"


def build_dags(jobs_file: JobsFile, *, doc_md: str | None = None) -> list[DAG]:
    """A DAG per good job, and the placeholder that reports the refused ones (if any)."""
    dags = [build_job_dag(job, doc_md=doc_md) for job in jobs_file.jobs]
    if jobs_file.errors:
        dags.append(refused_jobs_dag(jobs_file.source, jobs_file.errors))
    return dags


def build_job_dag(job: Job, *, doc_md: str | None = None) -> DAG:
    """The batch of one job: window >> preflight >> run >> wait >> report >> cancel_leftovers."""
    config = job.config
    topic = config.sns_topic_arn  # the job's, never the trigger form's: alerting cannot be switched off
    alert = CotsFailureNotifier(target_arn=topic, fleet_run=FLEET_RUN, aws_conn_id=config.aws_conn_id)
    run_alert = CotsRunFailureNotifier(target_arn=topic, fleet_run=FLEET_RUN, aws_conn_id=config.aws_conn_id)
    fleet_targets = partial(choose_targets, default_ids=config.instance_ids, default_tags=config.target_tags)
    heading = f"**{job.description}**\n\n" if job.description else ""
    run_types: dict[str, Any] = {"allowed_run_types": list(config.run_types)} if ALLOWED_RUN_TYPES else {}
    deadline: dict[str, Any] = (
        {"deadline": deadline_alert(config)} if config.deadline and DEADLINE_ALERTS else {}
    )
    with DAG(
        dag_id=job.id,
        description=job.description or f"COTS batch {job.id} through SSM Run Command",
        schedule=CronTriggerTimetable(config.schedule, timezone=config.timezone),
        start_date=pendulum.datetime(2026, 1, 1, tz=config.timezone),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=timedelta(hours=config.dagrun_timeout_hours),
        default_args={
            "owner": config.owner,
            "retries": config.retries,
            "retry_delay": timedelta(minutes=1),
            "aws_conn_id": config.aws_conn_id,
            "on_failure_callback": alert,
        },
        on_failure_callback=run_alert,
        params=trigger_form(config),
        user_defined_macros={
            "fleet_targets": fleet_targets,
            "with_logical_date": partial(with_logical_date, timezone=config.timezone),
            "resend_until": partial(resend_until, config=config),
        },
        render_template_as_native_obj=True,
        tags=list(dict.fromkeys([*COMMON_TAGS, *job.tags])),
        doc_md=heading + (doc_md or ""),
        **run_types,
        **deadline,
    ) as dag:
        _wire(config, alert)
    return dag


def resend_until(dag_run: Any, *, config: BatchConfig) -> str:
    """The run's deadline as ISO 8601 text (no host is re-sent after it); empty without a deadline."""
    if not config.deadline:
        return ""
    since = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    if since is None:
        return ""
    run_type = str(getattr(getattr(dag_run, "run_type", ""), "value", getattr(dag_run, "run_type", "")))
    moment = run_deadline(
        since, parse_deadline(config.deadline), config.timezone, run_type=run_type, schedule=config.schedule
    )
    return moment.isoformat()


def deadline_alert(config: BatchConfig) -> Any:
    """Airflow's Deadline Alert of a job (3.1+): its logical date plus the job's budget, then one alert.

    The interval is fixed (Airflow adds it to the logical date), so on the two nights a year the
    clocks change, Airflow's alert comes an hour before or after the local ``HH:MM``.
    """
    try:  # the SDK's top level from Airflow 3.2, its definitions module in 3.1
        from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference  # type: ignore[attr-defined,unused-ignore]
    except ImportError:  # pragma: no cover - Airflow 3.1
        from airflow.sdk.definitions.callback import AsyncCallback  # type: ignore[no-redef,unused-ignore]
        from airflow.sdk.definitions.deadline import (  # type: ignore[no-redef,unused-ignore]
            DeadlineAlert,
            DeadlineReference,
        )
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=budget(config.schedule, parse_deadline(config.deadline), config.timezone),
        callback=AsyncCallback(
            deadline_missed,
            kwargs={
                "target_arn": config.sns_topic_arn,  # the job's topic, never a form value
                "aws_conn_id": config.aws_conn_id,
                "deadline": config.deadline,
                "timezone": config.timezone,
                "schedule": config.schedule,
            },
        ),
    )


def _watches(config: BatchConfig, run: SsmRunCommandOperator, timeout: float) -> list[CotsDeadlineWatch]:
    """Next to the wait: the early alert's watch, and the deadline's where Airflow does not send it."""
    kinds = [(LATE_TASK_ID, True), (DEADLINE_TASK_ID, False)]
    return [
        CotsDeadlineWatch(
            task_id=task_id,
            late=late,
            deadline=config.deadline,
            timezone=config.timezone,
            schedule=config.schedule,
            target_arn=config.sns_topic_arn,
            airflow_alerts=DEADLINE_ALERTS,
            command_ids=run.output["command_ids"],  # type: ignore[index]
            gone=run.output["gone"],  # type: ignore[index]
            run_attempt=run.output["attempt"],  # type: ignore[index]
            max_failed_instances="{{ params.max_failed_instances }}",
            poke_interval=WATCH_POKE,
            timeout=timeout,
            on_failure_callback=None,  # it never fails the run; a timeout skips it
        )
        for task_id, late in kinds
    ]


def _wire(config: BatchConfig, alert: CotsFailureNotifier) -> None:
    # Classic operators rather than @task: the same callables, at a third of the parse cost per job.
    window = ShortCircuitOperator(
        task_id="window",
        retries=0,
        python_callable=in_start_window,
        op_kwargs={
            "start_grace_minutes": config.start_grace_minutes,
            "run_types": list(config.run_types),
            "timezone": config.timezone,
            # The missed-night alert goes to the job's topic, never to a form value.
            "sns_topic_arn": config.sns_topic_arn,
            "aws_conn_id": config.aws_conn_id,
        },
    )
    preflight = SsmFleetPreflightOperator(
        task_id="preflight",
        instance_ids=INSTANCE_IDS,
        target_tags=TARGET_TAGS,
        script_arguments=SCRIPT_ARGUMENTS,
    )
    # Every task that finds the run's commands or hand-ons is built from the one FLEET_RUN.
    run = SsmRunCommandOperator(
        fleet_run=FLEET_RUN,
        instance_ids=INSTANCE_IDS,
        target_tags=TARGET_TAGS,
        commands=[config.script],
        script_arguments=SCRIPT_ARGUMENTS,
        working_directory=config.working_directory or None,
        execution_timeout_seconds="{{ params.execution_timeout_seconds }}",
        delivery_timeout_seconds="{{ params.delivery_timeout_seconds }}",
        max_concurrency=config.max_concurrency,
        max_errors=config.max_errors,
        comment="{{ dag.dag_id }}",
        preflight=False,  # the preflight task just checked the fleet
        redrive="{{ params.redrive }}",
    )
    wait = CotsFleetSensor(
        task_id=FLEET_RUN.wait_task_id,
        command_ids=run.output["command_ids"],  # type: ignore[index]
        gone=run.output["gone"],  # type: ignore[index]
        run_attempt=run.output["attempt"],  # type: ignore[index]
        max_failed_instances="{{ params.max_failed_instances }}",
        failure_policy="{{ params.failure_policy }}",
        poke_interval="{{ params.poll_interval_seconds }}",
        deferrable="{{ params.deferrable }}",
        # Time out (cancel, fail, alert) before dagrun_timeout ends the run without any task failing.
        timeout=max(600.0, config.dagrun_timeout_hours * 3600 - 900),
        # Hosts that missed the start are re-sent by the wait (ssm_fleet.resend), never after the job's
        # deadline if it has one, else until the wait times out.
        resend_until="{{ resend_until(dag_run) }}" if config.deadline else None,
        host_retries=config.host_retries,
        retry_exit_codes=list(config.retry_exit_codes),
    )
    report = PythonOperator(
        task_id="report",
        python_callable=report_fleet,
        op_kwargs={"wait_task_id": FLEET_RUN.wait_task_id},
        on_failure_callback=None,
        retries=0,
    )
    cancel = SsmCancelCommandsOperator(
        task_id="cancel_leftovers",
        fleet_run=FLEET_RUN,
        command_ids=SENT_COMMAND_IDS,  # a shortcut: the commands are found by the run's token anyway
        run_skipped="{{ ti.xcom_pull(task_ids='window', key='in_window') == False }}",  # nothing sent
        on_failure_callback=alert,  # the run was stopped mid-batch (no task said so), or it could not cancel
    )
    # One red task per incident. The report is a teardown that never fails the run, so the wait stays
    # a leaf: its failure (naming the failed hosts) is what fails the run, and the report stays green.
    # The cleanup fails the run (on_failure_fail_dagrun) only for what no other task reports: a run
    # stopped mid-batch (a run marked failed would otherwise end "success", its other leaves skipped).
    report.as_teardown(setups=run)
    teardown = cancel.as_teardown(setups=run, on_failure_fail_dagrun=True)
    window >> preflight >> run >> wait >> report >> teardown
    if config.deadline:
        run >> _watches(config, run, wait.timeout)  # leaves: they end with the wait, alerting at most once
    # Also after a failed run task: what it sent before failing must not run unwatched.
    cancel.trigger_rule = "all_done"  # type: ignore[assignment]


class RefusedJobs(Timetable):
    """The timetable of the placeholder DAG: refuses it at validation, with the jobs' errors.

    :param message: the import error to show: the jobs file, each refused job and its field.
    """

    def __init__(self, message: str) -> None:
        self.message = message

    def validate(self) -> None:
        """Refuse the placeholder DAG: Airflow shows the jobs' errors as its import error."""
        raise AirflowTimetableInvalid(self.message)

    def infer_manual_data_interval(self, *, run_after: Any) -> DataInterval:
        """Refuse a manual run: the jobs file has errors."""
        raise AirflowTimetableInvalid(self.message)

    def next_dagrun_info(self, *, last_automated_data_interval: Any, restriction: Any) -> DagRunInfo | None:
        """Schedule nothing."""
        return None


def refused_message(source: str, errors: Sequence[JobError]) -> str:
    """One message for the import error: the file, then one line per refused value."""
    jobs = sorted({(e.index, e.job_id or f"jobs[{e.index}]") for e in errors})
    lines = [f"{source}: {len(jobs)} job(s) refused, the other jobs loaded: {', '.join(j for _, j in jobs)}"]
    return "\n".join([*lines, *(f"- {error}" for error in errors)])


def refused_jobs_dag(source: str, errors: Sequence[JobError]) -> DAG:
    """A DAG the DagBag refuses, so that the refused jobs show as the DAG file's import error."""
    return DAG(
        dag_id=REFUSED_DAG_ID,
        schedule=RefusedJobs(refused_message(source, errors)),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        tags=list(COMMON_TAGS),
    )
