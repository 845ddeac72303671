"""Lost answers: the call takes effect, then the client gets a 500 or a dropped connection."""

from __future__ import annotations

import logging

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError

from ssm_emulator import EmulatorControlError


def send_to(ssm, instance_ids: list[str]) -> dict:
    return ssm.send_command(
        InstanceIds=instance_ids, DocumentName="AWS-RunShellScript", Parameters={"commands": ["echo ran"]}
    )


def commands_on(ssm, instance_id: str) -> list[dict]:
    return ssm.list_commands(InstanceId=instance_id)["Commands"]


class TestLostAnswerWith500:
    def test_send_command_runs_once_although_the_answer_is_a_500(self, emu, ssm_no_retry, run, unique_tag):
        fleet = emu.add_instances(2, tags=unique_tag)
        emu.control.lost_answer("SendCommand")
        with pytest.raises(ClientError) as excinfo:
            send_to(ssm_no_retry, fleet)
        error = excinfo.value.response
        assert error["Error"]["Code"] == "InternalServerError"
        assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
        [command] = commands_on(ssm_no_retry, fleet[0])
        assert run.wait(command["CommandId"])["Status"] == "Success"
        assert {iid: emu.control.executions().get(iid) for iid in fleet} == {iid: 1 for iid in fleet}

    def test_only_the_next_count_calls_lose_their_answer(self, emu, ssm_no_retry, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        emu.control.lost_answer("SendCommand", count=1)
        with pytest.raises(ClientError):
            send_to(ssm_no_retry, fleet)
        assert send_to(ssm_no_retry, fleet)["Command"]["CommandId"]
        assert len(commands_on(ssm_no_retry, fleet[0])) == 2
        assert emu.control.counters()["SendCommand"] == {
            "calls": 2,
            "accepted": 2,
            "throttled": 0,
            "server_errors": 0,
            "lost_answers": 1,
        }

    def test_query_protocol_answers_its_own_500_shape(self, emu, client):
        sns = client("sns", retries={"total_max_attempts": 1})
        emu.control.lost_answer("CreateTopic")
        with pytest.raises(ClientError) as excinfo:
            sns.create_topic(Name="lost-answer-topic")
        assert excinfo.value.response["Error"]["Code"] == "InternalFailure"
        topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
        assert any(arn.endswith(":lost-answer-topic") for arn in topics)

    def test_ec2_answers_its_own_500_shape(self, emu, client, unique_tag):
        ec2 = client("ec2", retries={"total_max_attempts": 1})
        instance_id = emu.add_instances(1, tags=unique_tag)[0]
        emu.control.lost_answer("CreateTags")
        with pytest.raises(ClientError) as excinfo:
            ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "Lost", "Value": "yes"}])
        assert excinfo.value.response["Error"]["Code"] == "InternalError"
        tags = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [instance_id]}])["Tags"]
        assert {"Key": "Lost", "Value": "yes"} in [{"Key": t["Key"], "Value": t["Value"]} for t in tags]


class TestDroppedConnection:
    def test_send_command_runs_once_and_the_client_sees_the_connection_closed(
        self, emu, ssm_no_retry, run, unique_tag
    ):
        fleet = emu.add_instances(2, tags=unique_tag)
        emu.control.lost_answer("SendCommand", mode="drop")
        with pytest.raises(ConnectionClosedError):
            send_to(ssm_no_retry, fleet)
        [command] = commands_on(ssm_no_retry, fleet[0])
        assert run.wait(command["CommandId"])["Status"] == "Success"
        assert {iid: emu.control.executions().get(iid) for iid in fleet} == {iid: 1 for iid in fleet}
        assert emu.control.counters()["SendCommand"]["lost_answers"] == 1

    def test_server_keeps_serving_quietly_after_drops(self, emu, ssm_no_retry, capfd, caplog):
        emu.control.lost_answer("ListCommands", count=3, mode="drop")
        with caplog.at_level(logging.DEBUG, logger="werkzeug"):
            for _ in range(3):
                with pytest.raises(ConnectionClosedError):
                    ssm_no_retry.list_commands()
            assert "Commands" in ssm_no_retry.list_commands()
        assert emu.control.health()
        assert "Traceback" not in capfd.readouterr().err
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert emu.control.counters()["ListCommands"] == {
            "calls": 4,
            "accepted": 4,
            "throttled": 0,
            "server_errors": 0,
            "lost_answers": 3,
        }


class TestLostAnswerKnob:
    def test_rules_for_one_action_queue_up_in_order(self, emu, ssm_no_retry, unique_tag):
        fleet = emu.add_instances(1, tags=unique_tag)
        emu.control.lost_answer("SendCommand", mode="500")
        emu.control.lost_answer("SendCommand", mode="drop")
        with pytest.raises(ClientError):
            send_to(ssm_no_retry, fleet)
        with pytest.raises(ConnectionClosedError):
            send_to(ssm_no_retry, fleet)
        assert send_to(ssm_no_retry, fleet)["Command"]["CommandId"]
        assert len(commands_on(ssm_no_retry, fleet[0])) == 3
        assert emu.control.counters()["SendCommand"]["lost_answers"] == 2

    def test_faults_show_the_rule_until_reset(self, emu):
        emu.control.lost_answer("SendCommand", count=2, mode="drop")
        assert emu.control.faults()["lost_answer"] == {"SendCommand": {"remaining": 2, "mode": "drop"}}
        emu.control.reset()
        assert emu.control.faults()["lost_answer"] == {}

    @pytest.mark.parametrize(
        ("count", "mode"), [(1, "503"), (0, "500")], ids=["unknown mode", "count below 1"]
    )
    def test_bad_arguments_are_refused(self, emu, count, mode):
        with pytest.raises(EmulatorControlError):
            emu.control.lost_answer("SendCommand", count=count, mode=mode)

    def test_a_throttled_call_never_reaches_moto_so_it_loses_no_answer(self, emu, ssm_no_retry):
        emu.control.throttle("ListCommands", count=1)
        emu.control.lost_answer("ListCommands", count=1)
        outcomes = []
        for _ in range(2):
            with pytest.raises(ClientError) as excinfo:
                ssm_no_retry.list_commands()
            outcomes.append(excinfo.value.response["Error"]["Code"])
        assert outcomes == ["ThrottlingException", "InternalServerError"]
