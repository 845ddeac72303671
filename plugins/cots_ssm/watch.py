"""The night's deadline in Airflow: the watch tasks beside the wait, and Airflow's Deadline Alert callback.

:mod:`cots_ssm.deadline` holds the rules and the texts (pure); here only Airflow and AWS. Over 350
lines for a reason: the watch (3.0, and runs without a logical date) and Airflow's callback (3.1+)
send the same alert from the same reads, side by side so they cannot drift apart.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cots_ssm.deadline import (
    MAX_NIGHTS,
    DeadlineNotice,
    Estimate,
    RunningHost,
    deadline_alert_due,
    estimate_finish,
    late_alert_due,
    parse_deadline,
    run_deadline,
)
from cots_ssm.fleet.links import fleet_page_url
from cots_ssm.tasks import FLEET_RUN, CotsFailureNotifier, CotsFleetSensor
from ssm_fleet.alert import BODY_MAX_BYTES, FailureAlert
from ssm_fleet.hooks.ssm import SsmFleetHook
from ssm_fleet.ledger import RunLedger
from ssm_fleet.plan import LOOKUP_MARGIN, run_token_digest
from ssm_fleet.spec import FleetRun
from ssm_fleet.verdict import FleetVerdict

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

#: The watch that sends the early "running late" alert, and the one that sends the deadline alert
#: where Airflow's Deadline Alert (3.1+) does not: on Airflow 3.0, and for runs without a logical date.
LATE_TASK_ID = "running_late"
DEADLINE_TASK_ID = "deadline"
#: Task states after which the wait will not change the fleet any more.
_ENDED = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})


def running_hosts(verdict: FleetVerdict) -> list[RunningHost]:
    """The hosts of a verdict still running, each since its start (or since it was sent)."""
    return [
        RunningHost(i.instance_id, i.started_at or i.requested_at, i.instance_name) for i in verdict.running
    ]


def previous_nights(
    dag_id: str,
    logical_date: datetime | None,
    wait_task_id: str = FLEET_RUN.wait_task_id,
    limit: int = MAX_NIGHTS,
) -> list[float]:
    """Durations (seconds) of the DAG's last successful nights before ``logical_date``, oldest first.

    Airflow's own records, through the task SDK (3.0+): the previous successful run, followed back one
    run at a time, counted only if its wait succeeded (a night the window skipped, or that sent
    nothing, is green but ran no batch). Nothing (an empty list) outside a task or if Airflow cannot say.
    """
    if logical_date is None:
        return []
    try:
        from airflow.sdk.execution_time.comms import GetPreviousDagRun
        from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS, RuntimeTaskInstance

        durations: list[float] = []
        before = logical_date
        for _ in range(3 * limit):
            found = SUPERVISOR_COMMS.send(
                GetPreviousDagRun(dag_id=dag_id, logical_date=before, state="success")
            )
            run = getattr(found, "dag_run", None)
            if run is None or run.logical_date is None or len(durations) >= limit:
                break
            states = RuntimeTaskInstance.get_task_states(
                dag_id=dag_id, task_ids=[wait_task_id], run_ids=[run.run_id]
            )
            waited = (states.get(run.run_id) or {}).get(wait_task_id)
            if run.start_date and run.end_date and str(getattr(waited, "value", waited)) == "success":
                durations.append((run.end_date - run.start_date).total_seconds())
            before = run.logical_date
        return durations[::-1]
    except Exception:  # the estimate does without the last nights rather than stop the watch
        log.warning("Could not read the previous runs of %s", dag_id, exc_info=True)
        return []


def notice(
    *,
    late: bool,
    dag_id: str,
    run_id: str,
    night: datetime | None,
    deadline_at: datetime,
    deadline_text: str,
    timezone: str,
    verdict: FleetVerdict,
    now: datetime,
    estimate: Estimate | None = None,
) -> DeadlineNotice:
    """The alert of a run past (or soon past) its deadline: the fleet page, the hosts still running."""
    return DeadlineNotice(
        dag_id=dag_id,
        run_id=run_id,
        fleet_size=verdict.expected or None,
        fleet_url=fleet_page_url(dag_id, run_id),
        late=late,
        deadline_at=deadline_at,
        deadline_text=deadline_text,
        timezone=timezone,
        night=night,
        now=now,
        running=running_hosts(verdict),
        estimate=estimate,
    )


@dataclasses.dataclass(frozen=True)
class _NoticeAlert(FailureAlert):
    """A deadline notice in the failure alert's shape, for the one notifier's publish (and FIFO ids)."""

    notice: DeadlineNotice | None = None

    def subject(self) -> str:
        return self.notice.subject() if self.notice else super().subject()

    def body(self, max_bytes: int = BODY_MAX_BYTES) -> str:
        return self.notice.body(max_bytes) if self.notice else super().body(max_bytes)


def publish_notice(notice: DeadlineNotice, task_id: str, *, target_arn: str, aws_conn_id: str | None) -> None:
    """Publish a deadline notice to the job's topic through the job's notifier (logged if no topic).

    :param notice: the alert.
    :param task_id: what sends it (the FIFO deduplication id names it, with the run).
    :param target_arn: the job's SNS topic.
    :param aws_conn_id: the Airflow AWS connection.
    """
    alert = _NoticeAlert(notice.dag_id, notice.run_id, task_id, notice=notice)
    CotsFailureNotifier(target_arn=target_arn, fleet_run=FLEET_RUN, aws_conn_id=aws_conn_id).publish(alert)


class CotsDeadlineWatch(CotsFleetSensor):
    """Watch a job's run against its deadline, next to the wait: one alert at most, never a failure.

    ``late`` (task ``running_late``): at each check, estimate when the fleet finishes
    (:func:`cots_ssm.deadline.estimate_finish`, from this run's progress and the last successful
    nights); when the estimate passes the deadline, publish the "running late" alert and end.
    Otherwise (task ``deadline``): when the deadline passes while the wait still waits, publish the
    deadline alert and end; on Airflow 3.1+ only for a run Airflow's Deadline Alert cannot cover (no
    logical date), ending at once for the others. Either ends as soon as the wait ends, or at the
    deadline. Publishing ends the task, so a try alerts once; a try that starts after the deadline
    (a Clear in the morning) sends nothing. It reads SSM as the wait does, holds no slot between
    checks (reschedule), has no retries, and an error in a check is logged and the check skipped:
    the watch never turns the run red.

    :param late: the early alert (``True``) or the deadline alert (``False``).
    :param deadline: the job's ``HH:MM``.
    :param timezone: the job's timezone.
    :param schedule: the job's cron (a manual run's budget).
    :param target_arn: the job's SNS topic (empty: the alert is only logged).
    :param fleet_run: the run's send and wait tasks (:data:`FLEET_RUN`) (default: :data:`FLEET_RUN`).
    :param airflow_alerts: Airflow sends the deadline alert of every run with a logical date (its
        Deadline Alert, 3.1+): the deadline watch then alerts only for a run without one (a manual
        run triggered through the REST API without a logical date) (default: False).
    """

    template_fields: Sequence[str] = (
        *CotsFleetSensor.template_fields,
        "deadline_text",
        "deadline_timezone",
        "deadline_schedule",
    )

    def __init__(
        self,
        *,
        late: bool,
        deadline: str,
        timezone: str,
        schedule: str,
        target_arn: str,
        fleet_run: FleetRun = FLEET_RUN,
        airflow_alerts: bool = False,
        **kwargs: Any,
    ):
        kwargs.update(mode="reschedule", deferrable=False, cancel_on_timeout=False, soft_fail=True, retries=0)
        super().__init__(**kwargs)
        self.late = late
        self.deadline_time = parse_deadline(deadline)
        # Template fields so that the serialized DAG carries them: the fleet page reads them there.
        self.deadline_text = deadline
        self.deadline_timezone = timezone
        self.deadline_schedule = schedule
        self.target_arn = target_arn
        self.fleet_run = fleet_run
        self.airflow_alerts = airflow_alerts

    def poke(self, context: Context) -> bool:
        """One check of the run against its deadline; an error in it is logged, never raised."""
        try:
            return self._check(context, datetime.now(UTC))
        except Exception:
            self.log.warning("The deadline watch could not check the run; it tries again", exc_info=True)
            return False

    def run_deadline(self, dag_run: Any) -> datetime:
        """The deadline of the context's run."""
        logical = dag_run.logical_date or dag_run.run_after
        run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type))
        return run_deadline(
            logical,
            self.deadline_time,
            self.deadline_timezone,
            run_type=run_type,
            schedule=self.deadline_schedule,
        )

    def _wait_ended(self, context: Context) -> bool:
        ti, dag_run = context["ti"], context["dag_run"]
        states = ti.get_task_states(
            dag_id=ti.dag_id, task_ids=[self.fleet_run.wait_task_id], run_ids=[dag_run.run_id]
        )
        state = (states.get(dag_run.run_id) or {}).get(self.fleet_run.wait_task_id)
        return str(getattr(state, "value", state)) in _ENDED

    def _check(self, context: Context, now: datetime) -> bool:
        dag_run = context["dag_run"]
        deadline_at = self.run_deadline(dag_run)
        if self._wait_ended(context):
            self.log.info("The wait has ended: nothing more to watch")
            return True
        if self.late and now >= deadline_at:
            self.log.info("Deadline %s passed: the early alert is no longer due", deadline_at)
            return True
        if not self.late and self.airflow_alerts and dag_run.logical_date is not None:
            self.log.info(
                "Airflow's Deadline Alert covers this run (deadline %s): nothing to watch", deadline_at
            )
            return True
        if not self.late and now < deadline_at:
            return False
        verdict = self.read_verdict(context)
        estimate = None
        if self.late:
            # Both the progress and the last nights count from when SSM accepted the commands.
            sent = [i.requested_at for i in verdict.invocations if i.requested_at]
            started = min(sent) if sent else dag_run.start_date or now
            nights = previous_nights(dag_run.dag_id, dag_run.logical_date, self.fleet_run.wait_task_id)
            done = len(verdict.finished)
            estimate = estimate_finish(
                now=now, started_at=started, fleet_size=verdict.expected, finished=done, nights=nights
            )
            self.log.info(
                "Deadline %s; estimate: %s",
                deadline_at,
                f"{estimate.finish} ({estimate.basis})" if estimate else "not yet",
            )
            if not late_alert_due(estimate, deadline_at, now):
                return False
        else:
            since = context["ti"].get_first_reschedule_date(context) or now
            if not deadline_alert_due(deadline_at, now, since):
                self.log.info("This watch began after the deadline %s: no alert", deadline_at)
                return True
        alert = notice(
            late=self.late,
            dag_id=dag_run.dag_id,
            run_id=dag_run.run_id,
            night=dag_run.logical_date,
            deadline_at=deadline_at,
            deadline_text=self.deadline_text,
            timezone=self.deadline_timezone,
            verdict=verdict,
            now=now,
            estimate=estimate,
        )
        publish_notice(alert, self.task_id, target_arn=self.target_arn, aws_conn_id=self.aws_conn_id)
        return True


