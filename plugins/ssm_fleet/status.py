"""The vocabulary of SSM Run Command: statuses, status details, ping statuses, and what they mean.

Pure Python with no Airflow import. Every SSM status and status detail is spelled here and only
here; parsing answers (:mod:`ssm_fleet.invocations`), the run ledger (:mod:`ssm_fleet.ledger`), the
verdict (:mod:`ssm_fleet.verdict`) and the texts (:mod:`ssm_fleet.render`) read them from this module.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


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
    #: A status this package does not know (SSM may add one): reported as such, counted as still
    #: running (so the wait neither crashes nor ends green on it; its timeout bounds it).
    UNKNOWN = "Unknown"


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


RUNNING_STATUSES = frozenset(
    {Status.PENDING, Status.IN_PROGRESS, Status.DELAYED, Status.CANCELLING, Status.UNKNOWN}
)
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


def read_status(value: object) -> Status:
    """The :class:`Status` of an SSM answer: :attr:`Status.UNKNOWN` for one this package does not know."""
    try:
        return Status(str(value))
    except ValueError:
        return Status.UNKNOWN


def is_running(status: Status) -> bool:
    """Whether an invocation in this status may still change (not ended)."""
    return status in RUNNING_STATUSES


def is_success(status: Status) -> bool:
    """Whether this status is a success."""
    return status in SUCCESS_STATUSES


def is_failure(status: Status) -> bool:
    """Whether this status is a failure."""
    return status in FAILURE_STATUSES


def explain(details: str) -> str:
    """Say in words what a status detail means; unknown details are returned as they are."""
    try:
        return DETAIL_EXPLANATIONS[StatusDetails(details)]
    except ValueError:
        return details
