"""One check of a fleet run, without I/O: what to read from SSM, and what the answers decide.

The reschedule sensor and the deferrable trigger run the same check. :func:`fleet_check` is a
generator that yields requests (:class:`ListInvocations`, :class:`DescribeCommands`,
:class:`GetOutput`, :class:`CancelCommands`) and is sent their answers; it returns a
:class:`CheckResult`. Each path only carries the requests out, synchronously (the sensor) or
asynchronously (the trigger), retrying transient errors by :func:`retry_delay`. So the reading of
pages, the verdict over hosts, which failed hosts get their full output, the cancel of a failing
fleet under ``failure_policy=cancel`` and the timeout rule (one last read before a timeout is
declared) live here once. Pure Python, no Airflow import, no AWS call.

A wait with a re-send policy (:mod:`ssm_fleet.resend`) also re-sends, within the same check, each
host whose batch never started (or exited with a listed code) once it is ``Online``: it reads the
run's re-sends by token (:class:`FindRunCommands`) only when a host needs one, asks
DescribeInstanceInformation (:class:`DescribeInstances`), then sends (:class:`Resend`), so the
sensor and the trigger decide it identically. Over 350 lines for that reason: the requests and the
one decision sequence they serve are kept in one module.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from ssm_fleet.invocations import CommandSummary, InvocationResult
from ssm_fleet.ledger import RunLedger
from ssm_fleet.plan import LOOKUP_MARGIN, parse_token
from ssm_fleet.render import failure_summary, summary, table, unfinished_summary
from ssm_fleet.resend import Due, ResendPolicy, candidates, notes, plan_round, wants_resend
from ssm_fleet.verdict import FailurePolicy, FailureTolerance, FleetVerdict, Outcome

#: At most this many failed hosts get their full output read with GetCommandInvocation.
MAX_OUTPUT_FETCHES = 50
#: Pause before the n-th retry of a transient error (seconds), doubling up to this cap.
MAX_RETRY_DELAY_SECONDS = 10.0


@dataclass(frozen=True)
class ListInvocations:
    """Read every page of ListCommandInvocations (with details) of one command; answer: the items.

    :param command_id: the command.
    """

    command_id: str


@dataclass(frozen=True)
class DescribeCommands:
    """ListCommands of these ids; answer: the ``Command`` dicts found (a missing one: not listed yet).

    :param command_ids: the commands.
    """

    command_ids: tuple[str, ...]


@dataclass(frozen=True)
class GetOutput:
    """GetCommandInvocation of one host; answer: the dict, or ``None`` if it could not be read.

    :param command_id: the command.
    :param instance_id: the host.
    """

    command_id: str
    instance_id: str


@dataclass(frozen=True)
class CancelCommands:
    """Cancel those of these commands still running; answer: the ids cancelled.

    :param command_ids: the commands.
    :param reason: why, for the log.
    """

    command_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class FindRunCommands:
    """ListCommands of every command carrying the run token ``digest`` sent after ``since``.

    Answer: the ``Command`` dicts found (re-sends this wait sent are found this way, whatever
    process sent them).

    :param digest: the run token's digest.
    :param since: the earliest moment any of them was sent.
    """

    digest: str
    since: datetime


@dataclass(frozen=True)
class DescribeInstances:
    """DescribeInstanceInformation of these hosts; answer: the ``InstanceInformation`` dicts.

    :param instance_ids: the hosts.
    """

    instance_ids: tuple[str, ...]


@dataclass(frozen=True)
class Resend:
    """Send one host's batch again, exactly once (:meth:`ssm_fleet.send.FleetSender.resend`).

    Answer: the command id of the re-send (sent now, or found by its token), or ``None`` when the
    send could not be confirmed (the next check looks again before anything is sent).

    :param due: the host, its re-send number and why.
    :param digest: the run token's digest.
    :param attempt: the attempt the re-send belongs to.
    :param source: the ``Command`` it repeats (document, parameters, timeouts, output options).
    :param since: the earliest moment the run's commands were sent (the token look-up's filter).
    """

    due: Due
    digest: str
    attempt: int
    source: Mapping[str, Any]
    since: datetime


Request = (
    ListInvocations
    | DescribeCommands
    | GetOutput
    | CancelCommands
    | FindRunCommands
    | DescribeInstances
    | Resend
)


class CheckStatus(enum.StrEnum):
    """Where a check leaves the wait (also the ``status`` of the trigger's event)."""

    RUNNING = Outcome.RUNNING.value
    SUCCEEDED = Outcome.SUCCEEDED.value
    FAILED = Outcome.FAILED.value
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True)
class WaitSpec:
    """What a wait watches and how it judges.

    :param command_ids: the commands that speak for the run's hosts, oldest first.
    :param tolerance: failed hosts tolerated.
    :param policy: ``finish`` or ``cancel`` (see :class:`~ssm_fleet.verdict.FailurePolicy`).
    :param gone: hosts that left the fleet: named, not counted.
    :param attempt: the attempt of the run this wait belongs to (stamped on what it hands on).
    :param output_tail_lines: lines of stdout/stderr kept per host in the table.
    :param cancel_on_timeout: cancel what still runs when the wait times out.
    :param resend: when the wait re-sends a host by itself (:mod:`ssm_fleet.resend`); None: never.
    """

    command_ids: tuple[str, ...]
    tolerance: FailureTolerance = field(default_factory=FailureTolerance)
    policy: FailurePolicy = FailurePolicy.FINISH
    gone: tuple[str, ...] = ()
    attempt: int | None = None
    output_tail_lines: int = 20
    cancel_on_timeout: bool = True
    resend: ResendPolicy | None = None


