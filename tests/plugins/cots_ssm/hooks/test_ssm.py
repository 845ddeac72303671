import time

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from cots_ssm.hooks.ssm import SsmFleetHook, is_transient


@pytest.fixture
def hook(aws):
    return SsmFleetHook(aws_conn_id="aws_default")


@pytest.fixture(scope="module")
def fleet(emulator):
    return emulator.add_instances(60, tags={"Role": "hooktest"})


def client_error(code, status=400):
    return ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ListCommands"
    )


class TestTransient:
    @pytest.mark.parametrize(
        "error",
        [
            client_error("ThrottlingException"),
            client_error("InternalServerError", 500),
            client_error("Odd", 503),
            EndpointConnectionError(endpoint_url="http://localhost:1"),
        ],
    )
    def test_transient(self, error):
        assert is_transient(error)

    @pytest.mark.parametrize(
        "error", [client_error("InvalidInstanceId"), client_error("AccessDenied", 403), ValueError("x")]
    )
    def test_permanent(self, error):
        assert not is_transient(error)


class TestPaging:
    def test_describe_by_tag_reads_every_page(self, hook, fleet, accepted):
        found = hook.describe_instances(tags={"Role": ["hooktest"]})
        assert sorted(i["InstanceId"] for i in found) == sorted(fleet)
        assert accepted("DescribeInstanceInformation") >= 2

    def test_describe_by_ids_chunks_the_filter(self, hook, fleet):
        assert len(hook.describe_instances(instance_ids=fleet)) == 60

    def test_list_invocations_reads_every_page(self, hook, fleet):
        command = hook.send_command_once(
            DocumentName="AWS-RunShellScript",
            Targets=[{"Key": "tag:Role", "Values": ["hooktest"]}],
            Parameters={"commands": ["true"]},
        )
        deadline = time.monotonic() + 30
        while len(items := hook.list_invocations(command["CommandId"])) < 60 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sorted(i["InstanceId"] for i in items) == sorted(fleet)


class TestCancel:
    def test_cancel_running_skips_finished_commands(self, hook, aws):
        done = hook.send_command_once(
            DocumentName="AWS-RunShellScript",
            InstanceIds=aws.instance_ids[:1],
            Parameters={"commands": ["true"]},
        )["CommandId"]
        deadline = time.monotonic() + 20
        while hook.get_commands([done])[0]["Status"] != "Success" and time.monotonic() < deadline:
            time.sleep(0.2)
        slow = hook.send_command_once(
            DocumentName="AWS-RunShellScript",
            InstanceIds=aws.instance_ids[:1],
            Parameters={"commands": ["sleep 60"]},
        )["CommandId"]
        assert hook.cancel_running([done, slow]) == [slow]
