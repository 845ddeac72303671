"""Airflow on CeleryExecutor, PostgreSQL and Redis as ordinary processes on one host, over the emulator.

The distributed suite (``tests/distributed``) runs the nightly DAG here: PostgreSQL, Redis, the
executing SSM emulator, ``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and
two Celery workers, each in a process group of its own, all under one temp folder. Airflow's
settings are read from ``docker-compose.yaml`` (its ``x-airflow-common`` environment) and only
what must differ on one host is changed (``OVERRIDDEN``) or added (``ONE_HOST_ONLY``), so the
compose file is exercised, not just validated. Everything is stopped by ``Cluster.stop`` (the
``with`` block, and at interpreter exit).

Over 350 lines for a reason: one stack's processes and their lifecycle stay together, so that
``stop`` sees everything ``start`` made.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from devenv import ROOT, VENV_BIN, LocalAws, emulator, raise_on_sigterm

COMPOSE_FILE = ROOT / "docker-compose.yaml"
HOSTNAME_VARIABLE = "COTS_CLUSTER_HOSTNAME"
WORKERS = ("worker-a", "worker-b")
SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
HEARTBEAT_TIMEOUT_SECONDS = 30

# Compose settings the suite changes, and why. Every other x-airflow-common setting is used as is.
OVERRIDDEN = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "host 'postgres' of compose is 127.0.0.1 on a free port",
    "AIRFLOW__CELERY__RESULT_BACKEND": "host 'postgres' of compose is 127.0.0.1 on a free port",
    "AIRFLOW__CELERY__BROKER_URL": "host 'redis:6379' of compose is 127.0.0.1 on a free port",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "host 'airflow-apiserver:8080' is 127.0.0.1 on a free port",
    "AIRFLOW_CONN_AWS_DEFAULT": "the emulator service 'local-aws:5000' is 127.0.0.1 on a free port",
    "COTS_BATCH_SCRIPT": "the container path /opt/airflow/local/... is the repository's local/...",
    "AIRFLOW__CORE__AUTH_MANAGER": "the FAB provider ships in the official image, not in this project's "
    "requirements: Airflow's SimpleAuthManager (the REST API and JWT secret work alike)",
}

# Settings one host needs that compose's containers do not (each container has its own ports,
# hostname and home), and the knobs that make a fault observable within a test.
ONE_HOST_ONLY = {
    "AIRFLOW_HOME": "config and logs of the cluster, in its temp folder (compose: /opt/airflow)",
    "AIRFLOW__CORE__DAGS_FOLDER": "the repository's dags/ (compose mounts it at /opt/airflow/dags)",
    "AIRFLOW__CORE__PLUGINS_FOLDER": "the repository's plugins/ (compose mounts it at /opt/airflow/plugins)",
    "AIRFLOW__API__PORT": "a free port (compose: 8080 in the api-server's container)",
    "AIRFLOW__API__BASE_URL": "the api-server's URL on that port",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "one free port per worker (compose: 8793 in each container)",
    "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": "a free port (compose: 8794 in the triggerer's container)",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": "a free port (compose: 8974)",
    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "containers have a hostname each; here each process gets one "
    f"from ${HOSTNAME_VARIABLE}, so a task instance records which worker ran it",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1 task at a time per worker, so two workers share the pokes",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": f"{HEARTBEAT_TIMEOUT_SECONDS} s (default 300): "
    "the task of a killed worker is failed and retried within a test",
}


def hostname() -> str:
    """Airflow's ``hostname_callable`` here: the process's cluster name, else the host's FQDN."""
    return os.environ.get(HOSTNAME_VARIABLE) or socket.getfqdn()


def compose_settings(path: Path = COMPOSE_FILE) -> dict[str, str]:
    """The ``x-airflow-common`` environment of the compose file, ``${VAR:-default}`` read as its default."""
    compose = yaml.safe_load(path.read_text())
    environment = compose["x-airflow-common"]["environment"]
    return {key: _interpolate(str(value)) for key, value in environment.items()}


def _interpolate(value: str) -> str:
    value = re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", value)
    if "${" in value:
        raise ValueError(f"docker-compose.yaml: {value!r} needs a variable with no default")
    return value.replace("$$", "$")


