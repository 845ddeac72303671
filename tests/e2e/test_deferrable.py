"""The fleet sensor in deferrable mode under ``airflow standalone`` (its triggerer runs the trigger).

A DAG of its own (tests/e2e/deferrable_dags) so the nightly DAG stays as the lead wires it.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from airflow.triggers.base import BaseTrigger
from devenv import LocalAws, airflow_env, migrate, standalone

pytestmark = pytest.mark.e2e
DAG = "cots_deferrable_wait"
DAGS = Path(__file__).resolve().parent / "deferrable_dags"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Client:
    def __init__(self, base: str):
        self.base, self.token = base, None

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def log_in(self, password_file: Path, limit: float = 180) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                if password_file.exists() and self.call("GET", "/api/v2/version")[0] == 200:
                    password = json.loads(password_file.read_text())["admin"]
                    status, answer = self.call(
                        "POST", "/auth/token", {"username": "admin", "password": password}
                    )
                    if status in (200, 201):
                        self.token = answer["access_token"]
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(1)
        raise AssertionError("airflow standalone did not come up")

    def wait_for(self, path: str, ready, limit: float, what: str) -> dict:
        deadline, answer = time.monotonic() + limit, {}
        while time.monotonic() < deadline:
            status, answer = self.call("GET", path)
            if status == 200 and ready(answer):
                return answer
            time.sleep(1)
        raise AssertionError(f"timed out waiting for {what}; last answer: {answer}")


@pytest.fixture(scope="module")
def airflow(emulator, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-deferrable")
    aws = LocalAws(emulator.endpoint_url, emulator.instance_ids, emulator.topic_arn, emulator.queue_url)
    port = free_port()
    env = airflow_env(aws, home)
    env.update(
        {
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://localhost:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{port}/execution/",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(free_port()),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        }
    )
    migrate(env)
    with standalone(env, log=home / "standalone.log"):
        client = Client(f"http://localhost:{port}")
        client.log_in(home / "simple_auth_manager_passwords.json.generated")
        client.wait_for(f"/api/v2/dags/{DAG}", lambda d: d.get("dag_id") == DAG, 180, "the DAG")
        yield client


def run_and_watch(airflow, conf: dict) -> tuple[str, dict, list[str]]:
    """Trigger a run; return its path, its end and the states the wait task went through."""
    status, run = airflow.call("POST", f"/api/v2/dags/{DAG}/dagRuns", {"logical_date": None, "conf": conf})
    assert status == 200, run
    path = f"/api/v2/dags/{DAG}/dagRuns/{urllib.request.quote(run['dag_run_id'], safe='')}"
    seen: list[str] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = airflow.call("GET", f"{path}/taskInstances/wait")[1].get("state")
        if state and (not seen or seen[-1] != state):
            seen.append(state)
        if airflow.call("GET", path)[1].get("state") in ("success", "failed"):
            break
        time.sleep(0.5)
    return path, airflow.call("GET", path)[1], seen


def test_the_wait_is_deferred_to_the_triggerer_and_succeeds(airflow, aws):
    path, finished, seen = run_and_watch(airflow, {})
    assert finished["state"] == "success", (finished, seen)
    assert "deferred" in seen and "up_for_reschedule" not in seen, seen
    status, entry = airflow.call("GET", f"{path}/taskInstances/wait/xcomEntries/verdict")
    assert status == 200, entry
    verdict = json.loads(entry["value"]) if isinstance(entry["value"], str) else entry["value"]
    assert verdict["outcome"] == "succeeded" and verdict["expected"] >= 3
    status, log = airflow.call("GET", f"{path}/taskInstances/wait/logs/1?full_content=true")
    assert status == 200, log
    text = json.dumps(log)
    assert "Deferring the wait" in text and "done: " in text, "the triggerer's progress lines reach the log"


def test_a_run_can_choose_reschedule_from_the_param(airflow, aws):
    _, finished, seen = run_and_watch(airflow, {"deferrable": False, "seconds": 6})
    assert finished["state"] == "success", (finished, seen)
    assert "up_for_reschedule" in seen and "deferred" not in seen, seen


@pytest.mark.skipif(
    not hasattr(BaseTrigger, "on_kill"), reason="this Airflow never calls a trigger's on_kill"
)
def test_marking_the_deferred_wait_failed_cancels_the_commands(airflow, aws):
    """Airflow calls the trigger's on_kill on a user action (not on a triggerer restart)."""
    status, run = airflow.call(
        "POST", f"/api/v2/dags/{DAG}/dagRuns", {"logical_date": None, "conf": {"seconds": 300}}
    )
    assert status == 200, run
    path = f"/api/v2/dags/{DAG}/dagRuns/{urllib.request.quote(run['dag_run_id'], safe='')}"
    airflow.wait_for(f"{path}/taskInstances/wait", lambda ti: ti.get("state") == "deferred", 120, "deferral")
    status, _ = airflow.call("PATCH", f"{path}/taskInstances/wait", {"new_state": "failed"})
    assert status == 200
    command_ids = airflow.wait_for(
        f"{path}/taskInstances/run/xcomEntries/command_ids", lambda entry: entry.get("value"), 30, "the ids"
    )["value"]
    command_ids = json.loads(command_ids) if isinstance(command_ids, str) else command_ids
    ssm = boto3.client("ssm", endpoint_url=aws.endpoint_url, region_name="us-east-1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = {ssm.list_commands(CommandId=c)["Commands"][0]["Status"] for c in command_ids}
        if found == {"Cancelled"} and not aws.control.live_process_groups():
            return
        time.sleep(1)
    raise AssertionError(f"still running after the wait was marked failed: {found}")
