"""Automatic re-sends within a run: which hosts get their batch again, and how that is named.

Pure Python with no Airflow import and no AWS call. A host whose latest invocation ended WITHOUT
running the batch (:data:`MISSED_START_DETAILS`: ``Delivery Timed Out``, ``Undeliverable``,
``Terminated``, each with no start time) is re-sent by the wait once it is ``Online`` again; a
host whose batch ran and failed is re-sent only when its exit code is one the job lists. Each host
gets at most ``host_retries`` automatic re-sends per attempt, none after ``until``. ``Cancelled``
is never re-sent: SSM cancels an invocation only when asked (by a user, a failure policy or a
timeout), and a re-send would undo that request. ``Execution Timed Out`` ran, and is judged.

A re-send is one command for one host whose token is the host's re-send number within the
attempt (:func:`ssm_fleet.plan.resend_comment`), so the run ledger lists it as one more invocation
of the host, after the attempt's chunks, and a second copy of it is a duplicate the wait cancels.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

from ssm_fleet.invocations import InvocationResult
from ssm_fleet.ledger import HostRecord, RunLedger
from ssm_fleet.status import PingStatus, Status, StatusDetails

#: Status details of an invocation SSM ended before the batch started on the host.
MISSED_START_DETAILS = frozenset(
    {StatusDetails.DELIVERY_TIMED_OUT, StatusDetails.UNDELIVERABLE, StatusDetails.TERMINATED}
)
#: At most this many automatic re-sends of one host within one attempt (the token keeps one digit).
MAX_HOST_RETRIES = 9


@dataclass(frozen=True)
class ResendPolicy:
    """When a wait re-sends a host by itself.

    :param host_retries: automatic re-sends per host and attempt, 0-9 (default: 1).
    :param retry_exit_codes: exit codes of a batch that ran and failed that are re-run too
        (default: none: a batch that ran is never re-run by itself).
    :param until: no re-send after this moment, in seconds since the epoch (default: None, the
        wait's own timeout is the bound).
    """

    host_retries: int = 1
    retry_exit_codes: frozenset[int] = field(default_factory=frozenset)
    until: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.host_retries <= MAX_HOST_RETRIES:
            raise ValueError(
                f"host_retries={self.host_retries!r} is invalid: "
                f"give 0 to {MAX_HOST_RETRIES} re-sends per host"
            )
        bad = sorted(c for c in self.retry_exit_codes if not 1 <= c <= 255)
        if bad:
            raise ValueError(
                f"retry_exit_codes={sorted(self.retry_exit_codes)!r} is invalid: {bad} not in 1-255"
            )

    @property
    def enabled(self) -> bool:
        """Whether any host may be re-sent at all."""
        return self.host_retries > 0

    def open_at(self, now: float) -> bool:
        """Whether a re-send may still go out at ``now``."""
        return self.enabled and (self.until is None or now < self.until)

    def to_dict(self) -> dict[str, object]:
        """JSON-serialisable (the trigger's kwargs)."""
        return {
            "host_retries": self.host_retries,
            "retry_exit_codes": sorted(self.retry_exit_codes),
            "until": self.until,
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, object] | None) -> ResendPolicy | None:
        """The policy from its dict form (a trigger's kwargs), ``None`` for none."""
        if not value:
            return None
        codes = cast(Iterable[object], value.get("retry_exit_codes") or ())
        until = value.get("until")
        return cls(
            host_retries=int(str(value.get("host_retries", 1))),
            retry_exit_codes=frozenset(int(str(c)) for c in codes),
            until=None if until is None else float(str(until)),
        )


def missed_start(invocation: InvocationResult) -> bool:
    """Whether SSM ended the invocation before the batch started on the host."""
    return (
        invocation.finished
        and invocation.started_at is None
        and invocation.status_details in {d.value for d in MISSED_START_DETAILS}
    )


def wants_resend(invocation: InvocationResult, policy: ResendPolicy) -> bool:
    """Whether the invocation's host is one a re-send is for: missed the start, or a listed exit code."""
    if not policy.enabled or not invocation.finished:
        return False
    if missed_start(invocation):
        return True
    return invocation.status is Status.FAILED and invocation.exit_code in policy.retry_exit_codes


def why(invocation: InvocationResult) -> str:
    """``Delivery Timed Out``, or ``exit code 75``: what a re-send answers."""
    if missed_start(invocation) or invocation.exit_code is None:
        return invocation.status_details
    return f"exit code {invocation.exit_code}"


def resends_of(record: HostRecord, attempt: int) -> list[InvocationResult]:
    """The host's automatic re-sends within ``attempt``, in order."""
    return [i for i in record.invocations if i.attempt == attempt and i.resend]


@dataclass(frozen=True)
class Due:
    """One re-send to do: the host, its re-send number, what it answers, the command it repeats.

    :param instance_id: the host.
    :param resend: its re-send number within the attempt (1 for the first).
    :param reason: what the latest invocation ended with (``Delivery Timed Out``, ``exit code 75``).
    :param source_command_id: the command whose document, parameters and options it repeats.
    """

    instance_id: str
    resend: int
    reason: str
    source_command_id: str


@dataclass(frozen=True)
class ResendRound:
    """What one check does about re-sends.

    :param due: re-sends to send now (hosts ``Online``).
    :param waiting: hosts with a re-send left that are not ``Online`` (or not known to be yet):
        still running for the verdict, not failures.
    """

    due: tuple[Due, ...] = ()
    waiting: tuple[str, ...] = ()


def candidates(ledger: RunLedger, attempt: int, policy: ResendPolicy, now: float) -> list[Due]:
    """Hosts whose latest invocation wants a re-send and who have one left, before the bound."""
    if not policy.open_at(now):
        return []
    due = []
    # A re-send SSM lists before any invocation of it counts as used too.
    sent = {
        (c.instance_ids[0], c.resend)
        for c in ledger.commands
        if c.resend and c.attempt == attempt and c.instance_ids
    }
    for host, record in ledger.hosts.items():
        latest = record.latest
        used = max(
            [i.resend for i in resends_of(record, attempt)] + [k for h, k in sent if h == host], default=0
        )
        if latest.attempt != attempt or used >= policy.host_retries or not wants_resend(latest, policy):
            continue
        due.append(Due(host, used + 1, why(latest), latest.command_id))
    return due


def plan_round(due: Iterable[Due], instances: Iterable[Mapping[str, object]]) -> ResendRound:
    """Split the candidates by DescribeInstanceInformation: ``Online`` ones go, ``ConnectionLost`` wait.

    A host SSM no longer lists, or lists ``Inactive`` (terminated, deregistered), will not come
    back: it neither goes nor waits, and is judged by its latest invocation now.
    """
    ping = {str(i.get("InstanceId")): i.get("PingStatus") for i in instances}
    todo = tuple(d for d in due if ping.get(d.instance_id) == PingStatus.ONLINE)
    waiting = tuple(d.instance_id for d in due if ping.get(d.instance_id) == PingStatus.CONNECTION_LOST)
    return ResendRound(todo, waiting)


def resend_note(record: HostRecord, attempt: int) -> str:
    """E.g. ``re-sent 1x after Delivery Timed Out at 02:14``; empty for a host never re-sent."""
    sent = resends_of(record, attempt)
    if not sent:
        return ""
    before = {i.command_id: n for n, i in enumerate(record.invocations)}
    parts = []
    for invocation in sent:
        index = before[invocation.command_id]
        reason = why(record.invocations[index - 1]) if index else "?"
        at = invocation.requested_at.strftime("%H:%M") if invocation.requested_at else "?"
        parts.append(f"after {reason} at {at}")
    return f"re-sent {len(sent)}x " + ", ".join(parts)


def notes(
    ledger: RunLedger, attempt: int, hosts: Collection[str] | None = None
) -> tuple[tuple[str, str], ...]:
    """``(host, note)`` of every host re-sent within ``attempt`` (of ``hosts``, if given)."""
    found = []
    for host, record in ledger.hosts.items():
        note = resend_note(record, attempt)
        if note and (hosts is None or host in hosts):
            found.append((host, note))
    return tuple(found)
