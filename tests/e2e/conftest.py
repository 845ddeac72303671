"""Shared by the end-to-end tests: ``airflow standalone`` on the emulator, and its REST API."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from devenv import LocalAws, airflow_env, drain_alerts, migrate, standalone

DAG = "cots_nightly_batch"
ROOT = Path(__file__).resolve().parents[2]
#: A job whose script takes the date and that accepts backfills (test_backfill.py).
DATED = {
    "id": "dated_batch",
    "schedule": "0 3 * * *",
    "target_tags": {"Role": ["cots"]},
    "script": "echo",
    "script_arguments": ["--date", "{logical_date}"],
    "run_types": ["scheduled", "manual", "backfill"],
}
#: A test-only DAG waiting in deferrable mode (test_deferrable.py).
DEFERRABLE_DAG = Path(__file__).resolve().parent / "deferrable_dags" / "cots_deferrable_wait.py"
DAGRUN_TIMEOUT_HOURS = 0.05


def free_port() -> int:
    """A free port below Linux's ephemeral range (32768 and up), which ``bind(0)`` hands out.

    Airflow binds the port seconds after it was chosen; under ``make test`` five suites start
    servers on ``bind(0)`` ports meanwhile, and one of them took an ephemeral port chosen here.
    """
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port between 20000 and 32000")


class Api:
    """A small client of Airflow's REST API, logged in as the standalone admin."""

    def __init__(self, base: str, password_file, dag_id: str = DAG):
        self.base, self.password_file, self.token = base, password_file, None
        self.dag_id = dag_id
        self.late_scheduled_run: dict = {}
        self.late_scheduled_run_alerts: list[dict] = []

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
            text = error.read()
            try:
                return error.code, json.loads(text or b"{}")
            except ValueError:  # not Airflow's JSON (a proxy, or another server on the port)
                return error.code, {"error": text[:500].decode(errors="replace")}

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
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(1)
        raise AssertionError("airflow standalone did not come up")

    def unpause_all(self) -> list[str]:
        """Unpause every DAG the Airflow has parsed (they are created paused: see :func:`standalone_api`)."""
        status, listed = self.call("GET", "/api/v2/dags?limit=100&paused=true")
        assert status == 200, listed
        unpaused = []
        for dag in listed.get("dags", []):
            status, answer = self.call("PATCH", f"/api/v2/dags/{dag['dag_id']}", {"is_paused": False})
            assert status == 200, answer
            unpaused.append(dag["dag_id"])
        return unpaused

    def for_dag(self, dag_id: str) -> Api:
        """A client of the same Airflow, logged in, for another of its DAGs."""
        other = Api(self.base, self.password_file, dag_id)
        other.token = self.token
        return other

    def run_path(self, run_id: str) -> str:
        return f"/api/v2/dags/{self.dag_id}/dagRuns/{urllib.request.quote(run_id, safe='')}"

    def trigger(self, conf: dict) -> str:
        # A DAG file parsed after the Airflow came up was created paused: a run of it would never start.
        if self.call("GET", f"/api/v2/dags/{self.dag_id}")[1].get("is_paused"):
            self.call("PATCH", f"/api/v2/dags/{self.dag_id}", {"is_paused": False})
        for _ in range(3):
            status, run = self.call(
                "POST", f"/api/v2/dags/{self.dag_id}/dagRuns", {"logical_date": None, "conf": conf}
            )
            # SQLite busy under load: the request's transaction was rolled back, no run was created.
            if status != 500 or "Database error" not in str(run):
                break
            time.sleep(2)
        assert status == 200, run
        return run["dag_run_id"]

    def wait_for_run(self, run_id: str, timeout: float = 240) -> dict:
        return self.wait_for(
            self.run_path(run_id),
            lambda r: r["state"] in ("success", "failed"),
            time.monotonic() + timeout,
            f"run {run_id}",
        )

    def task_state(self, run_id: str, task_id: str) -> str | None:
        return self.call("GET", f"{self.run_path(run_id)}/taskInstances/{task_id}")[1].get("state")

    def xcom(self, run_id: str, task_id: str, key: str):
        status, entry = self.call("GET", f"{self.run_path(run_id)}/taskInstances/{task_id}/xcomEntries/{key}")
        assert status == 200, entry
        value = entry["value"]
        return json.loads(value) if isinstance(value, str) else value

    def wait_for(self, path: str, ready, deadline: float, what: str) -> dict:
        """Poll ``path`` until ``ready(answer)``; an answer slow to come (a loaded machine) counts as no."""
        answer: dict = {}
        while time.monotonic() < deadline:
            try:
                status, answer = self.call("GET", path)
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                status, answer = 0, {"error": repr(error)}
            if status == 200 and ready(answer):
                return answer
            time.sleep(1)
        raise AssertionError(f"timed out waiting for {what}; last answer: {answer}")


