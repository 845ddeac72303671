"""Wait, without holding a worker slot, until every host of a fleet run has finished.

Over 350 lines for a reason: the sensor is also the synchronous carrier of the shared check's
requests (reads, cancels, re-sends) and the deferral to the trigger, one wait in two modes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from botocore.exceptions import BotoCoreError, ClientError

from ssm_fleet import validation
from ssm_fleet.check import (
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
from ssm_fleet.compat import AirflowException, AirflowSensorTimeout
from ssm_fleet.errors import FleetRunFailed
from ssm_fleet.hooks.ssm import DEFAULT_BOTOCORE_CONFIG, SsmFleetHook, is_transient
from ssm_fleet.links.ssm import SsmRunCommandLink
from ssm_fleet.plan import current_attempt
from ssm_fleet.render import describe, progress_line
from ssm_fleet.resend import ResendPolicy
from ssm_fleet.send import ResendRequests
from ssm_fleet.triggers.ssm import SsmFleetTrigger
from ssm_fleet.verdict import FailurePolicy, FailureTolerance, FleetVerdict

if TYPE_CHECKING:
    from airflow.sdk import Context

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["SsmRunCommandFleetSensor", "finish_wait"]

#: Seconds the deferral outlives the trigger's own deadline: the trigger reads, cancels and reports
#: the timeout itself; Airflow's deferral timeout only catches a triggerer that never ran it.
DEFERRAL_GRACE_SECONDS = 300


def finish_wait(ti: Any, payload: Mapping[str, Any], log: Any, timeout: float) -> bool:
    """End a wait from a check's payload, the same way after a poke and after the trigger's event.

    Pushes the attempt-stamped ``results`` and ``verdict`` XComs, then returns True (success) or
    raises a failure that names every failed host, a timeout, or the trigger's error.
    """
    if "results" in payload:
        ti.xcom_push(key="results", value=payload["results"])
    status = payload.get("status")
    verdict = payload.get("verdict") or {
        "attempt": payload.get("attempt"),
        "outcome": status,
        "progress": payload.get("message") or "",
    }
    ti.xcom_push(key="verdict", value=verdict)
    for command_id in payload.get("cancelled") or ():
        log.warning("Cancelled command %s", command_id)
    if status == CheckStatus.SUCCEEDED:
        log.info(
            "All %s host(s) finished; %s failed (at most %s tolerated)",
            verdict["expected"],
            verdict["failed"],
            verdict["allowed_failures"],
        )
        return True
    if status == CheckStatus.FAILED:
        raise FleetRunFailed(
            f"SSM fleet run failed: {payload['failure_summary']}",
            headline=f"{verdict.get('failed')}/{verdict.get('expected')} host(s) failed",
        )
    if status == CheckStatus.TIMEOUT:
        unfinished = payload.get("failure_summary") or ""
        raise AirflowSensorTimeout(
            f"The wait timed out after {timeout}s; last check: {verdict.get('progress', 'none')}; "
            f"cancelled: {payload.get('cancelled') or 'nothing'}" + (f"\n{unfinished}" if unfinished else "")
        )
    raise AirflowException(f"SSM fleet wait failed: {payload.get('message') or payload!r}")


class SsmRunCommandFleetSensor(AwsBaseSensor[SsmFleetHook]):
    """Watch every host of a fleet run until the verdict over hosts is known.

    Each check (:func:`ssm_fleet.check.fleet_check`, shared with the deferrable trigger) reads every
    page of invocations of every command (one ListCommandInvocations call per 50 hosts) and
    ListCommands only where it changes the verdict, logs one progress line and the hosts that
    finished since the previous check. Commands are given oldest first: a host's latest invocation
    speaks for it. It succeeds when every host has finished within the failure tolerance, and fails
    naming every failed host with its status details, exit code and the end of its stderr: once all
    have finished (``failure_policy`` ``finish``) or as soon as the tolerance is exceeded,
    cancelling the rest (``cancel``). The per-host table and the verdict go to XCom (``results``,
    ``verdict``), stamped with the run's attempt. Throttling, 5xx and connection errors are retried
    within a check; an empty or partial list right after sending means "not yet". On timeout it
    reads once more, then cancels what still runs. A killed poke cancels nothing: Airflow kills a
    poke for a Clear as for a failure, and a Clear must never stop a host's batch (the run's
    teardown cancels what a failed or stopped run leaves). With ``deferrable`` the wait runs in
    the triggerer, with the same checks and verdicts.

    :param command_ids: the command ids to watch (e.g. ``run.output["command_ids"]``).
    :param gone: hosts that left the fleet since an earlier attempt: named, not counted; templated
        (default: none).
    :param run_attempt: the attempt the send task handed on; templated. A wait refuses commands
        handed on by another attempt than its own (default: None, not checked).
    :param max_failed_instances: failed hosts tolerated, a number or a percentage (default: 0).
    :param failure_policy: what happens when more hosts failed than tolerated while others still
        run: ``finish`` lets them end their batch and judges at the end, ``cancel`` cancels them and
        fails at once. ``finish`` is the default because the hosts of a batch run
        independently: killing a batch half-way leaves work a support team must repair by hand,
        while a finished host needs nothing, and a Clear afterwards re-runs only the failed ones.
        Templated (default: ``finish``).
    :param poke_interval: seconds between pokes; templated (default: 60).
    :param mode: ``reschedule`` (default) frees the worker slot between pokes: each check holds a
        slot for its own seconds (start-up, the AWS calls, the hand-back), none in between.
    :param deferrable: wait in the triggerer instead (:class:`~ssm_fleet.triggers.ssm.SsmFleetTrigger`):
        no slot while waiting, one async loop in the triggerer for the whole wait, a slot only for
        the start (one synchronous check, which may already find the verdict) and the hand-back.
        A bool or the text ``true``/``false``; templated, so a run can choose it from a Param
        (default: False).
    :param max_consecutive_api_errors: transient AWS errors in a row a check absorbs before it
        fails (default: 5).
    :param cancel_on_timeout: cancel the commands still running when the wait times out
        (default: True).
    :param output_tail_lines: lines of stdout/stderr kept per host in the table (default: 20).
    :param host_retries: automatic re-sends per host within the attempt (0-9; :mod:`ssm_fleet.resend`):
        a host whose invocation ended without running the batch (``Delivery Timed Out``,
        ``Undeliverable``, ``Terminated`` before it started) is sent it again once ``Online``; until
        then it counts as running, not failed. Each re-send is one more invocation in the run's
        ledger, logged and named in the ``resent`` field of its result row. Templated
        (default: 0, never).
    :param retry_exit_codes: exit codes of a batch that ran and failed that are re-run too, within
        ``host_retries``; templated (default: none: a batch that ran is never re-run by itself).
    :param resend_until: no re-send after this moment (an aware ``datetime``, ISO 8601 text or
        seconds since the epoch); templated (default: None: until the wait times out, the last
        check of a wait never re-sends).
    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    """

    aws_hook_class = SsmFleetHook
    template_fields: Sequence[str] = aws_template_fields(
        "command_ids",
        "gone",
        "run_attempt",
        "max_failed_instances",
        "failure_policy",
        "poke_interval_seconds",
        "deferrable",
        "host_retries",
        "retry_exit_codes",
        "resend_until",
    )
    operator_extra_links: tuple[Any, ...] = (SsmRunCommandLink(),)
    ui_color = "#fbe38b"

    def __init__(
        self,
        *,
        command_ids: Sequence[str] | str,
        gone: Sequence[str] | str = (),
        run_attempt: int | str | None = None,
        max_failed_instances: int | str = 0,
        failure_policy: FailurePolicy | str = FailurePolicy.FINISH,
        poke_interval: float | str = 60,
        mode: str = "reschedule",
        deferrable: bool | str = False,
        max_consecutive_api_errors: int = 5,
        cancel_on_timeout: bool = True,
        output_tail_lines: int = 20,
        host_retries: int | str = 0,
        retry_exit_codes: Sequence[int] | str = (),
        resend_until: datetime | float | str | None = None,
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
        self.gone = gone
        self.run_attempt = run_attempt
        self.max_failed_instances = max_failed_instances
        self.failure_policy = failure_policy
        self.poke_interval_seconds = poke_interval
        self.deferrable = deferrable
        self.max_consecutive_api_errors = max_consecutive_api_errors
        self.cancel_on_timeout = cancel_on_timeout
        self.output_tail_lines = output_tail_lines
        self.host_retries = host_retries
        self.retry_exit_codes = retry_exit_codes
        self.resend_until = resend_until
        self._announced: set[tuple[str, str]] = set()

    # -- rendering -----------------------------------------------------------------------------------------
    def _ids(self, field: str, value: Any, *, required: bool) -> tuple[str, ...]:
        ids = validation.from_template(value)
        ids = [ids] if isinstance(ids, str) and ids else list(ids or ())
        if (required and not ids) or not all(isinstance(i, str) and i for i in ids):
            raise validation.InvalidParameterError(field, value, "give the ids as a list of strings")
        return tuple(ids)

    def wait_spec(self, context: Context) -> WaitSpec:
        """The rendered, checked values of this wait (fails naming the field and value)."""
        attempt = current_attempt(context)
        try:
            self.poke_interval = float(
                validation.integer_in_range("poke_interval", self.poke_interval_seconds, 1, 86_400)
            )
            self.defer_wait = validation.boolean("deferrable", self.deferrable)
            spec = WaitSpec(
                command_ids=self._ids("command_ids", self.command_ids, required=True),
                tolerance=FailureTolerance.parse(self.max_failed_instances),
                policy=FailurePolicy.parse(self.failure_policy),
                gone=self._ids("gone", self.gone, required=False),
                attempt=attempt,
                output_tail_lines=self.output_tail_lines,
                cancel_on_timeout=self.cancel_on_timeout,
                resend=self._resend_policy(),
            )
        except ValueError as error:  # InvalidParameterError, or a tolerance that does not parse
            raise FleetRunFailed(
                f"Task {self.task_id}: {error}", headline="invalid wait parameters"
            ) from None
        handed_on = validation.from_template(self.run_attempt)
        if handed_on not in (None, "") and int(handed_on) != attempt:
            raise FleetRunFailed(
                f"Task {self.task_id} (attempt {attempt}) was handed commands of attempt {handed_on}: "
                "it never judges a run by an earlier attempt's commands.",
                headline=f"attempt {attempt} has no commands of its own",
            )
        return spec

    def _resend_policy(self) -> ResendPolicy | None:
        retries = validation.integer_in_range("host_retries", self.host_retries, 0, 9)
        codes = validation.from_template(self.retry_exit_codes) or ()
        if isinstance(codes, (str, int)) or not all(str(c).isdigit() for c in codes):
            raise validation.InvalidParameterError(
                "retry_exit_codes", codes, "give a list of exit codes from 1 to 255"
            )
        until = validation.from_template(self.resend_until)
        if isinstance(until, datetime):
            until = until.timestamp()
        elif isinstance(until, str) and until:
            until = datetime.fromisoformat(until).timestamp()
        policy = ResendPolicy(
            int(retries), frozenset(int(c) for c in codes), None if until in (None, "") else float(until)
        )
        return policy if policy.enabled else None

    def execute(self, context: Context) -> Any:
        """Wait for the fleet: poke in reschedule mode, or check once and defer to the trigger."""
        self.spec = self.wait_spec(context)
        region, partition = self.hook.conn_region_name, self.hook.conn_partition
        SsmRunCommandLink.persist(context, self, region, partition, command_id=self.spec.command_ids[-1])
        if self.defer_wait:
            return self._check_then_defer(context)
        try:
            return super().execute(context)
        except AirflowSensorTimeout:
            return self._deadline_check(context)

    def _deadline_check(self, context: Context) -> None:
        """The deadline's check, as the trigger's: one more read, then the verdict or the timeout.

        A fleet that finished since the last poke ends with its verdict; one still running is
        cancelled (``cancel_on_timeout``) and the timeout names every host that had not finished.
        """
        try:
            result = self._drive(fleet_check(self.spec, timed_out=True))
        except (AirflowException, ClientError, BotoCoreError) as error:
            self._stamp(context, CheckStatus.TIMEOUT.value, f"timed out; the last check failed: {error}")
            raise
        self._log_check(result.verdict)
        finish_wait(context["ti"], result.payload(self.spec), self.log, self.timeout)

    def _stamp(self, context: Context, outcome: str, text: str) -> None:
        """Record that this attempt's wait ended without a verdict over hosts, and why."""
        context["ti"].xcom_push(
            key="verdict", value={"attempt": self.spec.attempt, "outcome": outcome, "progress": text}
        )

    # -- deferrable ----------------------------------------------------------------------------------------
    def _check_then_defer(self, context: Context) -> None:
        """One check in the worker (a run may be over already), then hand the wait to the triggerer."""
        deadline = time.time() + self.timeout
        if self.poke(context):
            return
        trigger = SsmFleetTrigger(
            command_ids=list(self.spec.command_ids),
            gone=list(self.spec.gone),
            attempt=self.spec.attempt,
            deadline=deadline,
            max_failed_instances=str(self.spec.tolerance),
            failure_policy=self.spec.policy.value,
            poll_interval=self.poke_interval,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            botocore_config=self.botocore_config,
            output_tail_lines=self.output_tail_lines,
            cancel_on_timeout=self.cancel_on_timeout,
            max_consecutive_api_errors=self.max_consecutive_api_errors,
            resend=self.spec.resend.to_dict() if self.spec.resend else None,
        )
        self.log.info("Deferring the wait for %s command(s) to the triggerer", len(self.spec.command_ids))
        self.defer(
            trigger=trigger,
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + DEFERRAL_GRACE_SECONDS),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Finish as ``poke`` would, from the trigger's event: XComs, then success or a named failure."""
        self.wait_spec(context)
        finish_wait(context["ti"], event or {}, self.log, self.timeout)

    # -- one check -----------------------------------------------------------------------------------------
    def poke(self, context: Context) -> bool:
        """Check the fleet once: ``True`` when it succeeded; a failure or timeout raises."""
        spec = self.spec = getattr(self, "spec", None) or self.wait_spec(context)
        try:
            result = self._drive(fleet_check(spec, now=time.time()))
        except (AirflowException, ClientError, BotoCoreError) as error:
            self._stamp(context, CheckStatus.ERROR.value, str(error))
            raise
        for line in result.resent:
            self.log.warning("%s", line)
        self._log_check(result.verdict)
        if result.status is CheckStatus.RUNNING:
            return False
        return finish_wait(context["ti"], result.payload(spec), self.log, self.timeout)

    def read_verdict(self, context: Context) -> FleetVerdict:
        """One read of the fleet at the AWS-call floor, turned into the verdict over hosts (no action)."""
        return self._drive(read_verdict(self.wait_spec(context)))

    def _drive(self, check: Generator[Request, Any, R]) -> R:
        """Carry out the check's requests, synchronously, and return its result."""
        try:
            request = next(check)
            while True:
                request = check.send(self._answer(request))
        except StopIteration as done:
            result: R = done.value
            return result

    def _answer(self, request: Request) -> Any:
        if isinstance(request, ListInvocations):
            what = f"ListCommandInvocations {request.command_id}"
            return self._with_retries(what, self.hook.list_invocations, request.command_id)
        if isinstance(request, DescribeCommands):
            return self._with_retries("ListCommands", self.hook.get_commands, request.command_ids)
        if isinstance(request, (FindRunCommands, DescribeInstances)):
            return self._with_retries(type(request).__name__, self._resender, request)
        if isinstance(request, Resend):
            return self._resender(request)
        if isinstance(request, GetOutput):
            try:
                what = f"GetCommandInvocation {request.instance_id}"
                return self._with_retries(
                    what, self.hook.get_invocation, request.command_id, request.instance_id
                )
            except (ClientError, BotoCoreError, AirflowException) as error:
                self.log.warning("Could not read the output of %s: %s", request.instance_id, error)
                return None
        try:
            cancelled = self.hook.cancel_running(request.command_ids)
        except (ClientError, BotoCoreError) as error:
            self.log.error(
                "Could not cancel commands %s (%s): %s", request.command_ids, request.reason, error
            )
            return []
        for command_id in cancelled:
            self.log.warning("Cancelled command %s because %s", command_id, request.reason)
        return cancelled

    @cached_property
    def _resender(self) -> ResendRequests:
        return ResendRequests(self.hook, self.log)

    def _with_retries(self, what: str, call: Callable[..., T], *args: Any) -> T:
        """Absorb throttling, 5xx and connection errors, up to ``max_consecutive_api_errors`` in a row."""
        errors = 0
        while True:
            try:
                return call(*args)
            except Exception as error:
                errors += 1
                delay = retry_delay(is_transient(error), errors, self.max_consecutive_api_errors)
                if delay is None and is_transient(error):
                    raise AirflowException(
                        f"{what}: {errors} transient AWS errors in a row, last: {error}"
                    ) from error
                if delay is None:
                    raise
                self.log.warning(
                    "%s: transient AWS error (%s), %s in a row; retrying in %ss", what, error, errors, delay
                )
                time.sleep(delay)

    def _log_check(self, verdict: FleetVerdict) -> None:
        """One progress line, and each host that finished since the previous poke.

        In ``poke`` mode the sensor remembers what it announced. In ``reschedule`` mode every poke
        is a new process, so "since the previous poke" is the last ``poke_interval`` seconds.
        """
        self.log.info("%s", progress_line(verdict))
        since = datetime.now(UTC) - timedelta(seconds=self.poke_interval)
        for invocation in verdict.finished:
            key = (invocation.command_id, invocation.instance_id)
            recent = invocation.finished_at is None or invocation.finished_at >= since
            if key not in self._announced and (recent or not self.reschedule):
                self._announced.add(key)
                self.log.info("Finished: %s", describe(invocation))
