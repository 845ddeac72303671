"""Wait for a fleet run in the triggerer: one async loop instead of a worker slot."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import replace
from functools import cached_property, partial
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cots_ssm.hooks.ssm import MAX_OUTPUT_FETCHES, SsmFleetHook, attempts_of, error_text, is_transient
from cots_ssm.status import (
    CommandSummary,
    FailurePolicy,
    FailureTolerance,
    FleetVerdict,
    InvocationResult,
    Outcome,
    check_verdict,
    commands_to_describe,
    with_attempts,
)

try:  # Airflow 3.x keeps the trigger base classes here (3.0.6 to 3.3.x).
    from airflow.triggers.base import BaseTrigger, TriggerEvent
except ImportError:  # pragma: no cover - a later Airflow that moved them into the task SDK
    from airflow.sdk import BaseTrigger, TriggerEvent  # type: ignore[attr-defined,no-redef,unused-ignore]

T = TypeVar("T")


class FleetEvent(enum.StrEnum):
    """The ``status`` of the one event the trigger yields."""

    SUCCEEDED = Outcome.SUCCEEDED.value
    FAILED = Outcome.FAILED.value
    TIMEOUT = "timeout"
    ERROR = "error"


class TransientErrorsExhausted(RuntimeError):
    """A check met more transient AWS errors in a row than it absorbs."""


class SsmFleetTrigger(BaseTrigger):
    """Check every invocation of one or more SSM commands until the fleet verdict is known.

    Runs in the triggerer: no worker slot while it waits, one async loop for the whole wait. Each
    check costs the pages of ListCommandInvocations (50 instances per call) and ListCommands only
    where it can change the verdict (see :func:`cots_ssm.status.commands_to_describe`). It yields
    one event: ``succeeded`` or ``failed`` with the per-instance table and the verdict, ``timeout``
    once ``deadline`` has passed (after cancelling what still runs, if ``cancel_on_timeout``), or
    ``error`` when AWS refuses for good or keeps failing.

    :param command_ids: the command ids to watch, oldest first.
    :param deadline: when to give up, in seconds since the epoch (absolute, so that a triggerer
        restart does not extend the wait).
    :param max_failed_instances: failed instances tolerated, a number or a percentage (default: 0).
    :param failure_policy: ``finish`` or ``cancel`` (see the sensor) (default: ``finish``).
    :param poll_interval: seconds between checks (default: 60).
    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    :param region_name: the AWS region, if not the connection's (default: None).
    :param verify: whether to verify SSL certificates, or a CA bundle path (default: None).
    :param botocore_config: botocore client configuration as a dict (default: None).
    :param output_tail_lines: lines of stdout/stderr kept per instance in the table (default: 20).
    :param cancel_on_timeout: cancel the commands still running at the deadline, or when a user
        kills the deferred task (default: True).
    :param max_consecutive_api_errors: transient AWS errors in a row a check absorbs (default: 5).
    """

    def __init__(
        self,
        *,
        command_ids: Sequence[str],
        deadline: float,
        max_failed_instances: int | str = 0,
        failure_policy: str = FailurePolicy.FINISH.value,
        poll_interval: float = 60,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        output_tail_lines: int = 20,
        cancel_on_timeout: bool = True,
        max_consecutive_api_errors: int = 5,
    ):
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        self.command_ids = list(command_ids)
        self.deadline = float(deadline)
        self.tolerance = FailureTolerance.parse(max_failed_instances)
        self.policy = FailurePolicy.parse(failure_policy)
        self.poll_interval = float(poll_interval)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.output_tail_lines = output_tail_lines
        self.cancel_on_timeout = cancel_on_timeout
        self.max_consecutive_api_errors = max_consecutive_api_errors
        self.attempts: dict[str, int] = {}
        self._client: Any = None
        self._announced: set[tuple[str, str]] = set()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "command_ids": list(self.command_ids),
                "deadline": self.deadline,
                "max_failed_instances": str(self.tolerance),
                "failure_policy": self.policy.value,
                "poll_interval": self.poll_interval,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
                "output_tail_lines": self.output_tail_lines,
                "cancel_on_timeout": self.cancel_on_timeout,
                "max_consecutive_api_errors": self.max_consecutive_api_errors,
            },
        )

    @cached_property
    def hook(self) -> SsmFleetHook:
        return SsmFleetHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=Config(**self.botocore_config) if self.botocore_config else None,
        )

    @contextlib.asynccontextmanager
    async def _open_client(self) -> AsyncIterator[Any]:
        """The client of the running loop if one is open, else a client for this block."""
        if self._client is not None:
            yield self._client
            return
        # get_async_conn() (provider 9.12.0 and later) reads the connection in a thread, then
        # returns aiobotocore's client context; the older `async_conn` property blocks the loop.
        creator = await self.hook.get_async_conn()  # type: ignore[no-untyped-call,unused-ignore]
        async with creator as client:
            self._client = client
            try:
                yield client
            finally:
                self._client = None

    async def _with_retries(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Absorb throttling, 5xx and connection errors, up to ``max_consecutive_api_errors`` in a row."""
        for attempt in range(1, self.max_consecutive_api_errors + 1):
            try:
                return await call()
            except Exception as error:
                if not is_transient(error):
                    raise
                if attempt == self.max_consecutive_api_errors:
                    raise TransientErrorsExhausted(
                        f"{what}: {attempt} transient AWS errors in a row, last: {error}"
                    ) from error
                delay = min(2 ** (attempt - 1), 10)
                self.log.warning(
                    "%s: transient AWS error (%s), attempt %s; retrying in %ss", what, error, attempt, delay
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def read_verdict(self) -> FleetVerdict:
        """Exactly one check, at the AWS-call floor, turned into a fleet verdict."""
        async with self._open_client() as client:
            listed = {}
            for command_id in self.command_ids:
                listed[command_id] = await self._with_retries(
                    f"ListCommandInvocations {command_id}",
                    partial(SsmFleetHook.list_invocations_async, client, command_id),
                )
            items = [item for found in listed.values() for item in found]
            invocations = [InvocationResult.from_api(item) for item in items]
            needed = commands_to_describe(self.command_ids, invocations, self.tolerance, self.policy)
            commands: list[dict[str, Any]] = []
            if needed:
                commands = await self._with_retries(
                    "ListCommands", partial(SsmFleetHook.get_commands_async, client, needed)
                )
        self.attempts = {**self.attempts, **attempts_of(commands), **attempts_of(items)}
        described = {c["CommandId"]: CommandSummary.from_api(c) for c in commands}
        return check_verdict(self.command_ids, invocations, described, self.tolerance, self.policy)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check, log one progress line, sleep; yield one event once the verdict or the deadline is there."""
        async with self._open_client():
            try:
                event = await self._wait()
            except (ClientError, BotoCoreError, TransientErrorsExhausted) as error:
                text = error_text(error) if isinstance(error, ClientError) else str(error)
                event = {
                    "status": FleetEvent.ERROR.value,
                    "message": f"Could not read SSM commands {self.command_ids}: {text}",
                }
            yield TriggerEvent(event)  # type: ignore[no-untyped-call,unused-ignore]

    async def _wait(self) -> dict[str, Any]:
        verdict: FleetVerdict | None = None
        while time.time() < self.deadline:
            verdict = await self.read_verdict()
            self.log.info("%s", verdict.progress_line())
            self._log_newly_finished(verdict)
            if verdict.outcome is not Outcome.RUNNING:
                return await self._finished(verdict)
            await asyncio.sleep(max(0.0, min(self.poll_interval, self.deadline - time.time())))
        cancelled = await self._cancel_running("the sensor timed out") if self.cancel_on_timeout else []
        return {
            "status": FleetEvent.TIMEOUT.value,
            "deadline": self.deadline,
            "cancelled": cancelled,
            "verdict": verdict.summary() if verdict else None,
        }

    async def _finished(self, verdict: FleetVerdict) -> dict[str, Any]:
        cancelled: list[str] = []
        if verdict.failed or verdict.problems:
            verdict = await self._with_full_output(verdict)
        if verdict.outcome is Outcome.FAILED and verdict.running:
            cancelled = await self._cancel_running(
                "more instances failed than tolerated (failure_policy=cancel)"
            )
        return {
            "status": verdict.outcome.value,
            "results": with_attempts(verdict.table(tail_lines=self.output_tail_lines), self.attempts),
            "verdict": verdict.summary(),
            "failure_summary": verdict.failure_summary() if verdict.outcome is Outcome.FAILED else "",
            "cancelled": cancelled,
        }

    async def on_kill(self) -> None:
        """Cancel what still runs when a user marks, clears or fails the deferred task.

        The triggerer calls it only for such a user action (Airflow 3.3; 3.0.6 has no such call), never
        when it restarts or hands the trigger to another triggerer: the wait then goes on there.
        """
        if self.cancel_on_timeout:
            await self._cancel_running("the task was killed while deferred")

    def _log_newly_finished(self, verdict: FleetVerdict) -> None:
        for invocation in verdict.finished:
            key = (invocation.command_id, invocation.instance_id)
            if key not in self._announced:
                self._announced.add(key)
                self.log.info("Finished: %s", invocation.describe())

    async def _with_full_output(self, verdict: FleetVerdict) -> FleetVerdict:
        """Read stdout/stderr of failed instances in full, for at most ``MAX_OUTPUT_FETCHES`` of them."""
        enriched = []
        fetched = 0
        async with self._open_client() as client:
            for invocation in verdict.invocations:
                if invocation.failed and fetched < MAX_OUTPUT_FETCHES:
                    fetched += 1
                    try:
                        answer = await self._with_retries(
                            f"GetCommandInvocation {invocation.instance_id}",
                            partial(
                                SsmFleetHook.get_invocation_async,
                                client,
                                invocation.command_id,
                                invocation.instance_id,
                            ),
                        )
                        invocation = invocation.with_full_output(answer)
                    except (ClientError, BotoCoreError, TransientErrorsExhausted) as error:
                        self.log.warning("Could not read the output of %s: %s", invocation.instance_id, error)
                enriched.append(invocation)
        return replace(verdict, invocations=tuple(enriched))

    async def _cancel_running(self, reason: str) -> list[str]:
        """Cancel every watched command still running; returns the ids cancelled (errors are logged)."""
        try:
            async with self._open_client() as client:
                cancelled = await SsmFleetHook.cancel_running_async(client, self.command_ids)
        except (ClientError, BotoCoreError) as error:
            self.log.error("Could not cancel commands %s (%s): %s", self.command_ids, reason, error)
            return []
        for command_id in cancelled:
            self.log.warning("Cancelled command %s because %s", command_id, reason)
        return cancelled
