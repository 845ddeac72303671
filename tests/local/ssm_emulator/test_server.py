"""The server object: bootstrap facts, more instances, several servers, and a clean stop."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.exceptions import ClientError

from ssm_emulator import EmulatorControl, EmulatorServer


class TestBootstrap:
    def test_instances_are_tagged_running_ec2_instances(self, emu, ec2):
        reservations = ec2.describe_instances(InstanceIds=emu.instance_ids)["Reservations"]
        instances = [i for r in reservations for i in r["Instances"]]
        assert sorted(i["InstanceId"] for i in instances) == sorted(emu.instance_ids)
        for instance in instances:
            assert {"Key": "Role", "Value": "cots"} in instance["Tags"]
            assert instance["State"]["Name"] == "running"

    def test_instances_are_ssm_managed_and_online(self, emu, ssm):
        listed = ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": emu.instance_ids}]
        )
        infos = listed["InstanceInformationList"]
        assert sorted(i["InstanceId"] for i in infos) == sorted(emu.instance_ids)
        assert {(i["PingStatus"], i["PlatformType"], i["ResourceType"]) for i in infos} == {
            ("Online", "Linux", "EC2Instance")
        }
        assert all(i["ComputerName"].endswith(".ec2.internal") for i in infos)

    def test_topic_delivers_the_sns_envelope_to_the_queue(self, emu, client, wait_for):
        sns, sqs = client("sns"), client("sqs")
        subject = f"Batch failure {uuid.uuid4().hex[:6]}"
        sns.publish(TopicArn=emu.topic_arn, Subject=subject, Message="instance i-1 failed")

        def our_message() -> dict | None:
            for message in sqs.receive_message(QueueUrl=emu.queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            ):
                body = json.loads(message["Body"])
                sqs.delete_message(QueueUrl=emu.queue_url, ReceiptHandle=message["ReceiptHandle"])
                if body.get("Subject") == subject:
                    return body
            return None

        envelope = wait_for(our_message, what="the SNS notification in SQS")
        assert envelope["Type"] == "Notification"
        assert envelope["TopicArn"] == emu.topic_arn
        assert envelope["Message"] == "instance i-1 failed"

    def test_facts(self, emu):
        assert emu.endpoint_url == f"http://127.0.0.1:{emu.port}"
        assert emu.topic_arn == "arn:aws:sns:us-east-1:123456789012:cots-batch-alerts"
        assert emu.queue_url.endswith("/123456789012/cots-batch-alerts")
        assert isinstance(emu.control, EmulatorControl)
        for instance_id in emu.instance_ids:
            assert (emu.state_dir / "instances" / instance_id).is_dir()

    def test_start_is_idempotent(self, emu):
        port, ids = emu.port, list(emu.instance_ids)
        assert emu.start() is emu
        assert (emu.port, emu.instance_ids) == (port, ids)


class TestAddInstances:
    def test_added_instances_are_managed_with_their_tags(self, emu, ssm, ec2, unique_tag):
        added = emu.add_instances(2, tags=unique_tag)
        assert len(added) == 2 and not set(added) & set(emu.instance_ids)
        tags = ec2.describe_instances(InstanceIds=added)["Reservations"][0]["Instances"][0]["Tags"]
        assert {"Key": "Fleet", "Value": unique_tag["Fleet"]} in tags
        infos = ssm.describe_instance_information(
            Filters=[{"Key": "tag:Fleet", "Values": [unique_tag["Fleet"]]}]
        )
        assert sorted(i["InstanceId"] for i in infos["InstanceInformationList"]) == sorted(added)

    def test_instances_can_start_offline(self, emu, ssm, unique_tag):
        added = emu.add_instances(1, tags=unique_tag, online=False)
        info = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": added}])
        assert info["InstanceInformationList"][0]["PingStatus"] == "ConnectionLost"

    def test_control_api_adds_instances_with_the_default_tags(self, emu, ec2):
        added = emu.control.add_instances(1)
        tags = ec2.describe_instances(InstanceIds=added)["Reservations"][0]["Instances"][0]["Tags"]
        assert {"Key": "Role", "Value": "cots"} in tags


class TestSeveralServersAndStop:
    def test_second_server_has_its_own_run_command_state_and_stops_cleanly(
        self, emu, ssm_no_retry, tmp_path, wait_for, pid_alive
    ):
        other = EmulatorServer(instances=1, tags={"Role": "second"}, state_dir=tmp_path).start()
        try:
            with pytest.raises(ClientError) as excinfo:
                ssm_no_retry.send_command(
                    InstanceIds=other.instance_ids,
                    DocumentName="AWS-RunShellScript",
                    Parameters={"commands": ["true"]},
                )
            assert excinfo.value.response["Error"]["Code"] == "InvalidInstanceId"
            other_ssm = boto3.client(
                "ssm",
                endpoint_url=other.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            other_ssm.send_command(
                InstanceIds=other.instance_ids,
                DocumentName="AWS-RunShellScript",
                Parameters={"commands": ["sleep 60 &", "echo $! > child", "echo $$ > pid", "sleep 60"]},
            )
            pid_file = tmp_path / "instances" / other.instance_ids[0] / "pid"
            pid = int(
                wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the pid file")
            )
            child = int((tmp_path / "instances" / other.instance_ids[0] / "child").read_text())
            assert pid_alive(pid) and pid_alive(child)
        finally:
            other.stop()
        assert not pid_alive(pid) and not pid_alive(child)
        assert not other.control.health()
        other.stop()  # idempotent
        assert tmp_path.is_dir(), "a state_dir given by the caller is kept"

    def test_temporary_state_dir_is_removed_at_stop(self):
        with EmulatorServer(instances=0) as server:
            state_dir = server.state_dir
            assert state_dir.is_dir() and server.instance_ids == []
        assert not state_dir.exists()


def test_busy_port_fails_to_start_and_leaves_no_state_dir(emu):
    server = EmulatorServer(port=emu.port, instances=0)
    with pytest.raises(OSError):
        server.start()
    assert not server.running
    assert not server.state_dir.exists()
