"""A Europe/Paris job at 02:30 across daylight saving time, through the timetable the scheduler reads.

The job's DAG is parsed by Airflow's own DagBag and serialized as the dag-processor does; its
timetable then says when each run is due (``next_dagrun_info``, one call per night, each from the
previous run). On the spring-forward night 02:30 does not exist: the run is at 03:30 local, 01:30
UTC. On the fall-back night 02:30 happens twice: the run is once, at the second (CET), 25 hours
after the previous one. One run each night, never two, never none.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pendulum
import pytest
import yaml

pytestmark = pytest.mark.matrix

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "cots_jobs.py"
PARIS_0230 = {
    "id": "document_indexer",
    "schedule": "30 2 * * *",
    "timezone": "Europe/Paris",
    "target_tags": {"Role": ["indexer"]},
}


@pytest.fixture(scope="module")
def scheduler_timetable(tmp_path_factory):
    """The document indexer's timetable as the scheduler has it (the serialized DAG's)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.0 / 3.1
        from airflow.models.dagbag import DagBag
    try:  # Airflow 3.2+
        from airflow.serialization.serialized_objects import DagSerialization as Serialization
    except ImportError:
        from airflow.serialization.serialized_objects import SerializedDAG as Serialization

    jobs_file = tmp_path_factory.mktemp("dst") / "cots_jobs.yaml"
    jobs_file.write_text(yaml.safe_dump({"jobs": [PARIS_0230]}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COTS_JOBS_FILE", str(jobs_file))
        patch.setattr(socket.socket, "connect", lambda *_: pytest.fail("network access at parse time"))
        dag = DagBag(dag_folder=str(DAG_FILE)).dags["document_indexer"]
    return Serialization.from_dict(Serialization.to_dict(dag)).timetable


def nights(timetable, first_day: str, count: int) -> list[tuple[str, str]]:
    """The next ``count`` runs from ``first_day`` (Paris), as (Paris time, UTC time) of each."""
    from airflow.timetables.base import TimeRestriction

    earliest = pendulum.parse(first_day, tz="Europe/Paris")
    restriction = TimeRestriction(earliest=earliest, latest=None, catchup=True)
    runs, last = [], None
    for _ in range(count):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        due = info.run_after
        runs.append(
            (
                due.in_timezone("Europe/Paris").strftime("%m-%d %H:%M %Z"),
                datetime.fromtimestamp(due.timestamp(), UTC).strftime("%m-%d %H:%M"),
            )
        )
        last = info.data_interval
    return runs


def test_spring_forward_runs_once_at_0330_local_0130_utc(scheduler_timetable):
    assert nights(scheduler_timetable, "2026-03-27", 4) == [
        ("03-27 02:30 CET", "03-27 01:30"),
        ("03-28 02:30 CET", "03-28 01:30"),
        ("03-29 03:30 CEST", "03-29 01:30"),  # 02:30 does not exist that night
        ("03-30 02:30 CEST", "03-30 00:30"),
    ]


def test_fall_back_runs_once_at_the_second_0230_25_hours_after_the_previous_run(scheduler_timetable):
    runs = nights(scheduler_timetable, "2026-10-23", 4)
    assert runs == [
        ("10-23 02:30 CEST", "10-23 00:30"),
        ("10-24 02:30 CEST", "10-24 00:30"),
        ("10-25 02:30 CET", "10-25 01:30"),  # 02:30 happens twice that night: the run is at the second
        ("10-26 02:30 CET", "10-26 01:30"),
    ]


def test_the_window_logs_the_due_time_in_the_jobs_timezone_and_utc(scheduler_timetable):
    from airflow.timetables.base import TimeRestriction

    from cots_ssm.window import start_window

    earliest = pendulum.parse("2026-03-29", tz="Europe/Paris")
    info = scheduler_timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=TimeRestriction(earliest, None, True)
    )
    decision = start_window(
        run_type="scheduled", due=info.run_after, started=info.run_after, timezone="Europe/Paris"
    )
    assert decision.reason.startswith("scheduled for 2026-03-29 03:30 CEST (2026-03-29 01:30 UTC)")
