"""Deploy the package to an existing Amazon MWAA environment in one command.

Builds the upload set (``mwaa/bundle.py``), refuses a ``plugins.zip`` MWAA would unpack wrongly,
checks that the bucket is versioned and is the environment's, uploads ``plugins.zip``,
``requirements.txt`` and ``startup.sh`` (unchanged files keep their current object version), points
the environment at their new object versions and waits for the update, then uploads ``dags/``: a
new DAG is never parsed against the old plugins, and a failed update leaves the old DAG in place.

Usage: ``python deploy/mwaa_deploy.py --env NAME --bucket BUCKET [--region R] [--dry-run]``.
``--dry-run`` prints every AWS call and makes none (no credentials needed).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "mwaa"))
from bundle import bundle  # noqa: E402

ENV_NAME = re.compile(r"^[a-zA-Z][0-9a-zA-Z_-]{0,79}$")
UPDATABLE = frozenset({"AVAILABLE", "UPDATE_FAILED"})
UPDATE_DONE = "SUCCESS"
UPDATE_FAILED = frozenset({"FAILED"})
ENV_BROKEN = frozenset({"UPDATE_FAILED", "UNAVAILABLE", "CREATE_FAILED", "DELETED", "DELETING"})
# Versioned files: the environment runs the object version it is told, so each has a path and a version.
VERSIONED = (
    ("plugins.zip", "PluginsS3Path", "PluginsS3ObjectVersion"),
    ("requirements.txt", "RequirementsS3Path", "RequirementsS3ObjectVersion"),
    ("startup.sh", "StartupScriptS3Path", "StartupScriptS3ObjectVersion"),
)
DRY = "<dry run>"


class DeployError(Exception):
    """A refusal or a failure, worded for the person who ran the deployment."""


def check_plugins_zip(path: Path) -> None:
    """Refuse a plugins.zip with bytecode caches or paths that MWAA would unpack outside its folder."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    caches = [n for n in names if "__pycache__" in PurePosixPath(n).parts or n.endswith(".pyc")]
    escaping = [
        n for n in names if n.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", n) or ".." in n.split("/")
    ]
    nested = [n for n in names if n.startswith("plugins/")]
    problems = [
        f"bytecode caches ({', '.join(caches[:3])})" if caches else "",
        f"absolute or escaping paths ({', '.join(escaping[:3])})" if escaping else "",
        f"a plugins/ folder at its top ({nested[0]}): zip from inside plugins/" if nested else "",
    ]
    if any(problems):
        raise DeployError(f"{path} is not fit for MWAA: {'; '.join(p for p in problems if p)}")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _show(value: Any) -> str:
    if isinstance(value, Path):
        shown = value.relative_to(ROOT) if value.is_relative_to(ROOT) else value
        return f"<{shown}, {value.stat().st_size} bytes>"
    return repr(value)


@dataclass
class Calls:
    """Every AWS call goes through here: printed, then made unless this is a dry run."""

    dry_run: bool
    out: Callable[[str], None] = print

    def __call__(self, service: str, client: Any, operation: str, **params: Any) -> dict[str, Any]:
        self.out(f"  {service}.{operation}({', '.join(f'{k}={_show(v)}' for k, v in params.items())})")
        if self.dry_run:
            return {}
        if isinstance(params.get("Body"), Path):
            with params["Body"].open("rb") as body:
                response: dict[str, Any] = getattr(client, operation)(**{**params, "Body": body})
            return response
        response = getattr(client, operation)(**params)
        return response


def _error_code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


