"""A host that leaves the fleet: terminated, it is unknown to Run Command from then on."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from ssm_emulator import EmulatorControlError


def managed(ssm, **filters) -> list[str]:
    kwargs = {"Filters": [{"Key": k, "Values": v} for k, v in filters.items()]} if filters else {}
    pages = ssm.get_paginator("describe_instance_information").paginate(**kwargs)
    return [i["InstanceId"] for page in pages for i in page["InstanceInformationList"]]


class TestTerminate:
    def test_send_command_naming_it_is_refused_as_ssm_does(self, emu, ssm_no_retry, unique_tag):
        fleet = emu.add_instances(2, tags=unique_tag)
        assert emu.control.terminate(fleet[1]) is True
        with pytest.raises(ClientError) as excinfo:
            ssm_no_retry.send_command(
                DocumentName="AWS-RunShellScript", Parameters={"commands": ["true"]}, InstanceIds=fleet
            )
        assert excinfo.value.response["Error"]["Code"] == "InvalidInstanceId"
        assert fleet[1] in excinfo.value.response["Error"]["Message"]
        assert emu.control.executions().get(fleet[0], 0) == 0, "nothing was created"

    def test_it_is_gone_from_describe_instance_information_and_tag_filters(self, emu, ssm, unique_tag):
        fleet = emu.add_instances(2, tags=unique_tag)
        emu.control.terminate(fleet[0])
        [(key, value)] = unique_tag.items()
        assert managed(ssm, **{f"tag:{key}": [value]}) == fleet[1:]
        assert fleet[0] not in managed(ssm)
        assert emu.control.faults()["terminated"] == [fleet[0]]

    def test_tag_targets_no_longer_match_it(self, emu, run, unique_tag):
        fleet = emu.add_instances(3, tags=unique_tag)
        emu.control.terminate(fleet[2])
        [(key, value)] = unique_tag.items()
        command, results = run.run(["true"], Targets=[{"Key": f"tag:{key}", "Values": [value]}])
        assert (command["Status"], command["TargetCount"]) == ("Success", 2)
        assert sorted(results) == sorted(fleet[:2])
        assert fleet[2] not in emu.control.executions()

    def test_its_earlier_commands_stay_readable(self, emu, run, ssm, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        command, _ = run.run(["exit 4"], fleet)
        emu.control.terminate(fleet[0])
        (invocation,) = ssm.list_command_invocations(CommandId=command["CommandId"])["CommandInvocations"]
        assert (invocation["InstanceId"], invocation["Status"]) == (fleet[0], "Failed")

    def test_terminating_twice_says_it_was_already_gone(self, emu, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        assert emu.control.terminate(fleet[0]) is True
        assert emu.control.terminate(fleet[0]) is False

    def test_an_unknown_instance_is_refused(self, emu):
        with pytest.raises(EmulatorControlError, match="i-0000000000000dead"):
            emu.control.terminate("i-0000000000000dead")

    def test_reset_brings_it_back(self, emu, ssm, run, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        emu.control.terminate(fleet[0])
        emu.control.reset()
        assert fleet[0] in managed(ssm)
        command, _ = run.run(["true"], fleet)
        assert command["Status"] == "Success"
