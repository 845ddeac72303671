"""The verdict over a fleet's hosts: how many may fail, what a failure beyond that does, and the outcome.

Pure Python with no Airflow import. The verdict is computed by the run ledger
(:meth:`ssm_fleet.ledger.RunLedger.verdict`), one invocation per host; texts are in
:mod:`ssm_fleet.render`.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from ssm_fleet.invocations import InvocationResult

_TOLERANCE = re.compile(r"^(?P<number>\d+)(?P<percent>%?)$")


@dataclass(frozen=True)
class FailureTolerance:
    """How many failed hosts a fleet run may have and still succeed.

    :param count: an absolute number of hosts, or a percentage of the fleet when ``percent``.
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
        """How many failures are tolerated in a fleet of ``fleet_size`` hosts."""
        if self.percent:
            return math.floor(fleet_size * self.count / 100)
        return self.count

    def __str__(self) -> str:
        return f"{self.count}%" if self.percent else str(self.count)


class FailurePolicy(enum.StrEnum):
    """What a fleet run does once more hosts failed than it tolerates while others still run.

    ``finish`` (the default of the sensor) lets every running host end its batch and judges the
    fleet at the end: hosts run independently, a batch killed half-way is what a support team
    has to repair by hand, and a Clear afterwards re-runs only the failed hosts. ``cancel`` fails
    the run at once and cancels the hosts still running (SSM's ``MaxErrors`` stops *starting*
    new ones either way).
    """

    FINISH = "finish"
    CANCEL = "cancel"

    @classmethod
    def parse(cls, value: str | FailurePolicy, *, field_name: str = "failure_policy") -> FailurePolicy:
        """Read a policy from a form or jobs-file value, or raise naming ``field_name`` and the value."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(
                f"{field_name}={value!r} is invalid: give one of {[p.value for p in cls]}"
            ) from None


class Outcome(enum.StrEnum):
    """The verdict over a whole fleet."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class FleetVerdict:
    """The latest invocation of every host of a run, and what they add up to.

    :param outcome: running, succeeded or failed.
    :param expected: how many hosts the run covers (listed, or still to be listed by SSM).
    :param allowed_failures: how many failed hosts are tolerated.
    :param invocations: the latest invocation of each host listed so far, one per host.
    :param problems: command-level failures that no invocation shows (e.g. no instance in the tag).
    :param exceeded: more failures than tolerated already, while hosts still run (the ``finish``
        policy lets them end before the verdict).
    :param gone: hosts of earlier attempts that left the fleet: named, neither sent nor counted.
    :param waiting: hosts the wait is about to re-send (:mod:`ssm_fleet.resend`): still to come.
    :param resent: ``(host, note)`` of each host the wait re-sent by itself in this attempt.
    """

    outcome: Outcome
    expected: int
    allowed_failures: int
    invocations: tuple[InvocationResult, ...] = ()
    problems: tuple[str, ...] = ()
    exceeded: bool = False
    gone: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    resent: tuple[tuple[str, str], ...] = ()

    @property
    def failed(self) -> tuple[InvocationResult, ...]:
        """The hosts that failed."""
        return tuple(i for i in self.invocations if i.failed)

    @property
    def finished(self) -> tuple[InvocationResult, ...]:
        """The hosts that ended."""
        return tuple(i for i in self.invocations if i.finished)

    @property
    def running(self) -> tuple[InvocationResult, ...]:
        """The hosts still running."""
        return tuple(i for i in self.invocations if not i.finished)

    @property
    def unlisted(self) -> int:
        """Hosts the run covers that SSM has not listed yet."""
        return max(0, self.expected - len(self.invocations))


def decide(
    *,
    expected: int,
    latest: tuple[InvocationResult, ...],
    problems: tuple[str, ...],
    commands_running: bool,
    counts_known: bool,
    tolerance: FailureTolerance,
    policy: FailurePolicy,
    gone: tuple[str, ...] = (),
) -> FleetVerdict:
    """The outcome from the latest invocation of each host and the commands' own state.

    A list that is empty or shorter than ``expected`` (as right after SendCommand) means "not
    yet", never success; a percentage tolerance is applied only once ``counts_known`` (SSM has
    said how many hosts every tag command has).
    """
    allowed = tolerance.allowed(expected)
    failures = sum(1 for i in latest if i.failed) + len(problems)
    running = commands_running or len(latest) < expected or any(not i.finished for i in latest)
    decidable = not running or not tolerance.percent or counts_known
    exceeded = decidable and (failures > allowed or (bool(problems) and not expected))
    if exceeded and (not running or policy is FailurePolicy.CANCEL):
        outcome = Outcome.FAILED
    elif running:
        outcome = Outcome.RUNNING
    else:
        outcome = Outcome.SUCCEEDED
    return FleetVerdict(
        outcome,
        expected,
        allowed,
        latest,
        problems,
        exceeded=exceeded and outcome is Outcome.RUNNING,
        gone=gone,
    )
