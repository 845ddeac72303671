"""Wait for a fleet run in the triggerer: one async loop instead of a worker slot.

Over 350 lines for a reason: the asynchronous carrier of the shared check's requests, and the
on_kill decision (stop the fleet or keep it for a Clear), belong to the one trigger.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from functools import cached_property, partial
from typing import Any, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ssm_fleet.check import (
    CancelCommands,
    CheckResult,
    CheckStatus,
    DescribeCommands,
    DescribeInstances,
    FindRunCommands,
    GetOutput,
    ListInvocations,
    Request,
    Resend,
    WaitSpec,
    fleet_check,
    read_verdict,
    retry_delay,
)
from ssm_fleet.hooks.ssm import SsmFleetHook, error_text, is_transient
from ssm_fleet.render import describe, progress_line
from ssm_fleet.resend import ResendPolicy
from ssm_fleet.send import ResendRequests
from ssm_fleet.verdict import FailurePolicy, FailureTolerance, FleetVerdict

try:  # Airflow 3.x keeps the trigger base classes here (3.0.6 to 3.3.x).
    from airflow.triggers.base import BaseTrigger, TriggerEvent
except ImportError:  # pragma: no cover - a later Airflow that moved them into the task SDK
    from airflow.sdk import BaseTrigger, TriggerEvent  # type: ignore[attr-defined,no-redef,unused-ignore]

T = TypeVar("T")
R = TypeVar("R")

#: Task states after which a killed wait's fleet must stop: the user failed or stopped the run. A
#: cleared task (no state, scheduled, queued, restarting) or one marked success keeps its batch.
STOPPED_TASK_STATES = frozenset({"failed", "upstream_failed", "skipped", "removed"})


def stops_the_fleet(task_state: str | None, run_state: str | None) -> bool:
    """Whether a user action on a deferred wait, as Airflow recorded it, must stop its fleet.

    Failed, skipped or removed (the task), or a failed run: the user stopped the run. Anything
    else (no state, scheduled, queued, restarting: a Clear; success: marked done) keeps the batch.
    """
    return task_state in STOPPED_TASK_STATES or run_state == "failed"


#: Decisions of killed triggers still running (a reference keeps each one from being collected).
_DECISIONS: set[asyncio.Task[None]] = set()


class TransientErrorsExhausted(RuntimeError):
    """A check met more transient AWS errors in a row than it absorbs."""


class SsmFleetTrigger(BaseTrigger):
    """Check every host of a fleet run until the verdict over hosts is known.

    Runs in the triggerer: no worker slot while it waits, one async loop for the whole wait. Each
    check is :func:`ssm_fleet.check.fleet_check`, the sensor's own, carried out with the async
    client: the pages of ListCommandInvocations (50 hosts per call) and ListCommands only where it
    can change the verdict. It yields one event: ``succeeded`` or ``failed`` with the per-host table
    and the verdict, ``timeout`` once ``deadline`` has passed and one last read still finds hosts
    running (after cancelling them, if ``cancel_on_timeout``), or ``error`` when AWS refuses for
    good or keeps failing.

    :param command_ids: the command ids to watch, oldest first.
    :param deadline: when to give up, in seconds since the epoch (absolute, so that a triggerer
        restart does not extend the wait).
    :param gone: hosts that left the fleet: named, not counted (default: none).
    :param attempt: the run's attempt, stamped on the event (default: None).
    :param max_failed_instances: failed hosts tolerated, a number or a percentage (default: 0).
    :param failure_policy: ``finish`` or ``cancel`` (see the sensor) (default: ``finish``).
    :param poll_interval: seconds between checks (default: 60).
    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    :param region_name: the AWS region, if not the connection's (default: None).
    :param verify: whether to verify SSL certificates, or a CA bundle path (default: None).
    :param botocore_config: botocore client configuration as a dict (default: None).
    :param output_tail_lines: lines of stdout/stderr kept per host in the table (default: 20).
    :param cancel_on_timeout: cancel the commands still running at the deadline, or when a user
        fails or stops the deferred task (never when the task is cleared) (default: True).
    :param max_consecutive_api_errors: transient AWS errors in a row a check absorbs (default: 5).
    :param resend: the wait's re-send policy as :meth:`~ssm_fleet.resend.ResendPolicy.to_dict` gives
        it (default: None, never). Its requests (ListCommands by token, DescribeInstanceInformation,
        SendCommand) go through the sensor's own synchronous code, in a thread.
    """

    def __init__(
        self,
        *,
        command_ids: Sequence[str],
        deadline: float,
        gone: Sequence[str] = (),
        attempt: int | None = None,
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
        resend: dict[str, Any] | None = None,
    ):
        super().__init__()  # type: ignore[no-untyped-call,unused-ignore]
        self.spec = WaitSpec(
            command_ids=tuple(command_ids),
            tolerance=FailureTolerance.parse(max_failed_instances),
            policy=FailurePolicy.parse(failure_policy),
            gone=tuple(gone),
            attempt=attempt,
            output_tail_lines=output_tail_lines,
            cancel_on_timeout=cancel_on_timeout,
            resend=ResendPolicy.from_dict(resend),
        )
        self.deadline = float(deadline)
        self.poll_interval = float(poll_interval)
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.max_consecutive_api_errors = max_consecutive_api_errors
        self._client: Any = None
        self._announced: set[tuple[str, str]] = set()

    @property
    def command_ids(self) -> list[str]:
        """The commands the trigger watches."""
        return list(self.spec.command_ids)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and keyword arguments, for the triggerer to build the trigger again."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "command_ids": list(self.spec.command_ids),
                "deadline": self.deadline,
                "gone": list(self.spec.gone),
                "attempt": self.spec.attempt,
                "max_failed_instances": str(self.spec.tolerance),
                "failure_policy": self.spec.policy.value,
                "poll_interval": self.poll_interval,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
                "output_tail_lines": self.spec.output_tail_lines,
                "cancel_on_timeout": self.spec.cancel_on_timeout,
                "max_consecutive_api_errors": self.max_consecutive_api_errors,
                "resend": self.spec.resend.to_dict() if self.spec.resend else None,
            },
        )

    @cached_property
    def hook(self) -> SsmFleetHook:
        """The SSM hook of the trigger's connection and region."""
        return SsmFleetHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=Config(**self.botocore_config) if self.botocore_config else None,
        )

    @cached_property
    def _resender(self) -> ResendRequests:
        return ResendRequests(self.hook, self.log)

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

    # -- one check, carried out asynchronously --------------------------------------------------------------
    async def check(self, *, timed_out: bool = False) -> CheckResult:
        """Exactly one check (:func:`~ssm_fleet.check.fleet_check`), with the async client."""
        async with self._open_client() as client:
            return await self._drive(fleet_check(self.spec, timed_out=timed_out, now=time.time()), client)

    async def read_verdict(self) -> FleetVerdict:
        """One read of the fleet at the AWS-call floor, turned into the verdict over hosts (no action)."""
        async with self._open_client() as client:
            return await self._drive(read_verdict(self.spec), client)

    async def _drive(self, check: Generator[Request, Any, R], client: Any) -> R:
        try:
            request = next(check)
            while True:
                request = check.send(await self._answer(request, client))
        except StopIteration as done:
            result: R = done.value
            return result

    async def _answer(self, request: Request, client: Any) -> Any:
        if isinstance(request, ListInvocations):
            listing = partial(SsmFleetHook.list_invocations_async, client, request.command_id)
            return await self._with_retries(f"ListCommandInvocations {request.command_id}", listing)
        if isinstance(request, DescribeCommands):
            describing = partial(SsmFleetHook.get_commands_async, client, request.command_ids)
            return await self._with_retries("ListCommands", describing)
        if isinstance(request, (FindRunCommands, DescribeInstances)):
            reading = partial(asyncio.to_thread, self._resender, request)
            return await self._with_retries(type(request).__name__, reading)
        if isinstance(request, Resend):
            return await asyncio.to_thread(self._resender, request)
        if isinstance(request, GetOutput):
            ids = (request.command_id, request.instance_id)
            reading = partial(SsmFleetHook.get_invocation_async, client, *ids)
            try:
                return await self._with_retries(f"GetCommandInvocation {request.instance_id}", reading)
            except (ClientError, BotoCoreError, TransientErrorsExhausted) as error:
                self.log.warning("Could not read the output of %s: %s", request.instance_id, error)
                return None
        return await self._cancel(request, client)

    async def _cancel(self, request: CancelCommands, client: Any) -> list[str]:
        try:
            cancelled = await SsmFleetHook.cancel_running_async(client, request.command_ids)
        except (ClientError, BotoCoreError) as error:
            self.log.error(
                "Could not cancel commands %s (%s): %s", request.command_ids, request.reason, error
            )
            return []
        for command_id in cancelled:
            self.log.warning("Cancelled command %s because %s", command_id, request.reason)
        return cancelled

    async def _with_retries(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Absorb throttling, 5xx and connection errors, up to ``max_consecutive_api_errors`` in a row."""
        errors = 0
        while True:
            try:
                return await call()
            except Exception as error:
                errors += 1
                delay = retry_delay(is_transient(error), errors, self.max_consecutive_api_errors)
                if delay is None and is_transient(error):
                    raise TransientErrorsExhausted(
                        f"{what}: {errors} transient AWS errors in a row, last: {error}"
                    ) from error
                if delay is None:
                    raise
                self.log.warning(
                    "%s: transient AWS error (%s), %s in a row; retrying in %ss", what, error, errors, delay
                )
                await asyncio.sleep(delay)

    # -- the wait ------------------------------------------------------------------------------------------
    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Check, log one progress line, sleep; yield one event once the verdict (or the timeout) is there."""
        async with self._open_client():
            try:
                event = await self._wait()
            except (ClientError, BotoCoreError, TransientErrorsExhausted) as error:
                text = error_text(error) if isinstance(error, ClientError) else str(error)
                event = {
                    "status": CheckStatus.ERROR.value,
                    "attempt": self.spec.attempt,
                    "message": f"Could not read SSM commands {list(self.spec.command_ids)}: {text}",
                }
            yield TriggerEvent(event)  # type: ignore[no-untyped-call,unused-ignore]

    async def _wait(self) -> dict[str, Any]:
        while True:
            result = await self.check(timed_out=time.time() >= self.deadline)
            for line in result.resent:
                self.log.warning("%s", line)
            self.log.info("%s", progress_line(result.verdict))
            for invocation in result.verdict.finished:
                key = (invocation.command_id, invocation.instance_id)
                if key not in self._announced:
                    self._announced.add(key)
                    self.log.info("Finished: %s", describe(invocation))
            if result.status is not CheckStatus.RUNNING:
                return result.payload(self.spec)
            await asyncio.sleep(max(0.0, min(self.poll_interval, self.deadline - time.time())))

    async def on_kill(self) -> None:
        """Cancel what still runs when a user fails or stops the deferred task, never when it is cleared.

        The triggerer calls it for any user action on the task (Airflow 3.3; 3.0.6 has no such
        call): a Clear too. What Airflow recorded tells them apart: the task's state (failed,
        skipped...) or its run's (failed). Cleared, the task is queued again and its next
        attempt adopts the hosts still running. When the states cannot be read, nothing is
        cancelled: the run's teardown cancels what a failed run leaves.
        """
        if not self.spec.cancel_on_timeout:
            return
        # The triggerer cancels a killed trigger's task again at each of its loops (about every
        # second), cutting short anything slower in here, and reading the task's state goes through
        # the supervisor to the API server. So the decision runs as a task of its own, which the
        # next cancel cannot reach.
        decision = asyncio.get_running_loop().create_task(self._stop_unless_cleared())
        _DECISIONS.add(decision)
        decision.add_done_callback(_DECISIONS.discard)
        await asyncio.shield(decision)

    async def _stop_unless_cleared(self) -> None:
        states = await self._recorded_states()
        if states is None:
            self.log.warning("Killed while deferred, but the task's state is unknown: not cancelling")
            return
        task_state, run_state = states
        if stops_the_fleet(task_state, run_state):
            async with self._open_client() as client:
                await self._cancel(
                    CancelCommands(self.spec.command_ids, f"the task was {task_state} while deferred"), client
                )
            return
        self.log.info(
            "Killed while deferred with task state %s, run state %s (a Clear): the hosts keep running "
            "their batch; the next attempt adopts them",
            task_state,
            run_state,
        )

    async def _recorded_states(self) -> tuple[str | None, str | None] | None:
        """The deferred task's state and its run's, as Airflow recorded them (``None``: unknown)."""
        ti = getattr(self, "task_instance", None)
        if ti is None:
            return None
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
            from asgiref.sync import sync_to_async

            states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
                dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id]
            )
            run_state = await sync_to_async(RuntimeTaskInstance.get_dagrun_state)(ti.dag_id, ti.run_id)
        except Exception as error:  # an Airflow without these calls, or no supervisor to ask
            self.log.warning("Could not read the task's state: %s", error)
            return None
        task_state = (states.get(ti.run_id) or {}).get(ti.task_id)
        return (None if task_state is None else str(task_state)), (
            None if run_state is None else str(run_state)
        )
