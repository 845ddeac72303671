"""The night's deadline: when it falls, when the fleet will likely finish, which alert is due. Pure Python.

A job's ``deadline: "HH:MM"`` is read in the job's timezone. The deadline of a run is the first
HH:MM local time after the run's logical date (DST-aware, :mod:`zoneinfo`): a 02:00 run with a
06:00 deadline must be done by 06:00 that morning, 05:00 UTC in winter and 04:00 UTC in summer in
Paris. A manual run's logical date is when it was triggered: it gets the job's *budget*, the time
from the schedule's time of day to the deadline (4 h for 02:00 -> 06:00), so a re-run at 08:00 is
due by 12:00 rather than the next morning.

The estimate of when the fleet finishes comes from two sources (:func:`estimate_finish`): the run's
own progress (hosts finished so far, extrapolated over the fleet) once at least a quarter of the
hosts have finished, and the median duration of the last successful nights once there are at least
two. With both, the more hosts have finished the more the progress counts. The early "running late"
alert is due when the estimate passes the deadline before the deadline; the deadline alert when the
deadline passes while the run still runs. Texts: :class:`DeadlineNotice`.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from ssm_fleet.alert import FailureAlert

_HHMM = re.compile(r"^(?P<hour>[01][0-9]|2[0-3]):(?P<minute>[0-5][0-9])$")
#: Hosts finished, as a share of the fleet, before the run's progress makes an estimate.
MIN_FINISHED_SHARE = 0.25
#: Successful nights before their durations make an estimate.
MIN_NIGHTS = 2
#: The last successful nights whose median duration is used.
MAX_NIGHTS = 7
#: Hosts named in an alert; the others are counted.
MAX_LISTED_HOSTS = 20
#: The night whose time of day gives a job's budget: mid-January has no DST change in either hemisphere.
_REFERENCE_NIGHT = datetime(2026, 1, 15)
MANUAL = "manual"
LATE_OPENING = "Attention: the COTS batch is running late: it will likely miss its deadline."
MISSED_OPENING = "Attention required: the COTS batch has not finished by its deadline."


def parse_deadline(value: str, *, field_name: str = "deadline") -> time:
    """``"06:00"`` as a time of day; raise ``ValueError`` naming the field and the value."""
    match = _HHMM.match(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"{field_name}={value!r} is not a time of day: give HH:MM, 00:00 to 23:59 (e.g. 06:00)"
        )
    return time(int(match["hour"]), int(match["minute"]))


def next_local_time(after: datetime, at: time, timezone: str) -> datetime:
    """The first ``at`` local time strictly after ``after`` (aware), as an aware UTC datetime.

    A local time skipped by a spring-forward change is read as the same wall clock after the
    change (02:30 on that night is 03:30 local); a repeated one, as its first occurrence.
    """
    zone = ZoneInfo(timezone)
    local = after.astimezone(zone)
    for days in range(3):
        # fold=0 (PEP 495): a skipped time reads with the offset before the change, so 02:30 on a
        # spring-forward night is 03:30 local; a repeated time is its first occurrence.
        candidate = datetime.combine(local.date() + timedelta(days=days), at, tzinfo=zone)
        if candidate.astimezone(UTC) > after.astimezone(UTC):
            return candidate.astimezone(UTC)
    raise AssertionError("a time of day recurs within two days")  # pragma: no cover


def budget(schedule: str, deadline: time, timezone: str) -> timedelta:
    """From the schedule's time of day to the deadline on a night without DST change (02:00 -> 06:00: 4 h).

    :param schedule: the job's cron (5 fields).
    :param deadline: the job's deadline.
    :param timezone: the job's timezone.
    """
    zone = ZoneInfo(timezone)
    fire: datetime = croniter(schedule, _REFERENCE_NIGHT.replace(tzinfo=zone)).get_next(datetime)
    return next_local_time(fire, deadline, timezone) - fire.astimezone(UTC)


def run_deadline(
    logical_date: datetime, deadline: time, timezone: str, *, run_type: str = "scheduled", schedule: str = ""
) -> datetime:
    """The deadline of one run (aware UTC): see the module docstring.

    :param logical_date: the run's logical date (aware).
    :param deadline: the job's deadline.
    :param timezone: the job's timezone.
    :param run_type: the run's type; a ``manual`` run gets the job's :func:`budget` (default: scheduled).
    :param schedule: the job's cron, for a manual run's budget (default: none: the next HH:MM).
    """
    if run_type == MANUAL and schedule:
        return logical_date.astimezone(UTC) + budget(schedule, deadline, timezone)
    return next_local_time(logical_date, deadline, timezone)


@dataclass(frozen=True)
class Estimate:
    """When the fleet will likely finish, and from what.

    :param finish: the estimated end of the fleet (aware UTC).
    :param basis: what it was computed from, in words.
    """

    finish: datetime
    basis: str


def _duration(seconds: float) -> str:
    whole = int(max(0.0, seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def estimate_finish(
    *,
    now: datetime,
    started_at: datetime,
    fleet_size: int,
    finished: int,
    nights: Sequence[float] = (),
) -> Estimate | None:
    """When the fleet will likely finish; ``None`` until there is enough to say (module docstring).

    :param now: the time of the estimate (aware).
    :param started_at: when the fleet was sent (aware); the last nights are counted from it too.
    :param fleet_size: how many hosts the run covers.
    :param finished: how many of them have finished (whatever their outcome).
    :param nights: durations in seconds of the last successful runs, most recent last (default: none).
    """
    if fleet_size <= 0 or finished >= fleet_size:
        return None
    elapsed = max(0.0, (now - started_at).total_seconds())
    by_progress = None
    if finished >= max(1, math.ceil(fleet_size * MIN_FINISHED_SHARE)):
        by_progress = elapsed * fleet_size / finished
    recent = [n for n in nights if n > 0][-MAX_NIGHTS:]
    by_nights = statistics.median(recent) if len(recent) >= MIN_NIGHTS else None
    if by_progress is None and by_nights is None:
        return None
    progress_text = f"{finished}/{fleet_size} host(s) finished in {_duration(elapsed)}"
    nights_text = f"the last {len(recent)} successful night(s), median {_duration(by_nights or 0)}"
    if by_progress is not None and by_nights is not None:
        weight = finished / fleet_size
        seconds = weight * by_progress + (1 - weight) * by_nights
        basis = f"{progress_text}, and {nights_text}"
    elif by_progress is not None:
        seconds, basis = by_progress, progress_text
    else:
        seconds, basis = by_nights or 0.0, nights_text
    # A fleet still running cannot finish in the past: never earlier than now.
    return Estimate(max(now, started_at + timedelta(seconds=seconds)).astimezone(UTC), basis)


def late_alert_due(estimate: Estimate | None, deadline: datetime, now: datetime) -> bool:
    """The early alert is due when the estimate passes the deadline, before the deadline."""
    return estimate is not None and now < deadline < estimate.finish


def deadline_alert_due(deadline: datetime, now: datetime, watching_since: datetime) -> bool:
    """The deadline alert is due once the deadline has passed, by a watch that began before it.

    A watch started after the deadline (a Clear in the morning, a backfill of an old night) does
    not alert: that night's alert was sent, or the night was long over.
    """
    return watching_since < deadline <= now


@dataclass(frozen=True)
class RunningHost:
    """A host still running its batch.

    :param instance_id: the managed instance id.
    :param since: when its batch started (or was sent, if it has not started), aware.
    :param instance_name: its computer name, if SSM gives one (default: none).
    """

    instance_id: str
    since: datetime | None
    instance_name: str = ""


def slowest_first(hosts: Sequence[RunningHost]) -> list[RunningHost]:
    """The hosts running the longest first (unknown start last), then by id."""
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(hosts, key=lambda h: (h.since or far, h.instance_id))


@dataclass(frozen=True)
class DeadlineNotice:
    """The "running late" or "deadline missed" alert: the night, the hosts still running, the estimate.

    Published like the failure alert (same topic, same notifier); it fails and stops nothing.

    :param dag_id: the job's DAG.
    :param run_id: the run.
    :param deadline_at: the run's deadline (aware UTC).
    :param deadline_text: the deadline as the jobs file says it (``06:00``).
    :param timezone: the job's timezone.
    :param now: when the alert was written (aware).
    :param running: the hosts still running.
    :param fleet_size: how many hosts the run covers, if known (default: None).
    :param night: the run's logical date (aware) (default: None).
    :param fleet_url: the run's fleet page (default: none).
    :param late: the early alert (an estimate past the deadline) rather than the missed deadline
        (default: False).
    :param estimate: the estimate of the fleet's end (the early alert has one) (default: None).
    """

    dag_id: str
    run_id: str
    deadline_at: datetime
    deadline_text: str
    timezone: str
    now: datetime
    running: Sequence[RunningHost] = ()
    fleet_size: int | None = None
    night: datetime | None = None
    fleet_url: str = ""
    late: bool = False
    estimate: Estimate | None = None

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m-%d %H:%M")

    def subject(self) -> str:
        """One line under 100 chars: running late (with the estimate) or the deadline missed."""
        still = f"{len(self.running)}/{self.fleet_size or '?'} host(s) still running"
        if self.late and self.estimate:
            clock = self.estimate.finish.astimezone(ZoneInfo(self.timezone)).strftime("%H:%M")
            running = f"{len(self.running)}/{self.fleet_size or '?'} host(s) running"
            what = f"running late: done ~{clock}, deadline {self.deadline_text} ({running})"
        else:
            what = f"deadline {self.deadline_text} missed: {still}"
        # The failure alert's subject rules: "Airflow: <dag> - <what>", printable, under 100 chars.
        return FailureAlert(self.dag_id, self.run_id, "", headline=what).subject()

    def body(self, max_bytes: int = 250_000) -> str:
        """The notice: the night, the deadline, the estimate, the hosts still running (bounded)."""
        zone = f"{self.timezone}, {self.deadline_at.strftime('%Y-%m-%d %H:%M')} UTC"
        lines = [
            LATE_OPENING if self.late else MISSED_OPENING,
            "",
            f"DAG:      {self.dag_id}",
            f"Run:      {self.run_id}",
            f"Night:    {self._local(self.night) if self.night else 'n/a'} ({self.timezone})",
            f"Deadline: {self._local(self.deadline_at)} ({zone})",
        ]
        if self.estimate:
            lines.append(
                f"Estimate: the fleet finishes ~{self._local(self.estimate.finish)}, "
                f"from {self.estimate.basis}"
            )
        lines += [f"Fleet:    {self.fleet_url}"] if self.fleet_url else []
        hosts = slowest_first(self.running)
        size = f" of {self.fleet_size}" if self.fleet_size else ""
        if hosts:
            lines += ["", f"Still running ({len(hosts)}{size}), longest first:"]
        else:
            lines += ["", "No host listed as running by SSM: the batch may not have been sent yet."]
        for host in hosts[:MAX_LISTED_HOSTS]:
            name = f" ({host.instance_name})" if host.instance_name else ""
            since = (
                f"for {_duration((self.now - host.since).total_seconds())} since {self._local(host.since)}"
                if host.since
                else "not started yet"
            )
            lines.append(f"- {host.instance_id}{name}: {since}")
        if len(hosts) > MAX_LISTED_HOSTS:
            lines.append(f"... and {len(hosts) - MAX_LISTED_HOSTS} more, see the fleet page.")
        lines += ["", "The run goes on: nothing was stopped. Wait for it, or stop it (mark the run failed)."]
        text = "\n".join(lines) + "\n"
        return text if len(text.encode()) <= max_bytes else text.encode()[:max_bytes].decode(errors="ignore")
