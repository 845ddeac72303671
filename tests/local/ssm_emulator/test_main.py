"""The command line: READY line, facts, clean SIGTERM, and --parent-pid."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest

LOCAL = Path(__file__).resolve().parents[3] / "local"


class Cli:
    """`python -m ssm_emulator` in a subprocess, its stdout read line by line with timeouts."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(LOCAL), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ssm_emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_ready(self, timeout: float = 30.0) -> dict[str, str]:
        facts = {}
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no READY line within {timeout}s; facts so far: {facts}")
            if line.startswith("READY "):
                facts["READY"] = line.split(" ", 1)[1]
                return facts
            name, _, value = line.partition(": ")
            facts[name] = value

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def aws_client(service: str, endpoint_url: str):
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def cli():
    started: list[Cli] = []

    def start(*args: str) -> Cli:
        started.append(Cli(*args))
        return started[-1]

    yield start
    for one in started:
        one.stop()


def test_cli_serves_until_sigterm_and_leaves_nothing_running(cli, tmp_path, wait_for, pid_alive):
    info_file = tmp_path / "emulator.json"
    state_dir = tmp_path / "state"
    emulator = cli(
        *("--instances", "2", "--tag", "Role=cots", "--tag", "Env=dev"),
        *("--state-dir", str(state_dir), "--info-file", str(info_file)),
    )
    facts = emulator.wait_ready()
    info = json.loads(info_file.read_text())
    assert facts["READY"] == facts["endpoint_url"] == info["endpoint_url"]
    assert facts["instance_ids"].split() == info["instance_ids"] and len(info["instance_ids"]) == 2
    assert facts["topic_arn"] == info["topic_arn"] and info["queue_url"]

    ssm, ec2 = (aws_client(name, info["endpoint_url"]) for name in ("ssm", "ec2"))
    tags = ec2.describe_instances(InstanceIds=info["instance_ids"])["Reservations"][0]["Instances"][0]["Tags"]
    assert {"Key": "Env", "Value": "dev"} in tags
    ssm.send_command(
        InstanceIds=info["instance_ids"],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": ["sleep 60 &", "echo $! > child", "echo $$ > pid", "sleep 60"]},
    )
    pids = []
    for instance_id in info["instance_ids"]:
        directory = state_dir / "instances" / instance_id
        pids.append(
            int(wait_for(lambda d=directory: (d / "pid").exists() and (d / "pid").read_text().strip()))
        )
        pids.append(int((directory / "child").read_text()))
    assert all(pid_alive(pid) for pid in pids)

    emulator.proc.send_signal(signal.SIGTERM)
    assert emulator.proc.wait(timeout=15) == 0
    assert not [pid for pid in pids if pid_alive(pid)]
    # Each script ran in its own process group (its shell's pid); none has a live member left.
    assert not [pgid for pgid in pids[::2] if live_group_members(pgid)]


def live_group_members(pgid: int) -> list[int]:
    """Pids of the non-zombie processes of a process group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def test_cli_exits_when_its_parent_is_gone(cli):
    parent = subprocess.Popen(["sleep", "60"])
    try:
        emulator = cli("--instances", "0", "--parent-pid", str(parent.pid))
        emulator.wait_ready()
        assert emulator.proc.poll() is None
    finally:
        parent.kill()
        parent.wait(timeout=5)
    assert emulator.proc.wait(timeout=15) == 0


def test_cli_refuses_a_tag_without_value(cli):
    emulator = cli("--tag", "Role")
    assert emulator.proc.wait(timeout=30) != 0
    assert emulator.proc.stderr is not None and "KEY=VALUE" in emulator.proc.stderr.read()
