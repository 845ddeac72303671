"""A COTS batch job: its script on every instance of its fleet, through SSM Run Command.

Each job of `dags/cots_jobs.yaml` is one DAG like this one: it runs the job's batch script on every
instance of its fleet through **SSM Run Command**, on the job's schedule and on demand from the
trigger form.

| task | what it does |
|---|---|
| `window` | refuses run types the job does not list; skips a scheduled run an hour late, with one alert |
| `preflight` | checks the form values and that every instance is SSM-managed and `Online` |
| `run` | sends the script once per chunk of 50 ids or tag target; a Clear re-runs only what failed |
| `wait` | sensor: reschedule (no slot between checks) or deferrable (triggerer waits); names failures |
| `report` | prints the per-instance table (status, details, exit code, duration, attempt, stderr tail) |
| `cancel_leftovers` | teardown: cancels what still runs (found by token); decides the run's state |
| `running_late`, `deadline` | with a job `deadline` only: one alert when late is foreseen, one when missed |

A failure of any task sends an SNS alert naming the failed instances, their status details, exit
codes and stderr tails; so does a run that ends by `dagrun_timeout` or is marked failed, after its
commands are cancelled. A job's values come from the jobs file (its own keys, then `defaults`), then
the `COTS_BATCH_*` variables, then `cots_ssm.config.BatchConfig`; AWS is reached only through the
job's Airflow connection (`aws_default` unless set). Give `instance_ids` **or** `target_tags`: given
alone, instance ids replace the default tags; a trigger giving both is refused.
"""

from __future__ import annotations

from pathlib import Path

from cots_ssm.jobs.dag import build_dags
from cots_ssm.jobs.loader import jobs_file_path, load_jobs

JOBS = load_jobs(jobs_file_path(Path(__file__).with_name("cots_jobs.yaml")))

# At module level, so the DagBag finds each DAG; a refused job's errors come as this file's import error.
for _dag in build_dags(JOBS, doc_md=__doc__):
    globals()[_dag.dag_id] = _dag
