"""The per-host execution record: what really ran where, when, and how it ended."""

from __future__ import annotations

import datetime as dt

from ssm_emulator import Execution, find_overlaps


def execution(instance_id: str, started: float, ended: float | None, command_id: str = "c") -> Execution:
    return Execution(instance_id, command_id, 1, started=started, started_at="", ended=ended, exit_code=0)


class TestExecutionLog:
    def test_each_process_is_recorded_with_command_times_and_exit_code(self, emu, run, unique_tag):
        fleet = emu.add_instances(2, tags=unique_tag)
        first, _ = run.run(["sleep 0.3"], fleet)
        second, _ = run.run(["exit 3"], fleet[:1])
        log = emu.control.execution_log()
        assert sorted((e.instance_id, e.command_id) for e in log) == sorted(
            [(fleet[0], first["CommandId"]), (fleet[1], first["CommandId"]), (fleet[0], second["CommandId"])]
        )
        assert log[-1].command_id == second["CommandId"], "in start order"
        codes = {(e.instance_id, e.command_id): e.exit_code for e in log}
        assert codes[(fleet[0], second["CommandId"])] == 3
        assert codes[(fleet[1], first["CommandId"])] == 0
        for entry in log:
            assert entry.ended is not None and entry.ended >= entry.started
            assert entry.pid > 0 and not entry.running
            assert dt.datetime.fromisoformat(entry.ended_at or "") >= dt.datetime.fromisoformat(
                entry.started_at
            )
        slept = next(e for e in log if e.command_id == first["CommandId"])
        assert slept.ended is not None and slept.ended - slept.started >= 0.3

    def test_a_running_script_has_no_end_yet_and_a_cancelled_one_ends_killed(
        self, emu, run, ssm, wait_for, unique_tag
    ):
        fleet = emu.add_instances(1, tags=unique_tag)
        command_id = run.send(["sleep 30"], fleet)
        (entry,) = wait_for(emu.control.execution_log, what="the script to start")
        assert entry.running and entry.ended is None and entry.exit_code is None
        ssm.cancel_command(CommandId=command_id)
        run.wait(command_id, timeout=10)
        (entry,) = emu.control.execution_log()
        assert entry.exit_code == 137, "SIGKILL, as a shell reports it"

    def test_reset_empties_it(self, emu, run, unique_tag):
        run.run(["true"], emu.add_instances(1, tags=unique_tag))
        assert emu.control.execution_log()
        emu.control.reset()
        assert emu.control.execution_log() == []


class TestOverlaps:
    def test_two_commands_at_once_on_one_host_are_found(self, emu, run, wait_for, unique_tag):
        fleet = emu.add_instances(2, tags=unique_tag)
        first = run.send(["sleep 1"], fleet)
        second = run.send(["sleep 1"], fleet[:1])
        run.wait(first), run.wait(second)
        ((a, b),) = emu.control.overlapping_executions()
        assert (a.instance_id, b.instance_id) == (fleet[0], fleet[0])
        assert {a.command_id, b.command_id} == {first, second}

    def test_one_after_the_other_is_no_overlap(self, emu, run, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        run.run(["true"], fleet)
        run.run(["true"], fleet)
        assert len(emu.control.execution_log()) == 2
        assert emu.control.overlapping_executions() == []

    def test_the_rule_on_times(self):
        runs = [
            execution("i-a", 0, 10),
            execution("i-a", 10, 20),  # starts as the first ends: not at once
            execution("i-a", 15, None),  # still running, started before the second ended
            execution("i-b", 0, 30),  # another host
        ]
        assert find_overlaps(runs) == [(runs[1], runs[2])]
        assert find_overlaps([execution("i-a", 5, None), execution("i-a", 100, 101)]) == [
            (execution("i-a", 5, None), execution("i-a", 100, 101))
        ]
