"""What the fleet page shows, built from result rows or from live SSM answers.

Pure Python, no Airflow import: the page model comes either from the sensor's recorded ``results``
rows or from the commands and invocations SSM returns while the run is running; both go through
:mod:`ssm_fleet.status`, so a status is read the same way as the sensor reads it.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from cots_ssm.deadline import estimate_finish
from ssm_fleet.ledger import RunLedger
from ssm_fleet.render import summary, table
from ssm_fleet.status import Status, explain, is_failure, is_running, read_status
from ssm_fleet.verdict import Outcome

#: Console links of one instance: ``(label, url)`` pairs, given by the Airflow side of the page.
LinkMaker = Callable[[str, str], Sequence[tuple[str, str]]]


class Group(enum.StrEnum):
    """The three things a support engineer asks of a host: still running, fine, or failed."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


#: The order a support engineer reads hosts in: failed first, then running, then succeeded.
GROUP_RANK: Mapping[Group, int] = {Group.FAILED: 0, Group.RUNNING: 1, Group.SUCCEEDED: 2}


def group_of(status: Status) -> Group:
    """The page's group of a status: running, failed or succeeded."""
    if is_running(status):
        return Group.RUNNING
    return Group.FAILED if is_failure(status) else Group.SUCCEEDED


@dataclass(frozen=True)
class InstanceView:
    """One instance of the run, as the page shows it.

    :param instance_id: the managed instance id.
    :param status: its invocation :class:`Status`.
    :param status_details: SSM's ``StatusDetails``.
    :param exit_code: the script's exit code, ``None`` while running or never started.
    :param instance_name: the computer name SSM gives, if any.
    :param command_id: the command whose invocation speaks for the instance.
    :param started_at: ISO start time of the script.
    :param duration_seconds: how long the script ran, once it ended.
    :param stdout_tail: the end of its standard output.
    :param stderr_tail: the end of its standard error.
    :param attempt: the attempt of the run that produced the invocation.
    :param links: console links as ``(label, url)`` pairs.
    :param resent: what the wait re-sent by itself (``re-sent 1x after Delivery Timed Out at 02:14``).
    """

    instance_id: str
    status: Status
    status_details: str
    exit_code: int | None = None
    instance_name: str = ""
    command_id: str = ""
    started_at: str | None = None
    duration_seconds: float | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    attempt: int = 1
    links: tuple[tuple[str, str], ...] = ()
    resent: str = ""

    @property
    def group(self) -> Group:
        """The page's group of this host's status."""
        return group_of(self.status)

    @property
    def explanation(self) -> str:
        """The status details in words (``the script exited with a non-zero code``)."""
        return explain(self.status_details)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], links: LinkMaker | None = None) -> InstanceView:
        """Build from one row of the sensor's ``results`` table (:meth:`FleetVerdict.table`)."""
        status = read_status(row["status"])
        command_id = str(row.get("command_id") or "")
        code = row.get("exit_code")
        duration = row.get("duration_seconds")
        return cls(
            instance_id=str(row["instance_id"]),
            status=status,
            status_details=str(row.get("status_details") or status.value),
            exit_code=None if code is None else int(code),
            instance_name=str(row.get("instance_name") or ""),
            command_id=command_id,
            started_at=row.get("started_at"),
            duration_seconds=None if duration is None else float(duration),
            stdout_tail=str(row.get("stdout_tail") or ""),
            stderr_tail=str(row.get("stderr_tail") or ""),
            attempt=int(row.get("attempt") or 1),
            links=tuple(links(command_id, str(row["instance_id"]))) if links else (),
            resent=str(row.get("resent") or ""),
        )


@dataclass(frozen=True)
class HistoryPoint:
    """One earlier (or this) run of the DAG in the history chart.

    :param run_id: the DAG run id.
    :param duration_seconds: the run's wall time, ``None`` while it runs.
    :param failed: failed instances the sensor recorded, ``None`` if it recorded no verdict.
    :param state: the run's Airflow state.
    :param current: whether this is the run the page is about.
    """

    run_id: str
    duration_seconds: float | None
    failed: int | None
    state: str = ""
    current: bool = False