@dataclass
class Deployment:
    """One deployment of the upload set to one environment; see the module docstring for the order."""

    env: str
    bucket: str
    s3: Any
    mwaa: Any
    mwaa_update: Any  # an MWAA client that does not retry: UpdateEnvironment is looked at, not repeated
    calls: Calls
    poll_seconds: float = 30.0
    timeout_seconds: float = 3600.0
    sleep: Callable[[float], None] = time.sleep

    @property
    def say(self) -> Callable[[str], None]:
        return self.calls.out

    def run(self, upload: Path) -> None:
        check_plugins_zip(upload / "plugins.zip")
        environment = self.preflight()
        versions, changed = self.upload_versioned(upload, environment)
        if changed:
            self.update(versions)
            self.wait()
        else:
            self.say("plugins.zip, requirements.txt and startup.sh are unchanged: no environment update")
        self.upload_dags(upload / "dags", environment.get("DagS3Path") or "dags")
        self.say("Dry run: nothing was changed." if self.calls.dry_run else f"Deployed to {self.env}.")

    def preflight(self) -> dict[str, Any]:
        self.say(f"Checking bucket {self.bucket} and environment {self.env}")
        versioning = self.calls("s3", self.s3, "get_bucket_versioning", Bucket=self.bucket)
        if not self.calls.dry_run and versioning.get("Status") != "Enabled":
            state = versioning.get("Status", "never enabled")
            raise DeployError(
                f"bucket {self.bucket} is not versioned (versioning: {state}):"
                " MWAA runs plugins.zip, requirements.txt and startup.sh by object version; enable versioning"
                " on the bucket (S3 console > Properties > Bucket Versioning) and deploy again"
            )
        try:
            answer = self.calls("mwaa", self.mwaa, "get_environment", Name=self.env)
        except Exception as error:
            if _error_code(error) == "ResourceNotFoundException":
                raise DeployError(
                    f"no MWAA environment named {self.env} in region {self._region()}: create it first"
                    " (or check the name and AWS_DEFAULT_REGION)"
                ) from error
            raise
        environment: dict[str, Any] = answer.get("Environment", {})
        if self.calls.dry_run:
            return environment
        source = environment.get("SourceBucketArn", "")
        if source.rsplit(":", 1)[-1] != self.bucket:
            raise DeployError(f"environment {self.env} reads from {source}, not from bucket {self.bucket}")
        if environment.get("Status") not in UPDATABLE:
            raise DeployError(
                f"environment {self.env} is {environment.get('Status')}: deploy again once it is AVAILABLE"
            )
        return environment

    def _region(self) -> str:
        return str(getattr(getattr(self.mwaa, "meta", None), "region_name", None) or "(default)")

    def upload_versioned(self, upload: Path, environment: dict[str, Any]) -> tuple[dict[str, str], bool]:
        """Upload the three versioned files; an unchanged one keeps the version the environment runs."""
        versions, changed = {}, False
        for name, path_field, version_field in VERSIONED:
            key, digest = environment.get(path_field) or name, sha256(upload / name)
            current = environment.get(version_field)
            if current and self._digest_of(key, current) == digest:
                versions[path_field], versions[version_field] = key, current
                continue
            self.say(f"Uploading {name} to s3://{self.bucket}/{key}")
            answer = self.calls(
                "s3", self.s3, "put_object", Bucket=self.bucket, Key=key, Body=upload / name,
                Metadata={"sha256": digest},
            )  # fmt: skip
            if not self.calls.dry_run and not answer.get("VersionId"):
                raise DeployError(f"s3://{self.bucket}/{key} got no object version: is versioning suspended?")
            versions[path_field], versions[version_field] = key, answer.get("VersionId", DRY)
            changed = True
        return versions, changed

    def _digest_of(self, key: str, version: str) -> str | None:
        try:
            head = self.calls("s3", self.s3, "head_object", Bucket=self.bucket, Key=key, VersionId=version)
        except Exception as error:
            if _error_code(error) in {"404", "NoSuchKey", "NoSuchVersion", "400"}:
                return None
            raise
        digest = head.get("Metadata", {}).get("sha256")
        return str(digest) if digest else None

    def update(self, versions: dict[str, str]) -> None:
        self.say(f"Pointing {self.env} at the new object versions")
        try:
            self.calls("mwaa", self.mwaa_update, "update_environment", Name=self.env, **versions)
        except Exception as error:
            if _error_code(error):  # AWS answered: refused for good (validation, access, conflict)
                raise DeployError(f"UpdateEnvironment of {self.env} was refused: {error}") from error
            # Lost after AWS may have acted (timeout, dropped connection): look before repeating it.
            answer = self.calls("mwaa", self.mwaa, "get_environment", Name=self.env)
            if answer.get("Environment", {}).get("Status") != "UPDATING":
                raise DeployError(f"UpdateEnvironment of {self.env} did not reach MWAA: {error}") from error
            self.say(f"UpdateEnvironment's answer was lost ({error}), but {self.env} is updating")

    def wait(self) -> None:
        """Poll until the update has finished; an update that failed or hangs raises."""
        if self.calls.dry_run:
            self.say(
                f"  (then get_environment every {self.poll_seconds:.0f} s until the update has finished)"
            )
            return
        started, last, seen_updating = time.monotonic(), "", False
        while True:
            environment = self.calls("mwaa", self.mwaa, "get_environment", Name=self.env)["Environment"]
            status, update = environment.get("Status", ""), environment.get("LastUpdate", {})
            progress = f"{status}, last update {update.get('Status', '?')}"
            if progress != last:
                self.say(f"{self.env}: {progress} after {time.monotonic() - started:.0f} s")
                last = progress
            # Until the environment has been seen updating, LastUpdate may still be the previous one's.
            seen_updating = seen_updating or status not in UPDATABLE
            if seen_updating and self._finished(environment):
                return
            if time.monotonic() - started > self.timeout_seconds:
                raise DeployError(
                    f"{self.env} still {status} after {self.timeout_seconds:.0f} s; dags/ not uploaded"
                )
            self.sleep(self.poll_seconds)

    def _finished(self, environment: dict[str, Any]) -> bool:
        status, update = environment.get("Status", ""), environment.get("LastUpdate", {})
        if status in ENV_BROKEN or update.get("Status") in UPDATE_FAILED:
            error = update.get("Error", {})
            raise DeployError(
                f"the update of {self.env} failed ({status}): {error.get('ErrorCode', '?')}:"
                f" {error.get('ErrorMessage', 'no message')}; dags/ not uploaded. See the environment's"
                " CloudWatch logs (requirements_install_*, startup_script_*) and its MWAA console page"
            )
        return bool(status == "AVAILABLE" and update.get("Status") == UPDATE_DONE)

    def upload_dags(self, dags: Path, prefix: str) -> None:
        self.say(
            f"Uploading dags/ to s3://{self.bucket}/{prefix.strip('/')}/ (MWAA syncs it within a minute)"
        )
        for path in sorted(p for p in dags.rglob("*") if p.is_file()):
            key = f"{prefix.strip('/')}/{path.relative_to(dags).as_posix()}"
            self.calls("s3", self.s3, "put_object", Bucket=self.bucket, Key=key, Body=path)


