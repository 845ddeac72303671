"""The embedded default: a local Airflow (SQLite) wired to the local AWS emulator.

Shared by ``make demo`` (``local/demo.py``) and ``make run`` (``local/standalone.py``). Every
process it starts is stopped on exit, and the emulator also exits by itself if its parent dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_BATCH = ROOT / "local" / "sample_batch" / "cots_batch.sh"
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class LocalAws:
    """A running emulator, as its info file describes it."""

    endpoint_url: str
    instance_ids: list[str]
    topic_arn: str
    queue_url: str


def drain_alerts(endpoint_url: str, queue_url: str, wait: int = 2) -> list[dict[str, Any]]:
    """Every SNS alert waiting in the emulator's SQS subscription, read and deleted.

    Long-polls ``wait`` seconds for the first message only, then takes what is left at once.
    """
    import boto3

    sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name="us-east-1")
    bodies: list[dict[str, Any]] = []
    while messages := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0 if bodies else wait
    ).get("Messages"):
        bodies += [json.loads(m["Body"]) for m in messages]
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


@contextlib.contextmanager
def emulator(
    port: int = 0,
    instances: int = 3,
    tag: str = "Role=cots",
    state_root: Path | None = None,
    own_group: bool = False,
) -> Iterator[LocalAws]:
    """Start ``python -m ssm_emulator`` and stop it (and every script it runs) on exit.

    :param state_root: the folder its state folder is made in (default: the system's temp folder).
    :param own_group: start it in a process group of its own (out of reach of the terminal's Ctrl-C,
        which then stops it through the ``with`` block only).
    """
    with tempfile.TemporaryDirectory(prefix="cots-emulator-", dir=state_root) as state:
        info_file = Path(state) / "info.json"
        command = [
            sys.executable, "-m", "ssm_emulator", "--port", str(port), "--instances", str(instances),
            "--tag", tag, "--state-dir", str(Path(state) / "state"), "--info-file", str(info_file),
            "--parent-pid", str(os.getpid()),
        ]  # fmt: skip
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "local"), os.environ.get("PYTHONPATH", "")]),
        }
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, text=True, start_new_session=own_group
        )
        try:
            _wait_ready(process)
            info = json.loads(info_file.read_text())
            yield LocalAws(info["endpoint_url"], info["instance_ids"], info["topic_arn"], info["queue_url"])
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_ready(process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            raise RuntimeError(f"the AWS emulator exited with code {process.returncode} before it was ready")
        if line.startswith("READY "):
            return
    raise RuntimeError("the AWS emulator was not ready within 60 s")


def airflow_env(aws: LocalAws, airflow_home: Path, **batch: str) -> dict[str, str]:
    """Environment of an Airflow that reaches AWS only through ``aws_default`` = the emulator."""
    connection = {
        "conn_type": "aws",
        "login": "local",
        "password": "local",
        "extra": {"endpoint_url": aws.endpoint_url, "region_name": "us-east-1"},
    }
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "COTS_BATCH_SCRIPT": str(SAMPLE_BATCH),
        "COTS_BATCH_SNS_TOPIC_ARN": aws.topic_arn,
        "COTS_BATCH_POLL_SECONDS": "2",
        "COTS_BATCH_EXECUTION_TIMEOUT": "600",
        "COTS_BATCH_DELIVERY_TIMEOUT": "60",
    }
    env.update({f"COTS_BATCH_{key.upper()}": value for key, value in batch.items()})
    for leaked in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        env.pop(leaked, None)
    return env


@contextlib.contextmanager
def standalone(env: dict[str, str], log: Path | None = None) -> Iterator[subprocess.Popen]:
    """``airflow standalone`` in a process group of its own, stopped as a whole on exit."""
    output = log.open("w") if log else None
    process = subprocess.Popen(
        ["airflow", "standalone"], env=env, start_new_session=True, stdout=output, stderr=output
    )
    try:
        yield process
    finally:
        stop_group(process)
        if output:
            output.close()


def stop_group(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM the process group, then SIGKILL what is left of it after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so ``with`` blocks stop what they started."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def migrate(env: dict[str, str]) -> None:
    """Create or upgrade the SQLite metadata database of ``AIRFLOW_HOME``."""
    subprocess.run(["airflow", "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
