"""SSM answers read into values: one invocation of a command on a host, and one command.

Pure Python with no Airflow import. Every answer of ListCommandInvocations, GetCommandInvocation,
ListCommands and SendCommand is read here, defensively: a status SSM adds tomorrow becomes
:attr:`~ssm_fleet.status.Status.UNKNOWN` (reported as such), missing keys are empty values, and the
step of a multi-step document that speaks for the host is the one that failed, else the last.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ssm_fleet.plan import parse_token
from ssm_fleet.status import (
    CANCELLED_STATUSES,
    Status,
    is_failure,
    is_running,
    read_status,
)

# Details=True output of ListCommandInvocations joins stdout and stderr with this marker.
_ERROR_MARKER = re.compile(r"\n?-{5,}ERROR-{5,}\n?")


def split_plugin_output(output: str | None) -> tuple[str, str]:
    """Split a ``CommandPlugins[].Output`` (at most 2,500 chars) into its stdout and stderr parts."""
    if not output:
        return "", ""
    parts = _ERROR_MARKER.split(output, maxsplit=1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def _exit_code(code: Any, status: Status) -> int | None:
    """SSM's ``ResponseCode`` as an exit code; -1 means none (still running, or never started)."""
    try:
        number = int(code)
    except (TypeError, ValueError):
        return None
    if number == -1 or is_running(status):
        return None
    return number


def speaking_plugin(plugins: Sequence[Mapping[str, Any]] | None) -> Mapping[str, Any]:
    """The step of a document that speaks for the host: the first that failed, else the last one.

    A multi-step document stops at its first failed step; the later steps are skipped (``Success``
    with no output on some agents), so the last step alone would hide the failure.
    """
    steps = [step for step in plugins or () if isinstance(step, Mapping)]
    for step in steps:
        if is_failure(read_status(step.get("Status"))):
            return step
    return steps[-1] if steps else {}


def _attempt(comment: object) -> tuple[int, int, int]:
    token = parse_token(str(comment or ""))
    return (token.attempt, token.chunk, token.resend) if token else (1, 0, 0)


@dataclass(frozen=True)
class InvocationResult:
    """What one instance did for one command.

    :param command_id: the SSM command id.
    :param instance_id: the managed instance the invocation ran on.
    :param status: the invocation :class:`~ssm_fleet.status.Status` (``UNKNOWN`` if SSM's is new).
    :param status_details: the invocation ``StatusDetails`` as SSM spells it (for an unknown status,
        SSM's own status text).
    :param exit_code: the script's exit code (``ResponseCode``); ``None`` while not finished.
    :param instance_name: the instance's computer name, when SSM gives it.
    :param requested_at: when SSM accepted the command for this instance.
    :param started_at: when the script started on the instance.
    :param finished_at: when the script ended.
    :param stdout: the end of standard output that SSM returned.
    :param stderr: the end of standard error that SSM returned.
    :param stdout_url: the S3 URL of the full standard output, if S3 output is on.
    :param stderr_url: the S3 URL of the full standard error, if S3 output is on.
    :param attempt: the attempt of the run that sent the command (its token; 1 when it has none).
    :param chunk: the chunk of that attempt (its token; 0 when it has none).
    :param resend: which automatic re-send of the host within the attempt this is (0: none).
    """

    command_id: str
    instance_id: str
    status: Status
    status_details: str
    exit_code: int | None = None
    instance_name: str = ""
    requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_url: str = ""
    stderr_url: str = ""
    attempt: int = 1
    chunk: int = 0
    resend: int = 0

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> InvocationResult:
        """Build from one ``CommandInvocations`` item of ListCommandInvocations (``Details`` on or off)."""
        plugin = speaking_plugin(item.get("CommandPlugins"))
        stdout, stderr = split_plugin_output(plugin.get("Output"))
        raw = item.get("Status")
        status = read_status(raw)
        details = str(item.get("StatusDetails") or raw or "")
        if status is Status.UNKNOWN:
            details = f"SSM status {raw!r}, unknown to this package"
        attempt, chunk, resend = _attempt(item.get("Comment"))
        return cls(
            command_id=str(item.get("CommandId") or ""),
            instance_id=str(item.get("InstanceId") or ""),
            status=status,
            status_details=details or status.value,
            exit_code=_exit_code(plugin.get("ResponseCode"), status),
            instance_name=item.get("InstanceName") or "",
            requested_at=item.get("RequestedDateTime"),
            started_at=plugin.get("ResponseStartDateTime"),
            finished_at=plugin.get("ResponseFinishDateTime"),
            stdout=stdout,
            stderr=stderr,
            stdout_url=item.get("StandardOutputUrl") or plugin.get("StandardOutputUrl") or "",
            stderr_url=item.get("StandardErrorUrl") or plugin.get("StandardErrorUrl") or "",
            attempt=attempt,
            chunk=chunk,
            resend=resend,
        )

    def with_full_output(self, invocation: Mapping[str, Any]) -> InvocationResult:
        """Take the longer outputs of a GetCommandInvocation answer (24,000 / 8,000 chars)."""
        code = invocation.get("ResponseCode")
        return replace(
            self,
            stdout=invocation.get("StandardOutputContent") or self.stdout,
            stderr=invocation.get("StandardErrorContent") or self.stderr,
            exit_code=self.exit_code if self.exit_code is not None else _exit_code(code, self.status),
        )

    @property
    def finished(self) -> bool:
        """Whether the invocation ended (any status but a running one)."""
        return not is_running(self.status)

    @property
    def failed(self) -> bool:
        """Whether the invocation ended in a failure status."""
        return is_failure(self.status)

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start to end of the script (``None`` until both are known)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - self.started_at).total_seconds())


