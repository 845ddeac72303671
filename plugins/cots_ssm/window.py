"""Whether a run may start, and which night it is for: pure Python, no Airflow import.

Two rules, checked by the ``window`` task before anything is sent:

- **Run types are the job's decision.** A fleet batch accepts scheduled and manual runs; a backfill
  only when the job lists it (its script then takes the night's date, ``{logical_date}`` in its
  arguments). On Airflow 3.2+ the DAG's ``allowed_run_types`` refuses the others up front (UI and
  REST API); on 3.0 and 3.1 this task is the guard: the run ends without sending anything.
- **A scheduled run starts in its window.** Airflow starts the latest past tick of a schedule as soon
  as a DAG is deployed or unpaused, even with ``catchup=False``: unpausing at 14:00 would launch the
  02:00 batch in business hours. A scheduled run that starts more than a grace period after its time
  is skipped instead, and that skipped night is an incident: one alert says which night did not run,
  when it was due, when it started and how to run it now. Manual runs are never skipped, and neither
  is a run that was cleared (a person asked for it); a task retry keeps the run's own start time.

Times are said in the job's timezone and in UTC: a Europe/Paris job at 02:30 runs at 03:30 local
(01:30 UTC) on the spring-forward night and once, at the second 02:30 (01:30 UTC), on the fall-back
night (Airflow's ``CronTriggerTimetable``; tests/dags/test_schedule_dst.py).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from ssm_fleet.alert import FailureAlert

log = logging.getLogger(__name__)

SCHEDULED = "scheduled"
MANUAL = "manual"
BACKFILL = "backfill"
#: What a job accepts unless it says otherwise.
DEFAULT_RUN_TYPES = (SCHEDULED, MANUAL)
#: What a job may list: Airflow's DagRunType values that make sense for a cron-scheduled fleet batch.
RUN_TYPES = (SCHEDULED, MANUAL, BACKFILL)
#: In a job's script arguments: replaced by the night the run is for (its logical date, YYYY-MM-DD in
#: the job's timezone). Single braces: ``{{`` is Jinja's, and SSM's ``{{ssm:...}}``.
LOGICAL_DATE = "{logical_date}"


@dataclass(frozen=True)
class WindowDecision:
    """Whether a run goes ahead, and the log line that says why.

    :param run: True when the run goes ahead.
    :param reason: one line for the task log.
    :param missed_night: True when a scheduled night did not run because it started too late (an
        incident, alerted) (default: False).
    """

    run: bool
    reason: str
    missed_night: bool = False


def when(moment: datetime, timezone: str = "UTC") -> str:
    """``moment`` in ``timezone`` and in UTC: ``2026-03-29 03:30 CEST (2026-03-29 01:30 UTC)``."""
    utc = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if timezone == "UTC":
        return utc
    return f"{moment.astimezone(ZoneInfo(timezone)).strftime('%Y-%m-%d %H:%M %Z')} ({utc})"


def night_of(moment: datetime, timezone: str = "UTC") -> str:
    """The night a run is for: the date of its logical date in the job's timezone (YYYY-MM-DD)."""
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d")


def start_window(
    *,
    run_type: object,
    due: datetime | None,
    started: datetime | None,
    clear_number: int = 0,
    grace: timedelta = timedelta(hours=1),
    allowed: Collection[str] = DEFAULT_RUN_TYPES,
    timezone: str = "UTC",
    logical_date: datetime | None = None,
) -> WindowDecision:
    """A run of a type the job does not accept, or a scheduled run that started too late, does not go ahead.

    :param run_type: the run's type (Airflow's ``DagRunType`` or its value).
    :param due: when the run was due (its ``run_after``).
    :param started: when the run started.
    :param clear_number: how many times the run was cleared.
    :param grace: how late a scheduled run may start (default: 1 hour).
    :param allowed: the run types the job accepts (default: scheduled and manual).
    :param timezone: the job's timezone, for the log line (default: UTC).
    :param logical_date: the run's logical date, which names its night (default: ``due``).
    """
    night = logical_date or due
    kind = str(getattr(run_type, "value", run_type))  # Airflow's DagRunType is a str Enum
    if kind not in allowed:
        return WindowDecision(False, _refusal(kind, night, allowed, timezone))
    if kind != SCHEDULED:
        return WindowDecision(True, f"{kind} run: runs whenever it is triggered")
    if clear_number:
        return WindowDecision(True, f"scheduled run cleared {clear_number} time(s): runs now, as asked")
    if due is None or started is None:
        return WindowDecision(True, "scheduled run without a due or start time: runs")
    late = started - due
    if late <= grace:
        return WindowDecision(
            True, f"scheduled for {when(due, timezone)}, started {_minutes(late)} later: in its window"
        )
    return WindowDecision(
        False,
        f"Skipped: the night of {night_of(night or due, timezone)} did not run. This run was due at "
        f"{when(due, timezone)} but started at {when(started, timezone)}, {_minutes(late)} late, more "
        f"than the {_minutes(grace)} allowed (start_grace_minutes). Nothing was sent: a batch started out "
        "of its window could hit the fleet in business hours (a DAG deployed or unpaused mid-day starts "
        "its last tick at once). The next scheduled run is not affected. To run this night now: Clear "
        "this run (a cleared run is never skipped), or trigger the DAG by hand.",
        missed_night=True,
    )


def _refusal(kind: str, moment: datetime | None, allowed: Collection[str], timezone: str) -> str:
    night = f" for the night of {night_of(moment, timezone)}" if moment else ""
    why = (
        "its script does not take the night's date, so a backfill would run the same batch on the "
        "whole fleet once per night of the range"
        if kind == BACKFILL
        else "run_types in the jobs file"
    )
    return (
        f"Refused: a {kind} run{night}. This job accepts {', '.join(sorted(allowed))} runs only ({why}). "
        "Nothing was sent. To run one night again: Clear that night's scheduled run (a cleared run "
        "always runs), or trigger the DAG by hand. To accept backfills, add backfill to the job's "
        f"run_types and pass {LOGICAL_DATE} in its script_arguments."
    )


