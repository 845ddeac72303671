"""The jobs file schema: a valid JSON schema, the one source of the rules of the file and the form."""

from __future__ import annotations

import copy

import pytest
from jsonschema import Draft202012Validator

from cots_ssm.config import BatchConfig
from cots_ssm.jobs import schema
from cots_ssm.jobs.loader import parse_jobs
from cots_ssm.params import trigger_form
from ssm_fleet import validation
from ssm_fleet.verdict import FailurePolicy


def test_the_shipped_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(schema.schema())
    assert schema.SCHEMA_PATH.name == "cots_jobs.schema.json"


def test_a_rule_has_its_references_inlined():
    rule = schema.rule("targetTags")
    assert "$ref" not in str(rule)
    assert rule["propertyNames"]["pattern"] == validation.TAG_KEY.pattern


@pytest.mark.parametrize(
    ("definition", "pattern"),
    [
        ("instanceId", validation.INSTANCE_ID.pattern),
        ("tagKey", validation.TAG_KEY.pattern),
        ("tagValue", validation.TAG_VALUE.pattern),
        ("maxConcurrency", validation.RATE_CONTROL["max_concurrency"].pattern),
        ("maxErrors", validation.RATE_CONTROL["max_errors"].pattern),
    ],
)
def test_patterns_agree_with_the_operators_runtime_checks(definition, pattern):
    assert schema.rule(definition)["pattern"] == pattern


@pytest.mark.parametrize(
    ("definition", "bounds"),
    [
        ("executionTimeoutSeconds", validation.EXECUTION_TIMEOUT_RANGE),
        ("deliveryTimeoutSeconds", validation.DELIVERY_TIMEOUT_RANGE),
    ],
)
def test_ranges_agree_with_the_operators_runtime_checks(definition, bounds):
    rule = schema.rule(definition)
    assert (rule["minimum"], rule["maximum"]) == bounds


def test_limits_agree_with_the_operators_runtime_checks():
    tags = schema.rule("targetTags")
    assert tags["maxProperties"] == validation.MAX_TARGETS
    assert tags["additionalProperties"]["maxItems"] == validation.MAX_TAG_VALUES
    assert schema.rule("failurePolicy")["enum"] == [p.value for p in FailurePolicy]


ID = "i-0123456789abcdef0"
# Values for each field the trigger form and the file share: good and bad ones mixed.
VALUES = {
    "instance_ids": [
        [ID],
        [ID, "mi-0123456789abcdef0"],
        ["i-0abc; reboot"],
        [ID, ID],
        "i-0123456789abcdef0",
        [7],
    ],
    "target_tags": [
        {"Role": ["cots"]},
        {"Role": ["a", "b"], "Env": ["prod"]},
        {"Role": []},
        {"Role": ["$(reboot)"]},
        {"Ro|e": ["x"]},
        {f"k{i}": ["v"] for i in range(6)},
        {"Role": "cots"},
    ],
    "script_arguments": [[], ["--keywords", "a,b"], ["two\nlines"], "--flag", [1], ["{{ssm:/x}}"], ["a{b}"]],
    "execution_timeout_seconds": [1, 172_800, 0, 172_801, "60", 1.5],
    "delivery_timeout_seconds": [30, 2_592_000, 29, 2_592_001],
    "max_failed_instances": ["0", "3", "10%", "100%", "101%", "-1", "x", 2],
    "failure_policy": ["finish", "cancel", "ignore", "FINISH"],
    "poll_interval_seconds": [1, 86_400, 0, 86_401, True],
    "deferrable": [True, False, "true", 1, None],
}
CASES = [(name, value) for name, values in VALUES.items() for value in values]


def form_accepts(name, value):
    """The form of a job whose bound lets a trigger choose any tolerance (tests/.../test_overrides.py)."""
    param = copy.deepcopy(trigger_form(BatchConfig(max_failed_instances_bound="100%"))[name])
    try:
        param.resolve(value)
    except Exception:  # Airflow's ParamValidationError (its module moved between versions)
        return False
    return True


def file_accepts(name, value):
    job = {"id": "job", "target_tags": {"Role": ["cots"]}, name: value}
    if name == "instance_ids":
        job.pop("target_tags")
    result = parse_jobs({"jobs": [job]}, source="jobs.yaml", env={})
    return not [e for e in result.errors if e.field == name or e.field.startswith(name + ".")]


@pytest.mark.parametrize(("name", "value"), CASES, ids=[f"{n}={v!r}" for n, v in CASES])
def test_the_trigger_form_and_the_file_refuse_and_accept_the_same_values(name, value):
    assert form_accepts(name, value) == file_accepts(name, value)


def test_the_cases_cover_both_answers_for_every_field():
    for name, values in VALUES.items():
        assert {file_accepts(name, v) for v in values} == {True, False}, name


def test_every_form_field_but_redrive_has_its_rule_in_the_schema():
    settings = schema.schema()["$defs"]["settings"]["properties"]
    assert set(trigger_form(BatchConfig())) - set(settings) == {"redrive"}