@dataclass(frozen=True)
class CheckResult:
    """What one check found and did.

    :param status: running, succeeded, failed or timeout.
    :param verdict: the verdict over hosts.
    :param cancelled: the command ids this check cancelled.
    :param resent: ``"<host>: <why>, re-sent <HH:MM>"`` of each re-send this check sent.
    """

    status: CheckStatus
    verdict: FleetVerdict
    cancelled: tuple[str, ...] = ()
    resent: tuple[str, ...] = ()

    def payload(self, spec: WaitSpec) -> dict[str, Any]:
        """What the wait hands on (XCom, trigger event): JSON-serialisable, stamped with the attempt."""
        return {
            "status": self.status.value,
            "attempt": spec.attempt,
            "results": table(self.verdict, tail_lines=spec.output_tail_lines),
            "verdict": summary(self.verdict, spec.attempt),
            "failure_summary": self._summary(),
            "cancelled": list(self.cancelled),
        }

    def _summary(self) -> str:
        """Who failed (a failure), or who had not finished (a timeout): named, never only counted."""
        if self.status is CheckStatus.FAILED:
            return failure_summary(self.verdict)
        if self.status is CheckStatus.TIMEOUT:
            return unfinished_summary(self.verdict)
        return ""


def commands_to_describe(
    command_ids: Sequence[str],
    invocations: Sequence[InvocationResult],
    tolerance: FailureTolerance | int | str = 0,
    policy: FailurePolicy | str = FailurePolicy.FINISH,
) -> list[str]:
    """The commands a check must read with ListCommands; the others speak through their invocations.

    A check lists every page of invocations of each command (the floor: one ListCommandInvocations
    call per 50 hosts). While any invocation still runs, the fleet is running whatever
    ListCommands says, so it is read only where it can fail the run at once (``cancel`` policy):

    - a command that listed no invocation yet: it may have ended with none (no instance in the
      tag, every instance refused), a failure no host shows;
    - with a percentage tolerance, once more hosts failed than the listed ones tolerate: only the
      target counts tell whether that is too many.

    Once no listed invocation runs, every command is read: its status tells "not yet" from
    "never", and its target count whether the list is complete, before a verdict is declared.
    """
    tolerance, policy = FailureTolerance.parse(tolerance), FailurePolicy.parse(policy)
    per_command: dict[str, list[InvocationResult]] = {command_id: [] for command_id in command_ids}
    for invocation in invocations:
        per_command.setdefault(invocation.command_id, []).append(invocation)
    if all(i.finished for cid in command_ids for i in per_command[cid]):
        return list(command_ids)
    if policy is FailurePolicy.FINISH:
        return []
    if tolerance.percent:
        latest = {i.instance_id: i for cid in command_ids for i in per_command[cid]}.values()
        if sum(1 for i in latest if i.failed) > tolerance.allowed(len(latest)):
            return list(command_ids)
    return [cid for cid in command_ids if not per_command[cid]]


