"""Read and check the jobs file: pure Python (no Airflow import), no network.

Each job's values, lowest precedence first: ``BatchConfig``'s built-in defaults, the ``COTS_BATCH_*``
environment variables, the file's ``defaults``, the job's own keys. A job that names a fleet by
``instance_ids`` drops the ``target_tags`` it would inherit, and the other way round. A job that
lists ``backfill`` in ``run_types`` must pass ``{logical_date}`` in ``script_arguments`` (else a
backfill runs the same batch once per night of its range).

A bad job is refused alone, with a :class:`JobError` naming the file, the job and the field; the
other jobs still load. A file that cannot be read at all (not YAML, bad ``defaults``, no ``jobs``,
a bad ``COTS_BATCH_*`` variable) raises :class:`JobsFileError`: no job of it loads.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pendulum
import yaml
from croniter import croniter
from jsonschema import ValidationError

from cots_ssm import overrides
from cots_ssm.config import PREFIX, BatchConfig
from cots_ssm.deadline import parse_deadline
from cots_ssm.jobs import schema
from cots_ssm.window import BACKFILL, LOGICAL_DATE

JOBS_FILE_VARIABLE = "COTS_JOBS_FILE"
FLEET = "instance_ids/target_tags"
# Airflow's cron presets (airflow.utils.dates.cron_presets), which CronTriggerTimetable accepts.
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class JobsFileError(ValueError):
    """The jobs file as a whole cannot be used: names the file and what is wrong in it."""


@dataclass(frozen=True)
class JobError:
    """One refused value of one job.

    :param source: the jobs file.
    :param index: the job's position in ``jobs`` (from 0).
    :param job_id: the job's id, when it has a usable one.
    :param field: the refused key (a dotted path inside it for a nested value).
    :param message: what is wrong with the value.
    """

    source: str
    index: int
    job_id: str | None
    field: str
    message: str

    def __str__(self) -> str:
        job = f"job {self.job_id!r} (jobs[{self.index}])" if self.job_id else f"jobs[{self.index}]"
        return f"{self.source}: {job}, field {self.field!r}: {self.message}"


@dataclass(frozen=True)
class Job:
    """One job: everything its DAG needs.

    :param id: the DAG id.
    :param description: one line shown in the DAG list.
    :param tags: Airflow tags of the DAG (besides the common ones).
    :param config: the job's values, merged as the module docstring says.
    """

    id: str
    description: str
    tags: tuple[str, ...]
    config: BatchConfig


@dataclass(frozen=True)
class JobsFile:
    """The jobs a file declares that passed every check, and the errors of those that did not.

    :param source: the jobs file.
    :param jobs: the good jobs, in the file's order.
    :param errors: every refused value of the other jobs.
    """

    source: str
    jobs: tuple[Job, ...]
    errors: tuple[JobError, ...]


def jobs_file_path(default: Path, env: Mapping[str, str] | None = None) -> Path:
    """``$COTS_JOBS_FILE`` when set, else ``default`` (the file next to the DAG file)."""
    env = os.environ if env is None else env
    return Path(env.get(JOBS_FILE_VARIABLE) or default)


def load_jobs(path: Path, env: Mapping[str, str] | None = None) -> JobsFile:
    """Read ``path`` (YAML) and check it; see :func:`parse_jobs`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise JobsFileError(f"{path}: cannot read the jobs file: {error}") from None
    try:
        data = yaml.load(text, Loader=_SafeLoader)  # noqa: S506 - a safe loader, C or Python
    except yaml.YAMLError as error:
        raise JobsFileError(f"{path}: not valid YAML: {error}") from None
    return parse_jobs(data, source=str(path), env=env)


def parse_jobs(data: Any, *, source: str, env: Mapping[str, str] | None = None) -> JobsFile:
    """Check the file's content and merge each job's values; bad jobs become :class:`JobError`."""
    defaults = _file_defaults(data, source)
    try:
        base = BatchConfig.from_env(env)
    except ValueError as error:
        raise JobsFileError(f"{source}: {error}") from None
    jobs: list[Job] = []
    errors: list[JobError] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(data["jobs"]):
        job_id = raw.get("id") if isinstance(raw, Mapping) and isinstance(raw.get("id"), str) else None
        found = [JobError(source, index, job_id, f, m) for f, m in _job_problems(raw, defaults, base)]
        if not found and job_id in seen:
            message = f"the id is already used by jobs[{seen[job_id]}]: each job needs its own"
            found = [JobError(source, index, job_id, "id", message)]
        if found:
            errors.extend(found)
            continue
        assert job_id is not None  # the schema requires it
        seen[job_id] = index
        jobs.append(_job(raw, defaults, base))
    return JobsFile(source, tuple(jobs), tuple(errors))


