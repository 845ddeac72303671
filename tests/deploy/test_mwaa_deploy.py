"""`make mwaa-deploy`: S3 on moto (versioning and all), MWAA on the fake held to botocore's model."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import boto3
import botocore.session
import pytest
from moto import mock_aws
from mwaa_deploy import (
    ENV_BROKEN,
    UPDATABLE,
    UPDATE_DONE,
    UPDATE_FAILED,
    Calls,
    DeployError,
    Deployment,
    bundle,
    check_plugins_zip,
)

ROOT = Path(__file__).resolve().parents[2]
BUCKET, ENV = "airflow-cots-prod", "cots-prod"
VERSIONED_KEYS = ("plugins.zip", "requirements.txt", "startup.sh")


@pytest.fixture(scope="module")
def upload(tmp_path_factory):
    return bundle(tmp_path_factory.mktemp("deploy") / "upload")


@pytest.fixture
def s3():
    # moto keeps one state per process, shared with the in-process emulator of the other tests:
    # neither start nor stop may reset it (the emulator's instances, topic and queue live there).
    mock = mock_aws()
    mock.start(reset=False)
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    try:
        yield client
    finally:
        versions = client.list_object_versions(Bucket=BUCKET)
        for item in [*versions.get("Versions", []), *versions.get("DeleteMarkers", [])]:
            client.delete_object(Bucket=BUCKET, Key=item["Key"], VersionId=item["VersionId"])
        client.delete_bucket(Bucket=BUCKET)
        mock.stop(remove_data=False)


@pytest.fixture
def said():
    return []


@pytest.fixture
def deployment(s3, fake_mwaa, said):
    fake_mwaa.add(ENV, BUCKET)
    return Deployment(
        env=ENV,
        bucket=BUCKET,
        s3=s3,
        mwaa=fake_mwaa,
        mwaa_update=fake_mwaa,
        calls=Calls(dry_run=False, out=said.append),
        poll_seconds=0,
        sleep=lambda seconds: None,
    )


def versions(s3, key):
    return [v["VersionId"] for v in s3.list_object_versions(Bucket=BUCKET, Prefix=key).get("Versions", [])]


def keys(s3):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


class TestDeploy:
    def test_uploads_points_the_environment_at_the_new_versions_waits_then_uploads_dags(
        self, deployment, upload, s3, fake_mwaa, said
    ):
        deployment.run(upload)

        environment = fake_mwaa.get_environment(Name=ENV)["Environment"]
        assert environment["Status"] == "AVAILABLE" and environment["LastUpdate"]["Status"] == "SUCCESS"
        for key, field in zip(VERSIONED_KEYS, ("Plugins", "Requirements", "StartupScript"), strict=True):
            assert environment[f"{field}S3Path"] == key
            assert environment[f"{field}S3ObjectVersion"] == versions(s3, key)[0]
        assert keys(s3) == ["dags/cots_jobs.py", "dags/cots_jobs.yaml", *VERSIONED_KEYS]
        progress = [line for line in said if line.startswith(f"{ENV}: ")]
        assert progress[0].startswith(f"{ENV}: UPDATING") and progress[-1].startswith(
            f"{ENV}: AVAILABLE, last update SUCCESS"
        )
        assert said.index(progress[-1]) < said.index(next(line for line in said if "Uploading dags/" in line))

    def test_unchanged_files_keep_their_version_and_skip_the_update(
        self, deployment, upload, s3, fake_mwaa, said
    ):
        deployment.run(upload)
        deployment.run(upload)

        assert len(fake_mwaa.updates) == 1
        assert all(len(versions(s3, key)) == 1 for key in VERSIONED_KEYS)
        assert len(versions(s3, "dags/cots_jobs.py")) == 2
        assert any("unchanged: no environment update" in line for line in said)

    def test_a_changed_file_gets_a_new_version_and_the_others_keep_theirs(
        self, deployment, upload, tmp_path, s3, fake_mwaa
    ):
        deployment.run(upload)
        changed = bundle(tmp_path / "changed")
        (changed / "startup.sh").write_text(
            (changed / "startup.sh").read_text() + 'export COTS_BATCH_RETRIES="3"\n'
        )
        deployment.run(changed)

        update = fake_mwaa.updates[-1]
        assert (
            update["StartupScriptS3ObjectVersion"]
            == versions(s3, "startup.sh")[0]
            != fake_mwaa.updates[0]["StartupScriptS3ObjectVersion"]
        )
        assert update["PluginsS3ObjectVersion"] == fake_mwaa.updates[0]["PluginsS3ObjectVersion"]

    def test_a_failed_update_names_its_error_and_leaves_dags_alone(self, deployment, upload, s3, fake_mwaa):
        fake_mwaa.update_error = {
            "ErrorCode": "INSTALL_FAILED",
            "ErrorMessage": "requirements did not install",
        }

        with pytest.raises(
            DeployError, match="INSTALL_FAILED: requirements did not install; dags/ not uploaded"
        ):
            deployment.run(upload)
        assert keys(s3) == list(VERSIONED_KEYS)

    def test_a_lost_update_answer_is_looked_at_not_repeated(self, deployment, upload, fake_mwaa, said):
        fake_mwaa.lose_next_answer = True

        deployment.run(upload)

        assert len(fake_mwaa.updates) == 1
        assert any("answer was lost" in line for line in said)


class TestRefusals:
    """Each refusal comes before anything is written."""

    def test_an_unversioned_bucket(self, deployment, upload, s3, fake_mwaa):
        s3.create_bucket(Bucket="plain")
        fake_mwaa.add("plain-env", "plain")
        deployment.bucket, deployment.env = "plain", "plain-env"

        with pytest.raises(DeployError, match="bucket plain is not versioned .*never enabled"):
            deployment.run(upload)
        assert s3.list_objects_v2(Bucket="plain")["KeyCount"] == 0 and not fake_mwaa.updates

    def test_a_missing_environment(self, deployment, upload, s3, fake_mwaa):
        deployment.env = "nowhere"

        with pytest.raises(DeployError, match="no MWAA environment named nowhere"):
            deployment.run(upload)
        assert keys(s3) == [] and not fake_mwaa.updates

    def test_an_environment_reading_another_bucket(self, deployment, upload, s3, fake_mwaa):
        fake_mwaa.add(ENV, "someone-elses-bucket")

        with pytest.raises(DeployError, match="reads from arn:aws:s3:::someone-elses-bucket"):
            deployment.run(upload)
        assert keys(s3) == []

    def test_an_environment_that_is_already_updating(self, deployment, upload, s3, fake_mwaa):
        fake_mwaa.add(ENV, BUCKET, Status="UPDATING")

        with pytest.raises(DeployError, match="is UPDATING: deploy again once it is AVAILABLE"):
            deployment.run(upload)
        assert keys(s3) == []

    @pytest.mark.parametrize(
        ("name", "reason"),
        [
            ("cots_ssm/__pycache__/status.cpython-312.pyc", "bytecode caches"),
            ("ssm_fleet/status.pyc", "bytecode caches"),
            ("/usr/local/airflow/plugins/ssm_fleet/status.py", "absolute or escaping paths"),
            ("../ssm_fleet/status.py", "absolute or escaping paths"),
            ("plugins/ssm_fleet/status.py", "a plugins/ folder at its top"),
        ],
    )
    def test_a_plugins_zip_mwaa_would_unpack_wrongly(self, deployment, upload, tmp_path, s3, name, reason):
        bad = bundle(tmp_path / "bad")
        with zipfile.ZipFile(bad / "plugins.zip", "a") as archive:
            archive.writestr(name, "")

        with pytest.raises(DeployError, match=f"plugins.zip is not fit for MWAA: {reason}"):
            deployment.run(bad)
        assert keys(s3) == []

    def test_the_upload_set_itself_is_fit(self, upload):
        check_plugins_zip(upload / "plugins.zip")


def test_dry_run_prints_every_call_and_needs_no_aws(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true"
    )
    command = [sys.executable, "deploy/mwaa_deploy.py", "--env", "x", "--bucket", "y", "--dry-run"]
    result = subprocess.run(
        [*command, "--build-dir", str(tmp_path / "mwaa")], env=env, cwd=ROOT, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    calls = [
        line.strip()
        for line in result.stdout.splitlines()
        if line.startswith("  s3.") or line.startswith("  mwaa.")
    ]
    assert [call.split("(")[0] for call in calls] == [
        "s3.get_bucket_versioning",
        "mwaa.get_environment",
        "s3.put_object",
        "s3.put_object",
        "s3.put_object",
        "mwaa.update_environment",
        "s3.put_object",
        "s3.put_object",
    ]
    assert "Key='dags/cots_jobs.py'" in calls[-2]
    assert "Key='dags/cots_jobs.yaml'" in calls[-1]
    assert "StartupScriptS3ObjectVersion='<dry run>'" in calls[5]
    assert result.stdout.rstrip().endswith("Dry run: nothing was changed.")


def test_the_status_vocabulary_is_mwaa_s():
    model = botocore.session.get_session().get_service_model("mwaa")
    assert UPDATABLE | ENV_BROKEN <= set(model.shape_for("EnvironmentStatus").enum)
    assert {UPDATE_DONE} | UPDATE_FAILED <= set(model.shape_for("UpdateStatus").enum)