@dataclass(frozen=True)
class Ports:
    """Where each service listens on this host."""

    postgres: int
    redis: int
    api_server: int
    scheduler_health: int
    trigger_logs: int
    worker_logs: dict[str, int] = field(default_factory=dict)


def _rehost(url: str, host: str, port: int) -> str:
    """``scheme://user:pass@service[:port]/path`` -> the same URL on ``host:port``."""
    return re.sub(r"@[^/@:]+(:\d+)?/", f"@{host}:{port}/", url, count=1)


def airflow_settings(compose: dict[str, str], ports: Ports, aws_endpoint: str, home: Path) -> dict[str, str]:
    """Compose's Airflow settings with exactly the ``OVERRIDDEN`` keys changed and ``ONE_HOST_ONLY`` added."""
    connection = json.loads(compose["AIRFLOW_CONN_AWS_DEFAULT"])
    connection["extra"]["endpoint_url"] = aws_endpoint
    api = f"http://127.0.0.1:{ports.api_server}"
    overrides = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": _rehost(
            compose["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], "127.0.0.1", ports.postgres
        ),
        "AIRFLOW__CELERY__RESULT_BACKEND": _rehost(
            compose["AIRFLOW__CELERY__RESULT_BACKEND"], "127.0.0.1", ports.postgres
        ),
        "AIRFLOW__CELERY__BROKER_URL": _rehost(
            compose["AIRFLOW__CELERY__BROKER_URL"], "127.0.0.1", ports.redis
        ),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        "COTS_BATCH_SCRIPT": str(ROOT / compose["COTS_BATCH_SCRIPT"].removeprefix("/opt/airflow/")),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager."
        "SimpleAuthManager",
    }
    one_host = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__API__PORT": str(ports.api_server),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(min(ports.worker_logs.values(), default=0)),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports.trigger_logs),
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(ports.scheduler_health),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "cluster.hostname",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_SECONDS),
    }
    return {**compose, **overrides, **one_host}


def process_env(settings: dict[str, str], name: str, worker_log_port: int | None = None) -> dict[str, str]:
    """One process's environment: ours minus any Airflow, AWS or batch setting, plus ``settings``."""
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "AWS_", "COTS_BATCH_", "_AIRFLOW", HOSTNAME_VARIABLE))
    }
    env = {
        **inherited,
        **settings,
        "PATH": os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]),
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "local"), str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")]
        ),
        # Fake keys: the connection's endpoint is the emulator; nothing may reach a real account.
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        HOSTNAME_VARIABLE: name,
    }
    if worker_log_port is not None:
        env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(worker_log_port)
    return env


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server binaries (Debian keeps them off PATH), newest version first."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


