"""A thousand instances: every invocation runs to completion and is listed across pages."""

import time

import boto3
import pytest

from ssm_emulator import EmulatorServer


@pytest.fixture(scope="module")
def big():
    with EmulatorServer(port=0, instances=0) as server:
        ids = server.add_instances(1000, tags={"Role": "thousand"})
        yield server, ids


def test_1000_instances_complete_and_are_listed_across_pages(big):
    server, ids = big
    ssm = boto3.client("ssm", endpoint_url=server.endpoint_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    command_ids = [
        ssm.send_command(
            DocumentName="AWS-RunShellScript",
            InstanceIds=ids[start : start + 50],
            Parameters={"commands": ["sleep 1"]},
        )["Command"]["CommandId"]
        for start in range(0, 1000, 50)
    ]
    assert len(command_ids) == 20
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        commands = [ssm.list_commands(CommandId=c)["Commands"][0] for c in command_ids]
        if all(c["Status"] == "Success" for c in commands):
            break
        time.sleep(0.5)
    assert {c["Status"] for c in commands} == {"Success"}
    paginator = ssm.get_paginator("list_command_invocations")
    listed, pages = [], 0
    for command_id in command_ids:
        for page in paginator.paginate(CommandId=command_id, PaginationConfig={"PageSize": 20}):
            pages += 1
            listed += page["CommandInvocations"]
    assert sorted(i["InstanceId"] for i in listed) == sorted(ids)
    assert {i["Status"] for i in listed} == {"Success"}
    assert pages == 20 * 3
    by_tag = ssm.send_command(
        DocumentName="AWS-RunShellScript",
        Targets=[{"Key": "tag:Role", "Values": ["thousand"]}],
        Parameters={"commands": ["true"]},
        MaxConcurrency="100%",
    )["Command"]["CommandId"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if ssm.list_commands(CommandId=by_tag)["Commands"][0]["Status"] == "Success":
            break
        time.sleep(0.5)
    one_command = [i for p in paginator.paginate(CommandId=by_tag) for i in p["CommandInvocations"]]
    assert len(one_command) == 1000 and {i["Status"] for i in one_command} == {"Success"}
