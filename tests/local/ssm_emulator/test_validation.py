"""SendCommand is refused as AWS refuses it, before anything is created."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

SCRIPT = {"commands": ["true"]}


def _cases(ids: list[str]) -> list[tuple[str, dict, str]]:
    one = ids[:1]
    fifty_one = [f"i-{n:017x}" for n in range(51)]
    return [
        ("51 instance ids", {"InstanceIds": fifty_one}, "ValidationException"),
        (
            "ids and targets",
            {"InstanceIds": one, "Targets": [{"Key": "tag:Role", "Values": ["cots"]}]},
            "InvalidParameters",
        ),
        ("neither ids nor targets", {}, "InvalidParameters"),
        ("comment of 101 characters", {"InstanceIds": one, "Comment": "c" * 101}, "ValidationException"),
        ("TimeoutSeconds 29", {"InstanceIds": one, "TimeoutSeconds": 29}, "ValidationException"),
        (
            "TimeoutSeconds above 30 days",
            {"InstanceIds": one, "TimeoutSeconds": 2_592_001},
            "ValidationException",
        ),
        (
            "6 targets",
            {"Targets": [{"Key": f"tag:K{n}", "Values": ["v"]} for n in range(6)]},
            "ValidationException",
        ),
        (
            "unsupported target key",
            {"Targets": [{"Key": "resource-groups:Name", "Values": ["g"]}]},
            "InvalidTarget",
        ),
        ("MaxConcurrency 0", {"InstanceIds": one, "MaxConcurrency": "0"}, "ValidationException"),
        ("MaxConcurrency 101%", {"InstanceIds": one, "MaxConcurrency": "101%"}, "ValidationException"),
        ("MaxErrors abc", {"InstanceIds": one, "MaxErrors": "abc"}, "ValidationException"),
        ("unknown instance", {"InstanceIds": ["i-0123456789abcdef0"]}, "InvalidInstanceId"),
        ("malformed instance id", {"InstanceIds": ["web-1"]}, "InvalidInstanceId"),
        ("duplicate instance id", {"InstanceIds": one * 2}, "DuplicateInstanceId"),
        (
            "unknown document",
            {"InstanceIds": one, "DocumentName": "AWS-RunPowerShellScript"},
            "InvalidDocument",
        ),
        ("no commands", {"InstanceIds": one, "Parameters": {"commands": []}}, "InvalidParameters"),
        (
            "unknown parameter",
            {"InstanceIds": one, "Parameters": {**SCRIPT, "shell": ["zsh"]}},
            "InvalidParameters",
        ),
        (
            "executionTimeout 0",
            {"InstanceIds": one, "Parameters": {**SCRIPT, "executionTimeout": ["0"]}},
            "InvalidParameters",
        ),
    ]


CASE_NAMES = [name for name, _, _ in _cases(["i-00000000"])]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_invalid_send_command_is_refused_and_creates_nothing(case, emu, ssm_raw):
    _, request, expected = next(c for c in _cases(emu.instance_ids) if c[0] == case)
    before = len(ssm_raw.list_commands()["Commands"])
    with pytest.raises(ClientError) as excinfo:
        ssm_raw.send_command(**{"DocumentName": "AWS-RunShellScript", "Parameters": SCRIPT, **request})
    assert excinfo.value.response["Error"]["Code"] == expected
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert len(ssm_raw.list_commands()["Commands"]) == before


def test_percentages_and_limits_at_the_edges_are_accepted(emu, run):
    command, _ = run.run(
        ["true"],
        emu.instance_ids,
        Comment="c" * 100,
        TimeoutSeconds=30,
        MaxConcurrency="100%",
        MaxErrors="0%",
        parameters={"executionTimeout": ["172800"]},
    )
    assert command["Status"] == "Success"
    assert (command["Comment"], command["TimeoutSeconds"], command["MaxConcurrency"]) == (
        "c" * 100,
        30,
        "100%",
    )


def test_document_arn_is_accepted(emu, run):
    arn = "arn:aws:ssm:us-east-1::document/AWS-RunShellScript"
    command_id = run.ssm.send_command(
        InstanceIds=emu.instance_ids[:1], DocumentName=arn, Parameters={"commands": ["true"]}
    )["Command"]["CommandId"]
    assert run.wait(command_id)["Status"] == "Success"
