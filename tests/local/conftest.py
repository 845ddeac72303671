"""Fixtures for the emulator's tests: one server for the session, boto3 clients over real HTTP.

Every wait is bounded; helpers fail the test with what they last saw.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from ssm_emulator import EmulatorServer

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
TERMINAL = {"Success", "Failed", "TimedOut", "Cancelled"}
SAMPLE_BATCH = Path(__file__).resolve().parents[2] / "local" / "sample_batch" / "cots_batch.sh"


@pytest.fixture(scope="session")
def emulator():
    """The session's emulator: 3 instances tagged Role=cots."""
    with EmulatorServer(port=0, instances=3, tags={"Role": "cots"}, region=REGION) as server:
        yield server


@pytest.fixture
def emu(emulator):
    """The session's emulator with no faults, zeroed counters and every instance online."""
    emulator.control.reset()
    yield emulator
    emulator.control.reset()


def make_client(emulator: EmulatorServer, service: str, **config: Any) -> Any:
    return boto3.session.Session().client(
        service,
        endpoint_url=emulator.endpoint_url,
        region_name=REGION,
        config=Config(**config) if config else None,
        **CREDENTIALS,
    )


@pytest.fixture(scope="session")
def client(emulator) -> Callable[..., Any]:
    """Build a boto3 client of the session's emulator, e.g. ``client("ssm", retries={...})``."""
    return lambda service, **config: make_client(emulator, service, **config)


@pytest.fixture(scope="session")
def ssm(emulator):
    return make_client(emulator, "ssm")


@pytest.fixture(scope="session")
def ssm_no_retry(emulator):
    """An SSM client that sees every error (no retries)."""
    return make_client(emulator, "ssm", retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture(scope="session")
def ssm_raw(emulator):
    """An SSM client without client-side parameter validation, so the server's validation answers."""
    return make_client(emulator, "ssm", parameter_validation=False, retries={"total_max_attempts": 1})


@pytest.fixture(scope="session")
def ec2(emulator):
    return make_client(emulator, "ec2")


def _wait_for(
    predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}; last value: {last!r}")


def _pid_alive(pid: int) -> bool:
    """Tell whether a process runs (a zombie does not: this container's PID 1 never reaps)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class RunCommand:
    """Send AWS-RunShellScript commands and wait for them, through boto3."""

    def __init__(self, ssm: Any) -> None:
        self.ssm = ssm

    def send(self, commands: list[str], instance_ids: list[str] | None = None, **kwargs: Any) -> str:
        parameters = {"commands": commands, **kwargs.pop("parameters", {})}
        if instance_ids is not None:
            kwargs["InstanceIds"] = instance_ids
        answer = self.ssm.send_command(DocumentName="AWS-RunShellScript", Parameters=parameters, **kwargs)
        return answer["Command"]["CommandId"]

    def command(self, command_id: str) -> dict[str, Any]:
        return self.ssm.list_commands(CommandId=command_id)["Commands"][0]

    def wait(self, command_id: str, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until the command's status is terminal; return the command."""

        def terminal() -> dict[str, Any] | None:
            command = self.command(command_id)
            return command if command["Status"] in TERMINAL else None

        return _wait_for(terminal, timeout=timeout, what=f"command {command_id} to end")

    def invocations(self, command_id: str, details: bool = True) -> dict[str, dict[str, Any]]:
        """Return every invocation of a command (all pages) by instance id."""
        paginator = self.ssm.get_paginator("list_command_invocations")
        found = {}
        for page in paginator.paginate(CommandId=command_id, Details=details):
            for invocation in page["CommandInvocations"]:
                found[invocation["InstanceId"]] = invocation
        return found

    def result(self, command_id: str, instance_id: str) -> dict[str, Any]:
        return self.ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)

    def run(self, commands: list[str], instance_ids: list[str] | None = None, **kwargs: Any):
        """Send, wait, and return (command, {instance_id: GetCommandInvocation result})."""
        command_id = self.send(commands, instance_ids, **kwargs)
        command = self.wait(command_id, timeout=kwargs.get("TimeoutSeconds", 20))
        results = {iid: self.result(command_id, iid) for iid in self.invocations(command_id)}
        return command, results


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """Poll until truthy, else fail: ``wait_for(predicate, timeout=15, interval=0.05, what="")``."""
    return _wait_for


@pytest.fixture
def pid_alive() -> Callable[[int], bool]:
    """Tell whether a process runs (``pid_alive(pid)``); zombies count as gone."""
    return _pid_alive


@pytest.fixture
def run(ssm) -> RunCommand:
    return RunCommand(ssm)


@pytest.fixture
def unique_tag() -> dict[str, str]:
    """A tag no other test uses, to target a fleet of this test only."""
    return {"Fleet": f"t-{uuid.uuid4().hex[:10]}"}


@pytest.fixture
def sample_batch() -> Path:
    return SAMPLE_BATCH
