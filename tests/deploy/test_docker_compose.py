"""docker-compose.yaml: the official layout plus the emulator, mounting what the project needs."""

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