async def deadline_missed(
    *,
    target_arn: str,
    aws_conn_id: str,
    deadline: str,
    timezone: str,
    schedule: str,
    context: dict[str, Any] | None = None,
) -> str:
    """Airflow 3.1+'s Deadline Alert callback (run by the triggerer): the deadline alert of a run.

    Airflow calls it once per run, only for a run not ended by its deadline; a run that began after
    its deadline gets no alert, as with the watch. The hosts still running are read from SSM by the
    run's token (the triggerer has no task context), in a thread.

    :param target_arn: the job's SNS topic (empty: the alert is only logged).
    :param aws_conn_id: the Airflow AWS connection.
    :param deadline: the job's ``HH:MM``.
    :param timezone: the job's timezone.
    :param schedule: the job's cron.
    :param context: what Airflow gives: ``dag_run`` (the run, as the REST API shows it) and ``deadline``.
    """
    return await asyncio.to_thread(
        publish_deadline_missed,
        context or {},
        target_arn=target_arn,
        aws_conn_id=aws_conn_id,
        deadline=deadline,
        timezone=timezone,
        schedule=schedule,
    )


def publish_deadline_missed(
    context: dict[str, Any], *, target_arn: str, aws_conn_id: str, deadline: str, timezone: str, schedule: str
) -> str:
    """The body of :func:`deadline_missed`, synchronous: read the fleet, publish, say what was done."""
    run = context.get("dag_run") or {}
    dag_id, run_id = str(run.get("dag_id") or ""), str(run.get("dag_run_id") or run.get("run_id") or "")
    night = _aware(run.get("logical_date"))
    now = datetime.now(UTC)
    deadline_at = _aware((context.get("deadline") or {}).get("deadline_time")) or now
    started = _aware(run.get("start_date"))
    # As the watch: a run that began after its deadline (a late night skipped by the window when a
    # job is deployed or unpaused, a backfill of an old night) was never going to make it.
    if started is None or not deadline_alert_due(deadline_at, now, started):
        log.info("Run %s of %s began after its deadline %s: no deadline alert", run_id, dag_id, deadline_at)
        return f"not sent: run {run_id} began after its deadline"
    hook = SsmFleetHook(aws_conn_id=aws_conn_id)
    since = (_aware(run.get("run_after")) or deadline_at - timedelta(days=1)) - LOOKUP_MARGIN
    commands = hook.find_run_commands(
        run_token_digest(dag_id, run_id, FLEET_RUN.send_task_id), since, FLEET_RUN.document_name
    )
    invocations = [i for c in commands for i in hook.list_invocations(c["CommandId"])]
    verdict = RunLedger.from_api(commands, invocations).verdict()
    alert = notice(
        late=False,
        dag_id=dag_id,
        run_id=run_id,
        night=night,
        deadline_at=deadline_at,
        deadline_text=deadline,
        timezone=timezone,
        verdict=verdict,
        now=now,
    )
    publish_notice(alert, "(deadline)", target_arn=target_arn, aws_conn_id=aws_conn_id)
    return alert.subject()


def _aware(value: Any) -> datetime | None:
    if isinstance(value, str) and value:
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None
