"""The SNS failure alert of a fleet run: which instances failed, how, and where to look."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.providers.amazon.aws.hooks.sns import SnsHook
from airflow.sdk import BaseNotifier

from ssm_fleet.alert import FailureAlert, fifo_ids
from ssm_fleet.hooks.ssm import CancelReport, SsmFleetHook
from ssm_fleet.links.ssm import log_group_url, run_command_url
from ssm_fleet.plan import LOOKUP_MARGIN, current_attempt, run_token_digest
from ssm_fleet.spec import FleetRun
from ssm_fleet.status import is_failure, read_status

#: Why Airflow ends a DAG run as failed, as its DAG-level callback is told (``context["reason"]``).
TASK_FAILURE_REASON = "task_failure"
REASONS = {
    "timed_out": "the run reached its dagrun_timeout",
    TASK_FAILURE_REASON: "a task failed, or the run was marked failed",
}


class SsmFailureSnsNotifier(BaseNotifier):
    """Publish a failure alert to SNS naming each failed instance, its status, exit code and stderr.

    Use it as an ``on_failure_callback``. The subject is one line under 100 chars; the body has the
    run, the task, the error, each failed instance (from the sensor's ``results`` XCom), the SSM
    command ids with console links and the Airflow log URL, capped below 256 KB. FIFO topics get a
    message group and deduplication id. A publish error is logged loudly and never replaces the
    task's own failure.

    An application adds its own lines (its wording, a page of the run, what the run changed) by
    overriding :meth:`decorate`, which every alert of the class goes through before it is published.

    :param target_arn: the SNS topic ARN; templated. Empty means "no alert" (logged).
    :param fleet_run: the run's send task (its XCom has ``command_ids``) and wait task (its XCom
        ``results`` has the per-instance table): :class:`~ssm_fleet.spec.FleetRun`.
    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    :param region_name: the AWS region, if not the connection's.
    """

    template_fields: Sequence[str] = ("target_arn", "aws_conn_id", "region_name")

    def __init__(
        self,
        *,
        target_arn: str,
        fleet_run: FleetRun,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
    ):
        super().__init__()
        self.target_arn = target_arn
        self.fleet_run = fleet_run
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def build_alert(self, context: Any) -> FailureAlert:
        """Gather what failed from the Airflow context: this attempt's hand-ons only, never earlier ones."""
        ti = context["ti"]
        attempt = current_attempt(context)
        sent = ti.xcom_pull(task_ids=self.fleet_run.send_task_id) or {}
        sent = sent if isinstance(sent, dict) and sent.get("attempt", 1) == attempt else {}
        verdict = ti.xcom_pull(task_ids=self.fleet_run.wait_task_id, key="verdict") or {}
        rows = ti.xcom_pull(task_ids=self.fleet_run.wait_task_id, key="results") or []
        rows = rows if isinstance(verdict, dict) and verdict.get("attempt", 1) == attempt else []
        region = sent.get("region_name") or self.region_name or "us-east-1"
        error = context.get("exception")
        headline = getattr(error, "headline", "") if error else str(context.get("reason") or "").split(";")[0]
        return FailureAlert(
            headline=headline[:80],
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            try_number=getattr(ti, "try_number", None),
            error=str(error or context.get("reason") or ""),
            log_url=getattr(ti, "log_url", "") or "",
            failed_rows=[row for row in rows if is_failure(read_status(row.get("status")))],
            fleet_size=len(sent.get("instance_ids") or rows) or None,
            command_links={cid: run_command_url(region, cid) for cid in sent.get("command_ids") or ()},
            log_group_url=log_group_url(region, sent["log_group"]) if sent.get("log_group") else "",
        )

    def decorate(self, alert: FailureAlert, context: Any) -> FailureAlert:
        """The alert as published: override to add the application's wording and links (default: as is).

        :param alert: the alert built from the context.
        :param context: the Airflow context of the failure.
        """
        return alert

    def notify(self, context: Any) -> None:
        """Publish the alert; if it cannot be built, publish what is known and the error."""
        try:
            alert = self.build_alert(context)
        except Exception:
            self.log.exception("Could not gather the failure details; alerting with what the context has")
            ti = context["ti"]
            alert = FailureAlert(ti.dag_id, ti.run_id, ti.task_id, error=str(context.get("exception") or ""))
        self.publish(self.decorate(alert, context))

    def publish(self, alert: FailureAlert) -> None:
        """Publish ``alert``; a publish that fails after botocore's own retries raises, the alert logged.

        The task that could not publish fails. As an ``on_failure_callback`` the task has failed
        already and Airflow logs the error in the task's log (3.3: "Failed to run task callback";
        3.0's ``BaseNotifier`` logs "Failed to send notification" and swallows it); as a DAG's
        callback, in the DAG processor's log (and, where it re-raises, ``dag.callback_exceptions``).
        """
        if not self.target_arn:
            self.log.warning("No SNS topic configured: failure alert not sent:\n%s", alert.body())
            return
        try:
            hook = SnsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)  # type: ignore[no-untyped-call]
            response = hook.get_conn().publish(
                TopicArn=self.target_arn,
                Subject=alert.subject(),
                Message=alert.body(),
                **fifo_ids(self.target_arn, alert.dag_id, alert.run_id, alert.task_id, str(alert.try_number)),
            )
        except Exception as error:
            self.log.error(
                "FAILED TO PUBLISH the failure alert to %s (%s): nobody was paged. "
                "The alert was:\nSubject: %s\n%s",
                self.target_arn,
                error,
                alert.subject(),
                alert.body(),
            )
            raise
        self.log.info(
            "Failure alert published to %s (message %s)", self.target_arn, response.get("MessageId")
        )


