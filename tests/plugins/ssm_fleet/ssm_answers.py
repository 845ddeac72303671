"""SSM answers as the API gives them, and values read from them, shared by the pure-model tests."""

from datetime import UTC, datetime, timedelta

from ssm_fleet.invocations import CommandSummary, InvocationResult
from ssm_fleet.ledger import RunLedger
from ssm_fleet.status import Status
from ssm_fleet.verdict import FleetVerdict

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
IDS = [f"i-{n:017x}" for n in range(1, 4)]
DIGEST = "0123456789abcdef"


def comment(attempt=1, chunk=1, total=1):
    return f"cots_nightly_batch [af:{DIGEST} r{attempt} {chunk}/{total}]"


def api_invocation(
    instance_id, status="Success", details=None, code=0, command_id="cmd-1", output="", attempt=None, chunk=1
):
    item = {
        "CommandId": command_id,
        "InstanceId": instance_id,
        "InstanceName": f"host-{instance_id[-3:]}",
        "Status": status,
        "StatusDetails": details or status,
        "RequestedDateTime": T0,
        "CommandPlugins": [
            {
                "Name": "aws:runShellScript",
                "Status": status,
                "ResponseCode": code,
                "ResponseStartDateTime": T0,
                "ResponseFinishDateTime": T0 + timedelta(seconds=42),
                "Output": output,
            }
        ],
    }
    if attempt is not None:
        item["Comment"] = comment(attempt, chunk)
    return item


def invocation(
    instance_id, status=Status.SUCCESS, details=None, code=0, command_id="cmd-1", attempt=None, chunk=1
):
    return InvocationResult.from_api(
        api_invocation(instance_id, status.value, details, code, command_id, attempt=attempt, chunk=chunk)
    )


def command(command_id="cmd-1", status=Status.IN_PROGRESS, ids=(), target_count=0, attempt=1, chunk=0, at=""):
    return CommandSummary(
        command_id,
        status,
        status.value,
        target_count,
        tuple(ids),
        attempt=attempt,
        chunk=chunk,
        requested_at=at,
    )


def fleet_verdict(commands, invocations, tolerance=0, policy="finish", gone=()) -> FleetVerdict:
    """The verdict over hosts of these commands and invocations, as the run ledger gives it."""
    return RunLedger(commands, invocations).verdict(tolerance, policy, gone=gone)