@dataclass
class _Read:
    """What a check read: the ledger, the run's commands as ListCommands gave them, the token."""

    ledger: RunLedger
    attempt: int
    run_commands: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    digest: str = ""
    since: datetime | None = None


def read_ledger(spec: WaitSpec) -> Generator[Request, Any, _Read]:
    """Read the watched commands at the AWS-call floor, and the run's re-sends where one may exist.

    Re-sends are looked for (ListCommands by the run token) only when a watched host's invocation
    is one a re-send is for: a fleet that needs none costs no more than without them.
    """
    items: list[Mapping[str, Any]] = []
    for command_id in spec.command_ids:
        items.extend((yield ListInvocations(command_id)) or ())
    invocations = [InvocationResult.from_api(item) for item in items]
    attempt = spec.attempt or max((i.attempt for i in invocations), default=1)
    extra: list[CommandSummary] = []
    run_commands: dict[str, Mapping[str, Any]] = {}
    token = next((t for item in items if (t := parse_token(item.get("Comment")))), None)
    since = min((i.requested_at for i in invocations if i.requested_at), default=None)
    if spec.resend and token and since and any(wants_resend(i, spec.resend) for i in invocations):
        since -= LOOKUP_MARGIN
        found = (yield FindRunCommands(token.digest, since)) or ()
        run_commands = {str(c.get("CommandId")): c for c in found}
        for command in map(CommandSummary.from_api, found):
            if command.resend and command.attempt == attempt and command.command_id not in spec.command_ids:
                extra.append(command)
                invocations += map(
                    InvocationResult.from_api, (yield ListInvocations(command.command_id)) or ()
                )
    needed = commands_to_describe(spec.command_ids, invocations, spec.tolerance, spec.policy)
    described_now: Sequence[Mapping[str, Any]] = ()
    if needed:
        described_now = (yield DescribeCommands(tuple(needed))) or ()
    described = {c.command_id: c for c in (CommandSummary.from_api(command) for command in described_now)}
    commands = [described.get(cid) or _from_invocations(cid, invocations) for cid in spec.command_ids]
    ledger = RunLedger([*commands, *extra], invocations)
    return _Read(ledger, attempt, run_commands, token.digest if token else "", since)


def _judge(
    spec: WaitSpec, read: _Read, waiting: Sequence[str] = (), sent: Sequence[str] = ()
) -> FleetVerdict:
    """The verdict; hosts ``waiting`` to come Online and those just ``sent`` again still to come."""
    verdict = read.ledger.verdict(spec.tolerance, spec.policy, gone=spec.gone, waiting=[*waiting, *sent])
    if spec.resend is None:
        return verdict
    return replace(verdict, waiting=tuple(waiting), resent=notes(read.ledger, read.attempt))


def read_verdict(spec: WaitSpec, *, now: float | None = None) -> Generator[Request, Any, FleetVerdict]:
    """Read the watched commands at the AWS-call floor and turn them into the verdict over hosts.

    Sends nothing: a host with a re-send left (before ``now`` passes the bound) counts as waiting.
    """
    read = yield from read_ledger(spec)
    moment = time.time() if now is None else now
    due = candidates(read.ledger, read.attempt, spec.resend, moment) if spec.resend else []
    return _judge(spec, read, [d.instance_id for d in due])