class SsmDagRunFailureNotifier(SsmFailureSnsNotifier):
    """The DAG-level failure callback: cancel the run's commands by token, then alert if no task did.

    Airflow ends a run without any task failing when its ``dagrun_timeout`` passes (every
    unfinished task, the teardown included, is skipped) and calls only the DAG's own callback.
    This one finds the run's commands through ListCommands by their token (XCom may be gone),
    cancels those still running, and alerts; when the run failed because a task failed, that
    task's callback has alerted already, so it alerts only if it found commands still running.

    :param target_arn: the SNS topic ARN; templated. Empty means "no alert" (logged).
    :param fleet_run: the run's send task (its token finds the commands) and document
        (:class:`~ssm_fleet.spec.FleetRun`).
    :param lookback: how far back the run's commands are looked for when the context has no
        ``dag_run`` (default: 2 days).
    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    :param region_name: the AWS region, if not the connection's.
    """

    def __init__(
        self,
        *,
        target_arn: str,
        fleet_run: FleetRun,
        lookback: timedelta = timedelta(days=2),
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
    ):
        super().__init__(
            target_arn=target_arn, fleet_run=fleet_run, aws_conn_id=aws_conn_id, region_name=region_name
        )
        self.lookback = lookback

    def _cancel(self, dag_id: str, run_id: str, context: Any) -> tuple[CancelReport | None, str]:
        dag_run = context.get("dag_run")
        since = getattr(dag_run, "run_after", None)
        since = since - LOOKUP_MARGIN if since else datetime.now(UTC) - self.lookback
        try:
            hook = SsmFleetHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)
            report = hook.cancel_run(
                run_token_digest(dag_id, run_id, self.fleet_run.send_task_id),
                since,
                self.fleet_run.document_name,
            )
        except Exception as error:
            self.log.exception("Could not look up or cancel the commands of run %s", run_id)
            return None, f"Could NOT look up or cancel the run's commands ({error}): check the SSM console."
        if report.failed:
            return report, "Could NOT cancel: " + "; ".join(
                report.failed
            ) + ". Cancel them in the SSM console."
        if report.cancelled:
            return (
                report,
                f"Cancelled {len(report.cancelled)} command(s) still running: {', '.join(report.cancelled)}.",
            )
        return report, f"{len(report.found)} command(s) of the run found; none was still running."

    def notify(self, context: Any) -> None:
        """Cancel what the run left running, then alert unless a task's alert already said it all."""
        dag = context.get("dag")
        dag_id = str(getattr(dag, "dag_id", None) or getattr(context.get("ti"), "dag_id", ""))
        run_id = str(context.get("run_id") or getattr(context.get("dag_run"), "run_id", ""))
        reason = str(context.get("reason") or "")
        report, cleanup = self._cancel(dag_id, run_id, context)
        self.log.info("DAG run %s ended (%s). %s", run_id, reason or "failed", cleanup)
        covered = (
            reason == TASK_FAILURE_REASON and report is not None and not report.live and not report.failed
        )
        if covered:
            return
        region = self.region_name or "us-east-1"
        alert = FailureAlert(
            dag_id=dag_id,
            run_id=run_id,
            task_id="(the whole run)",
            headline=f"run failed: {reason or 'ended'}",
            error=f"The DAG run failed: {REASONS.get(reason, reason or 'no reason given')}. {cleanup}",
            command_links={cid: run_command_url(region, cid) for cid in (report.found if report else ())},
        )
        self.publish(self.decorate(alert, context))
