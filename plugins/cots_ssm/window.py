"""Whether a scheduled run may still start: pure Python, no Airflow import.

Airflow starts the latest past tick of a schedule as soon as a DAG is deployed or unpaused, even
with ``catchup=False``: unpausing at 14:00 would launch the 02:00 batch in business hours. A
scheduled run that starts more than a grace period after its time is skipped instead. Manual runs
are never skipped, and neither is a run that was cleared (a person asked for it); a task retry
keeps the run's own start time, so it is judged as the run was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

SCHEDULED = "scheduled"


@dataclass(frozen=True)
class WindowDecision:
    """Whether a run goes ahead, and the log line that says why.

    :param run: True when the run goes ahead.
    :param reason: one line for the task log.
    """

    run: bool
    reason: str


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def start_window(
    *,
    run_type: object,
    due: datetime | None,
    started: datetime | None,
    clear_number: int = 0,
    grace: timedelta = timedelta(hours=1),
) -> WindowDecision:
    """A scheduled run that started more than ``grace`` after it was ``due`` does not go ahead."""
    kind = str(getattr(run_type, "value", run_type))  # Airflow's DagRunType is a str Enum
    if kind != SCHEDULED:
        return WindowDecision(True, f"{kind} run: runs whenever it is triggered")
    if clear_number:
        return WindowDecision(True, f"scheduled run cleared {clear_number} time(s): runs now, as asked")
    if due is None or started is None:
        return WindowDecision(True, "scheduled run without a due or start time: runs")
    late = started - due
    if late <= grace:
        return WindowDecision(
            True, f"scheduled for {_when(due)}, started {_minutes(late)} later: in its window"
        )
    return WindowDecision(
        False,
        f"Skipped: this run was due at {_when(due)} but started at {_when(started)}, {_minutes(late)} late, "
        f"more than the {_minutes(grace)} allowed (start_grace_minutes). Nothing was sent: a batch "
        "started out of its window could hit the fleet in business hours (a DAG deployed or unpaused "
        "mid-day starts its last tick at once). The next scheduled run is not affected; trigger the "
        "DAG by hand to run the batch now.",
    )


def _minutes(delta: timedelta) -> str:
    total = int(max(delta.total_seconds(), 0) // 60)
    hours, minutes = divmod(total, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def in_start_window(dag_run: Any = None, ti: Any = None, start_grace_minutes: int = 60) -> bool:
    """Task callable (a short circuit): log the decision and say whether the run goes ahead.

    The decision is also pushed to XCom under ``in_window`` (a short circuit that skips pushes no
    return value), for a teardown that must know the run was skipped on purpose.
    """
    decision = start_window(
        run_type=getattr(dag_run, "run_type", "manual"),
        due=getattr(dag_run, "run_after", None),
        started=getattr(dag_run, "start_date", None),
        clear_number=int(getattr(dag_run, "clear_number", 0) or 0),
        grace=timedelta(minutes=int(start_grace_minutes)),
    )
    (log.info if decision.run else log.warning)("%s", decision.reason)
    if ti is not None:
        ti.xcom_push(key="in_window", value=decision.run)
    return decision.run
