"""Cancel what a fleet run left running: the teardown of a run, found by the send task's token."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from ssm_fleet import validation
from ssm_fleet.compat import AirflowException, AirflowSkipException
from ssm_fleet.errors import FleetRunFailed
from ssm_fleet.hooks.ssm import DEFAULT_BOTOCORE_CONFIG, SsmFleetHook
from ssm_fleet.plan import current_attempt, lookup_since, run_token_digest
from ssm_fleet.spec import FleetRun

if TYPE_CHECKING:
    from airflow.sdk import Context


class SsmCancelCommandsOperator(AwsBaseOperator[SsmFleetHook]):
    """Cancel the commands of a run that are still running (a teardown: run it with ``all_done``).

    The run's commands are found by their token through ListCommands (every attempt), so a cleared
    or empty XCom never hides one; ``command_ids`` only adds ids already known. When the send task
    did not hand on this attempt's commands (it failed or was killed while sending), the look-up is
    made again after ``settle_seconds``: a command whose answer was lost may take that long to show
    in SSM's reads. Every cancel is tried; if one fails the task fails (retried), naming it.

    It stays green when it only tidied up after a failure another task reported (one red task per
    incident: the wait's verdict, a refused send, a failed preflight). It fails, naming what it
    cancelled, when the attempt was stopped before its verdict while the fleet ran: the run or a
    task was marked failed or killed mid-batch, which no other task reports.

    :param fleet_run: the run's send and wait tasks and its document (:class:`~ssm_fleet.spec.FleetRun`,
        the one the run operator was built from): the send task's token finds the commands, the
        wait's attempt-stamped ``verdict`` tells a stop from a failure another task reported.
    :param command_ids: command ids already known, e.g. from XCom (optional: a shortcut).
    :param fail_on_leftovers: fail (without retry) when the attempt was stopped mid-batch (its
        commands sent, no verdict of the wait), or killed while sending with commands still
        running (default: True).
    :param run_skipped: templated; true when the run was skipped on purpose before anything was
        sent (e.g. a short circuit returned False): the teardown then skips itself, without any
        AWS call (default: False).
    :param settle_seconds: how long to wait before looking again when a send may still be in
        flight (default: 20).
    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    """

    aws_hook_class = SsmFleetHook
    template_fields: Sequence[str] = aws_template_fields("command_ids", "run_skipped")
    ui_color = "#e8a0a0"

    def __init__(
        self,
        *,
        fleet_run: FleetRun,
        command_ids: Sequence[str] | str | None = None,
        fail_on_leftovers: bool = True,
        run_skipped: bool | str = False,
        settle_seconds: float = 20.0,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(botocore_config=botocore_config or DEFAULT_BOTOCORE_CONFIG, **kwargs)
        self.fleet_run = fleet_run
        self.command_ids = command_ids
        self.fail_on_leftovers = fail_on_leftovers
        self.run_skipped = run_skipped
        self.settle_seconds = settle_seconds

    def execute(self, context: Context) -> list[str]:
        """Cancel what the run's commands still run; fail for a run stopped mid-batch."""
        if validation.boolean("run_skipped", self.run_skipped):
            raise AirflowSkipException("The run was skipped before anything was sent: nothing to clean up")
        known = validation.from_template(self.command_ids)
        known = [known] if isinstance(known, str) and known else list(known or ())
        ti = context["ti"]
        attempt = current_attempt(context)
        spec = self.fleet_run
        digest = run_token_digest(ti.dag_id, ti.run_id, spec.send_task_id, getattr(ti, "map_index", -1))
        since = lookup_since(context)
        report = self.hook.cancel_run(digest, since, spec.document_name, known)
        sent = ti.xcom_pull(task_ids=spec.send_task_id, key="attempt") == attempt
        if not sent:
            self.log.info(
                "Task %s did not hand on attempt %s's commands: looking again in %ss for a send in flight",
                spec.send_task_id,
                attempt,
                self.settle_seconds,
            )
            time.sleep(self.settle_seconds)
            report = report.merged(self.hook.cancel_run(digest, since, spec.document_name, known))
        for command_id in report.cancelled:
            self.log.warning("Cancelled command %s: it was still running when the run ended", command_id)
        if report.failed:
            raise AirflowException(
                f"Could not cancel {len(report.failed)} command(s) still running on the fleet: "
                + "; ".join(report.failed)
                + ". Their hosts may still be running the batch: cancel them in the SSM console."
            )
        if not report.cancelled:
            self.log.info("%s command(s) of this run found, none still running", len(report.found))
        verdict = ti.xcom_pull(task_ids=spec.wait_task_id, key="verdict") or {}
        judged = isinstance(verdict, dict) and verdict.get("attempt") == attempt
        # Stopped mid-batch: sent, and the wait never reached a verdict; or killed while still sending.
        stopped = (sent and not judged) or (not sent and bool(report.live))
        if stopped and self.fail_on_leftovers:
            raise FleetRunFailed(
                f"Attempt {attempt} of the run was stopped before its verdict (the run or a task was marked "
                f"failed, or killed) while the fleet ran the batch. Commands cancelled now: "
                f"{', '.join(report.cancelled) or 'none (already cancelled)'}; the run's commands: "
                f"{', '.join(report.found) or 'none found'}. Their hosts did not finish the batch: Clear the "
                "run to run again the hosts that did not succeed.",
                headline="run stopped mid-batch, fleet cancelled",
            )
        return list(report.cancelled)
