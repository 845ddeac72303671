"""Commands and their invocations, and how they look in the SSM API.

`EmulatedCommand` subclasses moto's `Command` (so moto keeps tracking it like its own models) but
replaces its always-Success invocations with `Invocation` objects that the scheduler drives.
Every method here is called with the service lock held.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from moto.ssm.models import Command

from ssm_emulator.statuses import (
    ACTIVE,
    ERRORS,
    NOT_STARTED_CODE,
    Details,
    Status,
)
from ssm_emulator.validation import DOCUMENT_VERSION, PLUGIN_NAME, SendCommandRequest, resolve_limit

if TYPE_CHECKING:
    from ssm_emulator.executor import RunningProcess

STDOUT_LIMIT = 24_000
STDERR_LIMIT = 8_000
PLUGIN_OUTPUT_LIMIT = 2_500
#: How the agent joins stdout and stderr in CommandPlugins[].Output.
ERROR_SEPARATOR = "\n----------ERROR-------\n"
_PLUGIN_STATUS = {Status.CANCELLING: Status.IN_PROGRESS, Status.DELAYED: Status.PENDING}


def utcnow() -> dt.datetime:
    """Return the current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


def iso_string(moment: dt.datetime | None) -> str:
    """Format a time as the StringDateTime fields of GetCommandInvocation ("" when unset)."""
    if moment is None:
        return ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    """Format an elapsed time as an ISO 8601 duration ("PT1.234S"), "" when not started."""
    if start is None:
        return ""
    seconds = ((end or utcnow()) - start).total_seconds()
    return f"PT{seconds:.3f}S"


class Invocation:
    """One command on one instance: its status, exit code and outputs."""

    def __init__(self, command: EmulatedCommand, instance_id: str, instance_name: str) -> None:
        self.command = command
        self.instance_id = instance_id
        self.instance_name = instance_name
        self.status = Status.PENDING
        self.details = Details.PENDING
        self.response_code = NOT_STARTED_CODE
        self.started_at: dt.datetime | None = None
        self.ended_at: dt.datetime | None = None
        self.stdout = ""
        self.stderr = ""
        self.stdout_url = ""
        self.stderr_url = ""
        # Owned by the scheduler thread.
        self.process: RunningProcess | None = None
        self.started_monotonic: float | None = None
        self.cancel_requested = False
        self.stop_reason: Details | None = None
        self.spawn_error = ""

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def start(self) -> None:
        self.status, self.details = Status.IN_PROGRESS, Details.IN_PROGRESS
        self.started_at = utcnow()

    def finish(self, status: Status, details: Details, code: int, stdout: str = "", stderr: str = "") -> None:
        self.status, self.details, self.response_code = status, details, code
        self.ended_at = utcnow()
        self.stdout = stdout[:STDOUT_LIMIT]
        self.stderr = stderr[:STDERR_LIMIT]
        bucket = self.command.output_s3_bucket_name
        if bucket and self.started_at is not None:
            base = f"https://s3.{self.command.region}.amazonaws.com/{bucket}/"
            self.stdout_url = base + self.output_key("stdout")
            self.stderr_url = base + self.output_key("stderr")

    def output_key(self, stream: str) -> str:
        """Return the S3 key the agent writes a stream to (`stdout` or `stderr`)."""
        command = self.command
        parts = [command.output_s3_key_prefix.strip("/"), command.command_id, self.instance_id]
        parts += ["awsrunShellScript", "0.awsrunShellScript", stream]
        return "/".join(part for part in parts if part)

    def plugin_output(self) -> str:
        combined = self.stdout + (ERROR_SEPARATOR + self.stderr if self.stderr else "")
        return combined[:PLUGIN_OUTPUT_LIMIT]

    def plugin(self) -> dict[str, Any]:
        command = self.command
        plugin: dict[str, Any] = {
            "Name": PLUGIN_NAME,
            "Status": _PLUGIN_STATUS.get(self.status, self.status),
            "StatusDetails": self.details,
            "ResponseCode": self.response_code,
            "Output": self.plugin_output(),
            "StandardOutputUrl": self.stdout_url,
            "StandardErrorUrl": self.stderr_url,
            "OutputS3Region": command.output_s3_region or command.region,
            "OutputS3BucketName": command.output_s3_bucket_name,
            "OutputS3KeyPrefix": command.output_s3_key_prefix,
        }
        if self.started_at:
            plugin["ResponseStartDateTime"] = self.started_at
        if self.ended_at:
            plugin["ResponseFinishDateTime"] = self.ended_at
        return plugin

    def list_item(self, details: bool) -> dict[str, Any]:
        """Shape a ListCommandInvocations `CommandInvocation`."""
        command = self.command
        return {
            "CommandId": command.command_id,
            "InstanceId": self.instance_id,
            "InstanceName": self.instance_name,
            "Comment": command.comment,
            "DocumentName": command.document_name,
            "DocumentVersion": DOCUMENT_VERSION,
            "RequestedDateTime": command.requested_at,
            "Status": self.status,
            "StatusDetails": self.details,
            "TraceOutput": "",
            "StandardOutputUrl": self.stdout_url,
            "StandardErrorUrl": self.stderr_url,
            "CommandPlugins": [self.plugin()] if details else [],
            "ServiceRole": command.service_role_arn,
            "NotificationConfig": command.notification_config,
            "CloudWatchOutputConfig": command.cloudwatch_output_config,
        }

    def get_result(self) -> dict[str, Any]:
        """Shape a GetCommandInvocation result."""
        command = self.command
        return {
            "CommandId": command.command_id,
            "InstanceId": self.instance_id,
            "Comment": command.comment,
            "DocumentName": command.document_name,
            "DocumentVersion": DOCUMENT_VERSION,
            "PluginName": PLUGIN_NAME,
            "ResponseCode": self.response_code,
            "ExecutionStartDateTime": iso_string(self.started_at),
            "ExecutionElapsedTime": iso_duration(self.started_at, self.ended_at),
            "ExecutionEndDateTime": iso_string(self.ended_at),
            "Status": self.status,
            "StatusDetails": self.details,
            "StandardOutputContent": self.stdout,
            "StandardOutputUrl": self.stdout_url,
            "StandardErrorContent": self.stderr,
            "StandardErrorUrl": self.stderr_url,
            "CloudWatchOutputConfig": command.cloudwatch_output_config,
        }