def _file_defaults(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise JobsFileError(f"{source}: give a mapping with 'jobs' (and optionally 'defaults')")
    unknown = sorted(set(map(str, data)) - {"defaults", "jobs"})
    if unknown:
        raise JobsFileError(f"{source}: unknown top-level key(s) {unknown}: only 'defaults' and 'jobs'")
    if not isinstance(data.get("jobs"), list) or not data["jobs"]:
        raise JobsFileError(f"{source}: field 'jobs': give a non-empty list of jobs")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise JobsFileError(f"{source}: field 'defaults': give a mapping of settings, not {defaults!r}")
    problems = list(_setting_problems(defaults, schema.setting_names(), "settings"))
    if problems:
        listed = "; ".join(f"field 'defaults.{field}': {message}" for field, message in problems)
        raise JobsFileError(f"{source}: {listed}")
    return dict(defaults)


def _setting_problems(raw: Any, known: frozenset[str], definition: str) -> Iterator[tuple[str, str]]:
    if not isinstance(raw, Mapping):
        yield "(job)", f"give a mapping of settings, not {raw!r}"
        return
    for key in sorted(set(map(str, raw)) - known):
        yield key, f"unknown key; known keys: {', '.join(sorted(known))}"
    for error in sorted(schema.validator(definition).iter_errors(raw), key=lambda e: list(e.path)):
        if error.validator != "unevaluatedProperties":  # unknown keys, reported above
            yield _field(error), _message(error)
    if raw.get("instance_ids") and raw.get("target_tags"):
        yield FLEET, "give the fleet as instance_ids or as target_tags, not both"


def _message(error: ValidationError) -> str:
    if error.instance == {LOGICAL_DATE.strip("{}"): None}:  # YAML read an unquoted {logical_date}
        return f'quote it: "{LOGICAL_DATE}" (unquoted, YAML reads it as a mapping)'
    wanted = error.validator_value.get("const") if error.validator == "contains" else None
    if isinstance(wanted, str):  # jsonschema says "does not contain items matching the given schema"
        return f"{error.instance!r} must include {wanted!r}"
    return str(error.message)


def _field(error: ValidationError) -> str:
    path = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required":
        return "id"
    return path or "(job)"


def _job_problems(raw: Any, defaults: Mapping[str, Any], base: BatchConfig) -> Iterator[tuple[str, str]]:
    problems = list(_setting_problems(raw, schema.job_keys(), "job"))
    if problems:
        yield from problems
        return
    merged = _merged(raw, defaults, base)
    yield from _schedule_problems(merged["schedule"], merged["timezone"])
    yield from overrides.bound_problems(merged)
    yield from _run_type_problems(merged["run_types"], merged["script_arguments"])
    yield from _deadline_problems(merged["deadline"])
    if bool(merged["instance_ids"]) == bool(merged["target_tags"]):
        yield FLEET, "no fleet: give instance_ids or target_tags (here, in defaults or in COTS_BATCH_*)"


def _schedule_problems(cron: str, timezone: str) -> Iterator[tuple[str, str]]:
    expression = CRON_PRESETS.get(cron, cron)
    try:
        croniter(expression)
        if len(expression.split()) != 5:
            raise ValueError("give 5 fields (minute hour day-of-month month day-of-week)")
    except ValueError as error:  # CroniterBadCronError is a ValueError
        yield "schedule", f"{cron!r} is not a cron expression: {error}"
    try:
        pendulum.timezone(timezone)
    except ValueError:  # pendulum's InvalidTimezone
        yield "timezone", f"{timezone!r} is not a known IANA timezone (e.g. UTC, Europe/Paris)"


def _deadline_problems(deadline: str) -> Iterator[tuple[str, str]]:
    """The schema checks the key; this also checks a deadline that came from ``COTS_BATCH_DEADLINE``."""
    if deadline:
        try:
            parse_deadline(deadline, field_name=f"deadline (or {PREFIX}DEADLINE)")
        except ValueError as error:
            yield "deadline", str(error)


def _run_type_problems(run_types: list[str], arguments: list[str]) -> Iterator[tuple[str, str]]:
    if BACKFILL in run_types and not any(LOGICAL_DATE in argument for argument in arguments):
        yield (
            "run_types",
            f"{BACKFILL!r} needs a script that takes the night's date: put {LOGICAL_DATE} in "
            f'script_arguments (e.g. [--date, "{LOGICAL_DATE}"]), else a backfill runs the same batch '
            "on the whole fleet once per night of the range",
        )


def _layer(values: Mapping[str, Any]) -> dict[str, Any]:
    """One layer of settings; naming a fleet one way drops what it would inherit the other way."""
    layer = {key: value for key, value in values.items() if key in schema.setting_names()}
    if layer.get("instance_ids") and "target_tags" not in layer:
        layer["target_tags"] = {}
    if layer.get("target_tags") and "instance_ids" not in layer:
        layer["instance_ids"] = []
    return layer


def _merged(raw: Mapping[str, Any], defaults: Mapping[str, Any], base: BatchConfig) -> dict[str, Any]:
    merged: dict[str, Any] = {**dataclasses.asdict(base), "tags": []}
    merged.update(_layer(defaults))
    merged.update(_layer(raw))
    return merged


def _job(raw: Mapping[str, Any], defaults: Mapping[str, Any], base: BatchConfig) -> Job:
    merged = _merged(raw, defaults, base)
    tags = tuple(merged.pop("tags"))
    return Job(
        id=raw["id"],
        description=str(raw.get("description") or ""),
        tags=tags,
        config=dataclasses.replace(base, **merged),
    )
