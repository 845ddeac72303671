import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from ssm_fleet.hooks.ssm import SendOutcome, SsmFleetHook, aws_time, is_transient, send_outcome


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


class TestSendOutcome:
    """What a failed SendCommand says about what AWS did: refused, lost, or denied."""

    @pytest.mark.parametrize(
        "error",
        [
            client_error("ThrottlingException"),
            EndpointConnectionError(endpoint_url="http://localhost:1"),
            ConnectTimeoutError(endpoint_url="http://localhost:1"),
        ],
    )
    def test_nothing_ran(self, error):
        assert send_outcome(error) is SendOutcome.NOT_SENT

    @pytest.mark.parametrize(
        "error",
        [
            client_error("InternalServerError", 500),
            client_error("ServiceUnavailable", 503),
            ReadTimeoutError(endpoint_url="http://localhost:1"),
            ConnectionClosedError(endpoint_url="http://localhost:1"),
        ],
    )
    def test_aws_may_have_acted(self, error):
        assert send_outcome(error) is SendOutcome.AMBIGUOUS

    @pytest.mark.parametrize("code", ["AccessDeniedException", "InvalidInstanceId", "InvalidDocument"])
    def test_denied_for_good(self, code):
        assert send_outcome(client_error(code)) is SendOutcome.REFUSED


class TestAwsTime:
    def test_any_zone_is_written_in_utc(self):
        paris = datetime(2026, 11, 27, 3, 30, tzinfo=timezone(timedelta(hours=1)))
        assert aws_time(paris) == "2026-11-27T02:30:00Z"
        assert aws_time(datetime(2026, 11, 27, 2, 30)) == "2026-11-27T02:30:00Z", "naive means UTC"
        assert aws_time(datetime(2026, 11, 27, 2, 30, tzinfo=UTC)) == "2026-11-27T02:30:00Z"

    def test_pendulum_zones_too(self):
        import pendulum

        assert (
            aws_time(pendulum.datetime(2026, 11, 26, 21, 30, tz="America/New_York")) == "2026-11-27T02:30:00Z"
        )


@pytest.mark.matrix
class TestSendClient:
    def test_sendcommand_is_never_retried_by_botocore(self, hook, aws):
        aws.control.server_error("SendCommand", count=1)
        with pytest.raises(ClientError):
            hook.send_command_once(
                DocumentName="AWS-RunShellScript",
                InstanceIds=aws.instance_ids[:1],
                Parameters={"commands": ["true"]},
            )
        assert aws.control.counters()["SendCommand"]["calls"] == 1

    def test_reads_keep_their_retries(self, hook, aws):
        aws.control.server_error("ListCommands", count=2)
        # A minute ahead: a command another test sent within this second must not be listed.
        assert hook.list_commands_since(datetime.now(UTC) + timedelta(minutes=1)) == []
        assert aws.control.counters()["ListCommands"]["server_errors"] == 2


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


@pytest.mark.matrix
class TestAsync:
    """The trigger's reads, on the provider's ``get_async_conn()`` (aiobotocore) over real HTTP."""

    @staticmethod
    def run(hook, use):
        async def main():
            async with await hook.get_async_conn() as client:
                return await use(client)

        return asyncio.run(main())

    def test_list_invocations_reads_every_page(self, hook, fleet, aws):
        command_id = hook.send_command_once(
            DocumentName="AWS-RunShellScript",
            Targets=[{"Key": "tag:Role", "Values": ["hooktest"]}],
            Parameters={"commands": ["true"]},
        )["CommandId"]
        items = self.run(hook, lambda c: SsmFleetHook.list_invocations_async(c, command_id))
        assert sorted(i["InstanceId"] for i in items) == sorted(fleet)
        assert aws.control.counters()["ListCommandInvocations"]["calls"] == 2, "60 instances are 2 pages"

    def test_cancel_running_skips_finished_commands(self, hook, aws):
        send = {"DocumentName": "AWS-RunShellScript", "InstanceIds": aws.instance_ids[:1]}
        done = hook.send_command_once(**send, Parameters={"commands": ["true"]})["CommandId"]
        deadline = time.monotonic() + 20
        while hook.get_commands([done])[0]["Status"] != "Success" and time.monotonic() < deadline:
            time.sleep(0.2)
        slow = hook.send_command_once(**send, Parameters={"commands": ["sleep 60"]})["CommandId"]
        assert self.run(hook, lambda c: SsmFleetHook.cancel_running_async(c, [done, slow])) == [slow]

    def test_aiobotocore_throttling_is_transient(self, aws):
        hook = SsmFleetHook(aws_conn_id="aws_default", config={"retries": {"total_max_attempts": 1}})
        aws.control.throttle("ListCommands", count=1)
        with pytest.raises(ClientError) as error:
            self.run(
                hook, lambda c: SsmFleetHook.get_commands_async(c, ["12345678-1234-1234-1234-123456789012"])
            )
        assert is_transient(error.value)


def test_a_command_ssm_does_not_list_yet_is_left_out_not_a_crash(hook, aws):
    assert hook.get_commands(["00000000-0000-0000-0000-000000000000"]) == []


def test_a_dropped_connection_is_transient():
    from botocore.exceptions import ConnectionClosedError

    assert is_transient(ConnectionClosedError(endpoint_url="http://127.0.0.1:1"))
