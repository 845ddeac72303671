"""The SNS failure alert of a fleet run: which instances failed, how, and where to look."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.amazon.aws.hooks.sns import SnsHook
from airflow.sdk import BaseNotifier

from cots_ssm.alert import FailureAlert, fifo_ids
from cots_ssm.links.ssm import log_group_url, run_command_url
from cots_ssm.status import is_failure, parse_status


class SsmFailureSnsNotifier(BaseNotifier):
    """Publish a failure alert to SNS naming each failed instance, its status, exit code and stderr.

    Use it as an ``on_failure_callback``. The subject is one line under 100 chars; the body has the
    run, the task, the error, each failed instance (from the sensor's ``results`` XCom), the SSM
    command ids with console links and the Airflow log URL, capped below 256 KB. FIFO topics get a
    message group and deduplication id. A publish error is logged loudly and never replaces the
    task's own failure.

    :param target_arn: the SNS topic ARN; templated. Empty means "no alert" (logged).
    :param run_task_id: the task that sent the commands (its XCom has ``command_ids``).
    :param wait_task_id: the sensor task (its XCom ``results`` has the per-instance table).
    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    :param region_name: the AWS region, if not the connection's.
    """

    template_fields: Sequence[str] = ("target_arn", "aws_conn_id", "region_name")

    def __init__(
        self,
        *,
        target_arn: str,
        run_task_id: str = "run",
        wait_task_id: str = "wait",
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
    ):
        super().__init__()
        self.target_arn = target_arn
        self.run_task_id = run_task_id
        self.wait_task_id = wait_task_id
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name

    def build_alert(self, context: Any) -> FailureAlert:
        """Gather what failed from the Airflow context."""
        ti = context["ti"]
        sent = ti.xcom_pull(task_ids=self.run_task_id) or {}
        rows = ti.xcom_pull(task_ids=self.wait_task_id, key="results") or []
        region = sent.get("region_name") or self.region_name or "us-east-1"
        return FailureAlert(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            try_number=getattr(ti, "try_number", None),
            error=str(context.get("exception") or context.get("reason") or ""),
            log_url=getattr(ti, "log_url", "") or "",
            failed_rows=[row for row in rows if is_failure(parse_status(row["status"]))],
            fleet_size=len(sent.get("instance_ids") or rows) or None,
            command_links={cid: run_command_url(region, cid) for cid in sent.get("command_ids") or ()},
            log_group_url=log_group_url(region, sent["log_group"]) if sent.get("log_group") else "",
        )

    def notify(self, context: Any) -> None:
        try:
            alert = self.build_alert(context)
        except Exception:
            self.log.exception("Could not gather the failure details; alerting with what the context has")
            ti = context["ti"]
            alert = FailureAlert(ti.dag_id, ti.run_id, ti.task_id, error=str(context.get("exception") or ""))
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
            self.log.info(
                "Failure alert published to %s (message %s)", self.target_arn, response.get("MessageId")
            )
        except Exception:
            self.log.exception(
                "FAILED TO PUBLISH the failure alert to %s; the alert was:\n%s", self.target_arn, alert.body()
            )
