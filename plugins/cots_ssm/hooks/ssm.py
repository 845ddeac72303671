"""The SSM hook of the fleet runner: every page, every instance, and cancel."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow.providers.amazon.aws.hooks.ssm import SsmHook
from botocore.exceptions import ClientError, ConnectionError, ConnectTimeoutError, ReadTimeoutError

from cots_ssm.status import is_running, parse_status
from cots_ssm.validation import MAX_INSTANCE_IDS_PER_COMMAND

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

#: Retries botocore does inside each call before our own handling sees an error.
DEFAULT_BOTOCORE_CONFIG: dict[str, Any] = {"retries": {"mode": "adaptive", "max_attempts": 8}}


def is_transient(error: BaseException) -> bool:
    """Whether an AWS call error is throttling, a 5xx or a connection problem."""
    if isinstance(error, (ConnectionError, ConnectTimeoutError, ReadTimeoutError)):
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return code in TRANSIENT_ERROR_CODES or status >= 500
    return False


def error_code(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


class SsmFleetHook(SsmHook):
    """SSM Run Command across a fleet: chunked sends, all pages of every listing, cancel.

    Uses only what ``apache-airflow-providers-amazon`` 9.12.0 offers (the ``SsmHook`` client), so it
    runs on every Airflow 3 version of Amazon MWAA.

    :param aws_conn_id: the Airflow AWS connection (an ``endpoint_url`` in its extra points every
        call at a local emulator). Other arguments are those of ``AwsBaseHook``.
    """

    def send_command(self, **kwargs: Any) -> dict[str, Any]:
        """One SendCommand call; returns its ``Command``."""
        command: dict[str, Any] = self.conn.send_command(**kwargs)["Command"]
        return command

    def list_commands_since(
        self, invoked_after: datetime, document_name: str | None = None
    ) -> list[dict[str, Any]]:
        """Every command invoked after ``invoked_after`` (all pages), optionally of one document."""
        filters = [{"key": "InvokedAfter", "value": invoked_after.strftime("%Y-%m-%dT%H:%M:%SZ")}]
        if document_name:
            filters.append({"key": "DocumentName", "value": document_name})
        return self._all_pages("list_commands", "Commands", Filters=filters)

    def get_commands(self, command_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The ``Command`` of each id, in the order given."""
        return [self.conn.list_commands(CommandId=cid)["Commands"][0] for cid in command_ids]

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
            c["CommandId"] for c in self.get_commands(command_ids) if is_running(parse_status(c["Status"]))
        ]
        for command_id in running:
            self.cancel_command(command_id)
        return running

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
