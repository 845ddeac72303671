"""Run Command through boto3 over HTTP: what SendCommand runs, and what the read APIs report."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from botocore.exceptions import ClientError


def error_code(excinfo: pytest.ExceptionInfo[ClientError]) -> str:
    return excinfo.value.response["Error"]["Code"]


class TestSuccessAndFailure:
    def test_exit_zero_is_success_with_its_output(self, emu, run):
        command, results = run.run(["echo hello", "echo careful >&2"], emu.instance_ids[:1])
        result = results[emu.instance_ids[0]]
        assert (command["Status"], command["StatusDetails"]) == ("Success", "Success")
        assert (result["Status"], result["StatusDetails"], result["ResponseCode"]) == (
            "Success",
            "Success",
            0,
        )
        assert result["StandardOutputContent"] == "hello\n"
        assert result["StandardErrorContent"] == "careful\n"
        assert result["ExecutionElapsedTime"].startswith("PT")

    def test_waiter_command_executed_returns_once_the_script_succeeded(self, emu, ssm, run):
        command_id = run.send(["sleep 0.3", "echo done"], emu.instance_ids[:1])
        ssm.get_waiter("command_executed").wait(
            CommandId=command_id, InstanceId=emu.instance_ids[0], WaiterConfig={"Delay": 1, "MaxAttempts": 10}
        )
        assert run.result(command_id, emu.instance_ids[0])["StandardOutputContent"] == "done\n"

    def test_non_zero_exit_is_failed_with_code_and_stderr(self, emu, run):
        command, results = run.run(["echo partial", "echo 'disk full' >&2", "exit 7"], emu.instance_ids[:1])
        result = results[emu.instance_ids[0]]
        assert (result["Status"], result["StatusDetails"], result["ResponseCode"]) == ("Failed", "Failed", 7)
        assert result["StandardOutputContent"] == "partial\n"
        assert "disk full" in result["StandardErrorContent"]
        assert "exit status 7" in result["StandardErrorContent"]
        assert (command["Status"], command["StatusDetails"], command["ErrorCount"]) == ("Failed", "Failed", 1)

    def test_each_instance_reports_its_own_outcome(self, emu, run):
        failing = emu.instance_ids[1]
        script = f'if [ "$AWS_SSM_INSTANCE_ID" = "{failing}" ]; then exit 4; fi'
        command, results = run.run([script], emu.instance_ids)
        assert {iid: r["ResponseCode"] for iid, r in results.items()} == {
            iid: 4 if iid == failing else 0 for iid in emu.instance_ids
        }
        assert (command["TargetCount"], command["CompletedCount"], command["ErrorCount"]) == (3, 3, 1)


class TestScriptEnvironment:
    def test_script_sees_its_instance_id_and_region(self, emu, run):
        _, results = run.run(
            ['echo "$AWS_SSM_INSTANCE_ID $INSTANCE_ID $AWS_SSM_REGION_NAME"'], emu.instance_ids
        )
        for instance_id, result in results.items():
            assert result["StandardOutputContent"] == f"{instance_id} {instance_id} us-east-1\n"

    def test_each_instance_runs_in_its_own_directory(self, emu, run):
        _, results = run.run(["pwd", "echo kept > marker.txt"], emu.instance_ids)
        for instance_id, result in results.items():
            directory = emu.state_dir / "instances" / instance_id
            assert result["StandardOutputContent"].strip() == str(directory)
            assert (directory / "marker.txt").read_text() == "kept\n"

    def test_working_directory_parameter_sets_the_cwd(self, emu, run, tmp_path):
        _, results = run.run(["pwd"], emu.instance_ids[:1], parameters={"workingDirectory": [str(tmp_path)]})
        assert results[emu.instance_ids[0]]["StandardOutputContent"].strip() == str(tmp_path)

    def test_missing_working_directory_fails_the_invocation(self, emu, run, tmp_path):
        missing = str(tmp_path / "absent")
        _, results = run.run(["pwd"], emu.instance_ids[:1], parameters={"workingDirectory": [missing]})
        result = results[emu.instance_ids[0]]
        assert (result["Status"], result["ResponseCode"]) == ("Failed", 1)
        assert missing in result["StandardErrorContent"]


class TestTargets:
    def test_tag_targets_resolve_only_matching_instances(self, emu, ssm, run, unique_tag):
        matching = emu.add_instances(2, tags=unique_tag)
        emu.add_instances(1, tags={"Fleet": unique_tag["Fleet"] + "-other"})
        answer = ssm.send_command(
            DocumentName="AWS-RunShellScript",
            Targets=[{"Key": "tag:Fleet", "Values": [unique_tag["Fleet"]]}],
            Parameters={"commands": ["true"]},
        )["Command"]
        assert answer["InstanceIds"] == []
        assert answer["Targets"] == [{"Key": "tag:Fleet", "Values": [unique_tag["Fleet"]]}]
        command = run.wait(answer["CommandId"])
        assert sorted(run.invocations(answer["CommandId"])) == sorted(matching)
        assert command["TargetCount"] == 2 and command["InstanceIds"] == []

    def test_tag_targets_are_anded(self, emu, run, unique_tag):
        fleet = unique_tag["Fleet"]
        wanted = emu.add_instances(1, tags={"Fleet": fleet, "Env": "dev"})
        emu.add_instances(1, tags={"Fleet": fleet, "Env": "prod"})
        targets = [{"Key": "tag:Fleet", "Values": [fleet]}, {"Key": "tag:Env", "Values": ["dev"]}]
        command_id = run.send(["true"], Targets=targets)
        run.wait(command_id)
        assert list(run.invocations(command_id)) == wanted

    def test_instance_ids_target_only_those_instances(self, emu, run):
        # moto adds every EC2 instance of the region to InstanceIds; the emulator must not.
        command, _ = run.run(["true"], emu.instance_ids[:1])
        assert list(run.invocations(command["CommandId"])) == emu.instance_ids[:1]
        assert command["InstanceIds"] == emu.instance_ids[:1] and command["TargetCount"] == 1

    def test_instance_ids_key_in_targets(self, emu, run):
        targets = [{"Key": "InstanceIds", "Values": emu.instance_ids[1:]}]
        command_id = run.send(["true"], Targets=targets)
        assert run.wait(command_id)["InstanceIds"] == []
        assert sorted(run.invocations(command_id)) == sorted(emu.instance_ids[1:])

    def test_ec2_instance_without_agent_is_an_invalid_instance(self, emu, ssm_no_retry, ec2):
        bare = ec2.run_instances(ImageId="ami-04681a1dbd79675a5", MinCount=1, MaxCount=1)["Instances"][0]
        with pytest.raises(ClientError) as excinfo:
            ssm_no_retry.send_command(
                InstanceIds=[bare["InstanceId"]],
                DocumentName="AWS-RunShellScript",
                Parameters={"commands": ["true"]},
            )
        assert error_code(excinfo) == "InvalidInstanceId"

    def test_tag_without_instances_makes_an_empty_failed_command(self, emu, run):
        command_id = run.send(
            ["true"], Targets=[{"Key": "tag:Fleet", "Values": [f"none-{uuid.uuid4().hex}"]}]
        )
        command = run.command(command_id)
        assert (command["Status"], command["StatusDetails"], command["TargetCount"]) == (
            "Failed",
            "No Instances In Tag",
            0,
        )
        assert run.invocations(command_id) == {}


class TestReads:
    def test_unknown_invocation_does_not_exist(self, emu, ssm_no_retry, run):
        command_id = run.send(["true"], emu.instance_ids[:1])
        for command, instance in (
            (str(uuid.uuid4()), emu.instance_ids[0]),
            (command_id, emu.instance_ids[2]),
        ):
            with pytest.raises(ClientError) as excinfo:
                ssm_no_retry.get_command_invocation(CommandId=command, InstanceId=instance)
            assert error_code(excinfo) == "InvocationDoesNotExist"

    def test_malformed_command_id_is_invalid(self, emu, ssm_raw):
        with pytest.raises(ClientError) as excinfo:
            ssm_raw.list_command_invocations(CommandId="nope")
        assert error_code(excinfo) == "InvalidCommandId"

    def test_unknown_plugin_name_is_invalid(self, emu, ssm_no_retry, run):
        command, _ = run.run(["true"], emu.instance_ids[:1])
        with pytest.raises(ClientError) as excinfo:
            ssm_no_retry.get_command_invocation(
                CommandId=command["CommandId"],
                InstanceId=emu.instance_ids[0],
                PluginName="aws:runPowerShellScript",
            )
        assert error_code(excinfo) == "InvalidPluginName"
        same = run.ssm.get_command_invocation(
            CommandId=command["CommandId"], InstanceId=emu.instance_ids[0], PluginName="aws:runShellScript"
        )
        assert same["Status"] == "Success"

    def test_list_commands_pages_newest_first_and_filters(self, emu, ssm, run):
        ids = [run.send(["true"], emu.instance_ids[:1], Comment=f"page {n}") for n in range(3)]
        failed = run.send(["false"], emu.instance_ids[:1])
        for command_id in [*ids, failed]:
            run.wait(command_id)
        page = ssm.list_commands(MaxResults=2)
        assert [c["CommandId"] for c in page["Commands"]] == [failed, ids[2]]
        following = ssm.list_commands(MaxResults=2, NextToken=page["NextToken"])
        assert [c["CommandId"] for c in following["Commands"]] == ids[1::-1]
        failures = ssm.list_commands(Filters=[{"key": "Status", "value": "Failed"}])["Commands"]
        assert failed in [c["CommandId"] for c in failures] and ids[0] not in [
            c["CommandId"] for c in failures
        ]
        later = ssm.list_commands(Filters=[{"key": "InvokedAfter", "value": _iso(run.command(failed))}])
        assert [c["CommandId"] for c in later["Commands"]] == [failed]

    def test_list_command_invocations_filters_by_status(self, emu, ssm, run):
        script = f'[ "$AWS_SSM_INSTANCE_ID" != "{emu.instance_ids[0]}" ]'
        command, _ = run.run([script], emu.instance_ids)
        failed = ssm.list_command_invocations(
            CommandId=command["CommandId"], Filters=[{"key": "Status", "value": "Failed"}]
        )["CommandInvocations"]
        assert [i["InstanceId"] for i in failed] == emu.instance_ids[:1]

    def test_list_command_invocations_by_instance(self, emu, ssm, run):
        command, _ = run.run(["true"], emu.instance_ids)
        listed = ssm.list_command_invocations(CommandId=command["CommandId"], InstanceId=emu.instance_ids[2])
        assert [i["InstanceId"] for i in listed["CommandInvocations"]] == emu.instance_ids[2:]


def _iso(command: dict) -> str:
    return command["RequestedDateTime"].astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
