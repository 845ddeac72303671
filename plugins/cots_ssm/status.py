"""The SSM Run Command status model and the fleet verdict.

Pure Python with no Airflow import: the operator, the sensor, the notifier and the DAG all read
statuses through this module, so every SSM status and status detail is spelled here and only here.
"""

from __future__ import annotations

import enum
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any


class Status(enum.StrEnum):
    """``Status`` of a command invocation (and of a command, which never reports ``Delayed``)."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    DELAYED = "Delayed"
    SUCCESS = "Success"
    CANCELLED = "Cancelled"
    TIMED_OUT = "TimedOut"
    FAILED = "Failed"
    CANCELLING = "Cancelling"


class StatusDetails(enum.StrEnum):
    """``StatusDetails`` of an invocation or a command: finer than :class:`Status`."""

    PENDING = "Pending"
    IN_PROGRESS = "In Progress"
    DELAYED = "Delayed"
    SUCCESS = "Success"
    DELIVERY_TIMED_OUT = "Delivery Timed Out"
    EXECUTION_TIMED_OUT = "Execution Timed Out"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    UNDELIVERABLE = "Undeliverable"
    TERMINATED = "Terminated"
    INVALID_PLATFORM = "Invalid Platform"
    ACCESS_DENIED = "Access Denied"
    # Command level only.
    INCOMPLETE = "Incomplete"
    RATE_EXCEEDED = "Rate Exceeded"
    NO_INSTANCES_IN_TAG = "No Instances In Tag"


class PingStatus(enum.StrEnum):
    """``PingStatus`` of a managed instance (DescribeInstanceInformation)."""

    ONLINE = "Online"
    CONNECTION_LOST = "ConnectionLost"
    INACTIVE = "Inactive"


RUNNING_STATUSES = frozenset({Status.PENDING, Status.IN_PROGRESS, Status.DELAYED, Status.CANCELLING})
SUCCESS_STATUSES = frozenset({Status.SUCCESS})
FAILURE_STATUSES = frozenset({Status.CANCELLED, Status.TIMED_OUT, Status.FAILED})
CANCELLED_STATUSES = frozenset({Status.CANCELLED, Status.CANCELLING})
#: Running and not on its way out: what a cleanup finds "left running".
LIVE_STATUSES = RUNNING_STATUSES - CANCELLED_STATUSES

#: What a support engineer should read for each status detail (used in errors and alerts).
DETAIL_EXPLANATIONS: Mapping[StatusDetails, str] = {
    StatusDetails.PENDING: "not sent to the instance yet",
    StatusDetails.IN_PROGRESS: "running on the instance",
    StatusDetails.DELAYED: "could not be sent yet; SSM retries",
    StatusDetails.SUCCESS: "completed",
    StatusDetails.DELIVERY_TIMED_OUT: "never started: the instance did not pick the command up in time "
    "(agent offline or instance stopped?)",
    StatusDetails.EXECUTION_TIMED_OUT: "killed after the execution timeout",
    StatusDetails.FAILED: "the script exited with a non-zero code",
    StatusDetails.CANCELLED: "cancelled before it finished",
    StatusDetails.UNDELIVERABLE: "could not be delivered: the instance does not exist or does not respond",
    StatusDetails.TERMINATED: "not run: the command reached its MaxErrors and SSM cancelled the rest",
    StatusDetails.INVALID_PLATFORM: "the document does not support this instance's platform",
    StatusDetails.ACCESS_DENIED: "the instance's role may not run this command",
    StatusDetails.INCOMPLETE: "not every invocation succeeded",
    StatusDetails.RATE_EXCEEDED: "cancelled by SSM: too many pending invocations in the account",
    StatusDetails.NO_INSTANCES_IN_TAG: "no instance matched the target tags",
}


def parse_status(value: str) -> Status:
    """Return the :class:`Status` spelled ``value``, or raise ``ValueError`` naming it."""
    try:
        return Status(value)
    except ValueError:
        raise ValueError(
            f"unknown SSM status {value!r}; expected one of {[s.value for s in Status]}"
        ) from None


def is_running(status: Status) -> bool:
    return status in RUNNING_STATUSES


def is_success(status: Status) -> bool:
    return status in SUCCESS_STATUSES


def is_failure(status: Status) -> bool:
    return status in FAILURE_STATUSES


def explain(details: str) -> str:
    """Say in words what a status detail means; unknown details are returned as they are."""
    try:
        return DETAIL_EXPLANATIONS[StatusDetails(details)]
    except ValueError:
        return details


def tail(text: str | None, *, lines: int = 20, chars: int = 2000) -> str:
    """Return the last ``lines`` lines of ``text``, at most ``chars`` characters."""
    if not text or lines <= 0:
        return ""
    kept = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return kept[-chars:]


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
    if code is None or int(code) == -1 or is_running(status):
        return None
    return int(code)


@dataclass(frozen=True)
class InvocationResult:
    """What one instance did for one command.

    :param command_id: the SSM command id.
    :param instance_id: the managed instance the invocation ran on.
    :param status: the invocation :class:`Status`.
    :param status_details: the invocation ``StatusDetails`` as SSM spells it.
    :param exit_code: the script's exit code (``ResponseCode``); ``None`` while not finished.
    :param instance_name: the instance's computer name, when SSM gives it.
    :param requested_at: when SSM accepted the command for this instance.
    :param started_at: when the script started on the instance.
    :param finished_at: when the script ended.
    :param stdout: the end of standard output that SSM returned.
    :param stderr: the end of standard error that SSM returned.
    :param stdout_url: the S3 URL of the full standard output, if S3 output is on.
    :param stderr_url: the S3 URL of the full standard error, if S3 output is on.
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

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> InvocationResult:
        """Build from one ``CommandInvocations`` item of ListCommandInvocations (``Details`` on or off)."""
        plugins = item.get("CommandPlugins") or [{}]
        plugin = plugins[-1]
        stdout, stderr = split_plugin_output(plugin.get("Output"))
        code = plugin.get("ResponseCode")
        status = parse_status(item["Status"])
        return cls(
            command_id=item["CommandId"],
            instance_id=item["InstanceId"],
            status=status,
            status_details=item.get("StatusDetails") or status.value,
            exit_code=_exit_code(code, status),
            instance_name=item.get("InstanceName") or "",
            requested_at=item.get("RequestedDateTime"),
            started_at=plugin.get("ResponseStartDateTime"),
            finished_at=plugin.get("ResponseFinishDateTime"),
            stdout=stdout,
            stderr=stderr,
            stdout_url=item.get("StandardOutputUrl") or plugin.get("StandardOutputUrl") or "",
            stderr_url=item.get("StandardErrorUrl") or plugin.get("StandardErrorUrl") or "",
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
        return not is_running(self.status)

    @property
    def failed(self) -> bool:
        return is_failure(self.status)

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, (self.finished_at - self.started_at).total_seconds())

    def describe(self) -> str:
        """One line: instance, status, details, exit code and what the details mean."""
        name = f" ({self.instance_name})" if self.instance_name else ""
        code = "" if self.exit_code is None else f", exit code {self.exit_code}"
        return (
            f"{self.instance_id}{name}: {self.status.value} ({self.status_details}){code}"
            f" - {explain(self.status_details)} [command {self.command_id}]"
        )

    def as_row(
        self, *, tail_lines: int = 20, stdout_lines: int | None = None, tail_chars: int = 2000
    ) -> dict[str, Any]:
        """A JSON-serialisable row of the per-instance result table (tails of ``tail_lines`` lines)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat(timespec="seconds") if value else None

        return {
            "instance_id": self.instance_id,
            "instance_name": self.instance_name,
            "command_id": self.command_id,
            "status": self.status.value,
            "status_details": self.status_details,
            "exit_code": self.exit_code,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "duration_seconds": self.duration_seconds,
            "stdout_tail": tail(
                self.stdout, lines=tail_lines if stdout_lines is None else stdout_lines, chars=tail_chars
            ),
            "stderr_tail": tail(self.stderr, lines=tail_lines, chars=tail_chars),
            # Full output links matter where something went wrong; a success row stays small.
            "stdout_url": self.stdout_url if self.failed else "",
            "stderr_url": self.stderr_url if self.failed else "",
        }


@dataclass(frozen=True)
class CommandSummary:
    """What SSM says of one command as a whole.

    :param command_id: the SSM command id.
    :param status: the command :class:`Status`.
    :param status_details: the command ``StatusDetails``.
    :param target_count: how many instances SSM resolved the command to (0 until it knows).
    :param instance_ids: the instance ids the command was sent to (empty for tag targets).
    """

    command_id: str
    status: Status
    status_details: str
    target_count: int = 0
    instance_ids: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, command: Mapping[str, Any]) -> CommandSummary:
        """Build from a ``Command`` of SendCommand or ListCommands."""
        status = parse_status(command["Status"])
        return cls(
            command_id=command["CommandId"],
            status=status,
            status_details=command.get("StatusDetails") or status.value,
            target_count=int(command.get("TargetCount") or 0),
            instance_ids=tuple(command.get("InstanceIds") or ()),
        )

    @property
    def expected_count(self) -> int:
        return max(self.target_count, len(self.instance_ids))


#: Failed instances whose result rows keep full output tails (the others keep their last stderr line).
MAX_ROWS_WITH_TAILS = 50
#: Characters of the one-line tails of the other rows.
SHORT_TAIL_CHARS = 120

_TOLERANCE = re.compile(r"^(?P<number>\d+)(?P<percent>%?)$")


@dataclass(frozen=True)
class FailureTolerance:
    """How many failed instances a fleet run may have and still succeed.

    :param count: an absolute number of instances, or a percentage of the fleet when ``percent``.
    :param percent: whether ``count`` is a percentage (0-100).
    """

    count: int = 0
    percent: bool = False

    @classmethod
    def parse(
        cls, value: int | str | FailureTolerance, *, field_name: str = "max_failed_instances"
    ) -> FailureTolerance:
        """Read ``3``, ``"3"`` or ``"10%"``; raise ``ValueError`` naming the field and the value."""
        if isinstance(value, FailureTolerance):
            return value
        match = _TOLERANCE.match(str(value).strip()) if not isinstance(value, bool) else None
        if match is None or (match["percent"] and int(match["number"]) > 100):
            raise ValueError(
                f"{field_name}={value!r} is invalid: give a number of instances (0 or more) "
                "or a percentage from 0% to 100%"
            )
        return cls(count=int(match["number"]), percent=bool(match["percent"]))

    def allowed(self, fleet_size: int) -> int:
        """How many failures are tolerated in a fleet of ``fleet_size`` instances."""
        if self.percent:
            return math.floor(fleet_size * self.count / 100)
        return self.count

    def __str__(self) -> str:
        return f"{self.count}%" if self.percent else str(self.count)


class Outcome(enum.StrEnum):
    """The verdict over a whole fleet."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class FleetVerdict:
    """The state of every invocation of one or more commands, and what it adds up to.

    :param outcome: running, succeeded or failed.
    :param expected: how many invocations the commands will have in all.
    :param allowed_failures: how many failed invocations are tolerated.
    :param invocations: the invocations seen so far, one per command and instance.
    :param problems: command-level failures that no invocation shows (e.g. no instance in the tag).
    :param exceeded: more failures than tolerated already, while instances still run (the
        ``finish`` policy lets them end before the verdict).
    """

    outcome: Outcome
    expected: int
    allowed_failures: int
    invocations: tuple[InvocationResult, ...] = ()
    problems: tuple[str, ...] = field(default=())
    exceeded: bool = False

    @property
    def failed(self) -> tuple[InvocationResult, ...]:
        return tuple(i for i in self.invocations if i.failed)

    @property
    def finished(self) -> tuple[InvocationResult, ...]:
        return tuple(i for i in self.invocations if i.finished)

    @property
    def running(self) -> tuple[InvocationResult, ...]:
        return tuple(i for i in self.invocations if not i.finished)

    def progress_line(self) -> str:
        """E.g. ``37/120 done: 35 Success, 2 Failed; 80 InProgress, 3 not listed yet``."""

        def counted(items: Iterable[InvocationResult]) -> str:
            counts = Counter(i.status.value for i in items)
            return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))

        done = self.finished
        line = f"{len(done)}/{self.expected} done"
        if done:
            line += f": {counted(done)}"
        waiting = [counted(self.running)] if self.running else []
        unseen = self.expected - len(self.invocations)
        if unseen > 0:
            waiting.append(f"{unseen} not listed yet")
        line += f"; {', '.join(waiting)}" if waiting else ""
        if self.exceeded:
            line += (
                f"; tolerance exceeded ({len(self.failed)} failed, at most {self.allowed_failures}):"
                " the run will fail once the others finish"
            )
        return line

    def failure_summary(self, *, stderr_lines: int = 5, max_instances: int = 25) -> str:
        """The failed instances with status, details, exit code and the end of their stderr.

        Instances that ran and failed come first (those SSM never started, e.g. ``Terminated``,
        explain less); past ``max_instances`` the rest are counted, not listed.
        """
        lines = [
            f"{len(self.failed)} of {self.expected} instance(s) failed "
            f"(at most {self.allowed_failures} tolerated); {self.progress_line()}"
        ]
        lines.extend(f"command problem: {problem}" for problem in self.problems)
        ordered = sorted(self.failed, key=lambda i: (i.started_at is None, i.instance_id))
        for invocation in ordered[:max_instances]:
            lines.append(f"- {invocation.describe()}")
            stderr = tail(invocation.stderr, lines=stderr_lines)
            if stderr:
                lines.extend(f"    stderr| {line}" for line in stderr.splitlines())
        if len(ordered) > max_instances:
            lines.append(
                f"... and {len(ordered) - max_instances} more failed instance(s): see the results XCom"
            )
        return "\n".join(lines)

    def summary(self) -> dict[str, Any]:
        """The verdict in a few JSON-serialisable numbers (for XCom and reports)."""
        return {
            "outcome": self.outcome.value,
            "expected": self.expected,
            "finished": len(self.finished),
            "failed": len(self.failed),
            "allowed_failures": self.allowed_failures,
            "progress": self.progress_line(),
            "problems": list(self.problems),
        }

    def table(self, *, tail_lines: int = 20, max_tails: int = MAX_ROWS_WITH_TAILS) -> list[dict[str, Any]]:
        """The per-instance result table (JSON-serialisable), sorted by instance id.

        Output tails are kept where they matter: ``tail_lines`` lines of stderr (half as many of
        stdout) on the first ``max_tails`` failed instances, the last stderr line on the other
        failed ones and the last stdout line on the rest, so the table of 1,000 instances stays
        well under 1 MB of XCom.
        """
        ordered = sorted(self.invocations, key=lambda i: (i.instance_id, i.command_id))
        rows = []
        tails_left = max_tails
        for invocation in ordered:
            if not invocation.failed:
                rows.append(invocation.as_row(tail_lines=0, stdout_lines=1, tail_chars=SHORT_TAIL_CHARS))
            elif tails_left > 0:
                tails_left -= 1
                rows.append(invocation.as_row(tail_lines=tail_lines, stdout_lines=max(tail_lines // 2, 1)))
            else:
                rows.append(invocation.as_row(tail_lines=1, stdout_lines=0, tail_chars=SHORT_TAIL_CHARS))
        return rows


def _command_problem(command: CommandSummary, seen: int) -> str | None:
    """A finished command that will never list an invocation is a failure no instance shows."""
    if is_running(command.status) or seen or command.expected_count:
        return None
    return (
        f"command {command.command_id} ended {command.status.value} ({command.status_details}) "
        f"with no invocation - {explain(command.status_details)}"
    )


class FailurePolicy(enum.StrEnum):
    """What a fleet run does once more instances failed than it tolerates while others still run.

    ``finish`` (the default of the sensor) lets every running instance end its batch and judges the
    fleet at the end: hosts run independently, a COTS batch killed half-way is what a support team
    has to repair by hand, and a Clear afterwards re-runs only the failed hosts. ``cancel`` fails
    the run at once and cancels the instances still running (SSM's ``MaxErrors`` stops *starting*
    new ones either way).
    """

    FINISH = "finish"
    CANCEL = "cancel"

    @classmethod
    def parse(cls, value: str | FailurePolicy, *, field_name: str = "failure_policy") -> FailurePolicy:
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(
                f"{field_name}={value!r} is invalid: give one of {[p.value for p in cls]}"
            ) from None


def latest_per_instance(ordered: Iterable[InvocationResult]) -> dict[str, InvocationResult]:
    """The latest invocation of each instance, from invocations in command order (later wins)."""
    latest: dict[str, InvocationResult] = {}
    for invocation in ordered:
        latest[invocation.instance_id] = invocation
    return latest


def _effective(
    commands: Sequence[CommandSummary], invocations: Iterable[InvocationResult]
) -> tuple[dict[str, InvocationResult], int]:
    """The invocation that counts for each instance, and how many earlier ones it superseded.

    Commands are given oldest first (an earlier attempt, or a duplicate send that was cancelled,
    before the command that replaced it): the last command listing an instance speaks for it.
    """
    order = {c.command_id: n for n, c in enumerate(commands)}
    unique = sorted(invocations, key=lambda i: order.get(i.command_id, len(order)))
    latest = latest_per_instance(unique)
    return latest, len(unique) - len(latest)


def fleet_verdict(
    commands: Sequence[CommandSummary],
    invocations: Iterable[InvocationResult],
    tolerance: FailureTolerance | int | str = 0,
    policy: FailurePolicy | str = FailurePolicy.FINISH,
) -> FleetVerdict:
    """Turn every invocation seen so far into one verdict over the fleet.

    ``commands`` are ordered oldest first; for an instance listed by several of them (an earlier
    attempt of a redriven run) the last one counts. An invocation list that is empty or shorter
    than the commands' target count (as right after SendCommand) means "not yet", never success.
    A percentage tolerance is applied only once SSM knows how many instances every command has.
    """
    limit = FailureTolerance.parse(tolerance)
    policy = FailurePolicy.parse(policy)
    unique = {(i.command_id, i.instance_id): i for i in invocations}
    per_command = Counter(command_id for command_id, _ in unique)
    latest, superseded = _effective(commands, unique.values())
    seen = tuple(latest.values())
    expected = sum(max(c.expected_count, per_command[c.command_id]) for c in commands) - superseded
    problems = tuple(p for c in commands if (p := _command_problem(c, per_command[c.command_id])))
    allowed = limit.allowed(expected)
    failures = sum(1 for i in seen if i.failed) + len(problems)
    running = (
        not commands
        or len(seen) < expected
        or any(not i.finished for i in seen)
        or any(is_running(c.status) for c in commands)
    )
    # Before SSM knows a tag command's target count, a percentage of a partial count means nothing.
    decidable = not running or not limit.percent or all(c.expected_count for c in commands)
    exceeded = decidable and (failures > allowed or (bool(problems) and not expected))
    if exceeded and (not running or policy is FailurePolicy.CANCEL):
        outcome = Outcome.FAILED
    elif running:
        outcome = Outcome.RUNNING
    else:
        outcome = Outcome.SUCCEEDED
    return FleetVerdict(
        outcome, expected, allowed, seen, problems, exceeded=exceeded and outcome is Outcome.RUNNING
    )


# -- one check at the AWS-call floor -----------------------------------------------------------------
def _running_command(command_id: str) -> CommandSummary:
    """A command known only through invocations of which some still run: it is running too.

    Its target count stays unknown (0), so the verdict counts the invocations listed so far.
    """
    return CommandSummary(command_id, Status.IN_PROGRESS, StatusDetails.IN_PROGRESS.value)


def commands_to_describe(
    command_ids: Sequence[str],
    invocations: Iterable[InvocationResult],
    tolerance: FailureTolerance | int | str = 0,
    policy: FailurePolicy | str = FailurePolicy.FINISH,
) -> list[str]:
    """The commands a check must read with ListCommands; the others speak through their invocations.

    A check lists every page of invocations of each command (the floor: one ListCommandInvocations
    call per 50 instances). While any invocation still runs, the fleet is running whatever
    ListCommands says, so it is read only where it can fail the run at once (``cancel`` policy):

    - a command that listed no invocation yet: it may have ended with none (no instance in the
      tag, every instance refused), a failure no instance shows;
    - with a percentage tolerance, once more invocations failed than the listed ones tolerate:
      only the target counts tell whether that is too many.

    Once no listed invocation runs, every command is read (each has listed nothing or only ended
    invocations): its status tells "not yet" from "never", and its target count whether the list
    is complete, before success or failure is declared.
    """
    limit, policy = FailureTolerance.parse(tolerance), FailurePolicy.parse(policy)
    per_command: dict[str, list[InvocationResult]] = {command_id: [] for command_id in command_ids}
    for invocation in invocations:
        per_command.setdefault(invocation.command_id, []).append(invocation)
    if all(i.finished for cid in command_ids for i in per_command[cid]):
        return list(command_ids)
    if policy is FailurePolicy.FINISH:
        return []
    if limit.percent:
        latest = latest_per_instance(i for cid in command_ids for i in per_command[cid]).values()
        if sum(1 for i in latest if i.failed) > limit.allowed(len(latest)):
            return list(command_ids)
    return [cid for cid in command_ids if not per_command[cid]]


def check_verdict(
    command_ids: Sequence[str],
    invocations: Iterable[InvocationResult],
    described: Mapping[str, CommandSummary],
    tolerance: FailureTolerance | int | str = 0,
    policy: FailurePolicy | str = FailurePolicy.FINISH,
) -> FleetVerdict:
    """The verdict of one check: ``described`` holds the commands read with ListCommands.

    Every other command had an invocation still running (see :func:`commands_to_describe`).
    """
    commands = [described.get(cid) or _running_command(cid) for cid in command_ids]
    return fleet_verdict(commands, invocations, tolerance, policy)


def with_attempts(rows: Iterable[dict[str, Any]], attempts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Result rows, each with the attempt of the run that produced it (1 when unknown)."""
    return [{**row, "attempt": attempts.get(row["command_id"]) or 1} for row in rows]
