"""The nightly DAG under the real scheduler: ``airflow standalone`` (what ``make run`` starts).

A run triggered through the REST API (what the UI's trigger form posts) is scheduled, rescheduled
and failed by the scheduler, and the SNS alert fires there too. An invalid form value is refused
with HTTP 400 before any run exists.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from devenv import LocalAws, airflow_env, migrate, standalone

pytestmark = pytest.mark.e2e
DAG = "cots_nightly_batch"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Api:
    """A small client of Airflow's REST API, logged in as the standalone admin."""

    def __init__(self, base: str, password_file):
        self.base, self.password_file, self.token = base, password_file, None

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

    def login(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if self.password_file.exists() and self.call("GET", "/api/v2/version")[0] == 200:
                    password = json.loads(self.password_file.read_text())["admin"]
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

    def wait_for(self, path: str, ready, deadline: float, what: str) -> dict:
        answer: dict = {}
        while time.monotonic() < deadline:
            status, answer = self.call("GET", path)
            if status == 200 and ready(answer):
                return answer
            time.sleep(1)
        raise AssertionError(f"timed out waiting for {what}; last answer: {answer}")


@pytest.fixture(scope="module")
def api(emulator, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-standalone")
    aws = LocalAws(emulator.endpoint_url, emulator.instance_ids, emulator.topic_arn, emulator.queue_url)
    port = free_port()
    env = airflow_env(aws, home, POLL_SECONDS="1")
    env.update(
        {
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
        client = Api(f"http://localhost:{port}", home / "simple_auth_manager_passwords.json.generated")
        client.login(time.monotonic() + 120)
        client.wait_for(
            f"/api/v2/dags/{DAG}", lambda dag: dag.get("dag_id") == DAG, time.monotonic() + 120, "DAG"
        )
        # The DAG is unpaused: its latest nightly tick runs at once; let it end before the tests.
        client.wait_for(
            f"/api/v2/dags/{DAG}/dagRuns",
            lambda runs: (
                runs["dag_runs"] and all(r["state"] in ("success", "failed") for r in runs["dag_runs"])
            ),
            time.monotonic() + 180,
            "the scheduled run",
        )
        yield client


def test_invalid_form_value_is_refused_before_any_run(api):
    status, answer = api.call(
        "POST",
        f"/api/v2/dags/{DAG}/dagRuns",
        {"logical_date": None, "conf": {"instance_ids": ["i-0abc; touch pwned"]}},
    )
    assert status == 400, answer
    assert "instance_ids" in json.dumps(answer)


def test_failure_under_the_scheduler_alerts_naming_the_instance(api, aws, alerts):
    bad = aws.instance_ids[0]
    conf = {"poll_interval_seconds": 1, "script_arguments": ["--duration", "2", "--fail-on", bad]}
    status, run = api.call("POST", f"/api/v2/dags/{DAG}/dagRuns", {"logical_date": None, "conf": conf})
    assert status == 200, run
    path = f"/api/v2/dags/{DAG}/dagRuns/{urllib.request.quote(run['dag_run_id'], safe='')}"
    finished = api.wait_for(
        path, lambda r: r["state"] in ("success", "failed"), time.monotonic() + 240, "the run"
    )
    assert finished["state"] == "failed"
    status, wait = api.call("GET", f"{path}/taskInstances/wait")
    assert wait["state"] == "failed"
    messages = [m for m in alerts(wait=5) if run["dag_run_id"] in m["Message"]]
    assert len(messages) == 1
    assert f"- {bad}" in messages[0]["Message"] and "exit code 3" in messages[0]["Message"]
