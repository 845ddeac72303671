"""A test-only job DAG: the nightly job's tasks and alerts, with a wait that times out after 30 s.

Built by the jobs' own builder (window, preflight, run, wait, report, cancel_leftovers, the SNS
alerts), so what it proves holds for the jobs' DAGs; only what a test cannot wait for differs:

- the wait times out after ``WAIT_TIMEOUT_SECONDS`` (a job's wait: at least 600 s), so a test can
  watch the last read at the deadline and the timeout;
- the run task retries after ``RUN_RETRY_DELAY`` (a job's: 1 minute), so a test can go through
  the tries of a send whose answers were lost in well under a minute;
- it has no schedule: unpaused, it never starts a run of its own;
- ``MAX_ACTIVE_RUNS`` runs at once (each on a fleet of its own), so one test can watch several.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG  # also what the DagBag looks for before parsing a file
from airflow.timetables.simple import NullTimetable

from cots_ssm.config import BatchConfig
from cots_ssm.jobs.dag import build_job_dag
from cots_ssm.jobs.loader import Job

DAG_ID = "cots_short_wait"
WAIT_TIMEOUT_SECONDS = 30
RUN_RETRY_DELAY = timedelta(seconds=8)
MAX_ACTIVE_RUNS = 4

_job = Job(
    id=DAG_ID,
    description="Test job: the nightly batch with a 30 s wait timeout",
    tags=("test",),
    config=BatchConfig.from_env(),
)
dag: DAG = build_job_dag(_job)
dag.timetable = NullTimetable()
dag.max_active_runs = MAX_ACTIVE_RUNS
dag.get_task("wait").timeout = WAIT_TIMEOUT_SECONDS
dag.get_task("run").retry_delay = RUN_RETRY_DELAY