def missing_tools() -> list[str]:
    """What the cluster needs and this machine lacks (``make system-tools`` installs them)."""
    missing = [] if postgres_bin() else ["postgresql"]
    return missing + ([] if shutil.which("redis-server") else ["redis-server"])


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    """Call ``check`` until it is true; raise naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        time.sleep(interval)
    raise RuntimeError(f"{what} was not ready within {timeout:.0f} s")


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 - our own local http endpoint
        return bool(answer.status == 200)


def _redis_pings(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
        connection.sendall(b"PING\r\n")
        return connection.recv(16).startswith(b"+PONG")


class Cluster:
    """The whole distributed stack, started by ``start()`` and stopped as a whole by ``stop()``.

    :param instances: emulator instances tagged ``Role=cots``. (default: 200)
    :param root: the temp folder everything lives in. (default: a new one in the system temp folder)
    """

    def __init__(self, instances: int = 200, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="cots-cluster-"))
        self.root.chmod(0o755)  # PostgreSQL runs as its own user and must reach its folder
        self.instances = instances
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.groups: set[int] = set()
        self.aws: LocalAws | None = None
        self.settings: dict[str, str] = {}
        self._stack = contextlib.ExitStack()
        self.ports = Ports(
            postgres=free_port(),
            redis=free_port(),
            api_server=free_port(),
            scheduler_health=free_port(),
            trigger_logs=free_port(),
            worker_logs={name: free_port() for name in WORKERS},
        )

    # -- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start PostgreSQL, Redis, the emulator, migrate, then every Airflow service and both workers."""
        atexit.register(self.stop)
        _exit_on_sigterm()
        self._start_postgres()
        self._start("redis", self._redis_command(), as_postgres=False)
        self.aws = self._stack.enter_context(
            emulator(instances=self.instances, state_root=self.root, own_group=True)
        )
        self.settings = airflow_settings(
            compose_settings(), self.ports, self.aws.endpoint_url, self.root / "airflow"
        )
        if self.settings["COTS_BATCH_SNS_TOPIC_ARN"] != self.aws.topic_arn:
            raise RuntimeError(
                f"compose's topic {self.settings['COTS_BATCH_SNS_TOPIC_ARN']} is not the emulator's"
            )
        wait_until(lambda: _redis_pings(self.ports.redis), 30, "Redis")
        self._migrate()
        for name in (*SERVICES, *WORKERS):
            self.start_airflow(name)
        self.wait_healthy()

    def stop(self, grace: float = 20) -> None:
        """SIGTERM every process group, SIGKILL what is left after ``grace`` s, then stop the emulator."""
        airflow = [name for name in self.processes if name not in ("postgres", "redis")]
        self._stop_groups(airflow, grace)
        self._stack.close()
        self._stop_groups(["redis", "postgres"], grace)

    def _stop_groups(self, names: list[str], grace: float) -> None:
        processes = [self.processes.pop(name) for name in names if name in self.processes]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    # -- processes ------------------------------------------------------------------------------
    def log(self, name: str) -> Path:
        """The stdout and stderr of process ``name``."""
        return self.root / "logs" / f"{name}.log"

    def _start(
        self, name: str, command: list[str], *, as_postgres: bool, env: dict[str, str] | None = None
    ) -> None:
        self.log(name).parent.mkdir(exist_ok=True)
        user = "postgres" if as_postgres and os.geteuid() == 0 else None
        with self.log(name).open("ab") as output:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=self.root,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group each: stopped or killed as a whole
                user=user,
                group=user,
                extra_groups=[] if user else None,
            )
        self.processes[name] = process
        self.groups.add(process.pid)

    def _start_postgres(self) -> None:
        binaries = postgres_bin()
        if binaries is None:
            raise RuntimeError("PostgreSQL is not installed: run `make system-tools`")
        data, sockets = self.root / "postgres" / "data", self.root / "postgres" / "run"
        sockets.mkdir(parents=True)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its own user owns its folder
            shutil.chown(data.parent, "postgres", "postgres")
            shutil.chown(sockets, "postgres", "postgres")
        user = "postgres" if os.geteuid() == 0 else None
        subprocess.run(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "airflow",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            cwd=self.root,
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(sockets),
            "max_connections": "300",
            "fsync": "off",  # a throw-away database: durability costs time and proves nothing here
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        command = [str(binaries / "postgres"), "-D", str(data), "-p", str(self.ports.postgres)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        self._start("postgres", command, as_postgres=True)
        wait_until(self._create_database, 60, "PostgreSQL")

    def _create_database(self) -> bool:
        import psycopg2

        try:
            connection = psycopg2.connect(
                host="127.0.0.1", port=self.ports.postgres, user="airflow", dbname="postgres"
            )
        except psycopg2.OperationalError:
            return False
        connection.autocommit = True  # CREATE DATABASE runs outside a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = 'airflow'")
                if cursor.fetchone() is None:
                    cursor.execute("CREATE DATABASE airflow")
        finally:
            connection.close()
        return True

    def _redis_command(self) -> list[str]:
        folder = self.root / "redis"
        folder.mkdir()
        return [
            "redis-server", "--port", str(self.ports.redis), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(folder), "--daemonize", "no",
        ]  # fmt: skip

    def _migrate(self) -> None:
        with self.log("db-migrate").open("wb") as output:
            subprocess.run(
                ["airflow", "db", "migrate"],
                env=process_env(self.settings, "db-migrate"),
                cwd=self.root,
                stdout=output,
                stderr=subprocess.STDOUT,
                check=True,
                start_new_session=True,
            )

    def start_airflow(self, name: str) -> None:
        """Start (or restart) one Airflow service (``SERVICES``) or Celery worker (``WORKERS``)."""
        if name in WORKERS:
            command = [
                "airflow", "celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", "1",
                "--pid", str(self.root / f"{name}.pid"),
            ]  # fmt: skip
            env = process_env(self.settings, name, self.ports.worker_logs[name])
        elif name in SERVICES:
            command, env = ["airflow", name], process_env(self.settings, name)
        else:
            raise ValueError(f"not a cluster service: {name!r} (one of {', '.join(SERVICES + WORKERS)})")
        self._start(name, command, as_postgres=False, env=env)

    def stop_airflow(self, name: str, sig: int = signal.SIGTERM, grace: float = 30) -> None:
        """Send ``sig`` to the process group of ``name`` and wait for it (SIGKILL after ``grace`` s)."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def kill_airflow(self, name: str) -> list[int]:
        """``kill -9`` the whole of ``name``: its process group and every descendant; return their pids."""
        process = self.processes.pop(name)
        victims = [process.pid, *descendants(process.pid)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
        return victims

    def group_of(self, name: str) -> int:
        """The process group of ``name`` (its pid: each process leads its own group)."""
        return self.processes[name].pid

    # -- health ---------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """The api-server's base URL."""
        return f"http://127.0.0.1:{self.ports.api_server}"

    def health(self) -> dict[str, Any]:
        """Airflow's own ``/api/v2/monitor/health`` answer."""
        with urllib.request.urlopen(f"{self.api_url}/api/v2/monitor/health", timeout=5) as answer:  # noqa: S310
            return dict(json.loads(answer.read()))

    def wait_healthy(self, timeout: float = 240) -> None:
        """Wait until the api-server, scheduler, triggerer, dag-processor and both workers answer."""

        def airflow_healthy() -> bool:
            self._check_alive()
            health = self.health()
            parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
            return all((health.get(part) or {}).get("status") == "healthy" for part in parts)

        wait_until(airflow_healthy, timeout, "Airflow (api-server, scheduler, triggerer, dag-processor)", 2)
        wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{self.ports.scheduler_health}/health"), 60, "the scheduler"
        )
        wait_until(lambda: set(self.ping_workers()) >= set(WORKERS), 120, "both Celery workers", 2)

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with code {process.returncode}; see {self.log(name)}")

    def celery_app(self) -> Any:
        """A Celery client of the cluster's broker (for ``ping`` and ``inspect``)."""
        from celery import Celery

        return Celery("cots-cluster", broker=self.settings["AIRFLOW__CELERY__BROKER_URL"])

    def ping_workers(self, timeout: float = 2) -> dict[str, str]:
        """The workers that answer ``celery inspect ping`` (compose's health check): name -> Celery node."""
        answers = self.celery_app().control.ping(timeout=timeout)
        return {node.split("@")[0]: node for answer in answers for node in answer}

    # -- leftovers ------------------------------------------------------------------------------
    def leftovers(self) -> list[str]:
        """Live processes of this cluster: in one of its process groups, or naming its folder."""
        return list(_processes_of(self.groups, str(self.root)))


def _exit_on_sigterm() -> None:
    """Let a SIGTERM (a CI timeout) stop the cluster as Ctrl-C does, unless someone else handles it.

    pytest ends the session on KeyboardInterrupt and runs the fixtures' finalizers; ``atexit`` follows.
    """
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
        signal.SIG_DFL,
        None,
    ):
        raise_on_sigterm()


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, their children, ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if entry.name.isdigit():
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += children.get(child, [])
    return found


def _processes_of(groups: set[int], folder: str) -> Iterator[str]:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environment = (entry / "environ").read_bytes().decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        state, _, pgid = stat.rsplit(")", 1)[1].split()[:3]
        if state == "Z":
            continue
        if int(pgid) in groups or any(folder in text for text in (command, environment, cwd)):
            yield f"{entry.name} (group {pgid}): {command.strip()[:200]}"


if __name__ == "__main__":  # a manual look: start the cluster, print where it is, stop on Ctrl-C
    with Cluster(instances=int(sys.argv[1]) if len(sys.argv) > 1 else 200) as cluster:
        print(f"Airflow on {cluster.api_url}, everything under {cluster.root}; Ctrl-C stops it", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
