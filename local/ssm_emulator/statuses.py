"""Run Command statuses, spelled as botocore's SSM service model documents them.

`Status` values are the `CommandInvocationStatus` / `CommandStatus` enums of the model;
`Details` values are the `StatusDetails` strings listed in the documentation of
`CommandInvocation.StatusDetails` and `Command.StatusDetails`
(botocore/data/ssm/2014-11-06/service-2.json). `Cancelling` has no documented detail
string; the emulator reports it as `Cancelling`.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """Invocation and command `Status` values."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    DELAYED = "Delayed"
    SUCCESS = "Success"
    CANCELLED = "Cancelled"
    TIMED_OUT = "TimedOut"
    FAILED = "Failed"
    CANCELLING = "Cancelling"


class Details(enum.StrEnum):
    """`StatusDetails` values."""

    PENDING = "Pending"
    IN_PROGRESS = "In Progress"
    SUCCESS = "Success"
    FAILED = "Failed"
    DELIVERY_TIMED_OUT = "Delivery Timed Out"
    EXECUTION_TIMED_OUT = "Execution Timed Out"
    CANCELLED = "Cancelled"
    CANCELLING = "Cancelling"
    TERMINATED = "Terminated"
    INCOMPLETE = "Incomplete"
    NO_INSTANCES_IN_TAG = "No Instances In Tag"


#: Statuses after which an invocation never changes again.
TERMINAL = frozenset({Status.SUCCESS, Status.CANCELLED, Status.TIMED_OUT, Status.FAILED})
#: Statuses of an invocation that still holds (or waits for) a process.
ACTIVE = frozenset({Status.PENDING, Status.IN_PROGRESS, Status.DELAYED, Status.CANCELLING})
#: Details that count against MaxErrors (the model: "Failed or Execution Timed Out").
ERRORS = frozenset({Details.FAILED, Details.EXECUTION_TIMED_OUT})

#: The agent's exit code for a script it stopped (execution timeout or cancel): 128 + SIGKILL.
STOPPED_EXIT_CODE = 137
#: ResponseCode of an invocation that never started ("hasn't started running" in the model).
NOT_STARTED_CODE = -1


def is_terminal(status: str) -> bool:
    """Tell whether an invocation or command status is final."""
    return status in TERMINAL


def matches_status_filter(value: str, status: str, details: str) -> bool:
    """Match a `Status` filter value of ListCommands / ListCommandInvocations.

    The filter accepts both statuses (`TimedOut`) and details without spaces
    (`DeliveryTimedOut`, `ExecutionTimedOut`, `Terminated`, `Incomplete`).
    """
    return value in (status, details.replace(" ", ""))
