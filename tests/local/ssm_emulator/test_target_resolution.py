"""SSM resolves tag targets after answering SendCommand: a command can stay Pending with no invocation."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from ssm_emulator import EmulatorControlError


def by_tag(tag: dict[str, str]) -> list[dict[str, object]]:
    return [{"Key": f"tag:{key}", "Values": [value]} for key, value in tag.items()]


class TestResolveDelay:
    def test_an_unresolved_tag_command_is_pending_with_no_invocation_and_runs_nothing(
        self, emu, ssm, ssm_no_retry, run, unique_tag
    ):
        fleet = emu.add_instances(2, tags=unique_tag)
        emu.control.resolve_delay(30)
        command_id = run.send(["true"], Targets=by_tag(unique_tag))
        command = run.command(command_id)
        assert (command["Status"], command["TargetCount"]) == ("Pending", 0)
        assert ssm.list_command_invocations(CommandId=command_id)["CommandInvocations"] == []
        assert ssm.list_commands(InstanceId=fleet[0])["Commands"] == []
        with pytest.raises(ClientError) as excinfo:
            ssm_no_retry.get_command_invocation(CommandId=command_id, InstanceId=fleet[0])
        assert excinfo.value.response["Error"]["Code"] == "InvocationDoesNotExist"
        assert emu.control.executions() == {}

    def test_then_its_targets_get_invocations_and_run(self, emu, run, unique_tag):
        fleet = emu.add_instances(2, tags=unique_tag)
        emu.control.resolve_delay(1)
        command_id = run.send(["true"], Targets=by_tag(unique_tag))
        command = run.wait(command_id, timeout=15)
        assert (command["Status"], command["TargetCount"]) == ("Success", 2)
        assert set(run.invocations(command_id)) == set(fleet)

    def test_cancelled_before_resolution_it_ends_cancelled_and_no_host_ever_runs_it(
        self, emu, ssm, run, unique_tag
    ):
        fleet = emu.add_instances(2, tags=unique_tag)
        emu.control.resolve_delay(1.5)
        command_id = run.send(["true"], Targets=by_tag(unique_tag))
        ssm.cancel_command(CommandId=command_id)
        command = run.command(command_id)
        assert (command["Status"], command["TargetCount"], command["CompletedCount"]) == ("Cancelled", 0, 0)
        time.sleep(2)  # past the moment SSM would have resolved its targets
        assert ssm.list_command_invocations(CommandId=command_id)["CommandInvocations"] == []
        assert run.command(command_id)["Status"] == "Cancelled"
        assert not set(fleet) & set(emu.control.executions())

    def test_count_delays_only_the_next_tag_commands(self, emu, run, unique_tag):
        emu.add_instances(1, tags=unique_tag)
        emu.control.resolve_delay(30, count=1)
        first = run.send(["true"], Targets=by_tag(unique_tag))
        second = run.send(["true"], Targets=by_tag(unique_tag))
        assert run.command(first)["TargetCount"] == 0
        assert run.wait(second)["Status"] == "Success"
        assert emu.control.faults()["resolve_delay"] == {"seconds": 0.0, "count": None}

    def test_commands_by_instance_id_resolve_at_once(self, emu, run, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        emu.control.resolve_delay(30)
        command_id = run.send(["true"], fleet)
        assert run.wait(command_id)["Status"] == "Success"

    def test_bad_values_are_refused_and_reset_clears_it(self, emu):
        with pytest.raises(EmulatorControlError, match="count"):
            emu.control.resolve_delay(5, count=0)
        with pytest.raises(EmulatorControlError, match="seconds"):
            emu.control.resolve_delay(-1)
        emu.control.resolve_delay(5, count=2)
        assert emu.control.faults()["resolve_delay"] == {"seconds": 5.0, "count": 2}
        emu.control.reset()
        assert emu.control.faults()["resolve_delay"] == {"seconds": 0.0, "count": None}


class TestCatchUp:
    def test_catch_up_shows_every_hidden_command_at_once(self, emu, ssm, run, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        emu.control.consistency_delay(600)
        command_id = run.send(["true"], fleet)
        assert ssm.list_commands(CommandId=command_id)["Commands"] == []
        assert emu.control.catch_up() == 1
        assert [c["CommandId"] for c in ssm.list_commands(CommandId=command_id)["Commands"]] == [command_id]
        later = run.send(["true"], fleet)
        assert ssm.list_commands(CommandId=later)["Commands"] == [], "the delay still hides later commands"