def _minutes(delta: timedelta) -> str:
    total = int(max(delta.total_seconds(), 0) // 60)
    hours, minutes = divmod(total, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def missed_night_alert(
    *,
    dag_id: str,
    run_id: str,
    night: datetime,
    due: datetime,
    started: datetime,
    grace: timedelta,
    timezone: str = "UTC",
    log_url: str = "",
) -> FailureAlert:
    """The one alert of a scheduled night that did not run: which night, when due and started, what now.

    :param dag_id: the job's DAG.
    :param run_id: the skipped run.
    :param night: the run's logical date (names the night).
    :param due: when the run was due.
    :param started: when it started.
    :param grace: how late it was allowed to start.
    :param timezone: the job's timezone (default: UTC).
    :param log_url: the window task's log (default: none).
    """
    clear = f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}/clear"
    lines = [
        f"The night of {night_of(night, timezone)} did not run: nothing was sent to the fleet.",
        f"Due:     {when(due, timezone)}",
        f"Started: {when(started, timezone)}, {_minutes(started - due)} late "
        f"(start_grace_minutes allows {_minutes(grace)})",
        "Why:     a batch started out of its window could hit the fleet in business hours (a DAG "
        "deployed or unpaused mid-day starts its last tick at once).",
        "Run it now: Clear this run (a cleared run is never skipped and runs for its own night): in the "
        f'Airflow UI, or POST {clear} with {{"dry_run": false}}; or trigger the DAG by hand.',
        "The next scheduled night is not affected.",
    ]
    return FailureAlert(
        dag_id=dag_id,
        run_id=run_id,
        task_id="window",
        error="\n".join(lines),
        log_url=log_url,
        opening="Attention required: a scheduled night of the batch did not run.",
        headline=f"night {night_of(night, timezone)} did not run (started late)",
    )


def with_logical_date(arguments: Any, dag_run: Any = None, *, timezone: str = "UTC") -> Any:
    """``arguments`` with :data:`LOGICAL_DATE` replaced by the night of ``dag_run`` (a template macro).

    The night is the run's logical date in the job's timezone; a manual run without one (Airflow 3
    allows that) is for the night it was triggered (its ``run_after``). Anything but a list of
    strings is returned as it is, for the operators to refuse naming the field.

    :param arguments: the script arguments (the trigger form's value).
    :param dag_run: the run (from the template context) (default: none: nothing replaced).
    :param timezone: the job's timezone (default: UTC).
    """
    moment = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    if moment is None or not isinstance(arguments, Sequence) or isinstance(arguments, str):
        return arguments
    night = night_of(moment, timezone)
    return [a.replace(LOGICAL_DATE, night) if isinstance(a, str) else a for a in arguments]


def in_start_window(
    dag_run: Any = None,
    ti: Any = None,
    start_grace_minutes: int = 60,
    run_types: Collection[str] = DEFAULT_RUN_TYPES,
    timezone: str = "UTC",
    sns_topic_arn: str = "",
    aws_conn_id: str | None = "aws_default",
) -> bool:
    """Task callable (a short circuit): log the decision, alert a missed night, say whether the run goes on.

    The decision is pushed to XCom under ``in_window`` (a short circuit that skips pushes no return
    value), for a teardown that must know the run was skipped on purpose, and a refusal's or a skip's
    reason under ``skipped_because`` (the run's XCom tab shows it; no Airflow 3 task can set a run
    note). A scheduled night that did not run publishes one alert to ``sns_topic_arn``, after the
    XCom, so that a failed publish (which fails this task) still leaves the teardown skipping.

    :param dag_run: the run (from the context).
    :param ti: the task instance (from the context).
    :param start_grace_minutes: how late a scheduled run may start (default: 60).
    :param run_types: the run types the job accepts (default: scheduled and manual).
    :param timezone: the job's timezone, for the log line and the alert (default: UTC).
    :param sns_topic_arn: the job's alert topic; empty: the alert is only logged (default: empty).
    :param aws_conn_id: the Airflow AWS connection of the alert (default: ``aws_default``).
    """
    due = getattr(dag_run, "run_after", None)
    night = getattr(dag_run, "logical_date", None) or due
    decision = start_window(
        run_type=getattr(dag_run, "run_type", MANUAL),
        due=due,
        started=getattr(dag_run, "start_date", None),
        clear_number=int(getattr(dag_run, "clear_number", 0) or 0),
        grace=timedelta(minutes=int(start_grace_minutes)),
        allowed=list(run_types),
        timezone=timezone,
        logical_date=night,
    )
    (log.info if decision.run else log.warning)("%s", decision.reason)
    if ti is not None:
        ti.xcom_push(key="in_window", value=decision.run)
        if not decision.run:
            ti.xcom_push(key="skipped_because", value=decision.reason)
    if decision.missed_night and ti is not None and night is not None and due is not None:
        from cots_ssm.tasks import FLEET_RUN, CotsFailureNotifier  # Airflow: only when there is news

        alert = missed_night_alert(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            night=night,
            due=due,
            started=dag_run.start_date,
            grace=timedelta(minutes=int(start_grace_minutes)),
            timezone=timezone,
            log_url=getattr(ti, "log_url", "") or "",
        )
        CotsFailureNotifier(target_arn=sns_topic_arn, fleet_run=FLEET_RUN, aws_conn_id=aws_conn_id).publish(
            alert
        )
    return decision.run
