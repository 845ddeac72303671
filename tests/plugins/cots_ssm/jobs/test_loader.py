"""The jobs file loader: pure functions exercised with dict fixtures (no Airflow, no file system)."""

from __future__ import annotations

import copy

import pytest

from cots_ssm.jobs.loader import JobsFileError, jobs_file_path, load_jobs, parse_jobs

SOURCE = "dags/cots_jobs.yaml"
NIGHTLY = {"id": "cots_nightly_batch", "description": "Nightly COTS batch", "tags": ["nightly"]}
INDEXER = {
    "id": "document_indexer",
    "schedule": "30 2 * * *",
    "timezone": "Europe/Paris",
    "target_tags": {"Role": ["indexer"]},
    "script_arguments": ["--keywords", "contract"],
    "max_failed_instances": "10%",
    "failure_policy": "cancel",
}
RECONCILIATION = {
    "id": "monthly_reconciliation",
    "schedule": "0 5 1 * *",
    "timezone": "America/New_York",
    "instance_ids": ["i-0123456789abcdef0", "i-0fedcba9876543210"],
    "script": "/opt/ledger/bin/reconcile.sh",
}
FILE = {"defaults": {"owner": "cots-support", "poll_interval_seconds": 120}, "jobs": [NIGHTLY, INDEXER]}
NO_ENV: dict[str, str] = {}


def parse(data, env=NO_ENV):
    return parse_jobs(copy.deepcopy(data), source=SOURCE, env=env)


def with_job(job, defaults=None):
    return {"defaults": defaults or {}, "jobs": [NIGHTLY, job]}


def only_error(result):
    assert len(result.errors) == 1, result.errors
    return result.errors[0]


class TestPrecedence:
    def test_a_job_without_keys_takes_the_built_in_defaults(self):
        (job,) = parse({"jobs": [{"id": "plain"}]}).jobs
        assert (job.config.schedule, job.config.timezone, job.config.target_tags) == (
            "0 2 * * *",
            "UTC",
            {"Role": ["cots"]},
        )
        assert job.config.poll_interval_seconds == 300

    def test_environment_over_built_in(self):
        (job,) = parse({"jobs": [{"id": "plain"}]}, env={"COTS_BATCH_POLL_SECONDS": "1"}).jobs
        assert job.config.poll_interval_seconds == 1

    def test_file_defaults_over_environment(self):
        result = parse(FILE, env={"COTS_BATCH_POLL_SECONDS": "1", "COTS_BATCH_SCRIPT": "/local/batch.sh"})
        nightly, indexer = result.jobs
        assert nightly.config.poll_interval_seconds == indexer.config.poll_interval_seconds == 120
        assert nightly.config.script == indexer.config.script == "/local/batch.sh"

    def test_job_keys_over_file_defaults(self):
        data = with_job({**INDEXER, "owner": "docs-platform"}, defaults={"owner": "cots-support"})
        nightly, indexer = parse(data).jobs
        assert (nightly.config.owner, indexer.config.owner) == ("cots-support", "docs-platform")
        assert (indexer.config.schedule, indexer.config.timezone) == ("30 2 * * *", "Europe/Paris")
        assert indexer.config.failure_policy == "cancel" and indexer.config.max_failed_instances == "10%"

    def test_instance_ids_drop_the_inherited_tags(self):
        (_, job) = parse(with_job(RECONCILIATION)).jobs
        assert job.config.instance_ids == RECONCILIATION["instance_ids"] and job.config.target_tags == {}

    def test_tags_drop_the_inherited_instance_ids(self):
        env = {"COTS_BATCH_INSTANCE_IDS": '["i-0123456789abcdef0"]'}
        nightly, indexer = parse(with_job(INDEXER), env=env).jobs
        assert nightly.config.instance_ids == ["i-0123456789abcdef0"] and nightly.config.target_tags == {}
        assert indexer.config.instance_ids == [] and indexer.config.target_tags == {"Role": ["indexer"]}

    def test_description_and_tags_belong_to_the_job(self):
        nightly, indexer = parse(FILE).jobs
        assert (nightly.description, nightly.tags) == ("Nightly COTS batch", ("nightly",))
        assert (indexer.description, indexer.tags) == ("", ())