@dataclass(frozen=True)
class CommandSummary:
    """What SSM says of one command as a whole.

    :param command_id: the SSM command id.
    :param status: the command :class:`~ssm_fleet.status.Status`.
    :param status_details: the command ``StatusDetails``.
    :param target_count: how many instances SSM resolved the command to (0 until it knows).
    :param instance_ids: the instance ids the command was sent to (empty for tag targets).
    :param attempt: the attempt of the run that sent it (its token; 1 when it has none).
    :param chunk: the chunk of that attempt (its token; 0 when it has none).
    :param requested_at: when SSM accepted it, as SSM gave it (orders two sends of one chunk).
    :param by_tag: whether it targets tags (``Targets``) rather than instance ids.
    :param resend: which automatic re-send of its one host this is (0: not a re-send).
    """

    command_id: str
    status: Status
    status_details: str
    target_count: int = 0
    instance_ids: tuple[str, ...] = ()
    attempt: int = 1
    chunk: int = 0
    requested_at: str = ""
    by_tag: bool = False
    resend: int = 0

    @classmethod
    def from_api(cls, command: Mapping[str, Any]) -> CommandSummary:
        """Build from a ``Command`` of SendCommand or ListCommands."""
        status = read_status(command.get("Status"))
        attempt, chunk, resend = _attempt(command.get("Comment"))
        try:
            target_count = int(command.get("TargetCount") or 0)
        except (TypeError, ValueError):
            target_count = 0
        return cls(
            command_id=str(command.get("CommandId") or ""),
            status=status,
            status_details=str(command.get("StatusDetails") or command.get("Status") or status.value),
            target_count=target_count,
            instance_ids=tuple(command.get("InstanceIds") or ()),
            attempt=attempt,
            chunk=chunk,
            requested_at=str(command.get("RequestedDateTime") or ""),
            by_tag=bool(command.get("Targets")) and not command.get("InstanceIds"),
            resend=resend,
        )

    @classmethod
    def running(cls, command_id: str, attempt: int = 1, chunk: int = 0, resend: int = 0) -> CommandSummary:
        """A command known only through invocations of which some still run (or not listed yet)."""
        return cls(
            command_id,
            Status.IN_PROGRESS,
            Status.IN_PROGRESS.value,
            attempt=attempt,
            chunk=chunk,
            resend=resend,
        )

    @property
    def expected_count(self) -> int:
        """How many invocations the command will have: its target count or its instance ids."""
        return max(self.target_count, len(self.instance_ids))

    @property
    def cancelled(self) -> bool:
        """Cancelled, or being cancelled: such a command never speaks for its instances over another."""
        return self.status in CANCELLED_STATUSES
