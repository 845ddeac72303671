"""The per-host execution record: one entry per script process the emulator started.

What really ran on each host, whatever the API says: the instance, the command, the process, its
start and end, and its exit code. Times are given twice: `started` / `ended` are seconds of the
emulator process's monotonic clock (for ordering and overlap; comparable only within one
emulator), `started_at` / `ended_at` are wall-clock UTC in ISO 8601 (for reading). The end is when
the scheduler saw the process exit (within one tick, 0.05 s). Standard library only: the control
client shares `Execution` and `find_overlaps`.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any


def _wall() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Execution:
    """One script process on one host.

    :param instance_id: the host.
    :param command_id: the SSM command the process ran for.
    :param pid: the process id (also its process group).
    :param started: monotonic seconds (emulator clock) when the process started.
    :param started_at: wall-clock UTC, ISO 8601, when the process started.
    :param ended: monotonic seconds when it was seen to exit (default: None, still running).
    :param ended_at: wall-clock UTC when it was seen to exit (default: None, still running).
    :param exit_code: its exit code, 128 + signal when killed (default: None, still running).
    """

    instance_id: str
    command_id: str
    pid: int
    started: float
    started_at: str
    ended: float | None = None
    ended_at: str | None = None
    exit_code: int | None = None

    @property
    def running(self) -> bool:
        return self.ended is None

    def overlaps(self, other: Execution) -> bool:
        """Tell whether two executions ran at the same time (a running one has no end yet)."""
        self_end = float("inf") if self.ended is None else self.ended
        other_end = float("inf") if other.ended is None else other.ended
        return self.started < other_end and other.started < self_end

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Execution:
        return cls(**{name: data.get(name) for name in cls.__dataclass_fields__})


def find_overlaps(executions: Iterable[Execution]) -> list[tuple[Execution, Execution]]:
    """Return each pair of executions on one host that overlap in time ("ran twice at once")."""
    by_host: dict[str, list[Execution]] = {}
    for execution in executions:
        by_host.setdefault(execution.instance_id, []).append(execution)
    pairs = []
    for runs in by_host.values():
        runs.sort(key=lambda e: e.started)
        pairs += [(a, b) for i, a in enumerate(runs) for b in runs[i + 1 :] if a.overlaps(b)]
    return pairs


class ExecutionLog:
    """Thread-safe list of executions, in start order (the scheduler writes, the control API reads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[Execution] = []
        self._open: dict[tuple[str, str], int] = {}

    def started(self, instance_id: str, command_id: str, pid: int) -> None:
        """Record a process started on `instance_id` for `command_id`."""
        entry = Execution(instance_id, command_id, pid, started=time.monotonic(), started_at=_wall())
        with self._lock:
            self._open[(instance_id, command_id)] = len(self._entries)
            self._entries.append(entry)

    def ended(self, instance_id: str, command_id: str, exit_code: int) -> None:
        """Record that the process of `command_id` on `instance_id` exited with `exit_code`."""
        ended, ended_at = time.monotonic(), _wall()
        with self._lock:
            index = self._open.pop((instance_id, command_id), None)
            if index is not None:
                entry = self._entries[index]
                self._entries[index] = replace(entry, ended=ended, ended_at=ended_at, exit_code=exit_code)

    def entries(self) -> list[Execution]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._open.clear()
