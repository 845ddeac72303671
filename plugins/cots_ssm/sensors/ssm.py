"""Wait, without holding a worker slot, until every instance of a fleet run has finished."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from botocore.exceptions import ClientError

from cots_ssm import validation
from cots_ssm.compat import AirflowException, AirflowFailException, AirflowSensorTimeout
from cots_ssm.hooks.ssm import (
    DEFAULT_BOTOCORE_CONFIG,
    MAX_OUTPUT_FETCHES,
    SsmFleetHook,
    attempts_of,
    is_transient,
)
from cots_ssm.links.ssm import FleetPageLink, SsmRunCommandLink
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
from cots_ssm.triggers.ssm import FleetEvent, SsmFleetTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

T = TypeVar("T")

__all__ = ["MAX_OUTPUT_FETCHES", "SsmRunCommandFleetSensor"]

#: Seconds the deferral outlives the trigger's own deadline: the trigger cancels and reports the
#: timeout itself; Airflow's deferral timeout only catches a triggerer that never ran it.
DEFERRAL_GRACE_SECONDS = 300


class SsmRunCommandFleetSensor(AwsBaseSensor[SsmFleetHook]):
    """Watch every invocation of one or more SSM commands until the fleet verdict is known.

    Each check reads every page of invocations of every command (one ListCommandInvocations call per
    50 instances) and ListCommands only where it changes the verdict, logs one progress line and the
    instances that finished since the previous check, and pushes the per-instance result table to
    XCom (key ``results``). Commands are given oldest first: for an instance listed by several (an
    earlier attempt of a redriven run), the last one counts. It succeeds when every instance has
    finished within the failure tolerance, and fails with every failed instance named with its
    status details, exit code and the end of its stderr: once all have finished (``failure_policy``
    ``finish``) or as soon as the tolerance is exceeded, cancelling the rest (``cancel``).
    Throttling, 5xx and connection errors are retried within a poke; an empty or partial invocation
    list right after sending means "not yet". On timeout and on kill it cancels what is still
    running. With ``deferrable`` the wait runs in the triggerer, with the same checks and verdicts.

    :param command_ids: the command ids to watch (e.g. ``run.output["command_ids"]``).
    :param max_failed_instances: failed instances tolerated, a number or a percentage (default: 0).
    :param failure_policy: what happens when more instances failed than tolerated while others
        still run: ``finish`` lets them end their batch and judges at the end, ``cancel`` cancels
        them and fails at once. ``finish`` is the default because the hosts of a COTS batch run
        independently: killing a batch half-way leaves work a support team must repair by hand,
        while a finished host needs nothing, and a Clear afterwards re-runs only the failed ones.
        Templated (default: ``finish``).
    :param poke_interval: seconds between pokes; templated (default: 60).
    :param mode: ``reschedule`` (default) frees the worker slot between pokes: each check holds a
        slot for its own seconds (start-up, the AWS calls, the hand-back), none in between.
    :param deferrable: wait in the triggerer instead (:class:`~cots_ssm.triggers.ssm.SsmFleetTrigger`):
        no slot while waiting, one async loop in the triggerer for the whole wait, a slot only for
        the start (one synchronous check, which may already find the verdict) and the hand-back.
        A bool or the text ``true``/``false``; templated, so a run can choose it from a Param
        (default: False).
    :param max_consecutive_api_errors: transient AWS errors in a row a poke absorbs before it
        fails (default: 5).
    :param cancel_on_timeout: cancel the commands still running when the sensor times out or is
        killed (default: True).
    :param output_tail_lines: lines of stdout/stderr kept per instance in the table (default: 20).
    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    """

    aws_hook_class = SsmFleetHook
    template_fields: Sequence[str] = aws_template_fields(
        "command_ids", "max_failed_instances", "failure_policy", "poke_interval_seconds", "deferrable"
    )
    operator_extra_links = (SsmRunCommandLink(), FleetPageLink())
    ui_color = "#fbe38b"

    def __init__(
        self,
        *,
        command_ids: Sequence[str] | str,
        max_failed_instances: int | str = 0,
        failure_policy: FailurePolicy | str = FailurePolicy.FINISH,
        poke_interval: float | str = 60,
        mode: str = "reschedule",
        deferrable: bool | str = False,
        max_consecutive_api_errors: int = 5,
        cancel_on_timeout: bool = True,
        output_tail_lines: int = 20,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        numeric = isinstance(poke_interval, (int, float)) and not isinstance(poke_interval, bool)
        super().__init__(
            poke_interval=poke_interval if numeric else 60,
            mode=mode,
            botocore_config=botocore_config or DEFAULT_BOTOCORE_CONFIG,
            **kwargs,
        )
        self.command_ids = command_ids
        self.max_failed_instances = max_failed_instances
        self.failure_policy = failure_policy
        self.poke_interval_seconds = poke_interval
        self.deferrable = deferrable
        self.max_consecutive_api_errors = max_consecutive_api_errors
        self.cancel_on_timeout = cancel_on_timeout
        self.output_tail_lines = output_tail_lines
        self._announced: set[tuple[str, str]] = set()

    # -- rendering ---------------------------------------------------------------------------------------
    def _command_id_list(self) -> list[str]:
        ids = validation.from_template(self.command_ids)
        ids = [ids] if isinstance(ids, str) else list(ids or ())
        if not ids or not all(isinstance(i, str) and i for i in ids):
            raise validation.InvalidParameterError(
                "command_ids", self.command_ids, "give the command ids to watch"
            )
        return ids

    def _prepare(self) -> None:
        try:
            self.poke_interval = float(
                validation.integer_in_range("poke_interval", self.poke_interval_seconds, 1, 86_400)
            )
            self.tolerance = FailureTolerance.parse(self.max_failed_instances)
            self.policy = FailurePolicy.parse(self.failure_policy)
            self.watched = self._command_id_list()
            self.defer_wait = validation.boolean("deferrable", self.deferrable)
        except ValueError as error:  # InvalidParameterError, or a tolerance that does not parse
            raise AirflowFailException(f"Task {self.task_id}: {error}") from None

    def execute(self, context: Context) -> Any:
        self._prepare()
        region, partition = self.hook.conn_region_name, self.hook.conn_partition
        SsmRunCommandLink.persist(context, self, region, partition, command_id=self.watched[0])
        if self.defer_wait:
            return self._check_then_defer(context)
        try:
            return super().execute(context)
        except AirflowSensorTimeout:
            if self.cancel_on_timeout:
                self.cancel_running("the sensor timed out")
            raise

    # -- deferrable --------------------------------------------------------------------------------------
    def _check_then_defer(self, context: Context) -> None:
        """One check in the worker (a run may be over already), then hand the wait to the triggerer."""
        deadline = time.time() + self.timeout
        if self.poke(context):
            return
        trigger = SsmFleetTrigger(
            command_ids=self.watched,
            deadline=deadline,
            max_failed_instances=str(self.tolerance),
            failure_policy=self.policy.value,
            poll_interval=self.poke_interval,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            botocore_config=self.botocore_config,
            output_tail_lines=self.output_tail_lines,
            cancel_on_timeout=self.cancel_on_timeout,
            max_consecutive_api_errors=self.max_consecutive_api_errors,
        )
        self.log.info("Deferring the wait for %s command(s) to the triggerer", len(self.watched))
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFERRAL_GRACE_SECONDS),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Finish as ``poke`` would from the trigger's event: XComs, then success or a named failure."""
        self._prepare()
        event = event or {}
        status = event.get("status")
        if "results" in event:
            context["ti"].xcom_push(key="results", value=event["results"])
        if event.get("verdict") is not None:
            context["ti"].xcom_push(key="verdict", value=event["verdict"])
        for command_id in event.get("cancelled") or ():
            self.log.warning("The trigger cancelled command %s", command_id)
        if status == FleetEvent.SUCCEEDED:
            verdict = event["verdict"]
            self.log.info(
                "All %s invocation(s) finished; %s failed (at most %s tolerated)",
                verdict["expected"],
                verdict["failed"],
                verdict["allowed_failures"],
            )
            return
        if status == FleetEvent.FAILED:
            raise AirflowFailException(f"SSM fleet run failed: {event['failure_summary']}")
        if status == FleetEvent.TIMEOUT:
            progress = (event.get("verdict") or {}).get("progress", "no check finished")
            raise AirflowSensorTimeout(
                f"Sensor has timed out after {self.timeout}s (deferred); last check: {progress}; "
                f"cancelled: {event.get('cancelled') or 'nothing'}"
            )
        raise AirflowException(f"SSM fleet wait failed: {event.get('message') or event!r}")

    def on_kill(self) -> None:
        if self.cancel_on_timeout and getattr(self, "watched", None):
            self.cancel_running("the task was killed")

    # -- reading SSM ---------------------------------------------------------------------------------------
    def _with_retries(self, what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Absorb throttling, 5xx and connection errors, up to ``max_consecutive_api_errors`` in a row."""
        for attempt in range(1, self.max_consecutive_api_errors + 1):
            try:
                return call(*args, **kwargs)
            except Exception as error:
                if not is_transient(error):
                    raise
                if attempt == self.max_consecutive_api_errors:
                    raise AirflowException(
                        f"{what}: {attempt} transient AWS errors in a row, last: {error}"
                    ) from error
                delay = min(2 ** (attempt - 1), 10)
                self.log.warning(
                    "%s: transient AWS error (%s), attempt %s; retrying in %ss", what, error, attempt, delay
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def read_verdict(self) -> FleetVerdict:
        """One check at the AWS-call floor: every page of invocations, ListCommands only where needed.

        See :func:`cots_ssm.status.commands_to_describe` for when ListCommands is read.
        """
        listed = {
            command_id: self._with_retries(
                f"ListCommandInvocations {command_id}", self.hook.list_invocations, command_id
            )
            for command_id in self.watched
        }
        items = [item for found in listed.values() for item in found]
        invocations = [InvocationResult.from_api(item) for item in items]
        needed = commands_to_describe(self.watched, invocations, self.tolerance, self.policy)
        commands = self._with_retries("ListCommands", self.hook.get_commands, needed) if needed else []
        self.attempts = {**attempts_of(commands), **attempts_of(items)}
        described = {c["CommandId"]: CommandSummary.from_api(c) for c in commands}
        return check_verdict(self.watched, invocations, described, self.tolerance, self.policy)

    def _table(self, verdict: FleetVerdict) -> list[dict[str, Any]]:
        """The per-instance table, each row with the attempt of the run that produced it."""
        return with_attempts(verdict.table(tail_lines=self.output_tail_lines), getattr(self, "attempts", {}))

    def _with_full_output(self, verdict: FleetVerdict) -> FleetVerdict:
        """Read stdout/stderr of failed instances in full (8,000 chars of stderr, not 2,500 in all)."""
        enriched = []
        fetched = 0
        for invocation in verdict.invocations:
            if invocation.failed and fetched < MAX_OUTPUT_FETCHES:
                fetched += 1
                try:
                    answer = self._with_retries(
                        f"GetCommandInvocation {invocation.instance_id}",
                        self.hook.get_invocation,
                        invocation.command_id,
                        invocation.instance_id,
                    )
                    invocation = invocation.with_full_output(answer)
                except (ClientError, AirflowException) as error:
                    self.log.warning("Could not read the output of %s: %s", invocation.instance_id, error)
            enriched.append(invocation)
        return replace(verdict, invocations=tuple(enriched))

    # -- poking --------------------------------------------------------------------------------------------
    def _log_newly_finished(self, verdict: FleetVerdict) -> None:
        """Log each instance that finished since the previous poke.

        In ``poke`` mode the sensor remembers what it announced. In ``reschedule`` mode every poke
        is a new process, so "since the previous poke" is the last ``poke_interval`` seconds.
        """
        since = datetime.now(UTC) - timedelta(seconds=self.poke_interval)
        for invocation in verdict.finished:
            key = (invocation.command_id, invocation.instance_id)
            recent = invocation.finished_at is None or invocation.finished_at >= since
            if key not in self._announced and (recent or not self.reschedule):
                self._announced.add(key)
                self.log.info("Finished: %s", invocation.describe())

    def poke(self, context: Context) -> bool:
        verdict = self.read_verdict()
        self.log.info("%s", verdict.progress_line())
        self._log_newly_finished(verdict)
        if verdict.outcome is Outcome.RUNNING:
            return False
        if verdict.failed or verdict.problems:
            verdict = self._with_full_output(verdict)
        context["ti"].xcom_push(key="results", value=self._table(verdict))
        context["ti"].xcom_push(key="verdict", value=verdict.summary())
        if verdict.outcome is Outcome.FAILED:
            if verdict.running:
                self.cancel_running("more instances failed than tolerated (failure_policy=cancel)")
            raise AirflowFailException(f"SSM fleet run failed: {verdict.failure_summary()}")
        self.log.info(
            "All %s invocation(s) finished; %s failed (at most %s tolerated)",
            verdict.expected,
            len(verdict.failed),
            verdict.allowed_failures,
        )
        return True

    # -- cancelling ----------------------------------------------------------------------------------------
    def cancel_running(self, reason: str) -> list[str]:
        """Cancel every watched command that is still running; returns the ids cancelled."""
        try:
            cancelled = self.hook.cancel_running(self.watched)
        except Exception as error:
            self.log.error("Could not cancel commands %s (%s): %s", self.watched, reason, error)
            return []
        for command_id in cancelled:
            self.log.warning("Cancelled command %s because %s", command_id, reason)
        return cancelled
