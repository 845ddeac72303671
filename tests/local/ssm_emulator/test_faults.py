"""Injected throttling and server errors, and the per-action counters."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from ssm_emulator import EmulatorControlError


def call_outcomes(call, times: int) -> list[str]:
    outcomes = []
    for _ in range(times):
        try:
            call()
            outcomes.append("ok")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])
    return outcomes


class TestThrottle:
    def test_count_throttles_the_next_calls_like_aws(self, emu, ssm_no_retry):
        emu.control.throttle("ListCommandInvocations", count=2)
        with pytest.raises(ClientError) as excinfo:
            ssm_no_retry.list_command_invocations()
        error = excinfo.value.response
        assert error["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
        outcomes = call_outcomes(ssm_no_retry.list_command_invocations, 2)
        assert outcomes == ["ThrottlingException", "ok"]
        assert emu.control.counters()["ListCommandInvocations"] == {
            "calls": 3,
            "accepted": 1,
            "throttled": 2,
            "server_errors": 0,
            "lost_answers": 0,
        }

    def test_rate_throttles_that_fraction_of_calls(self, emu, ssm_no_retry):
        emu.control.throttle("DescribeInstanceInformation", rate=0.5)
        outcomes = call_outcomes(ssm_no_retry.describe_instance_information, 10)
        assert outcomes.count("ThrottlingException") == 5
        assert emu.control.counters()["DescribeInstanceInformation"]["throttled"] == 5

    def test_throttling_is_only_for_the_named_action(self, emu, ssm_no_retry):
        emu.control.throttle("SendCommand", count=5)
        assert call_outcomes(ssm_no_retry.list_commands, 1) == ["ok"]

    def test_botocore_retries_ride_out_a_short_throttle(self, emu, client):
        ssm = client("ssm", retries={"mode": "standard", "max_attempts": 3})
        emu.control.throttle("ListCommands", count=1)
        ssm.list_commands()
        assert emu.control.counters()["ListCommands"]["throttled"] == 1
        assert emu.control.counters()["ListCommands"]["accepted"] == 1

    def test_query_protocol_services_are_throttled_too(self, emu, client):
        sns = client("sns", retries={"total_max_attempts": 1})
        emu.control.throttle("*", count=1)
        with pytest.raises(ClientError) as excinfo:
            sns.list_topics()
        assert excinfo.value.response["Error"]["Code"] == "Throttling"
        assert sns.list_topics()["Topics"]
        assert emu.control.counters()["ListTopics"]["throttled"] == 1

    def test_bad_arguments_are_refused(self, emu):
        with pytest.raises(EmulatorControlError):
            emu.control.throttle("ListCommands")
        with pytest.raises(EmulatorControlError):
            emu.control.throttle("ListCommands", rate=2)


class TestServerError:
    def test_server_error_answers_500_then_recovers(self, emu, ssm_no_retry):
        emu.control.server_error("GetCommandInvocation", count=1)
        with pytest.raises(ClientError) as excinfo:
            ssm_no_retry.get_command_invocation(CommandId="0" * 36, InstanceId=emu.instance_ids[0])
        assert excinfo.value.response["Error"]["Code"] == "InternalServerError"
        assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        with pytest.raises(ClientError) as excinfo:
            ssm_no_retry.get_command_invocation(CommandId="0" * 36, InstanceId=emu.instance_ids[0])
        assert excinfo.value.response["Error"]["Code"] == "InvocationDoesNotExist"
        assert emu.control.counters()["GetCommandInvocation"]["server_errors"] == 1

    def test_service_unavailable(self, emu, ssm_no_retry):
        emu.control.server_error("ListCommands", count=2, status=503)
        assert call_outcomes(ssm_no_retry.list_commands, 3) == [
            "ServiceUnavailable",
            "ServiceUnavailable",
            "ok",
        ]


class TestCountersAndReset:
    def test_counters_count_every_service_by_action(self, emu, ssm, client):
        ssm.list_commands()
        ssm.list_commands()
        client("sns").list_topics()
        client("ec2").describe_instances()
        counters = emu.control.counters()
        assert counters["ListCommands"]["accepted"] == 2
        assert counters["ListTopics"]["calls"] == 1
        assert counters["DescribeInstances"]["calls"] == 1

    def test_emulator_calls_of_its_own_are_not_counted(self, emu, unique_tag):
        emu.add_instances(1, tags=unique_tag)
        assert "RunInstances" not in emu.control.counters()

    def test_reset_clears_faults_and_counters(self, emu, ssm_no_retry):
        emu.control.throttle("ListCommands", count=10)
        emu.control.set_offline(emu.instance_ids[:1])
        emu.control.consistency_delay(30)
        call_outcomes(ssm_no_retry.list_commands, 1)
        emu.control.reset()
        assert emu.control.counters() == {}
        assert call_outcomes(ssm_no_retry.list_commands, 1) == ["ok"]
        faults = emu.control.faults()
        assert (faults["offline"], faults["throttle"], faults["consistency_delay"]) == ([], {}, 0.0)

    def test_reset_clears_lost_answers_required_tag_and_executions(self, emu, run, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        run.run(["true"], fleet)
        emu.control.lost_answer("SendCommand", count=5, mode="drop")
        emu.control.require_tag("Team", "batch")
        assert emu.control.executions()[fleet[0]] == 1
        emu.control.reset()
        faults = emu.control.faults()
        assert (faults["lost_answer"], faults["require_tag"]) == ({}, None)
        assert fleet[0] not in emu.control.executions()
        command, _ = run.run(["true"], fleet)
        assert command["Status"] == "Success"
