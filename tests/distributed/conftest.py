"""The distributed stack for the whole module, started once.

PostgreSQL, Redis, the emulator (200 instances) and Airflow on CeleryExecutor (api-server,
scheduler, dag-processor, triggerer, two workers), started once by ``cluster.Cluster`` with the
settings of ``docker-compose.yaml``; each test triggers its own run. The REST client and the alert
reader are the end-to-end suite's own (tests/e2e, tests/conftest).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from _pytest.pathlib import import_path
from cluster import Cluster, missing_tools

from ssm_emulator import EmulatorControl

ROOT = Path(__file__).resolve().parents[2]
DAG = "cots_nightly_batch"
INSTANCES = 200


def e2e_module(relative: str):
    """A module of the end-to-end suite, imported as pytest imports it (one module object for both)."""
    return import_path(ROOT / relative, mode="importlib", root=ROOT, consider_namespace_packages=False)


@pytest.fixture(scope="module")
def cluster():
    missing = missing_tools()
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (`make system-tools` installs them, as root)")
    if importlib.util.find_spec("asyncpg") is None:
        pytest.fail("asyncpg is missing: this venv predates requirements-dev.txt; rebuild it (make venv)")
    stack = Cluster(instances=INSTANCES)
    try:
        with stack:
            yield stack
    finally:
        leftovers = stack.leftovers()
        if not os.environ.get("COTS_KEEP_CLUSTER"):  # set it to keep the logs of a failed run
            shutil.rmtree(stack.root, ignore_errors=True)
        assert leftovers == [], "processes of the suite outlived it"


@pytest.fixture(scope="module")
def api(cluster):
    """The e2e REST client, logged in as the SimpleAuthManager admin; the DAG unpaused (compose pauses it)."""
    client = e2e_module("tests/e2e/conftest.py").Api(
        cluster.api_url, cluster.root / "airflow" / "simple_auth_manager_passwords.json.generated"
    )
    client.login(time.monotonic() + 120)
    client.wait_for(f"/api/v2/dags/{DAG}", lambda d: d.get("dag_id") == DAG, time.monotonic() + 180, "DAG")
    status, answer = client.call("PATCH", f"/api/v2/dags/{DAG}", {"is_paused": False})
    assert status == 200, answer
    return client


@dataclass
class ClusterAws:
    """The cluster's emulator, shaped like tests/conftest.py's ``aws`` (which its ``alerts`` reads)."""

    endpoint_url: str
    queue_url: str
    topic_arn: str
    instance_ids: list[str]
    control: EmulatorControl


@pytest.fixture
def aws(cluster):
    """The cluster's emulator with faults, counters and execution counts reset."""
    assert cluster.aws is not None
    local = cluster.aws
    control = EmulatorControl(local.endpoint_url)
    emulator = ClusterAws(local.endpoint_url, local.queue_url, local.topic_arn, local.instance_ids, control)
    emulator.control.reset()
    yield emulator
    emulator.control.reset()


@dataclass(frozen=True)
class Sample:
    """The ``wait`` task instance as Airflow's database held it at ``at`` (monotonic seconds)."""

    at: float
    state: str | None
    hostname: str
    pid: int | None
    try_number: int
    triggerer_id: int | None = None  # the triggerer job running its trigger, while deferred

    @property
    def key(self) -> tuple:
        return self.state, self.hostname, self.pid, self.try_number, self.triggerer_id


class WaitWatch(threading.Thread):
    """Samples the run's ``wait`` task instance in the metadata database every 0.2 s, keeping changes.

    ``on_change(sample)`` is called from this thread for every change.
    """

    def __init__(self, cluster: Cluster, run_id: str, on_change=None) -> None:
        super().__init__(daemon=True)
        self.cluster, self.run_id, self.on_change = cluster, run_id, on_change
        self.samples: list[Sample] = []
        self.errors: list[BaseException] = []
        self.done = threading.Event()

    def run(self) -> None:
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=self.cluster.ports.postgres, user="airflow", dbname="airflow"
        )
        connection.autocommit = True
        try:
            while not self.done.wait(0.2):
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT ti.state, ti.hostname, ti.pid, ti.try_number, t.triggerer_id"
                        " FROM task_instance ti LEFT JOIN trigger t ON t.id = ti.trigger_id"
                        " WHERE ti.dag_id = %s AND ti.run_id = %s AND ti.task_id = 'wait'",
                        (DAG, self.run_id),
                    )
                    row = cursor.fetchone()
                if row is None:
                    continue
                sample = Sample(time.monotonic(), row[0], row[1] or "", row[2], row[3], row[4])
                if not self.samples or self.samples[-1].key != sample.key:
                    self.samples.append(sample)
                    if self.on_change:
                        self.on_change(sample)
        except BaseException as error:  # reported by the test, not lost in the thread
            self.errors.append(error)
        finally:
            connection.close()

    def __enter__(self) -> WaitWatch:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(timeout=10)
        assert not self.errors, self.errors

    def pokes(self) -> list[Sample]:
        """One sample per poke: the first time each task process (pid) was seen running."""
        seen: dict[int, Sample] = {}
        for sample in self.samples:
            if sample.state == "running" and sample.pid and sample.pid not in seen:
                seen[sample.pid] = sample
        return list(seen.values())

    def wait_for(self, predicate, timeout: float, what: str) -> Sample:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for sample in list(self.samples):
                if predicate(sample):
                    return sample
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; samples: {self.samples}")


@pytest.fixture
def watch_wait(cluster):
    """``watch_wait(run_id, on_change=None)``: a ``WaitWatch`` of that run, to use as a ``with`` block."""
    return lambda run_id, on_change=None: WaitWatch(cluster, run_id, on_change)


@pytest.fixture(scope="module")
def run_safety():
    """The e2e suite's run-safety helpers: ``alerts_for``, ``nothing_left_running``."""
    return e2e_module("tests/e2e/test_run_safety.py")