# (job, the field the error must name): each is one of the bad cases, or a neighbour.
BAD_JOBS = {
    "unknown key": ({**INDEXER, "shedule": "0 1 * * *"}, "shedule"),
    "bad cron": ({**INDEXER, "schedule": "61 2 * * *"}, "schedule"),
    "cron with 4 fields": ({**INDEXER, "schedule": "0 2 * *"}, "schedule"),
    "bad timezone": ({**INDEXER, "timezone": "Europe/Pariss"}, "timezone"),
    "bad instance id": ({**RECONCILIATION, "instance_ids": ["i-0abc; reboot"]}, "instance_ids.0"),
    "instance id twice": (
        {**RECONCILIATION, "instance_ids": ["i-0123456789abcdef0", "i-0123456789abcdef0"]},
        "instance_ids",
    ),
    "bad tag value": ({**INDEXER, "target_tags": {"Role": ["$(reboot)"]}}, "target_tags.Role.0"),
    "bad tag key": ({**INDEXER, "target_tags": {"Ro|e": ["x"]}}, "target_tags"),
    "tag without values": ({**INDEXER, "target_tags": {"Role": []}}, "target_tags.Role"),
    "six tag keys": ({**INDEXER, "target_tags": {f"k{i}": ["v"] for i in range(6)}}, "target_tags"),
    "topic not an ARN": (
        {**INDEXER, "sns_topic_arn": "arn:aws:sqs:us-east-1:123456789012:q"},
        "sns_topic_arn",
    ),
    "tolerance as a number": ({**INDEXER, "max_failed_instances": 2}, "max_failed_instances"),
    "unknown policy": ({**INDEXER, "failure_policy": "ignore"}, "failure_policy"),
    "delivery timeout too short": ({**INDEXER, "delivery_timeout_seconds": 29}, "delivery_timeout_seconds"),
    "bad concurrency": ({**INDEXER, "max_concurrency": "0"}, "max_concurrency"),
    "bad job id": ({**INDEXER, "id": "document indexer"}, "id"),
    "no id": ({k: v for k, v in INDEXER.items() if k != "id"}, "id"),
    "both fleets": ({**INDEXER, "instance_ids": ["i-0123456789abcdef0"]}, "instance_ids/target_tags"),
    "not a mapping": (["id", "x"], "(job)"),
    "unknown run type": ({**INDEXER, "run_types": ["scheduled", "manual", "asset"]}, "run_types.2"),
    "run types without manual": ({**INDEXER, "run_types": ["scheduled"]}, "run_types"),
    "too many host retries": ({**INDEXER, "host_retries": 4}, "host_retries"),
    "exit code 0 retried": ({**INDEXER, "retry_exit_codes": [75, 0]}, "retry_exit_codes.1"),
    "exit code out of range": ({**INDEXER, "retry_exit_codes": [256]}, "retry_exit_codes.0"),
    "backfill of a script without the date": (
        {**INDEXER, "run_types": ["scheduled", "manual", "backfill"]},
        "run_types",
    ),
}