@contextlib.contextmanager
def standalone_api(
    emulator, home: Path, dag_id: str = DAG, *, dags_folder: Path | None = None, **batch: str
) -> Iterator[Api]:
    """``airflow standalone`` on the emulator (SQLite, free ports), logged in, ``dag_id`` parsed."""
    aws = LocalAws(emulator.endpoint_url, emulator.instance_ids, emulator.topic_arn, emulator.queue_url)
    port = free_port()
    env = airflow_env(aws, home, **batch)
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
    if dags_folder is not None:
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags_folder)
    # DAGs are created paused and unpaused once the API server answers, as on a deployment: unpaused at
    # creation, a due run's first task could start before the API server was up on a loaded machine, and
    # fail (its supervisor timed out reaching the execution API).
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "True"
    migrate(env)
    with standalone(env, log=home / "standalone.log"):
        client = Api(
            f"http://localhost:{port}", home / "simple_auth_manager_passwords.json.generated", dag_id
        )
        # Generous deadlines: `make test` starts three Airflows at once on 2 cores.
        client.login(time.monotonic() + 240)
        client.wait_for(
            f"/api/v2/dags/{dag_id}", lambda dag: dag.get("dag_id") == dag_id, time.monotonic() + 240, "DAG"
        )
        client.unpause_all()
        yield client


@pytest.fixture(scope="session")
def start_standalone():
    """:func:`standalone_api`, for test modules that need an Airflow of their own (another DAG folder)."""
    return standalone_api


@pytest.fixture(scope="package")
def side_airflow(emulator, tmp_path_factory):
    """A second ``airflow standalone``, shared by the modules whose DAGs are not the shipped jobs file.

    Its DAG folder holds the jobs' DAG file with a jobs file of one job, :data:`DATED` (it accepts
    backfills), and the test-only :data:`DEFERRABLE_DAG`; poll interval 2 s. One Airflow for both
    saves a start (migrate, four processes, first parse) in the end-to-end run. Use
    ``side_airflow.for_dag(dag_id)``.
    """
    dags = tmp_path_factory.mktemp("side-dags")
    shutil.copy(ROOT / "dags" / "cots_jobs.py", dags)
    (dags / "cots_jobs.yaml").write_text(yaml.safe_dump({"jobs": [DATED]}))
    shutil.copy(DEFERRABLE_DAG, dags)
    home = tmp_path_factory.mktemp("airflow-side")
    with standalone_api(emulator, home, DATED["id"], dags_folder=dags, POLL_SECONDS="2") as client:
        deferrable = client.for_dag(DEFERRABLE_DAG.stem)
        deferrable.wait_for(
            f"/api/v2/dags/{deferrable.dag_id}",
            lambda dag: dag.get("dag_id") == deferrable.dag_id,
            time.monotonic() + 120,
            "the deferrable DAG",
        )
        client.unpause_all()
        yield client


@pytest.fixture(scope="package")
def api(emulator, tmp_path_factory):
    # The nightly tick was 12 hours ago: unpausing creates that scheduled run, which must be skipped.
    # dagrun_timeout is 3 minutes so a timed-out run can be watched (every other run ends sooner). Not
    # shorter: with three Airflows starting at once under `make test`, 126 s timed out the late
    # scheduled run itself (its window task failed) on a loaded machine.
    due = datetime.now(UTC) - timedelta(hours=12)
    with standalone_api(
        emulator,
        tmp_path_factory.mktemp("airflow-standalone"),
        POLL_SECONDS="10",  # shorter invites an Airflow requeue race under load (see test_run_safety)
        SCHEDULE=f"{due.minute} {due.hour} * * *",
        DAGRUN_TIMEOUT_HOURS=str(DAGRUN_TIMEOUT_HOURS),
    ) as client:
        # The DAG is unpaused: its latest nightly tick starts at once (and skips itself); let it end.
        runs = client.wait_for(
            f"/api/v2/dags/{DAG}/dagRuns",
            lambda runs: (
                runs["dag_runs"] and all(r["state"] in ("success", "failed") for r in runs["dag_runs"])
            ),
            time.monotonic() + 300,
            "the scheduled run",
        )
        client.late_scheduled_run = runs["dag_runs"][0]
        # Its one alert, read now: the `alerts` fixture of later tests drains the queue.
        client.late_scheduled_run_alerts = drain_alerts(emulator.endpoint_url, emulator.queue_url, wait=5)
        yield client


# Debian's chromium under Playwright (REFERENCE 8): no sandbox or GPU here, nothing fetched.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium, one per browser test module."""
    import shutil

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def log_in(api):
    """Log a page in as the standalone admin, through the UI's login form."""

    def log_in_page(page) -> None:
        page.goto(api.base + "/", wait_until="networkidle")
        inputs = page.locator("input")
        inputs.nth(0).fill("admin")
        inputs.nth(1).fill(json.loads(api.password_file.read_text())["admin"])
        page.keyboard.press("Enter")
        page.wait_for_url(lambda url: "login" not in url, timeout=30_000)
        page.wait_for_load_state("networkidle")

    return log_in_page
