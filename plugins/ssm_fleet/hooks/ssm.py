"""The SSM hook of the fleet runner: every page, every instance, and cancel."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.ssm import SsmHook
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)

from ssm_fleet.plan import run_commands
from ssm_fleet.status import LIVE_STATUSES, is_running, read_status
from ssm_fleet.validation import MAX_INSTANCE_IDS_PER_COMMAND

#: Error codes that say "try again later", never "this failed".
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

#: What ListCommands answers for a command id it does not know (yet: its reads lag SendCommand).
NOT_LISTED_YET = "InvalidCommandId"

THROTTLING_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
    }
)

#: Retries botocore does inside each read call before our own handling sees an error. SendCommand
#: is never retried by botocore: it has no idempotency token (see ``SsmFleetHook.send_command_once``).
DEFAULT_BOTOCORE_CONFIG: dict[str, Any] = {"retries": {"mode": "adaptive", "max_attempts": 8}}
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})


class SendOutcome(enum.StrEnum):
    """What a failed write tells about what AWS did (STYLE: refused, lost, denied)."""

    #: Throttled, or the connection was never made: nothing ran; sending again is safe.
    NOT_SENT = "not sent"
    #: A 5xx, a read timeout or a connection closed after the request went out: AWS may have acted.
    AMBIGUOUS = "ambiguous"
    #: Refused for good (access denied, invalid instance, ...): sending again changes nothing.
    REFUSED = "refused"


def send_outcome(error: BaseException) -> SendOutcome:
    """Classify an error of a write call such as SendCommand."""
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError)):
        return SendOutcome.NOT_SENT
    if isinstance(error, (ReadTimeoutError, HTTPClientError, ConnectionError)):
        return SendOutcome.AMBIGUOUS
    if isinstance(error, ClientError):
        if error_code(error) in THROTTLING_ERROR_CODES:
            return SendOutcome.NOT_SENT
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if status >= 500 or error_code(error) in TRANSIENT_ERROR_CODES:
            return SendOutcome.AMBIGUOUS
    return SendOutcome.REFUSED


def error_text(error: BaseException) -> str:
    """``Code: message`` of an AWS error, or the exception text."""
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code', '')}: {info.get('Message', '')}".strip(": ")
    return f"{type(error).__name__}: {error}"


def aws_time(moment: datetime) -> str:
    """A ListCommands time filter: always UTC, whatever the zone of ``moment`` (naive means UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_transient(error: BaseException) -> bool:
    """Whether an AWS call error is throttling, a 5xx or a connection problem (dropped ones included)."""
    if isinstance(error, (ConnectionError, ConnectTimeoutError, ReadTimeoutError, HTTPClientError)):
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return code in TRANSIENT_ERROR_CODES or status >= 500
    return False


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ``ClientError`` (empty for any other error)."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


@dataclass(frozen=True)
class CancelReport:
    """What a cleanup found and did.

    :param found: every command id of the run that was looked at.
    :param cancelled: the ids it asked SSM to cancel (they were still running).
    :param live: of those, the ones still pending or in progress (not already being cancelled).
    :param failed: ``"<command id>: <AWS error>"`` for each cancel that failed.
    """

    found: tuple[str, ...] = ()
    cancelled: tuple[str, ...] = ()
    live: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()

    def merged(self, later: CancelReport) -> CancelReport:
        """The union of this report and a later look-up's, each id once."""

        def union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
            return tuple(dict.fromkeys([*a, *b]))

        return CancelReport(
            union(self.found, later.found),
            union(self.cancelled, later.cancelled),
            union(self.live, later.live),
            later.failed,
        )


class SsmFleetHook(SsmHook):
    """SSM Run Command across a fleet: chunked sends, all pages of every listing, cancel.

    Uses only what ``apache-airflow-providers-amazon`` 9.12.0 offers (the ``SsmHook`` client, and
    ``get_async_conn()`` for the async reads of the deferrable trigger), so it runs on every
    Airflow 3 version of Amazon MWAA.

    :param aws_conn_id: the Airflow AWS connection (an ``endpoint_url`` in its extra points every
        call at a local emulator). Other arguments are those of ``AwsBaseHook``.
    """

    @cached_property
    def _send_client(self) -> Any:
        base = self.config
        return self.get_client_type(
            region_name=self.region_name, config=base.merge(NO_RETRIES) if base else NO_RETRIES
        )

    def send_command_once(self, **kwargs: Any) -> dict[str, Any]:
        """Exactly one SendCommand request, never retried by botocore; returns its ``Command``.

        SendCommand has no idempotency token: a retry after a lost answer would run the batch twice.
        The caller decides, from :func:`send_outcome`, whether to look before sending again.
        """
        command: dict[str, Any] = self._send_client.send_command(**kwargs)["Command"]
        return command

    def list_commands_since(
        self, invoked_after: datetime, document_name: str | None = None
    ) -> list[dict[str, Any]]:
        """Every command invoked after ``invoked_after`` (all pages), optionally of one document."""
        filters = [{"key": "InvokedAfter", "value": aws_time(invoked_after)}]
        if document_name:
            filters.append({"key": "DocumentName", "value": document_name})
        return self._all_pages("list_commands", "Commands", Filters=filters)

    def find_run_commands(
        self, digest: str, invoked_after: datetime, document_name: str | None = None
    ) -> list[dict[str, Any]]:
        """Every command carrying the run token ``digest`` (all attempts), found through ListCommands."""
        return [dict(c) for c in run_commands(digest, self.list_commands_since(invoked_after, document_name))]

    def get_commands(self, command_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The ``Command`` of each id SSM lists, in the order given (one not listed yet is left out).

        SSM's reads lag its writes: a command just sent may be unknown to ListCommands for a while
        (an empty list, or ``InvalidCommandId``); it is left out, never taken as an error.
        """
        found: list[dict[str, Any]] = []
        for command_id in command_ids:
            try:
                found += self.conn.list_commands(CommandId=command_id).get("Commands") or ()
            except ClientError as error:
                if error_code(error) != NOT_LISTED_YET:
                    raise
        return found

    def list_invocations(self, command_id: str, *, details: bool = True) -> list[dict[str, Any]]:
        """Every invocation of a command, across all pages (50 per page)."""
        return self._all_pages(
            "list_command_invocations", "CommandInvocations", CommandId=command_id, Details=details
        )

    def get_invocation(self, command_id: str, instance_id: str) -> dict[str, Any]:
        """GetCommandInvocation: stdout up to 24,000 chars and stderr up to 8,000."""
        invocation: dict[str, Any] = self.conn.get_command_invocation(
            CommandId=command_id, InstanceId=instance_id
        )
        return invocation

    def cancel_command(self, command_id: str, instance_ids: Sequence[str] | None = None) -> None:
        """Ask SSM to cancel a command, on some instances or on all of them."""
        kwargs: dict[str, Any] = {"CommandId": command_id}
        if instance_ids:
            kwargs["InstanceIds"] = list(instance_ids)
        self.conn.cancel_command(**kwargs)

    def cancel_running(self, command_ids: Sequence[str]) -> list[str]:
        """Cancel those of ``command_ids`` that are still running; returns the ids cancelled."""
        running = [
            c["CommandId"] for c in self.get_commands(command_ids) if is_running(read_status(c.get("Status")))
        ]
        for command_id in running:
            self.cancel_command(command_id)
        return running

    def cancel_run(
        self,
        digest: str,
        invoked_after: datetime,
        document_name: str | None = None,
        known_ids: Iterable[str] = (),
    ) -> CancelReport:
        """Cancel every command of a run still running, found by token (and ``known_ids``, if any).

        Every cancel is tried even when one fails; the failures are reported, not raised.
        """
        commands = {c["CommandId"]: c for c in self.find_run_commands(digest, invoked_after, document_name)}
        missing = [cid for cid in dict.fromkeys(known_ids) if cid not in commands]
        commands.update({c["CommandId"]: c for c in self.get_commands(missing)} if missing else {})
        cancelled, live, failed = [], [], []
        for command_id, command in commands.items():
            status = read_status(command.get("Status"))
            if not is_running(status):
                continue
            try:
                self.cancel_command(command_id)
            except (ClientError, BotoCoreError) as error:
                failed.append(f"{command_id}: {error_text(error)}")
                continue
            cancelled.append(command_id)
            if status in LIVE_STATUSES:
                live.append(command_id)
        return CancelReport(tuple(commands), tuple(cancelled), tuple(live), tuple(failed))

    def describe_instances(
        self,
        *,
        instance_ids: Sequence[str] | None = None,
        tags: Mapping[str, Sequence[str]] | None = None,
    ) -> list[dict[str, Any]]:
        """DescribeInstanceInformation for some ids or for tag matches, across all pages."""
        if tags:
            filters = [{"Key": f"tag:{k}", "Values": list(v)} for k, v in tags.items()]
            return self._all_pages(
                "describe_instance_information", "InstanceInformationList", Filters=filters
            )
        found: list[dict[str, Any]] = []
        ids = list(instance_ids or ())
        for start in range(0, len(ids), MAX_INSTANCE_IDS_PER_COMMAND):
            chunk = ids[start : start + MAX_INSTANCE_IDS_PER_COMMAND]
            filters = [{"Key": "InstanceIds", "Values": chunk}]
            found += self._all_pages(
                "describe_instance_information", "InstanceInformationList", Filters=filters
            )
        return found

    def _all_pages(self, operation: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
        paginator = self.conn.get_paginator(operation)
        return [item for page in paginator.paginate(**kwargs) for item in page.get(key, [])]

    # -- async (the deferrable trigger): each takes a client of ``await hook.get_async_conn()`` -----------
    @staticmethod
    async def list_invocations_async(client: Any, command_id: str) -> list[dict[str, Any]]:
        """Every invocation of a command, across all pages (50 per page), with details."""
        pages = client.get_paginator("list_command_invocations").paginate(CommandId=command_id, Details=True)
        return [item async for page in pages for item in page.get("CommandInvocations", [])]

    @staticmethod
    async def get_commands_async(client: Any, command_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The ``Command`` of each id SSM lists, in the order given (one ListCommands call each)."""
        found: list[dict[str, Any]] = []
        for command_id in command_ids:
            try:
                found += (await client.list_commands(CommandId=command_id)).get("Commands") or ()
            except ClientError as error:
                if error_code(error) != NOT_LISTED_YET:
                    raise
        return found

    @staticmethod
    async def get_invocation_async(client: Any, command_id: str, instance_id: str) -> dict[str, Any]:
        """GetCommandInvocation: stdout up to 24,000 chars and stderr up to 8,000."""
        answer: dict[str, Any] = await client.get_command_invocation(
            CommandId=command_id, InstanceId=instance_id
        )
        return answer

    @classmethod
    async def cancel_running_async(cls, client: Any, command_ids: Sequence[str]) -> list[str]:
        """Cancel those of ``command_ids`` that are still running; returns the ids cancelled."""
        commands = await cls.get_commands_async(client, command_ids)
        running = [c["CommandId"] for c in commands if is_running(read_status(c.get("Status")))]
        for command_id in running:
            await client.cancel_command(CommandId=command_id)
        return running