@dataclass(frozen=True)
class FleetPage:
    """Everything the fleet page of one DAG run shows.

    :param dag_id: the DAG.
    :param run_id: the DAG run.
    :param run_state: the run's Airflow state (``running``, ``success``, ...).
    :param live: whether the instances were read from SSM now (the run is running) rather than
        from the sensor's recorded results; a live page refreshes itself.
    :param instances: one view per instance, sorted by instance id.
    :param progress: the verdict's progress line, if known.
    :param outcome: the fleet verdict (``running``, ``succeeded``, ``failed``), if known.
    :param commands: ``(command id, console url)`` of the run's commands.
    :param history: the last runs of the DAG, oldest first.
    :param note: why the page shows less than expected (e.g. SSM could not be read).
    :param overrides: who triggered the run with which values other than the job's, one per line.
    :param expected: how many hosts the run covers, listed or not yet (default: 0, unknown).
    :param allowed_failures: the failed hosts the run tolerates, if known (default: ``None``).
    :param gone: hosts that left the fleet since an earlier attempt, named and not counted.
    :param deadline: the run's deadline and, while it runs, the estimate of the fleet's end, in words
        (:func:`deadline_line`) (default: none, the job has no deadline).
    """

    dag_id: str
    run_id: str
    run_state: str
    live: bool
    instances: tuple[InstanceView, ...] = ()
    progress: str = ""
    outcome: str = ""
    commands: tuple[tuple[str, str], ...] = ()
    history: tuple[HistoryPoint, ...] = ()
    note: str = ""
    generated_at: datetime | None = field(default=None, compare=False)
    overrides: tuple[str, ...] = ()
    expected: int = 0
    allowed_failures: int | None = None
    gone: tuple[str, ...] = ()
    deadline: str = ""

    def counts(self) -> list[tuple[Status, int]]:
        """How many instances are in each status, in the order of :class:`Status`, zeros left out."""
        seen = Counter(i.status for i in self.instances)
        return [(status, seen[status]) for status in Status if seen[status]]

    def group_counts(self) -> dict[Group, int]:
        """How many hosts are in each group, every group present."""
        seen = Counter(i.group for i in self.instances)
        return {group: seen[group] for group in Group}

    def slowest(self, count: int = 5) -> list[InstanceView]:
        """The instances that ran longest, longest first."""
        timed = [i for i in self.instances if i.duration_seconds is not None]
        return sorted(timed, key=lambda i: (-(i.duration_seconds or 0.0), i.instance_id))[:count]

    def find(self, instance_id: str) -> InstanceView | None:
        """The host with this instance id, or ``None``."""
        return next((i for i in self.instances if i.instance_id == instance_id), None)

    def failed_first(self) -> list[InstanceView]:
        """The instances in the order a support engineer reads them: failed, running, succeeded."""
        return sorted(self.instances, key=lambda i: (GROUP_RANK[i.group], i.instance_id))

    def first_failed(self) -> InstanceView | None:
        """The instance whose details a failed run opens with, if any failed."""
        return next((i for i in self.failed_first() if i.group is Group.FAILED), None)

    def remarks(self) -> list[str]:
        """What the per-status counts do not say: hosts not listed yet, hosts gone, the tolerance."""
        said = []
        unlisted = self.expected - len(self.instances)
        if unlisted > 0:
            said.append(f"{unlisted} not listed by SSM yet")
        if self.gone:
            said.append(f"{len(self.gone)} gone from the fleet, not counted ({', '.join(self.gone[:5])})")
        if self.allowed_failures is not None:
            failed = self.group_counts()[Group.FAILED]
            said.append(f"at most {self.allowed_failures} failed tolerated")
            if failed > self.allowed_failures and self.live:
                said.append("tolerance exceeded: the run will fail once the others finish")
        return said


def views_from_rows(rows: Iterable[Mapping[str, Any]], links: LinkMaker | None = None) -> list[InstanceView]:
    """Instance views of recorded result rows, sorted by instance id."""
    return sorted((InstanceView.from_row(r, links) for r in rows), key=lambda i: i.instance_id)


def live_rows(
    commands: Sequence[Mapping[str, Any]], invocations: Iterable[Mapping[str, Any]], gone: Sequence[str] = ()
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Result rows and a verdict summary from ListCommands / ListCommandInvocations answers.

    The run's ledger reads them as the wait does: one row per host, its latest invocation, each
    with its attempt; hosts that left the fleet (``gone``) are named, not counted.
    """
    verdict = RunLedger.from_api(commands, invocations).verdict(gone=gone)
    done = summary(verdict)
    # The run's tolerance is the wait's to apply: live, the page only says whether it still runs.
    done["outcome"] = Outcome.RUNNING.value if verdict.outcome is Outcome.RUNNING else ""
    return table(verdict), done


def deadline_line(
    *,
    deadline_at: datetime,
    timezone: str,
    now: datetime,
    live: bool,
    views: Sequence[InstanceView],
    expected: int,
    started_at: datetime | None,
    history: Iterable[HistoryPoint],
) -> str:
    """The run's deadline in local time and, while the run runs, when the fleet will likely finish.

    The estimate is the early alert's (:func:`cots_ssm.deadline.estimate_finish`): from the hosts
    finished so far and the last successful runs' durations; "no estimate yet" until either is enough.
    """
    zone = ZoneInfo(timezone)
    text = f"Deadline {deadline_at.astimezone(zone):%Y-%m-%d %H:%M} ({timezone})"
    if not live:
        return text
    starts = [_parse_time(v.started_at) for v in views if v.started_at]
    started = min((s for s in starts if s), default=None) or started_at or now
    # A successful night that ran the fleet (a skipped night is green with no verdict).
    nights = [
        p.duration_seconds
        for p in history
        if p.state == "success" and p.failed is not None and not p.current and p.duration_seconds
    ]
    estimate = estimate_finish(
        now=now,
        started_at=started,
        fleet_size=max(expected, len(views)),
        finished=sum(1 for v in views if v.group is not Group.RUNNING),
        nights=nights,
    )
    if estimate is None:
        return f"{text} · no estimate yet (a quarter of the hosts finished, or two successful nights)"
    verdict = "past the deadline" if estimate.finish > deadline_at else "on time"
    clock = f"{estimate.finish.astimezone(zone):%H:%M}"
    return f"{text} · estimate: the fleet finishes ~{clock}, {verdict} (from {estimate.basis})"


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
