"""The texts of a fleet run: progress line, failure summary, per-host result table, verdict summary.

Pure Python with no Airflow import: the sensor, the trigger, the report, the alert and the fleet
page print a verdict through these functions, so a fleet reads the same everywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ssm_fleet.invocations import InvocationResult
from ssm_fleet.status import explain
from ssm_fleet.verdict import FleetVerdict

#: Failed hosts whose result rows keep full output tails (the others keep their last stderr line).
MAX_ROWS_WITH_TAILS = 50
#: Characters of the one-line tails of the other rows.
SHORT_TAIL_CHARS = 120


def tail(text: str | None, *, lines: int = 20, chars: int = 2000) -> str:
    """Return the last ``lines`` lines of ``text``, at most ``chars`` characters."""
    if not text or lines <= 0:
        return ""
    kept = "\n".join(text.rstrip("\n").splitlines()[-lines:])
    return kept[-chars:]


def describe(invocation: InvocationResult) -> str:
    """One line: host, status, details, exit code, what the details mean, command and attempt."""
    name = f" ({invocation.instance_name})" if invocation.instance_name else ""
    code = "" if invocation.exit_code is None else f", exit code {invocation.exit_code}"
    return (
        f"{invocation.instance_id}{name}: {invocation.status.value} ({invocation.status_details}){code}"
        f" - {explain(invocation.status_details)} [command {invocation.command_id},"
        f" attempt {invocation.attempt}]"
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def as_row(
    invocation: InvocationResult,
    *,
    tail_lines: int = 20,
    stdout_lines: int | None = None,
    tail_chars: int = 2000,
) -> dict[str, Any]:
    """A JSON-serialisable row of the per-host result table (tails of ``tail_lines`` lines)."""
    return {
        "instance_id": invocation.instance_id,
        "instance_name": invocation.instance_name,
        "command_id": invocation.command_id,
        "attempt": invocation.attempt,
        "status": invocation.status.value,
        "status_details": invocation.status_details,
        "exit_code": invocation.exit_code,
        "started_at": _iso(invocation.started_at),
        "finished_at": _iso(invocation.finished_at),
        "duration_seconds": invocation.duration_seconds,
        "stdout_tail": tail(
            invocation.stdout, lines=tail_lines if stdout_lines is None else stdout_lines, chars=tail_chars
        ),
        "stderr_tail": tail(invocation.stderr, lines=tail_lines, chars=tail_chars),
        # Full output links matter where something went wrong; a success row stays small.
        "stdout_url": invocation.stdout_url if invocation.failed else "",
        "stderr_url": invocation.stderr_url if invocation.failed else "",
    }


def _counted(items: Iterable[InvocationResult]) -> str:
    counts = Counter(i.status.value for i in items)
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def progress_line(verdict: FleetVerdict) -> str:
    """E.g. ``37/120 hosts done: 35 Success, 2 Failed; 80 InProgress, 3 not listed yet``."""
    done = verdict.finished
    line = f"{len(done)}/{verdict.expected} hosts done"
    if done:
        line += f": {_counted(done)}"
    waiting = [_counted(verdict.running)] if verdict.running else []
    unlisted = verdict.unlisted - len(verdict.waiting)  # a host to be re-sent is said so below
    if unlisted > 0:
        waiting.append(f"{unlisted} not listed yet")
    line += f"; {', '.join(waiting)}" if waiting else ""
    if verdict.waiting:
        line += f"; {len(verdict.waiting)} to be re-sent once Online ({', '.join(verdict.waiting[:5])})"
    if verdict.resent:
        line += f"; {len(verdict.resent)} re-sent by the wait"
    if verdict.gone:
        line += f"; {len(verdict.gone)} gone from the fleet, not counted ({', '.join(verdict.gone[:5])})"
    if verdict.exceeded:
        line += (
            f"; tolerance exceeded ({len(verdict.failed)} failed, at most {verdict.allowed_failures}):"
            " the run will fail once the others finish"
        )
    return line


def failure_summary(verdict: FleetVerdict, *, stderr_lines: int = 5, max_hosts: int = 25) -> str:
    """The failed hosts with status, details, exit code and the end of their stderr.

    Hosts that ran and failed come first (those SSM never started, e.g. ``Terminated``, explain
    less); past ``max_hosts`` the rest are counted, not listed.
    """
    lines = [
        f"{len(verdict.failed)} of {verdict.expected} host(s) failed "
        f"(at most {verdict.allowed_failures} tolerated); {progress_line(verdict)}"
    ]
    lines.extend(f"command problem: {problem}" for problem in verdict.problems)
    ordered = sorted(verdict.failed, key=lambda i: (i.started_at is None, i.instance_id))
    resent = dict(verdict.resent)
    for invocation in ordered[:max_hosts]:
        note = resent.get(invocation.instance_id)
        lines.append(f"- {describe(invocation)}" + (f" ({note})" if note else ""))
        stderr = tail(invocation.stderr, lines=stderr_lines)
        if stderr:
            lines.extend(f"    stderr| {line}" for line in stderr.splitlines())
    if len(ordered) > max_hosts:
        lines.append(f"... and {len(ordered) - max_hosts} more failed host(s): see the results XCom")
    return "\n".join(lines)


def unfinished_summary(verdict: FleetVerdict, *, max_hosts: int = 25) -> str:
    """The hosts that had not finished when the wait gave up: one line each, a status SSM added included."""
    waiting = sorted(verdict.running, key=lambda i: i.instance_id)
    lines = [f"{len(waiting) + verdict.unlisted} of {verdict.expected} host(s) had not finished"]
    lines.extend(f"- {describe(invocation)}" for invocation in waiting[:max_hosts])
    if len(waiting) > max_hosts:
        lines.append(f"... and {len(waiting) - max_hosts} more: see the results XCom")
    if verdict.unlisted:
        lines.append(f"- {verdict.unlisted} host(s) not listed by SSM yet")
    return "\n".join(lines)


def summary(verdict: FleetVerdict, attempt: int | None = None) -> dict[str, Any]:
    """The verdict in a few JSON-serialisable numbers (for XCom and reports), stamped with ``attempt``."""
    return {
        "attempt": attempt,
        "outcome": verdict.outcome.value,
        "expected": verdict.expected,
        "finished": len(verdict.finished),
        "failed": len(verdict.failed),
        "allowed_failures": verdict.allowed_failures,
        "progress": progress_line(verdict),
        "problems": list(verdict.problems),
        "gone": list(verdict.gone),
        "resent": [f"{host}: {note}" for host, note in verdict.resent],
    }


def table(
    verdict: FleetVerdict, *, tail_lines: int = 20, max_tails: int = MAX_ROWS_WITH_TAILS
) -> list[dict[str, Any]]:
    """The per-host result table (JSON-serialisable), sorted by host id, each row with its attempt.

    Each row's ``resent`` names the wait's automatic re-sends of the host (empty: none).
    Output tails are kept where they matter: ``tail_lines`` lines of stderr (half as many of
    stdout) on the first ``max_tails`` failed hosts, the last stderr line on the other failed
    ones and the last stdout line on the rest, so the table of 1,000 hosts stays well under 1 MB
    of XCom.
    """
    rows = []
    tails_left = max_tails
    resent = dict(verdict.resent)
    for invocation in sorted(verdict.invocations, key=lambda i: i.instance_id):
        if not invocation.failed:
            row = as_row(invocation, tail_lines=0, stdout_lines=1, tail_chars=SHORT_TAIL_CHARS)
        elif tails_left > 0:
            tails_left -= 1
            row = as_row(invocation, tail_lines=tail_lines, stdout_lines=max(tail_lines // 2, 1))
        else:
            row = as_row(invocation, tail_lines=1, stdout_lines=0, tail_chars=SHORT_TAIL_CHARS)
        # What the wait did by itself (an automatic re-send) is named on the host's row.
        row["resent"] = resent.get(invocation.instance_id, "")
        rows.append(row)
    return rows