class TestBadJob:
    @pytest.mark.parametrize(("job", "field"), BAD_JOBS.values(), ids=BAD_JOBS.keys())
    def test_is_refused_naming_file_job_and_field_while_the_others_load(self, job, field):
        result = parse(with_job(job))

        assert [j.id for j in result.jobs] == ["cots_nightly_batch"]
        error = only_error(result) if field != "instance_ids/target_tags" else result.errors[-1]
        assert error.field == field
        assert (error.source, error.index) == (SOURCE, 1)
        assert str(error).startswith(f"{SOURCE}: ") and repr(field) in str(error)
        if isinstance(job, dict) and isinstance(job.get("id"), str):
            assert f"job {job['id']!r}" in str(error)

    def test_duplicate_id_keeps_the_first_and_refuses_the_second(self):
        result = parse({"jobs": [NIGHTLY, INDEXER, {**INDEXER, "schedule": "0 4 * * *"}]})

        assert [j.id for j in result.jobs] == ["cots_nightly_batch", "document_indexer"]
        assert result.jobs[1].config.schedule == "30 2 * * *"
        error = only_error(result)
        assert (error.index, error.job_id, error.field) == (2, "document_indexer", "id")
        assert "jobs[1]" in error.message

    def test_a_job_without_fleet_anywhere_is_refused(self):
        error = only_error(parse({"jobs": [{"id": "x"}]}, env={"COTS_BATCH_TARGET_TAGS": "{}"}))
        assert error.field == "instance_ids/target_tags" and "no fleet" in error.message

    def test_a_bad_cron_from_the_environment_refuses_the_jobs_that_inherit_it(self):
        result = parse(FILE, env={"COTS_BATCH_SCHEDULE": "every night"})
        assert [j.id for j in result.jobs] == ["document_indexer"], "it has a schedule of its own"
        assert [(e.job_id, e.field) for e in result.errors] == [("cots_nightly_batch", "schedule")]

    def test_cron_presets_are_accepted_like_airflow_does(self):
        (_, job) = parse(with_job({**INDEXER, "schedule": "@daily"})).jobs
        assert job.config.schedule == "@daily"

    def test_every_error_of_a_job_is_listed(self):
        result = parse(with_job({**INDEXER, "timezone": "Nowhere/City", "schedule": "not cron"}))
        assert sorted(e.field for e in result.errors) == ["schedule", "timezone"]


class TestBadFile:
    @pytest.mark.parametrize(
        ("data", "words"),
        [
            (None, "mapping"),
            ({"jobs": []}, "'jobs'"),
            ({"job": [NIGHTLY]}, "['job']"),
            ({"jobs": [NIGHTLY], "defaults": {"polling": 1}}, "'defaults.polling'"),
            ({"jobs": [NIGHTLY], "defaults": {"retries": -1}}, "'defaults.retries'"),
            ({"jobs": [NIGHTLY], "defaults": ["owner"]}, "'defaults'"),
        ],
    )
    def test_is_one_error_naming_the_file_and_the_field(self, data, words):
        with pytest.raises(JobsFileError, match=SOURCE) as raised:
            parse(data)
        assert words in str(raised.value)

    def test_a_bad_environment_variable_names_the_variable(self):
        with pytest.raises(JobsFileError, match="COTS_BATCH_RETRIES"):
            parse(FILE, env={"COTS_BATCH_RETRIES": "two"})

    def test_not_yaml(self, tmp_path):
        path = tmp_path / "jobs.yaml"
        path.write_text("jobs: [\n")
        with pytest.raises(JobsFileError, match="jobs.yaml: not valid YAML"):
            load_jobs(path, env=NO_ENV)

    def test_missing_file(self, tmp_path):
        with pytest.raises(JobsFileError, match="cannot read"):
            load_jobs(tmp_path / "absent.yaml", env=NO_ENV)


class TestJobsFilePath:
    def test_the_variable_points_at_another_file(self, tmp_path):
        assert (
            jobs_file_path(tmp_path / "a.yaml", env={"COTS_JOBS_FILE": "/x/b.yaml"}).as_posix() == "/x/b.yaml"
        )

    def test_else_the_default(self, tmp_path):
        assert jobs_file_path(tmp_path / "a.yaml", env={}) == tmp_path / "a.yaml"


class TestShippedExample:
    def test_the_example_file_loads_two_jobs_the_first_being_todays_nightly_batch(self):
        from pathlib import Path

        path = Path(__file__).resolve().parents[4] / "dags" / "cots_jobs.yaml"
        result = load_jobs(path, env=NO_ENV)

        assert not result.errors
        assert [j.id for j in result.jobs] == ["cots_nightly_batch", "document_indexer"]
        nightly = result.jobs[0].config
        assert (nightly.schedule, nightly.timezone, nightly.target_tags) == (
            "0 2 * * *",
            "UTC",
            {"Role": ["cots"]},
        )
        assert (nightly.script, nightly.owner) == ("/opt/cots/bin/run_batch.sh", "cots-support")