def _clients(region: str | None) -> tuple[Any, Any, Any]:
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(region_name=region)
    # Reads, and puts of the same body to the same key (a repeat only adds a version), may retry.
    retried = Config(retries={"mode": "standard", "max_attempts": 5})
    once = Config(retries={"mode": "standard", "max_attempts": 1})
    return (
        session.client("s3", config=retried),
        session.client("mwaa", config=retried),
        session.client("mwaa", config=once),
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="the MWAA environment's name")
    parser.add_argument("--bucket", required=True, help="the environment's (versioned) source bucket")
    parser.add_argument("--region", help="the environment's region (default: the AWS configuration's)")
    parser.add_argument("--dry-run", action="store_true", help="print every AWS call, make none")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build" / "mwaa")
    parser.add_argument("--poll-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    if not ENV_NAME.match(args.env) or not args.bucket or "/" in args.bucket:
        parser.error(
            f"not an MWAA environment and an S3 bucket name: ENV={args.env!r} BUCKET={args.bucket!r}"
        )
    print(f"Building the upload set in {args.build_dir}")
    upload = bundle(args.build_dir)
    if args.dry_run:
        print("Dry run: every AWS call is printed, none is made")
    s3, mwaa, mwaa_update = (None, None, None) if args.dry_run else _clients(args.region)
    deployment = Deployment(
        env=args.env,
        bucket=args.bucket,
        s3=s3,
        mwaa=mwaa,
        mwaa_update=mwaa_update,
        calls=Calls(args.dry_run),
        poll_seconds=args.poll_seconds,
    )
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        deployment.run(upload)
    except DeployError as error:
        print(f"mwaa-deploy: {error}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as error:  # denied for good, or no credentials: name it, no trace
        print(f"mwaa-deploy: AWS refused or could not be reached: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
