"""The configuration of a batch job: built-in defaults, overridable by ``COTS_BATCH_*`` variables.

These are the two lowest layers of every job's values: the jobs file (``dags/cots_jobs.yaml``, read
by ``cots_ssm.jobs.loader``) sets per-job values over them, its ``defaults`` first, then the job's
own keys. A scheduled run needs no trigger conf: every trigger-form default comes from there. On
MWAA, set the variables in the environment startup script; locally, in the shell environment.
Reading the environment is the only thing this module does at import of the DAG: no network, no
Variable.

The variables, their keys and the defaults are in one table, ``docs/configuration.md`` (checked
against this class by ``tests/docs/test_defaults_table.py``): a variable ``COTS_BATCH_<NAME>`` sets
the key of the same name in lower case, except ``POLL_SECONDS`` (``poll_interval_seconds``) and
``EXECUTION_TIMEOUT`` / ``DELIVERY_TIMEOUT`` (the ``..._seconds`` keys).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cots_ssm.window import DEFAULT_RUN_TYPES
from ssm_fleet.verdict import FailurePolicy

PREFIX = "COTS_BATCH_"


def _json(env: Mapping[str, str], name: str, default: Any) -> Any:
    raw = env.get(PREFIX + name)
    if raw in (None, ""):
        return default
    try:
        return json.loads(raw)
    except ValueError as error:
        raise ValueError(f"{PREFIX}{name}={raw!r} is not valid JSON: {error}") from None


def _hours(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(PREFIX + name)
    if raw in (None, ""):
        return default
    try:
        hours = float(raw)
    except ValueError:
        hours = 0.0
    if not 0 < hours <= 24 * 30:
        raise ValueError(f"{PREFIX}{name}={raw!r} is not a number of hours (e.g. 8, or 0.5)")
    return hours


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(PREFIX + name)
    if raw in (None, ""):
        return default
    if not raw.strip().isdigit():
        raise ValueError(f"{PREFIX}{name}={raw!r} is not a whole number")
    return int(raw)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(PREFIX + name)
    if raw in (None, ""):
        return default
    if raw.strip().lower() not in ("true", "false"):
        raise ValueError(f"{PREFIX}{name}={raw!r} is not true or false")
    return raw.strip().lower() == "true"


def _policy(env: Mapping[str, str], default: str) -> str:
    raw = env.get(PREFIX + "FAILURE_POLICY") or default
    return FailurePolicy.parse(raw, field_name=PREFIX + "FAILURE_POLICY").value


@dataclass(frozen=True)
class BatchConfig:
    """Defaults of the nightly COTS batch DAG (the table: ``docs/configuration.md``).

    :param schedule: the cron of the nightly run.
    :param timezone: the timezone the cron is read in.
    :param target_tags: tags that select the fleet (used when ``instance_ids`` is empty).
    :param instance_ids: instance ids of the fleet (instead of tags).
    :param script: the COTS batch script on each host.
    :param script_arguments: the script's default arguments.
    :param working_directory: the directory the script runs in.
    :param execution_timeout_seconds: SSM kills the script after this.
    :param delivery_timeout_seconds: an instance that has not started by then never runs it.
    :param max_failed_instances: failed instances tolerated (a number or a percentage).
    :param max_concurrency: SSM ``MaxConcurrency``: how many instances run the batch at once.
    :param max_errors: SSM ``MaxErrors``: after that many errors SSM stops starting the rest;
        ``100%`` lets every instance run its batch and leaves the verdict to ``max_failed_instances``.
    :param failure_policy: ``finish`` or ``cancel``: what happens to the instances still running
        once more have failed than tolerated (see ``FailurePolicy``).
    :param max_failed_instances_bound: the most failures a trigger may tolerate, in the unit of
        ``max_failed_instances`` (jobs file only; default: empty, the job's own value, which a trigger
        may only lower; ``100%``: any).
    :param failure_policy_choices: the failure policies a trigger may choose (jobs file only;
        default: both, neither hides a failure).
    :param start_grace_minutes: a scheduled run that starts later than this after its time is
        skipped (deploying or unpausing mid-day waits for the next night).
    :param poll_interval_seconds: seconds between two status checks (reschedule, no slot held).
    :param deferrable: wait in the triggerer (no worker slot while the batch runs) rather than in
        reschedule mode (a slot for each check's seconds).
    :param sns_topic_arn: the topic of the failure alert.
    :param aws_conn_id: the Airflow AWS connection.
    :param owner: the DAG owner.
    :param retries: retries of each task.
    :param dagrun_timeout_hours: the time limit of a whole run.
    :param deadline: ``HH:MM`` in ``timezone`` by which a run should be done; past it, one alert,
        and one early alert when the estimate of the fleet's end passes it (``cots_ssm.deadline``);
        empty: no deadline (default: empty).
    :param run_types: the runs Airflow may start for the job (``cots_ssm.window.RUN_TYPES``); set
        by the jobs file only: a backfill is a job's decision, not a deployment's (default:
        scheduled and manual).
    :param host_retries: automatic re-sends per host within a run, 0-3 (jobs file only): a host
        whose batch never started is sent it again once ``Online`` (``ssm_fleet.resend``).
    :param retry_exit_codes: exit codes of a batch that ran and failed that are re-run too, within
        ``host_retries`` (jobs file only; default: none).
    """

    schedule: str = "0 2 * * *"
    timezone: str = "UTC"
    target_tags: dict[str, list[str]] = field(default_factory=lambda: {"Role": ["cots"]})
    instance_ids: list[str] = field(default_factory=list)
    script: str = "/opt/cots/bin/run_batch.sh"
    script_arguments: list[str] = field(default_factory=list)
    working_directory: str = ""
    execution_timeout_seconds: int = 14_400
    delivery_timeout_seconds: int = 600
    max_failed_instances: str = "0"
    failure_policy: str = FailurePolicy.FINISH.value
    max_failed_instances_bound: str = ""
    failure_policy_choices: list[str] = field(default_factory=lambda: [p.value for p in FailurePolicy])
    max_concurrency: str = "100%"
    max_errors: str = "100%"
    poll_interval_seconds: int = 300
    deferrable: bool = False
    sns_topic_arn: str = ""
    aws_conn_id: str = "aws_default"
    owner: str = "cots-support"
    retries: int = 2
    dagrun_timeout_hours: float = 8
    start_grace_minutes: int = 60
    deadline: str = ""
    run_types: list[str] = field(default_factory=lambda: list(DEFAULT_RUN_TYPES))
    host_retries: int = 1
    retry_exit_codes: list[int] = field(default_factory=list)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BatchConfig:
        """Read the ``COTS_BATCH_*`` variables; a bad value raises naming the variable."""
        env = os.environ if env is None else env
        ids = _json(env, "INSTANCE_IDS", [])
        base = cls()
        return cls(
            schedule=env.get(PREFIX + "SCHEDULE") or base.schedule,
            timezone=env.get(PREFIX + "TIMEZONE") or base.timezone,
            # Ids, when given, replace the default tags: exactly one of them may be set.
            target_tags=_json(env, "TARGET_TAGS", {} if ids else base.target_tags),
            instance_ids=ids,
            script=env.get(PREFIX + "SCRIPT") or base.script,
            script_arguments=_json(env, "SCRIPT_ARGUMENTS", []),
            working_directory=env.get(PREFIX + "WORKING_DIRECTORY", ""),
            execution_timeout_seconds=_int(env, "EXECUTION_TIMEOUT", base.execution_timeout_seconds),
            delivery_timeout_seconds=_int(env, "DELIVERY_TIMEOUT", base.delivery_timeout_seconds),
            max_failed_instances=env.get(PREFIX + "MAX_FAILED_INSTANCES") or base.max_failed_instances,
            failure_policy=_policy(env, base.failure_policy),
            max_concurrency=env.get(PREFIX + "MAX_CONCURRENCY") or base.max_concurrency,
            max_errors=env.get(PREFIX + "MAX_ERRORS") or base.max_errors,
            poll_interval_seconds=_int(env, "POLL_SECONDS", base.poll_interval_seconds),
            deferrable=_bool(env, "DEFERRABLE", base.deferrable),
            sns_topic_arn=env.get(PREFIX + "SNS_TOPIC_ARN", ""),
            aws_conn_id=env.get(PREFIX + "AWS_CONN_ID") or base.aws_conn_id,
            owner=env.get(PREFIX + "OWNER") or base.owner,
            retries=_int(env, "RETRIES", base.retries),
            dagrun_timeout_hours=_hours(env, "DAGRUN_TIMEOUT_HOURS", base.dagrun_timeout_hours),
            start_grace_minutes=_int(env, "START_GRACE_MINUTES", base.start_grace_minutes),
            # Checked with the job's values (cots_ssm.jobs.loader), which name the variable or the key.
            deadline=env.get(PREFIX + "DEADLINE", "").strip(),
        )