class EmulatedCommand(Command):
    """A Run Command command whose invocations really run.

    moto's constructor resolves `Targets` against every EC2 instance of the region and adds them
    to `InstanceIds`; the emulator resolves targets itself (managed instances only, tags ANDed)
    and keeps `InstanceIds` as the caller sent them (empty with `Targets`, as AWS does).
    """

    def __init__(
        self,
        account_id: str,
        region: str,
        request: SendCommandRequest,
        target_ids: list[str],
        instance_names: dict[str, str],
        sent_monotonic: float,
        delivery_seconds: float,
        consistency_delay: float,
        resolve_delay: float = 0.0,
    ) -> None:
        super().__init__(
            account_id=account_id,
            comment=request.comment,
            document_name=request.document_name,
            timeout_seconds=request.timeout_seconds,
            instance_ids=list(request.instance_ids),
            max_concurrency=request.max_concurrency,
            max_errors=request.max_errors,
            notification_config=request.notification_config,
            output_s3_bucket_name=request.output_s3_bucket_name,
            output_s3_key_prefix=request.output_s3_key_prefix,
            output_s3_region=request.output_s3_region,
            parameters=request.parameters,
            service_role_arn=request.service_role_arn,
            targets=request.targets,
            backend_region=region,
        )
        self.region = region
        self.request = request
        self.instance_ids = list(request.instance_ids)
        self.notification_config = request.notification_config or {
            "NotificationArn": "",
            "NotificationEvents": [],
            "NotificationType": "",
        }
        self.cloudwatch_output_config = request.cloudwatch_output_config or {
            "CloudWatchLogGroupName": "",
            "CloudWatchOutputEnabled": False,
        }
        self.requested_at = utcnow()
        self.expires_after = self.requested_at + dt.timedelta(seconds=request.timeout_seconds)
        #: Monotonic time after which a Pending invocation is "Delivery Timed Out".
        self.delivery_deadline = sent_monotonic + delivery_seconds
        #: Monotonic time before which the invocations are invisible (consistency delay).
        self.visible_after = sent_monotonic + consistency_delay
        #: Monotonic time before which SSM has not resolved the targets: no invocation exists yet.
        self.resolved_after = sent_monotonic + resolve_delay
        #: Cancelled before its targets were resolved: it never had an invocation.
        self.targets_dropped = False
        self.invocations = [Invocation(self, iid, instance_names.get(iid, "")) for iid in target_ids]
        self.concurrency = resolve_limit(request.max_concurrency, len(target_ids), 1)
        self.error_limit = resolve_limit(request.max_errors, len(target_ids), 0)
        self.cancel_requested = False
        self.seq = 0
        self.status, self.status_details = Status.PENDING, Details.PENDING
        self.error_count = self.completed_count = self.delivery_timed_out_count = 0
        self.target_count = len(target_ids)
        if not target_ids:
            self.status, self.status_details = Status.FAILED, Details.NO_INSTANCES_IN_TAG

    def _get_instance_ids_from_targets(self) -> list[str]:
        return []

    def awaiting_targets(self, now: float | None = None) -> bool:
        """Tell whether SSM has not resolved the targets yet (the resolve delay): no invocation shows."""
        return not self.targets_dropped and (time.monotonic() if now is None else now) < self.resolved_after

    def drop_targets(self) -> None:
        """Cancelled before its targets were resolved: it ends Cancelled, and no host ever gets it."""
        self.targets_dropped = True
        self.invocations = []
        self.target_count = self.completed_count = self.error_count = self.delivery_timed_out_count = 0
        self.status, self.status_details = Status.CANCELLED, Details.CANCELLED

    @property
    def done(self) -> bool:
        return not any(invocation.active for invocation in self.invocations)

    def errors_exceeded(self) -> bool:
        errors = sum(1 for invocation in self.invocations if invocation.details in ERRORS)
        return errors > self.error_limit

    def refresh(self) -> None:
        """Recompute the command's status and counts from its invocations."""
        if not self.invocations:
            return
        counts: dict[str, int] = {}
        for invocation in self.invocations:
            counts[invocation.details] = counts.get(invocation.details, 0) + 1
        self.completed_count = sum(1 for invocation in self.invocations if not invocation.active)
        self.error_count = sum(counts.get(details, 0) for details in ERRORS)
        self.delivery_timed_out_count = counts.get(Details.DELIVERY_TIMED_OUT, 0)
        self.status, self.status_details = self._aggregate(counts)

    def _aggregate(self, counts: dict[str, int]) -> tuple[Status, Details]:
        if self.completed_count < len(self.invocations):
            if self.cancel_requested:
                return Status.CANCELLING, Details.CANCELLING
            if counts.get(Details.PENDING, 0) == len(self.invocations):
                return Status.PENDING, Details.PENDING
            return Status.IN_PROGRESS, Details.IN_PROGRESS
        if counts.get(Details.CANCELLED):
            return Status.CANCELLED, Details.CANCELLED
        if counts.get(Details.SUCCESS, 0) == len(self.invocations):
            return Status.SUCCESS, Details.SUCCESS
        if self.error_count > self.error_limit:
            if counts.get(Details.FAILED, 0) >= counts.get(Details.EXECUTION_TIMED_OUT, 0):
                return Status.FAILED, Details.FAILED
            return Status.TIMED_OUT, Details.EXECUTION_TIMED_OUT
        if self.delivery_timed_out_count > self.error_limit:
            return Status.TIMED_OUT, Details.DELIVERY_TIMED_OUT
        return Status.FAILED, Details.INCOMPLETE

    def response_object(self, sent: bool = False) -> dict[str, Any]:
        """Shape the API's `Command`; `sent=True` for the SendCommand answer (counts not yet known)."""
        by_tag = bool(self.targets)
        # AWS resolves tag targets after answering SendCommand, so it reports 0 targets until then.
        unresolved = (sent and by_tag) or self.awaiting_targets()
        pending = (sent and bool(self.invocations)) or self.awaiting_targets()
        return {
            "CommandId": self.command_id,
            "DocumentName": self.document_name,
            "DocumentVersion": DOCUMENT_VERSION,
            "Comment": self.comment,
            "ExpiresAfter": self.expires_after,
            "Parameters": self.parameters,
            "InstanceIds": self.instance_ids,
            "Targets": self.targets,
            "RequestedDateTime": self.requested_at,
            "Status": Status.PENDING if pending else self.status,
            "StatusDetails": Details.PENDING if pending else self.status_details,
            "OutputS3Region": self.output_s3_region or self.region,
            "OutputS3BucketName": self.output_s3_bucket_name,
            "OutputS3KeyPrefix": self.output_s3_key_prefix,
            "MaxConcurrency": self.max_concurrency,
            "MaxErrors": self.max_errors,
            "TargetCount": 0 if unresolved else self.target_count,
            "CompletedCount": 0 if pending or sent else self.completed_count,
            "ErrorCount": 0 if pending or sent else self.error_count,
            "DeliveryTimedOutCount": 0 if pending or sent else self.delivery_timed_out_count,
            "ServiceRole": self.service_role_arn,
            "NotificationConfig": self.notification_config,
            "CloudWatchOutputConfig": self.cloudwatch_output_config,
            "TimeoutSeconds": self.timeout_seconds,
        }
