"""docker-compose.yaml: the official layout plus the emulator, mounting what the project needs."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_services(compose):
    assert set(compose["services"]) == {
        "postgres", "redis", "local-aws", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-worker", "airflow-triggerer", "airflow-init",
    }  # fmt: skip


def test_airflow_services_share_the_common_block_and_wait_for_init(compose):
    for name, service in compose["services"].items():
        if not name.startswith("airflow-"):
            continue
        assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        if name != "airflow-init":
            assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", (
                name
            )
            assert "healthcheck" in service, name


def test_every_airflow_service_shares_one_jwt_secret(compose):
    secrets = {
        service["environment"].get("AIRFLOW__API_AUTH__JWT_SECRET")
        for name, service in compose["services"].items()
        if name.startswith("airflow-")
    }
    assert len(secrets) == 1 and None not in secrets, "Celery workers need the api-server's secret"


def test_mounts_dags_plugins_and_the_emulator(compose):
    volumes = compose["services"]["airflow-worker"]["volumes"]
    for folder in ("./dags:", "./plugins:", "./local:"):
        assert any(v.startswith(folder) for v in volumes), folder


def test_aws_only_through_aws_default_pointing_at_the_emulator(compose):
    env = compose["services"]["airflow-scheduler"]["environment"]
    assert "http://local-aws:5000" in env["AIRFLOW_CONN_AWS_DEFAULT"]
    assert "AWS_ENDPOINT_URL" not in env


def test_the_sample_batch_path_exists_in_the_repo(compose):
    script = compose["services"]["airflow-worker"]["environment"]["COTS_BATCH_SCRIPT"]
    assert (ROOT / script.removeprefix("/opt/airflow/")).is_file()


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="Debian's docker-compose is not installed")
def test_docker_compose_accepts_the_file():
    subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yaml"), "config", "-q"], check=True)


def test_every_service_has_a_health_check_and_the_worker_answers_celery_ping(compose):
    for name, service in compose["services"].items():
        if name != "airflow-init":
            assert "healthcheck" in service, name
    assert "inspect ping" in " ".join(compose["services"]["airflow-worker"]["healthcheck"]["test"])
    assert compose["services"]["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


class TestTheDistributedSuiteRunsTheseSettings:
    """tests/distributed runs compose's x-airflow-common settings; only these differ, for these reasons."""

    # Hosts and ports of the containers, paths inside them, and an auth manager this project does not install.
    OVERRIDDEN = {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW_CONN_AWS_DEFAULT",
        "COTS_BATCH_SCRIPT",
        "AIRFLOW__CORE__AUTH_MANAGER",
    }
    # What one host needs and containers do not, and the knobs that make faults observable in a test.
    ADDED = {
        "AIRFLOW_HOME",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__PLUGINS_FOLDER",
        "AIRFLOW__API__PORT",
        "AIRFLOW__API__BASE_URL",
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT",
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE",
        "AIRFLOW__CELERY__WORKER_CONCURRENCY",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT",
    }

    @pytest.fixture(scope="class")
    def settings(self, tmp_path_factory):
        from cluster import Ports, airflow_settings, compose_settings

        ports = Ports(
            postgres=1, redis=2, api_server=3, scheduler_health=4, trigger_logs=5, worker_logs={"a": 6}
        )
        compose = compose_settings(ROOT / "docker-compose.yaml")
        return compose, airflow_settings(
            compose, ports, "http://127.0.0.1:7", tmp_path_factory.mktemp("home")
        )

    def test_only_the_listed_compose_settings_differ_and_each_has_a_reason(self, settings):
        from cluster import OVERRIDDEN

        compose, suite = settings
        assert set(compose) <= set(suite), "the suite drops a compose setting"
        changed = {key for key in compose if suite[key] != compose[key]}
        assert changed == self.OVERRIDDEN == set(OVERRIDDEN)
        assert all(OVERRIDDEN.values())

    def test_the_suite_adds_only_the_listed_settings(self, settings):
        from cluster import ONE_HOST_ONLY

        compose, suite = settings
        assert set(suite) - set(compose) == self.ADDED == set(ONE_HOST_ONLY)
        assert all(ONE_HOST_ONLY.values())

    def test_a_new_compose_setting_reaches_every_process_unchanged(self, settings, tmp_path):
        from cluster import Ports, airflow_settings, compose_settings, process_env

        compose_file = tmp_path / "docker-compose.yaml"
        text = (ROOT / "docker-compose.yaml").read_text()
        compose_file.write_text(
            text.replace(
                "    AIRFLOW__CORE__EXECUTOR: CeleryExecutor\n",
                "    AIRFLOW__CORE__EXECUTOR: CeleryExecutor\n    AIRFLOW__CORE__PARALLELISM: ${PAR:-7}\n",
            )
        )
        ports = Ports(
            postgres=1, redis=2, api_server=3, scheduler_health=4, trigger_logs=5, worker_logs={"a": 6}
        )
        suite = airflow_settings(compose_settings(compose_file), ports, "http://127.0.0.1:7", tmp_path)
        for name in ("scheduler", "worker-a"):
            assert process_env(suite, name, 6)["AIRFLOW__CORE__PARALLELISM"] == "7"

    def test_the_hosts_are_rewritten_not_the_credentials_or_databases(self, settings):
        compose, suite = settings
        assert (
            suite["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
            == "postgresql+psycopg2://airflow:airflow@127.0.0.1:1/airflow"
        )
        assert (
            suite["AIRFLOW__CELERY__RESULT_BACKEND"]
            == "db+postgresql+psycopg2://airflow:airflow@127.0.0.1:1/airflow"
        )
        assert suite["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@127.0.0.1:2/0"
        assert suite["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:3/execution/"
        assert json.loads(suite["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"] == "http://127.0.0.1:7"
        assert (ROOT / "local" / "sample_batch" / "cots_batch.sh") == Path(suite["COTS_BATCH_SCRIPT"])
        assert suite["AIRFLOW__API_AUTH__JWT_SECRET"] == compose["AIRFLOW__API_AUTH__JWT_SECRET"] != ""
