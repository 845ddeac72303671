"""SSM's reads lag its writes: a new command is invisible to every read for the consistency delay."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from ssm_emulator import EmulatorControlError


def listed_ids(ssm, **kwargs) -> list[str]:
    return [c["CommandId"] for c in ssm.list_commands(**kwargs)["Commands"]]


class TestEveryReadLags:
    def test_a_new_command_is_invisible_to_list_commands_then_appears(
        self, emu, ssm, run, wait_for, unique_tag
    ):
        fleet = emu.add_instances(1, tags=unique_tag)
        emu.control.consistency_delay(1.5)
        command_id = run.send(["true"], fleet)
        assert command_id not in listed_ids(ssm)
        assert listed_ids(ssm, CommandId=command_id) == [], "by id: nothing yet, not an error"
        assert listed_ids(ssm, InstanceId=fleet[0]) == []
        wait_for(lambda: command_id in listed_ids(ssm), timeout=10, what="the command to be listed")
        assert listed_ids(ssm, CommandId=command_id) == [command_id]

    def test_invocations_and_get_are_hidden_for_the_same_time(self, emu, ssm, ssm_no_retry, run, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        emu.control.consistency_delay(1.5)
        command_id = run.send(["true"], fleet)
        assert ssm.list_command_invocations(CommandId=command_id)["CommandInvocations"] == []
        assert ssm.list_command_invocations(InstanceId=fleet[0])["CommandInvocations"] == []
        with pytest.raises(ClientError) as excinfo:
            ssm_no_retry.get_command_invocation(CommandId=command_id, InstanceId=fleet[0])
        assert excinfo.value.response["Error"]["Code"] == "InvocationDoesNotExist"

    def test_the_script_runs_meanwhile(self, emu, ssm, run, wait_for, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        emu.control.consistency_delay(3)
        command_id = run.send(["true"], fleet)
        wait_for(lambda: emu.control.executions().get(fleet[0]), timeout=2, what="the script to start")
        assert listed_ids(ssm, CommandId=command_id) == [], "still hidden while it ran"

    def test_commands_sent_before_the_delay_stay_visible(self, emu, ssm, run, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        before = run.send(["true"], fleet)
        emu.control.consistency_delay(30)
        assert listed_ids(ssm, CommandId=before) == [before]
        assert ssm.list_command_invocations(CommandId=before)["CommandInvocations"]

    def test_an_unknown_id_is_still_refused(self, emu, ssm_no_retry):
        emu.control.consistency_delay(5)
        with pytest.raises(ClientError) as excinfo:
            ssm_no_retry.list_commands(CommandId="0" * 8 + "-0000-0000-0000-" + "0" * 12)
        assert excinfo.value.response["Error"]["Code"] == "InvalidCommandId"


class TestPerAction:
    def test_the_lag_can_be_limited_to_the_invocation_reads(self, emu, ssm, run, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        emu.control.consistency_delay(30, actions=["ListCommandInvocations", "GetCommandInvocation"])
        command_id = run.send(["true"], fleet)
        assert listed_ids(ssm, CommandId=command_id) == [command_id]
        assert ssm.list_command_invocations(CommandId=command_id)["CommandInvocations"] == []
        faults = emu.control.faults()
        assert faults["consistency_delay"] == 30.0
        assert faults["consistency_delay_actions"] == ["ListCommandInvocations", "GetCommandInvocation"]

    def test_an_unknown_action_is_refused_naming_it(self, emu):
        with pytest.raises(EmulatorControlError, match="DescribeInstanceInformation"):
            emu.control.consistency_delay(5, actions=["DescribeInstanceInformation"])

    def test_reset_clears_the_delay_and_its_actions(self, emu, ssm, run, unique_tag):
        emu.control.consistency_delay(30, actions=["ListCommands"])
        emu.control.reset()
        faults = emu.control.faults()
        assert faults["consistency_delay"] == 0.0
        assert faults["consistency_delay_actions"] == [
            "ListCommands",
            "ListCommandInvocations",
            "GetCommandInvocation",
        ]
        fleet = emu.add_instances(1, tags=unique_tag)
        command_id = run.send(["true"], fleet)
        time.sleep(0.05)
        assert listed_ids(ssm, CommandId=command_id) == [command_id]
