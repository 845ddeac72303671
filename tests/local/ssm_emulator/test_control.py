"""EmulatorControl: the HTTP client of the control API."""

from __future__ import annotations

import socket

import pytest

from ssm_emulator import EmulatorControl, EmulatorControlError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_info_reports_the_server_facts(emu):
    info = emu.control.info()
    assert info["endpoint_url"] == emu.endpoint_url
    assert set(emu.instance_ids) <= set(info["instance_ids"])
    assert (info["topic_arn"], info["queue_url"], info["region"]) == (
        emu.topic_arn,
        emu.queue_url,
        "us-east-1",
    )


def test_health(emu):
    assert emu.control.health()
    assert not EmulatorControl(f"http://127.0.0.1:{free_port()}", timeout=2).health()


def test_unknown_instance_cannot_go_offline(emu):
    with pytest.raises(EmulatorControlError, match="i-0000000000000dead"):
        emu.control.set_offline(["i-0000000000000dead"])


def test_time_scale_must_be_positive(emu):
    with pytest.raises(EmulatorControlError):
        emu.control.time_scale(0)


def test_live_process_groups_follow_running_scripts(emu, run, ssm, wait_for):
    command_id = run.send(["sleep 30"], emu.instance_ids[:1])
    groups = wait_for(emu.control.live_process_groups, what="a live process group")
    ssm.cancel_command(CommandId=command_id)
    run.wait(command_id, timeout=10)
    wait_for(lambda: not set(groups) & set(emu.control.live_process_groups()), what="the group to be gone")


def test_faults_show_what_is_set(emu):
    emu.control.force_exit(emu.instance_ids[0], 3)
    emu.control.extra_duration(emu.instance_ids[1], 2)
    emu.control.set_offline(emu.instance_ids[2:])
    faults = emu.control.faults()
    assert faults["force_exit"] == {emu.instance_ids[0]: 3}
    assert faults["extra_duration"] == {emu.instance_ids[1]: 2.0}
    assert faults["offline"] == emu.instance_ids[2:]
    emu.control.force_exit(emu.instance_ids[0], None)
    assert emu.control.faults()["force_exit"] == {}


def test_executions_count_script_processes_per_instance(emu, run, unique_tag):
    fleet = emu.add_instances(2, tags=unique_tag)
    run.run(["true"], fleet)
    run.run(["exit 3"], fleet[:1])
    executions = emu.control.executions()
    assert (executions[fleet[0]], executions[fleet[1]]) == (2, 1)
