"""How invocations move: timeouts, offline instances, MaxConcurrency, MaxErrors and cancel."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

PID_SCRIPT = ["echo $$ > pid", "sleep 60"]


def read_pid(emu, instance_id: str, wait_for) -> int:
    pid_file = emu.state_dir / "instances" / instance_id / "pid"
    return int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what=f"{pid_file}"))


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


class TestExecutionTimeout:
    def test_script_over_execution_timeout_is_killed_and_timed_out(self, emu, run, wait_for, pid_alive):
        instance = emu.instance_ids[0]
        (emu.state_dir / "instances" / instance / "pid").unlink(missing_ok=True)
        command_id = run.send(PID_SCRIPT, [instance], parameters={"executionTimeout": ["1"]})
        pid = read_pid(emu, instance, wait_for)
        command = run.wait(command_id, timeout=10)
        result = run.result(command_id, instance)
        assert (result["Status"], result["StatusDetails"], result["ResponseCode"]) == (
            "TimedOut",
            "Execution Timed Out",
            137,
        )
        assert "timed out" in result["StandardErrorContent"]
        assert (command["Status"], command["StatusDetails"], command["ErrorCount"]) == (
            "TimedOut",
            "Execution Timed Out",
            1,
        )
        assert not pid_alive(pid)


class TestOfflineInstances:
    def test_offline_instance_stays_pending_then_delivery_times_out(self, emu, ssm, run):
        instance = emu.instance_ids[1]
        emu.control.time_scale(0.03)  # TimeoutSeconds=30 lasts 0.9 s
        emu.control.set_offline([instance])
        info = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance]}])
        assert info["InstanceInformationList"][0]["PingStatus"] == "ConnectionLost"
        command_id = run.send(["true"], [instance], TimeoutSeconds=30)
        pending = run.result(command_id, instance)
        assert (pending["Status"], pending["StatusDetails"], pending["ResponseCode"]) == (
            "Pending",
            "Pending",
            -1,
        )
        command = run.wait(command_id, timeout=10)
        result = run.result(command_id, instance)
        assert (result["Status"], result["StatusDetails"], result["ResponseCode"]) == (
            "TimedOut",
            "Delivery Timed Out",
            -1,
        )
        assert (command["Status"], command["StatusDetails"]) == ("TimedOut", "Delivery Timed Out")
        assert (command["DeliveryTimedOutCount"], command["ErrorCount"], command["CompletedCount"]) == (
            1,
            0,
            1,
        )

    def test_instance_back_online_before_the_timeout_runs_the_command(self, emu, run):
        instance = emu.instance_ids[2]
        emu.control.time_scale(0.2)  # TimeoutSeconds=30 lasts 6 s
        emu.control.set_offline([instance])
        command_id = run.send(["echo delivered"], [instance], TimeoutSeconds=30)
        time.sleep(0.4)
        assert run.result(command_id, instance)["Status"] == "Pending"
        emu.control.set_offline([instance], offline=False)
        assert run.wait(command_id)["Status"] == "Success"
        assert run.result(command_id, instance)["StandardOutputContent"] == "delivered\n"


class TestMaxConcurrency:
    @pytest.mark.parametrize("max_concurrency", ["2", "50%"])
    def test_no_more_than_max_concurrency_invocations_run_at_once(
        self, emu, run, unique_tag, max_concurrency
    ):
        fleet = emu.add_instances(4, tags=unique_tag)
        script = ["echo start $(date +%s.%N)", "sleep 0.4", "echo end $(date +%s.%N)"]
        command, results = run.run(script, fleet, MaxConcurrency=max_concurrency)
        assert command["Status"] == "Success"
        intervals = []
        for result in results.values():
            start, end = (float(line.split()[1]) for line in result["StandardOutputContent"].splitlines())
            intervals.append((start, end))
        assert max_overlap(intervals) == 2

    def test_waiting_invocations_stay_pending(self, emu, run, unique_tag, wait_for):
        fleet = emu.add_instances(3, tags=unique_tag)
        command_id = run.send(["sleep 0.5"], fleet, MaxConcurrency="1")

        def statuses() -> list[str] | None:
            found = sorted(i["Status"] for i in run.invocations(command_id, details=False).values())
            return found if "InProgress" in found else None

        assert wait_for(statuses, what="one invocation in progress") == ["InProgress", "Pending", "Pending"]
        run.wait(command_id)


class TestMaxErrors:
    def test_errors_over_max_errors_terminate_the_invocations_not_started(self, emu, run, unique_tag):
        fleet = emu.add_instances(4, tags=unique_tag)
        command, results = run.run(["exit 1"], fleet, MaxConcurrency="1", MaxErrors="1")
        by_status = sorted((r["Status"], r["StatusDetails"], r["ResponseCode"]) for r in results.values())
        assert by_status == [
            ("Cancelled", "Terminated", -1),
            ("Cancelled", "Terminated", -1),
            ("Failed", "Failed", 1),
            ("Failed", "Failed", 1),
        ]
        assert (command["Status"], command["StatusDetails"]) == ("Failed", "Failed")
        assert (command["ErrorCount"], command["CompletedCount"], command["TargetCount"]) == (2, 4, 4)

    def test_errors_within_max_errors_make_an_incomplete_command(self, emu, run, unique_tag):
        fleet = emu.add_instances(3, tags=unique_tag)
        script = f'[ "$AWS_SSM_INSTANCE_ID" != "{fleet[0]}" ]'
        command, _ = run.run([script], fleet, MaxErrors="1")
        assert (command["Status"], command["StatusDetails"], command["ErrorCount"]) == (
            "Failed",
            "Incomplete",
            1,
        )


class TestCancel:
    def test_cancel_kills_the_process_group(self, emu, ssm, run, wait_for, pid_alive):
        instance = emu.instance_ids[0]
        (emu.state_dir / "instances" / instance / "pid").unlink(missing_ok=True)
        script = ["sleep 60 &", "echo $! > child", *PID_SCRIPT]
        command_id = run.send(script, [instance])
        pid = read_pid(emu, instance, wait_for)
        child = int((emu.state_dir / "instances" / instance / "child").read_text())
        ssm.cancel_command(CommandId=command_id)
        command = run.wait(command_id, timeout=10)
        result = run.result(command_id, instance)
        assert (result["Status"], result["StatusDetails"], result["ResponseCode"]) == (
            "Cancelled",
            "Cancelled",
            137,
        )
        assert (command["Status"], command["StatusDetails"]) == ("Cancelled", "Cancelled")
        assert not pid_alive(pid) and not pid_alive(child)

    def test_cancel_ends_pending_invocations_at_once(self, emu, ssm, run, unique_tag, wait_for):
        fleet = emu.add_instances(3, tags=unique_tag)
        command_id = run.send(["sleep 30"], fleet, MaxConcurrency="1")
        wait_for(lambda: "InProgress" in {i["Status"] for i in run.invocations(command_id).values()})
        ssm.cancel_command(CommandId=command_id)
        statuses = sorted(i["Status"] for i in run.invocations(command_id).values())
        assert statuses in (["Cancelled", "Cancelled", "Cancelling"], ["Cancelled", "Cancelled", "Cancelled"])
        run.wait(command_id, timeout=10)
        codes = sorted(run.result(command_id, iid)["ResponseCode"] for iid in fleet)
        assert codes == [-1, -1, 137]

    def test_cancel_some_instances_only(self, emu, ssm, run, unique_tag, wait_for):
        fleet = emu.add_instances(2, tags=unique_tag)
        command_id = run.send(
            ['if [ "$AWS_SSM_INSTANCE_ID" = "' + fleet[0] + '" ]; then sleep 30; fi'], fleet
        )
        wait_for(lambda: run.result(command_id, fleet[1])["Status"] == "Success")
        ssm.cancel_command(CommandId=command_id, InstanceIds=[fleet[0]])
        run.wait(command_id, timeout=10)
        assert [run.result(command_id, iid)["Status"] for iid in fleet] == ["Cancelled", "Success"]

    def test_cancel_unknown_command_is_invalid(self, emu, ssm_no_retry):
        with pytest.raises(ClientError) as excinfo:
            ssm_no_retry.cancel_command(CommandId="00000000-0000-0000-0000-000000000000")
        assert excinfo.value.response["Error"]["Code"] == "InvalidCommandId"


class TestScriptFaults:
    def test_force_exit_overrides_the_exit_code(self, emu, run):
        emu.control.force_exit(emu.instance_ids[0], 9)
        _, results = run.run(["echo fine", "exit 0"], emu.instance_ids[:2])
        assert results[emu.instance_ids[0]]["ResponseCode"] == 9
        assert results[emu.instance_ids[0]]["StandardOutputContent"] == "fine\n"
        assert results[emu.instance_ids[1]]["ResponseCode"] == 0

    def test_extra_duration_delays_the_script(self, emu, run):
        emu.control.extra_duration(emu.instance_ids[0], 1.0)
        started = time.monotonic()
        _, results = run.run(["true"], emu.instance_ids[:1])
        assert time.monotonic() - started >= 1.0
        assert results[emu.instance_ids[0]]["Status"] == "Success"


class TestConsistencyDelay:
    def test_new_invocations_are_invisible_for_the_delay(self, emu, ssm, ssm_no_retry, run, wait_for):
        emu.control.consistency_delay(1.0)
        command_id = run.send(["echo hi"], emu.instance_ids[:1])
        assert ssm.list_command_invocations(CommandId=command_id)["CommandInvocations"] == []
        with pytest.raises(ClientError) as excinfo:
            ssm_no_retry.get_command_invocation(CommandId=command_id, InstanceId=emu.instance_ids[0])
        assert excinfo.value.response["Error"]["Code"] == "InvocationDoesNotExist"
        listed = wait_for(lambda: ssm.list_command_invocations(CommandId=command_id)["CommandInvocations"])
        assert [i["InstanceId"] for i in listed] == emu.instance_ids[:1]

    def test_waiter_rides_out_the_delay(self, emu, ssm, run):
        emu.control.consistency_delay(1.0)
        command_id = run.send(["true"], emu.instance_ids[:1])
        ssm.get_waiter("command_executed").wait(
            CommandId=command_id, InstanceId=emu.instance_ids[0], WaiterConfig={"Delay": 1, "MaxAttempts": 10}
        )
