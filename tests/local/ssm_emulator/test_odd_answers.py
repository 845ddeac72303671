"""Answers SSM does not document: an unknown invocation status for some reads, empty CommandPlugins."""

from __future__ import annotations

import pytest

from ssm_emulator import EmulatorControlError


def statuses(run, command_id: str) -> dict[str, str]:
    return {i: item["Status"] for i, item in run.invocations(command_id).items()}


class TestOddStatus:
    def test_the_next_reads_show_the_odd_status_then_the_real_one(self, emu, run, unique_tag):
        fleet = emu.add_instances(2, tags=unique_tag)
        command_id = run.send(["true"], fleet)
        run.wait(command_id)
        emu.control.odd_status(fleet[0], "Paused", reads=2)
        first = run.invocations(command_id)[fleet[0]]
        assert (first["Status"], first["StatusDetails"]) == ("Paused", "Paused")
        assert {p["Status"] for p in first["CommandPlugins"]} == {"Paused"}
        assert run.result(command_id, fleet[0])["Status"] == "Paused", "GetCommandInvocation is a read too"
        assert statuses(run, command_id) == {fleet[0]: "Success", fleet[1]: "Success"}
        assert run.command(command_id)["Status"] == "Success", "the command's own status is not changed"

    def test_without_reads_it_stays_until_cleared(self, emu, run, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        command_id = run.send(["true"], fleet)
        run.wait(command_id)
        emu.control.odd_status(fleet[0], "Hibernating")
        assert [statuses(run, command_id)[fleet[0]] for _ in range(3)] == ["Hibernating"] * 3
        assert emu.control.faults()["odd_status"] == {fleet[0]: {"status": "Hibernating", "reads": None}}
        emu.control.odd_status(fleet[0], None)
        assert statuses(run, command_id) == {fleet[0]: "Success"}

    def test_the_script_runs_and_ends_as_usual_underneath(self, emu, run, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        emu.control.odd_status(fleet[0], "Paused")
        command_id = run.send(["exit 3"], fleet)
        assert run.wait(command_id)["Status"] == "Failed"
        emu.control.reset()
        assert run.result(command_id, fleet[0])["ResponseCode"] == 3

    def test_bad_values_are_refused_naming_them(self, emu):
        with pytest.raises(EmulatorControlError, match="i-0000000000000dead"):
            emu.control.odd_status("i-0000000000000dead", "Paused")
        with pytest.raises(EmulatorControlError, match="reads"):
            emu.control.odd_status(emu.instance_ids[0], "Paused", reads=0)


class TestEmptyPlugins:
    def test_details_list_no_plugins_for_that_host_only(self, emu, run, unique_tag):
        fleet = emu.add_instances(2, tags=unique_tag)
        command_id = run.send(["echo hello"], fleet)
        run.wait(command_id)
        emu.control.empty_plugins(fleet[0])
        listed = run.invocations(command_id)
        assert (listed[fleet[0]]["CommandPlugins"], listed[fleet[0]]["Status"]) == ([], "Success")
        assert listed[fleet[1]]["CommandPlugins"][0]["Output"] == "hello\n"
        assert emu.control.faults()["empty_plugins"] == [fleet[0]]
        emu.control.empty_plugins(fleet[0], False)
        assert run.invocations(command_id)[fleet[0]]["CommandPlugins"]
