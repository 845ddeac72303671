"""The per-instance summary table of a fleet run, as the report task prints it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cots_ssm.compat import AirflowFailException
from cots_ssm.overrides import context_overrides
from cots_ssm.status import Outcome

log = logging.getLogger(__name__)

COLUMNS = (
    ("instance_id", "instance"),
    ("status", "status"),
    ("status_details", "details"),
    ("exit_code", "exit"),
    ("duration_seconds", "seconds"),
    ("attempt", "attempt"),
    ("command_id", "command"),
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
    ti: Any = None, wait_task_id: str = "wait", dag_run: Any = None, dag: Any = None
) -> dict[str, Any]:
    """Print the result table of the sensor ``wait_task_id``; fail if the fleet did not succeed.

    Runs whatever the sensor's outcome (trigger rule ``all_done``) so the table is there on
    failure too, and fails then so the DAG run is marked failed. A run triggered with other values
    than the job's says so first (who, what, from which value).
    """
    rows = ti.xcom_pull(task_ids=wait_task_id, key="results") or []
    verdict = ti.xcom_pull(task_ids=wait_task_id, key="verdict") or {}
    changed = context_overrides({"dag_run": dag_run, "dag": dag})
    if changed:
        log.warning("%s", changed.summary())
    log.info("Fleet result: %s", verdict.get("progress", "no verdict: the sensor did not finish"))
    log.info("Per-instance results:\n%s", format_table(rows) if rows else "(no invocation results)")
    if verdict.get("outcome") != Outcome.SUCCEEDED.value:
        raise AirflowFailException(
            f"The fleet run did not succeed ({verdict.get('outcome', 'unknown')}): see task {wait_task_id}"
        )
    return verdict