class TestRunTypes:
    def test_a_job_accepts_scheduled_and_manual_runs_unless_it_says_otherwise(self):
        for job in parse(FILE).jobs:
            assert job.config.run_types == ["scheduled", "manual"], job.id

    def test_a_job_whose_script_takes_the_date_may_accept_backfills(self):
        dated = {
            **INDEXER,
            "run_types": ["scheduled", "manual", "backfill"],
            "script_arguments": ["--date={logical_date}"],
        }
        (_, job) = parse(with_job(dated)).jobs
        assert job.config.run_types == ["scheduled", "manual", "backfill"]
        assert job.config.script_arguments == ["--date={logical_date}"]

    def test_a_backfill_without_the_date_is_refused_saying_how_to_pass_it(self):
        error = only_error(parse(with_job({**INDEXER, "run_types": ["scheduled", "manual", "backfill"]})))
        assert error.field == "run_types"
        assert "put {logical_date} in script_arguments" in error.message
        assert "once per night of the range" in error.message

    def test_the_date_inherited_from_defaults_counts(self):
        data = with_job(
            {**INDEXER, "script_arguments": [], "run_types": ["scheduled", "manual", "backfill"]},
            defaults={"script_arguments": ["{logical_date}"]},
        )
        assert only_error(parse(data)).field == "run_types", "the job's own empty arguments win"
        job = {k: v for k, v in INDEXER.items() if k != "script_arguments"}
        data = with_job({**job, "run_types": ["scheduled", "manual", "backfill"]}, defaults=data["defaults"])
        assert not parse(data).errors

    @pytest.mark.parametrize("missing", ["scheduled", "manual"])
    def test_scheduled_and_manual_cannot_be_dropped(self, missing):
        kept = [t for t in ("scheduled", "manual", "backfill") if t != missing]
        job = {**INDEXER, "run_types": kept, "script_arguments": ["{logical_date}"]}
        error = only_error(parse(with_job(job)))
        assert (error.field, error.message) == ("run_types", f"{kept!r} must include {missing!r}")

    def test_an_unquoted_placeholder_is_refused_saying_to_quote_it(self):
        import yaml

        job = yaml.safe_load("{id: dated, script_arguments: [--date, {logical_date}]}")
        error = only_error(parse({"jobs": [job]}))
        assert (error.field, error.message) == (
            "script_arguments.1",
            'quote it: "{logical_date}" (unquoted, YAML reads it as a mapping)',
        )


class TestDeadline:
    def test_a_job_has_no_deadline_unless_it_says_so(self):
        (job,) = parse({"jobs": [{"id": "plain"}]}).jobs
        assert job.config.deadline == ""

    def test_a_deadline_from_the_job_the_defaults_or_the_environment(self):
        (_, own) = parse(with_job({**INDEXER, "deadline": "06:00"}, defaults={"deadline": "07:30"})).jobs
        (inherited, _) = parse(with_job(INDEXER, defaults={"deadline": "07:30"})).jobs
        (from_env,) = parse({"jobs": [{"id": "plain"}]}, env={"COTS_BATCH_DEADLINE": "05:45"}).jobs
        assert (own.config.deadline, inherited.config.deadline, from_env.config.deadline) == (
            "06:00",
            "07:30",
            "05:45",
        )

    @pytest.mark.parametrize("value", ["6:00", "24:00", "06:00:00", "six"])
    def test_a_bad_deadline_refuses_the_job_naming_the_field(self, value):
        error = only_error(parse(with_job({**INDEXER, "deadline": value})))
        assert (error.job_id, error.field) == ("document_indexer", "deadline")
        assert repr(value) in error.message

    def test_a_bad_deadline_in_the_environment_names_the_variable(self):
        result = parse({"jobs": [{"id": "plain"}]}, env={"COTS_BATCH_DEADLINE": "6am"})
        error = only_error(result)
        assert error.field == "deadline"
        assert "COTS_BATCH_DEADLINE" in error.message and "'6am' is not a time of day" in error.message


class TestHostRetries:
    def test_a_host_that_missed_the_start_gets_one_resend_and_no_exit_code_is_retried_by_default(self):
        config = parse(FILE).jobs[0].config
        assert (config.host_retries, config.retry_exit_codes) == (1, [])

    def test_a_job_sets_its_resends_and_the_exit_codes_it_retries(self):
        job = {**INDEXER, "host_retries": 0, "retry_exit_codes": [75]}
        config = parse(with_job(job, defaults={"host_retries": 3})).jobs[1].config
        assert (config.host_retries, config.retry_exit_codes) == (0, [75])
