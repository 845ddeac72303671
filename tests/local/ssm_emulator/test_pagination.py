"""A fleet of 120 instances by tag: every invocation listed once across 3 pages."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError


def test_120_instances_by_tag_page_in_three(emu, ssm, run, unique_tag):
    fleet = emu.add_instances(120, tags=unique_tag)
    command_id = run.send(
        ["echo $AWS_SSM_INSTANCE_ID"],
        Targets=[{"Key": "tag:Fleet", "Values": [unique_tag["Fleet"]]}],
        MaxConcurrency="100%",
    )
    command = run.wait(command_id, timeout=60)
    assert (command["Status"], command["TargetCount"], command["CompletedCount"]) == ("Success", 120, 120)

    pages = list(ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id, Details=True))
    assert [len(page["CommandInvocations"]) for page in pages] == [50, 50, 20]
    listed = [i["InstanceId"] for page in pages for i in page["CommandInvocations"]]
    assert len(set(listed)) == 120 and set(listed) == set(fleet)
    for page in pages:
        for invocation in page["CommandInvocations"]:
            assert invocation["CommandPlugins"][0]["Output"] == invocation["InstanceId"] + "\n"


def test_pages_are_stable_while_new_commands_arrive(emu, ssm, run):
    first = [run.send(["true"], emu.instance_ids) for _ in range(2)]
    for command_id in first:
        run.wait(command_id)
    page = ssm.list_command_invocations(MaxResults=4)
    newer = run.send(["true"], emu.instance_ids)
    rest = ssm.list_command_invocations(MaxResults=2, NextToken=page["NextToken"])
    seen = [
        (i["CommandId"], i["InstanceId"]) for i in page["CommandInvocations"] + rest["CommandInvocations"]
    ]
    assert len(set(seen)) == 6
    assert newer not in {command for command, _ in seen}
    assert {command for command, _ in seen} == set(first)


@pytest.mark.parametrize("max_results", [0, 51])
def test_max_results_outside_1_to_50_is_refused(emu, ssm_raw, max_results):
    with pytest.raises(ClientError) as excinfo:
        ssm_raw.list_command_invocations(MaxResults=max_results)
    assert excinfo.value.response["Error"]["Code"] == "ValidationException"
