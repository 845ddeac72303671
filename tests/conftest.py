"""Test environment: an isolated Airflow home, fake AWS credentials, and the local AWS emulator.

Everything is set before Airflow is imported by any test module, so no test touches a real
Airflow home or a real AWS account.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_HOME = tempfile.mkdtemp(prefix="cots-airflow-home-")

os.environ.update(
    {
        "AIRFLOW_HOME": _HOME,
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)
for leaked in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(leaked, None)


def aws_connection_uri(endpoint_url: str) -> str:
    """The ``aws_default`` connection pointing every call at the emulator (as JSON, Airflow 3)."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint_url, "region_name": "us-east-1"},
        }
    )


@pytest.fixture(scope="session")
def emulator():
    """One executing SSM emulator for the session, with 3 instances tagged Role=cots."""
    from ssm_emulator import EmulatorServer

    with EmulatorServer(port=0, instances=3, tags={"Role": "cots"}) as emu:
        os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = aws_connection_uri(emu.endpoint_url)
        yield emu
        os.environ.pop("AIRFLOW_CONN_AWS_DEFAULT", None)


@pytest.fixture
def aws(emulator):
    """The emulator with faults and counters reset, and every instance back online."""
    emulator.control.reset()
    yield emulator
    emulator.control.reset()


@pytest.fixture
def alerts(aws):
    """Read the SNS alerts delivered to the emulator's SQS subscription (each read deletes them).

    What earlier tests left is drained first: PurgeQueue is limited to once a minute.
    """
    from devenv import drain_alerts

    def read(wait: int = 2) -> list[dict]:
        return drain_alerts(aws.endpoint_url, aws.queue_url, wait)

    read(wait=0)
    return read
