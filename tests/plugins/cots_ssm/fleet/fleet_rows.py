"""Result rows and SSM answers of fleets of any size, shaped as the sensor and SSM shape them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ssm_fleet.invocations import InvocationResult
from ssm_fleet.render import as_row
from ssm_fleet.status import Status, StatusDetails

START = datetime(2026, 11, 27, 2, 30, tzinfo=UTC)
XSS = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def instance_id(n: int) -> str:
    return f"i-{n:017x}"


def rows(count: int, failed: dict[int, str] | None = None, running: set[int] = frozenset()) -> list[dict]:
    """``count`` rows; ``failed`` maps an index to its stderr; ``running`` indexes still run."""
    failed = failed or {}
    made = []
    for n in range(count):
        if n in running:
            status, details, code, end = Status.IN_PROGRESS, StatusDetails.IN_PROGRESS.value, None, None
        elif n in failed:
            status, details, code, end = (
                Status.FAILED,
                StatusDetails.FAILED.value,
                3,
                START + timedelta(seconds=9),
            )
        else:
            status, details, code, end = (
                Status.SUCCESS,
                StatusDetails.SUCCESS.value,
                0,
                START + timedelta(seconds=n % 7),
            )
        result = InvocationResult(
            command_id=f"cmd-{n // 50}",
            instance_id=instance_id(n),
            status=status,
            status_details=details,
            exit_code=code,
            instance_name=f"ip-10-0-{n // 250}-{n % 250}.ec2.internal",
            started_at=START,
            finished_at=end,
            stdout=f"[{instance_id(n)}] 5/5 doc-05.txt\nSUMMARY instance={instance_id(n)} documents=5",
            stderr=failed.get(n, ""),
        )
        row = as_row(result, tail_lines=20 if n in failed else 0, stdout_lines=1, tail_chars=2000)
        made.append(row)
    return made


def api_invocation(n: int, status: Status, details: StatusDetails, code: int = -1, output: str = "") -> dict:
    """One ``CommandInvocations`` item of ListCommandInvocations (Details=True)."""
    return {
        "CommandId": "cmd-live",
        "InstanceId": instance_id(n),
        "InstanceName": "",
        "Status": status.value,
        "StatusDetails": details.value,
        "RequestedDateTime": START,
        "CommandPlugins": [
            {
                "ResponseCode": code,
                "ResponseStartDateTime": START,
                "ResponseFinishDateTime": START,
                "Output": output,
            }
        ],
    }


def api_command(count: int, status: Status) -> dict:
    return {
        "CommandId": "cmd-live",
        "Status": status.value,
        "StatusDetails": status.value,
        "TargetCount": count,
        "InstanceIds": [],
        "Comment": "cots [af:0123456789abcdef r1 1/1]",
    }
