"""SendCommand validation, done as AWS does it: completely, before anything is created.

Limits come from botocore's SSM model (InstanceIdList max 50, Targets max 5, TargetValues max
50, Comment max 100, TimeoutSeconds 30..2592000, the MaxConcurrency / MaxErrors patterns) and
from the AWS-RunShellScript document (`commands` required, `workingDirectory`,
`executionTimeout` 1..172800, default 3600).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ssm_emulator.exceptions import (
    DuplicateInstanceId,
    InvalidDocument,
    InvalidDocumentVersion,
    InvalidInstanceId,
    InvalidParameters,
    InvalidTarget,
    constraint_error,
)

DOCUMENT_NAME = "AWS-RunShellScript"
DOCUMENT_VERSION = "1"
PLUGIN_NAME = "aws:runShellScript"

MAX_INSTANCE_IDS = 50
MAX_TARGETS = 5
MAX_TARGET_VALUES = 50
MAX_COMMENT = 100
MIN_TIMEOUT_SECONDS = 30
MAX_TIMEOUT_SECONDS = 2_592_000
DEFAULT_TIMEOUT_SECONDS = 3600
DEFAULT_EXECUTION_TIMEOUT = 3600
MAX_EXECUTION_TIMEOUT = 172_800
MAX_WORKING_DIRECTORY = 4096

MAX_CONCURRENCY_PATTERN = r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$"
MAX_ERRORS_PATTERN = r"^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$"
INSTANCE_ID_RE = re.compile(r"(^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)")
_DOCUMENT_ARN_RE = re.compile(r"^arn:aws[a-z-]*:ssm:[a-z0-9-]*:(\d{12})?:document/(?P<name>.+)$")
_KNOWN_PARAMETERS = ("commands", "workingDirectory", "executionTimeout")


@dataclass(frozen=True)
class SendCommandRequest:
    """A validated SendCommand request for AWS-RunShellScript."""

    instance_ids: list[str]
    targets: list[dict[str, Any]]
    commands: list[str]
    working_directory: str
    execution_timeout: int
    parameters: dict[str, list[str]]
    document_name: str = DOCUMENT_NAME
    comment: str = ""
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    max_concurrency: str = "50"
    max_errors: str = "0"
    output_s3_bucket_name: str = ""
    output_s3_key_prefix: str = ""
    output_s3_region: str = ""
    service_role_arn: str = ""
    notification_config: dict[str, Any] = field(default_factory=dict)
    cloudwatch_output_config: dict[str, Any] = field(default_factory=dict)


def validate_send_command(params: dict[str, Any]) -> SendCommandRequest:
    """Check a SendCommand request and return it normalized, or raise the error AWS raises."""
    _check_document(params.get("DocumentName"), params.get("DocumentVersion"))
    instance_ids = list(params.get("InstanceIds") or [])
    targets = list(params.get("Targets") or [])
    _check_instance_ids(instance_ids, "instanceIds")
    _check_targets(targets)
    if bool(instance_ids) == bool(targets):
        raise InvalidParameters("Specify exactly one of InstanceIds or Targets.")
    comment = params.get("Comment") or ""
    if len(comment) > MAX_COMMENT:
        raise constraint_error(comment, "comment", f"have length less than or equal to {MAX_COMMENT}")
    timeout_seconds = _check_timeout_seconds(params.get("TimeoutSeconds"))
    max_concurrency = _check_pattern(
        params.get("MaxConcurrency") or "50", "maxConcurrency", MAX_CONCURRENCY_PATTERN
    )
    max_errors = _check_pattern(params.get("MaxErrors") or "0", "maxErrors", MAX_ERRORS_PATTERN)
    parameters = _check_parameters(params.get("Parameters") or {})
    return SendCommandRequest(
        instance_ids=instance_ids,
        targets=targets,
        commands=parameters["commands"],
        working_directory=(parameters.get("workingDirectory") or [""])[0],
        execution_timeout=int((parameters.get("executionTimeout") or [DEFAULT_EXECUTION_TIMEOUT])[0]),
        parameters=parameters,
        comment=comment,
        timeout_seconds=timeout_seconds,
        max_concurrency=max_concurrency,
        max_errors=max_errors,
        output_s3_bucket_name=params.get("OutputS3BucketName") or "",
        output_s3_key_prefix=params.get("OutputS3KeyPrefix") or "",
        output_s3_region=params.get("OutputS3Region") or "",
        service_role_arn=params.get("ServiceRoleArn") or "",
        notification_config=dict(params.get("NotificationConfig") or {}),
        cloudwatch_output_config=dict(params.get("CloudWatchOutputConfig") or {}),
    )


def resolve_limit(value: str, total: int, minimum: int) -> int:
    """Turn a MaxConcurrency / MaxErrors value ("10" or "10%") into a count of targets.

    Percentages are rounded down, and never go below `minimum` (1 for concurrency, 0 for errors).
    """
    if value.endswith("%"):
        return max(minimum, total * int(value[:-1]) // 100)
    return max(minimum, int(value))


def check_instance_id_format(instance_id: str) -> None:
    """Raise InvalidInstanceId unless `instance_id` looks like an EC2 or managed instance id."""
    if not isinstance(instance_id, str) or not INSTANCE_ID_RE.match(instance_id):
        raise InvalidInstanceId(f"Instance Id {instance_id} is not valid.")


def _check_document(name: str | None, version: str | None) -> None:
    match = _DOCUMENT_ARN_RE.match(name or "")
    plain = match.group("name") if match else name
    if plain != DOCUMENT_NAME:
        raise InvalidDocument(f"Document {name} does not exist (the emulator runs only {DOCUMENT_NAME}).")
    if version not in (None, "", "$DEFAULT", "$LATEST", DOCUMENT_VERSION):
        raise InvalidDocumentVersion(f"Document {DOCUMENT_NAME} has no version {version}.")


def _check_instance_ids(instance_ids: list[str], member: str) -> None:
    if len(instance_ids) > MAX_INSTANCE_IDS:
        raise constraint_error(instance_ids, member, f"have length less than or equal to {MAX_INSTANCE_IDS}")
    for instance_id in instance_ids:
        check_instance_id_format(instance_id)
    seen: set[str] = set()
    for instance_id in instance_ids:
        if instance_id in seen:
            raise DuplicateInstanceId(f"Instance Id {instance_id} is specified more than once.")
        seen.add(instance_id)


def _check_targets(targets: list[dict[str, Any]]) -> None:
    if len(targets) > MAX_TARGETS:
        raise constraint_error(targets, "targets", f"have length less than or equal to {MAX_TARGETS}")
    for target in targets:
        key, values = target.get("Key") or "", list(target.get("Values") or [])
        if not values:
            raise InvalidTarget(f"Target {key} has no values.")
        if len(values) > MAX_TARGET_VALUES:
            raise constraint_error(values, "targets.member.values", "have length less than or equal to 50")
        if key == "InstanceIds":
            _check_instance_ids(values, "targets.member.values")
        elif not (key.startswith("tag:") and len(key) > 4) and key != "tag-key":
            raise InvalidTarget(
                f"Target key {key} is not supported; use InstanceIds, tag:<key> or tag-key "
                "(resource groups are not emulated)."
            )


def _check_timeout_seconds(value: Any) -> int:
    if value is None:
        return DEFAULT_TIMEOUT_SECONDS
    timeout = int(value)
    if timeout < MIN_TIMEOUT_SECONDS:
        raise constraint_error(
            timeout, "timeoutSeconds", f"have value greater than or equal to {MIN_TIMEOUT_SECONDS}"
        )
    if timeout > MAX_TIMEOUT_SECONDS:
        raise constraint_error(
            timeout, "timeoutSeconds", f"have value less than or equal to {MAX_TIMEOUT_SECONDS}"
        )
    return timeout


def _check_pattern(value: str, member: str, pattern: str) -> str:
    if not re.match(pattern, value):
        raise constraint_error(value, member, f"satisfy regular expression pattern: {pattern}")
    return value


def _check_parameters(parameters: dict[str, Any]) -> dict[str, list[str]]:
    unknown = sorted(set(parameters) - set(_KNOWN_PARAMETERS))
    if unknown:
        raise InvalidParameters(
            f"Document {DOCUMENT_NAME} does not support parameters: {', '.join(unknown)}."
        )
    normalized = {name: [str(v) for v in values] for name, values in parameters.items()}
    if not normalized.get("commands"):
        raise InvalidParameters("Parameter 'commands' is required and needs at least one command.")
    for name in ("workingDirectory", "executionTimeout"):
        if len(normalized.get(name, [])) > 1:
            raise InvalidParameters(f"Parameter '{name}' takes a single value.")
    if len((normalized.get("workingDirectory") or [""])[0]) > MAX_WORKING_DIRECTORY:
        raise InvalidParameters("Parameter 'workingDirectory' is longer than 4096 characters.")
    timeout = (normalized.get("executionTimeout") or [str(DEFAULT_EXECUTION_TIMEOUT)])[0]
    if not timeout.isdigit() or not 1 <= int(timeout) <= MAX_EXECUTION_TIMEOUT:
        raise InvalidParameters(
            f"Parameter 'executionTimeout' is '{timeout}'; it must be a whole number of seconds "
            f"from 1 to {MAX_EXECUTION_TIMEOUT}."
        )
    return normalized
