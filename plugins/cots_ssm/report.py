"""The per-instance summary table of a fleet run, as the report task prints it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cots_ssm.overrides import context_overrides
from cots_ssm.tasks import FLEET_RUN
from ssm_fleet.verdict import Outcome

log = logging.getLogger(__name__)

COLUMNS = (
    ("instance_id", "instance"),
    ("status", "status"),
    ("status_details", "details"),
    ("exit_code", "exit"),
    ("duration_seconds", "seconds"),
    ("attempt", "attempt"),
    ("command_id", "command"),
    ("resent", "re-sent by the wait"),
)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A fixed-width text table, one line per instance, plus the last stderr line of failures."""
    cells = [[_cell(row.get(key)) for key, _ in COLUMNS] for row in rows]
    headers = [title for _, title in COLUMNS]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row, row_cells in zip(rows, cells, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row_cells, widths, strict=True)).rstrip())
        stderr = (row.get("stderr_tail") or "").strip().splitlines()
        if stderr and row.get("exit_code") not in (0, None):
            lines.append(f"    stderr: {stderr[-1]}")
    return "\n".join(lines)


def report_fleet(
    ti: Any = None, dag_run: Any = None, dag: Any = None, wait_task_id: str = FLEET_RUN.wait_task_id
) -> dict[str, Any]:
    """Print the per-host result table of this attempt's wait (``wait_task_id``), whatever it found.

    Runs whatever the wait's outcome (a teardown: ``all_done``) so the table is there on failure
    too, and stays green: the wait is the one task that fails, with the reason, when the fleet
    failed. A verdict left by an earlier attempt is never printed as this attempt's. A run
    triggered with other values than the job's says so first (who, what, from which value).
    """
    attempt = int(getattr(dag_run, "clear_number", 0) or 0) + 1
    changed = context_overrides({"dag_run": dag_run, "dag": dag})
    if changed:
        log.warning("%s", changed.summary())
    verdict = ti.xcom_pull(task_ids=wait_task_id, key="verdict") or {}
    if verdict.get("attempt", 1) != attempt:
        log.warning(
            "Attempt %s of this run has no verdict: the run did not reach the end of its wait (a task before "
            "it failed or was stopped: see the red task). Nothing is printed from attempt %s.",
            attempt,
            verdict.get("attempt", 1),
        )
        return {"attempt": attempt, "outcome": "no verdict"}
    rows = ti.xcom_pull(task_ids=wait_task_id, key="results") or []
    log.info("Fleet result (attempt %s): %s", attempt, verdict.get("progress", "no progress recorded"))
    if verdict.get("gone"):
        log.warning(
            "Hosts gone from the fleet since an earlier attempt (not sent, not counted): %s", verdict["gone"]
        )
    if verdict.get("resent"):
        log.warning(
            "Hosts the wait re-sent by themselves (they had missed the start, or exited with a code the job "
            "retries): %s",
            "; ".join(verdict["resent"]),
        )
    log.info("Per-host results:\n%s", format_table(rows) if rows else "(no invocation results)")
    if verdict.get("outcome") != Outcome.SUCCEEDED.value:
        log.warning("The fleet run did not succeed (%s): see task %s", verdict.get("outcome"), wait_task_id)
    return dict(verdict)
