"""The failures a fleet run raises, each with the line an alert's subject gives it."""

from __future__ import annotations

from ssm_fleet.compat import AirflowException, AirflowFailException


class FleetRunFailed(AirflowFailException):
    """The fleet run failed for good (no retry would change it).

    :param message: the whole reason, naming hosts, statuses and exit codes.
    :param headline: what happened to the fleet, in a few words, for an alert's subject.
    """

    def __init__(self, message: str, *, headline: str = ""):
        super().__init__(message)
        self.headline = headline


class FleetRunError(AirflowException):
    """A try of the fleet run failed in a way the next try may get past (it is retried).

    :param message: the whole reason.
    :param headline: what happened to the fleet, in a few words, for an alert's subject.
    """

    def __init__(self, message: str, *, headline: str = ""):
        super().__init__(message)
        self.headline = headline
