"""A least-privilege role: SendCommand only to instances with a tag, and a host losing that tag."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from ssm_emulator import EmulatorControlError

COMMANDS = {"commands": ["echo ran"]}


def denied_message(instance_id: str) -> str:
    return (
        "User: arn:aws:sts::123456789012:assumed-role/airflow-execution-role/airflow is not authorized "
        "to perform: ssm:SendCommand on resource: "
        f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id} "
        "because no identity-based policy allows the ssm:SendCommand action"
    )


def send(ssm, **target) -> str:
    answer = ssm.send_command(DocumentName="AWS-RunShellScript", Parameters=COMMANDS, **target)
    return answer["Command"]["CommandId"]


def tag_target(tag: dict[str, str]) -> dict:
    return {"Targets": [{"Key": f"tag:{key}", "Values": [value]} for key, value in tag.items()]}


def managed_with(ssm, tag: dict[str, str]) -> list[str]:
    [(key, value)] = tag.items()
    answer = ssm.describe_instance_information(Filters=[{"Key": f"tag:{key}", "Values": [value]}])
    return [i["InstanceId"] for i in answer["InstanceInformationList"]]


class TestRequireTag:
    def test_instance_without_the_tag_is_refused_and_nothing_runs(self, emu, ssm_no_retry, unique_tag):
        allowed = emu.add_instances(1, tags=unique_tag)
        other = emu.add_instances(1, tags={"Fleet": unique_tag["Fleet"] + "-other"})
        emu.control.require_tag(*next(iter(unique_tag.items())))
        with pytest.raises(ClientError) as excinfo:
            send(ssm_no_retry, InstanceIds=allowed + other)
        error = excinfo.value.response
        assert error["Error"] == {"Code": "AccessDeniedException", "Message": denied_message(other[0])}
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
        time.sleep(0.2)  # a few scheduler ticks: a created command would have started by now
        assert ssm_no_retry.list_commands(InstanceId=allowed[0])["Commands"] == []
        assert {iid: emu.control.executions().get(iid, 0) for iid in allowed + other} == {
            allowed[0]: 0,
            other[0]: 0,
        }

    def test_instances_with_the_tag_are_allowed(self, emu, run, unique_tag):
        fleet = emu.add_instances(2, tags=unique_tag)
        emu.control.require_tag(*next(iter(unique_tag.items())))
        command, _ = run.run(["echo ran"], fleet)
        assert command["Status"] == "Success"

    def test_tag_targets_are_checked_on_the_instances_they_resolve_to(self, emu, ssm_no_retry, unique_tag):
        emu.add_instances(1, tags={**unique_tag, "Team": "batch"})
        untagged = emu.add_instances(1, tags={**unique_tag, "Team": "other"})
        emu.control.require_tag("Team", "batch")
        with pytest.raises(ClientError) as excinfo:
            send(ssm_no_retry, **tag_target(unique_tag))
        assert excinfo.value.response["Error"]["Code"] == "AccessDeniedException"
        assert excinfo.value.response["Error"]["Message"] == denied_message(untagged[0])

    def test_none_clears_it(self, emu, ssm_no_retry, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        emu.control.require_tag("Team", "batch")
        assert emu.control.faults()["require_tag"] == {"key": "Team", "value": "batch"}
        emu.control.require_tag(None)
        assert emu.control.faults()["require_tag"] is None
        assert send(ssm_no_retry, InstanceIds=fleet)

    def test_a_key_without_a_value_is_refused(self, emu):
        with pytest.raises(EmulatorControlError):
            emu.control.require_tag("Team")


class TestUntag:
    def test_a_host_that_loses_its_tag_mid_run_is_refused_and_left_out_of_tag_targets(
        self, emu, ssm_no_retry, run, unique_tag
    ):
        kept, lost = emu.add_instances(2, tags=unique_tag)
        emu.control.require_tag(*next(iter(unique_tag.items())))
        run.wait(send(ssm_no_retry, InstanceIds=[kept, lost]))
        assert emu.control.untag(lost, "Fleet")
        with pytest.raises(ClientError) as excinfo:
            send(ssm_no_retry, InstanceIds=[kept, lost])
        assert excinfo.value.response["Error"]["Message"] == denied_message(lost)
        command = run.wait(send(ssm_no_retry, **tag_target(unique_tag)))
        assert (command["Status"], command["TargetCount"]) == ("Success", 1)
        assert managed_with(ssm_no_retry, unique_tag) == [kept]
        executions = emu.control.executions()
        assert (executions[kept], executions[lost]) == (2, 1)

    def test_reset_puts_the_tag_back(self, emu, ssm, unique_tag):
        fleet = emu.add_instances(2, tags=unique_tag)
        emu.control.untag(fleet[0], "Fleet")
        assert managed_with(ssm, unique_tag) == fleet[1:]
        emu.control.reset()
        assert managed_with(ssm, unique_tag) == fleet

    def test_a_missing_tag_is_not_an_error(self, emu, unique_tag):
        instance_id = emu.add_instances(1, tags=unique_tag)[0]
        assert not emu.control.untag(instance_id, "NoSuchKey")

    def test_an_unknown_instance_is_refused(self, emu):
        with pytest.raises(EmulatorControlError, match="i-0000000000000dead"):
            emu.control.untag("i-0000000000000dead", "Fleet")