def resend_round(
    spec: WaitSpec, read: _Read, now: float
) -> Generator[Request, Any, tuple[list[str], list[str], list[str]]]:
    """Re-send each ``Online`` host that has a re-send due.

    Returns the hosts waiting to come ``Online``, the hosts due now (sent, or to be looked up by
    the next check), and one log line per re-send (``i-0abc: Delivery Timed Out, re-sent 02:14``).

    Duplicates of a re-send (two checks that both sent it, see
    :meth:`ssm_fleet.send.FleetSender.resend`) are cancelled first: the ledger keeps the earliest.
    """
    if spec.resend is None or not read.digest or read.since is None:
        return [], [], []
    copies = tuple(c.command_id for c in read.ledger.duplicates if c.resend and not c.cancelled)
    if copies:
        yield CancelCommands(copies, "a second copy of a host's re-send (sent twice)")
    due = candidates(read.ledger, read.attempt, spec.resend, now)
    if not due:
        return [], [], []
    instances = (yield DescribeInstances(tuple(d.instance_id for d in due))) or ()
    todo = plan_round(due, instances)
    sent: list[str] = []
    for item in todo.due:
        source = read.run_commands.get(item.source_command_id)
        if source is None:  # not listed yet (SSM's reads lag): the next check
            continue
        command_id = yield Resend(item, read.digest, read.attempt, source, read.since)
        if command_id:
            at = datetime.fromtimestamp(now, UTC).strftime("%H:%M")
            sent.append(
                f"{item.instance_id}: {item.reason}, re-sent {at} (re-send {item.resend}, {command_id})"
            )
    return list(todo.waiting), [d.instance_id for d in todo.due], sent


def _from_invocations(command_id: str, invocations: Sequence[InvocationResult]) -> CommandSummary:
    """A command not described in this check: running, with the token its invocations carry."""
    mine = next((i for i in invocations if i.command_id == command_id), None)
    return CommandSummary.running(command_id, mine.attempt if mine else 1, mine.chunk if mine else 0)


def fleet_check(
    spec: WaitSpec, *, timed_out: bool = False, now: float | None = None
) -> Generator[Request, Any, CheckResult]:
    """One check: read, re-send, decide, then read failed hosts' output and cancel where the verdict says.

    ``timed_out`` says the wait's deadline has passed: the read still happens first, so a fleet that
    finished in the last interval ends with its verdict, not as a timeout; nothing is re-sent then.
    ``now`` (seconds since the epoch) is compared with the re-send bound.
    """
    read = yield from read_ledger(spec)
    waiting: list[str] = []
    due: list[str] = []
    resent: list[str] = []
    if not timed_out:
        waiting, due, resent = yield from resend_round(spec, read, time.time() if now is None else now)
    verdict = _judge(spec, read, waiting, due)
    if verdict.outcome is Outcome.RUNNING and not timed_out:
        return CheckResult(CheckStatus.RUNNING, verdict, resent=tuple(resent))
    if verdict.failed or verdict.problems:
        verdict = yield from _with_full_output(verdict)
    if verdict.outcome is Outcome.RUNNING:  # timed out
        cancelled: tuple[str, ...] = ()
        if spec.cancel_on_timeout:
            cancelled = tuple((yield CancelCommands(spec.command_ids, "the wait timed out")) or ())
        return CheckResult(CheckStatus.TIMEOUT, verdict, cancelled)
    if verdict.outcome is Outcome.FAILED and verdict.running:
        reason = "more hosts failed than tolerated (failure_policy=cancel)"
        cancelled = tuple((yield CancelCommands(spec.command_ids, reason)) or ())
        return CheckResult(CheckStatus.FAILED, verdict, cancelled)
    return CheckResult(CheckStatus(verdict.outcome.value), verdict)


def _with_full_output(verdict: FleetVerdict) -> Generator[Request, Any, FleetVerdict]:
    """Read stdout/stderr of failed hosts in full (8,000 chars of stderr, not 2,500 in all)."""
    enriched = []
    fetched = 0
    for invocation in verdict.invocations:
        if invocation.failed and fetched < MAX_OUTPUT_FETCHES:
            fetched += 1
            answer = yield GetOutput(invocation.command_id, invocation.instance_id)
            if answer:
                invocation = invocation.with_full_output(answer)
        enriched.append(invocation)
    return replace(verdict, invocations=tuple(enriched))


def retry_delay(transient: bool, errors_in_a_row: int, max_errors: int) -> float | None:
    """Seconds to wait before trying a read again after its ``errors_in_a_row``-th error, or ``None``.

    Throttling, 5xx and connection errors (``transient``) are tried again until ``max_errors`` in a
    row, 1, 2, 4... seconds apart (at most 10); anything else is not (``None``: give up). The word
    ``attempt`` is kept for the Clear attempt of a run.
    """
    if not transient or errors_in_a_row >= max_errors:
        return None
    return min(2.0 ** (errors_in_a_row - 1), MAX_RETRY_DELAY_SECONDS)
