"""AWS limits of SSM Run Command, checked before any call: pure Python, no Airflow import.

Every check raises :class:`InvalidParameterError`, a ``ValueError`` whose message names the field
and the value, so a bad value from a DAG or the trigger form is refused before anything is sent.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MAX_INSTANCE_IDS_PER_COMMAND = 50
MAX_TARGETS = 5
MAX_TAG_VALUES = 50
MAX_COMMENT_CHARS = 100
DELIVERY_TIMEOUT_RANGE = (30, 2_592_000)
EXECUTION_TIMEOUT_RANGE = (1, 172_800)

INSTANCE_ID = re.compile(r"^(i-[0-9a-f]{8}(?:[0-9a-f]{9})?|mi-[0-9a-f]{17})$")
TAG_KEY = re.compile(r"^[\w .:/=+\-@]{1,128}$")
TAG_VALUE = re.compile(r"^[\w .:/=+\-@]{0,256}$")
DOCUMENT_NAME = re.compile(r"^[a-zA-Z0-9_\-.:/]{3,128}$")
RATE_CONTROL = {
    "max_concurrency": re.compile(r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$"),
    "max_errors": re.compile(r"^([1-9][0-9]*|[0]|[1-9][0-9]%|[0-9]%|100%)$"),
}
S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
LOG_GROUP = re.compile(r"^[.\-_/#A-Za-z0-9]{1,512}$")
# Script arguments from a form are quoted anyway; refusing control characters keeps logs honest.
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
#: What SSM resolves inside a parameter value (``{{ssm:name}}``): never in a script argument.
PARAMETER_REFERENCE = "{{"


def from_template(value: Any) -> Any:
    """Templates render to strings: a rendered list or mapping arrives as JSON or Python literal text."""
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            try:
                return ast.literal_eval(value)
            except (ValueError, SyntaxError):
                return value
    return value


class InvalidParameterError(ValueError):
    """A value that AWS would refuse, or that is unsafe, named with its field."""

    def __init__(self, field: str, value: Any, reason: str):
        self.field = field
        self.value = value
        super().__init__(f"{field}={value!r} is invalid: {reason}")


def instance_ids(value: Any, *, field: str = "instance_ids") -> list[str]:
    """Check a list of EC2 / hybrid instance ids; duplicates are refused, not silently merged."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise InvalidParameterError(field, value, "give a non-empty list of instance ids")
    for item in value:
        if not isinstance(item, str) or not INSTANCE_ID.match(item):
            raise InvalidParameterError(
                field, item, "not an instance id (i- followed by 8 or 17 hex digits, or mi- and 17)"
            )
    duplicates = sorted({i for i in value if list(value).count(i) > 1})
    if duplicates:
        raise InvalidParameterError(field, duplicates, "instance ids listed more than once")
    return list(value)


def target_tags(value: Any, *, field: str = "target_tags") -> dict[str, list[str]]:
    """Check ``{"Role": ["batch"]}``: at most 5 keys (ANDed), 1 to 50 values each."""
    if not isinstance(value, Mapping) or not value:
        raise InvalidParameterError(field, value, 'give a non-empty mapping such as {"Role": ["batch"]}')
    if len(value) > MAX_TARGETS:
        raise InvalidParameterError(field, value, f"at most {MAX_TARGETS} tag keys")
    checked: dict[str, list[str]] = {}
    for key, values in value.items():
        if not isinstance(key, str) or not TAG_KEY.match(key) or key.lower().startswith("aws:"):
            raise InvalidParameterError(f"{field} key", key, "not a valid tag key")
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, Sequence) or not 1 <= len(values) <= MAX_TAG_VALUES:
            raise InvalidParameterError(f"{field}[{key!r}]", values, f"give 1 to {MAX_TAG_VALUES} values")
        for item in values:
            if not isinstance(item, str) or not TAG_VALUE.match(item):
                raise InvalidParameterError(f"{field}[{key!r}]", item, "not a valid tag value")
        checked[key] = list(values)
    return checked


def exactly_one_target(ids: Any, tags: Any) -> None:
    """Exactly one of ``instance_ids`` and ``target_tags`` may be given (non-empty)."""
    if bool(ids) == bool(tags):
        raise InvalidParameterError(
            "instance_ids/target_tags",
            {"instance_ids": ids, "target_tags": tags},
            "give exactly one of them, non-empty",
        )


def commands(value: Any, *, field: str = "commands") -> list[str]:
    """Check the shell lines of ``AWS-RunShellScript``: a non-empty list of non-empty strings."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not value:
        raise InvalidParameterError(field, value, "give a non-empty list of shell lines")
    for line in value:
        if not isinstance(line, str) or not line.strip() or "\x00" in line:
            raise InvalidParameterError(field, line, "each line must be a non-empty string without NUL")
    return list(value)


def script_arguments(value: Any, *, field: str = "script_arguments") -> list[str]:
    """Check arguments that will be shell-quoted onto the script line (see ``ssm_fleet.documents``).

    ``{{`` is refused: SSM resolves ``{{ssm:name}}`` from Parameter Store inside any parameter value.
    """
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidParameterError(field, value, "give a list of strings")
    for item in value:
        if not isinstance(item, str) or CONTROL_CHARS.search(item):
            raise InvalidParameterError(
                field, item, "each argument must be a string without control characters"
            )
        if PARAMETER_REFERENCE in item:
            raise InvalidParameterError(
                field, item, "'{{' is refused: SSM would resolve {{ssm:...}} from Parameter Store in it"
            )
    return list(value)


def quoted_command(script: str, arguments: Iterable[str]) -> str:
    """``script`` followed by each argument quoted for ``/bin/sh``: nothing reaches it unquoted.

    The POSIX quoting of ``AWS-RunShellScript`` (``ssm_fleet.documents``: other shells, other quoting).
    """
    return " ".join([script, *(shlex.quote(a) for a in arguments)])


def integer_in_range(field: str, value: Any, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high``, given as a number or as rendered template text."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise InvalidParameterError(field, value, f"give a whole number of seconds from {low} to {high}")
    number = int(value)
    if not low <= number <= high:
        raise InvalidParameterError(field, value, f"must be from {low} to {high}")
    return number


def rate_control(field: str, value: Any) -> str | None:
    """Check ``max_concurrency`` / ``max_errors``: a number or a percentage, as SSM accepts them."""
    if value is None:
        return None
    text = str(value)
    if not RATE_CONTROL[field].match(text):
        raise InvalidParameterError(field, value, "give a number or a percentage such as 10 or 10%")
    return text


def document_name(value: Any) -> str:
    """Return the document name, or raise naming the field and the value."""
    if not isinstance(value, str) or not DOCUMENT_NAME.match(value):
        raise InvalidParameterError("document_name", value, "not a valid SSM document name or ARN")
    return value


def comment(value: Any, *, reserved: int) -> str:
    """The user's part of the Comment: AWS allows 100 chars in all and we add our own token."""
    text = "" if value is None else str(value)
    room = MAX_COMMENT_CHARS - reserved
    if len(text) > room or CONTROL_CHARS.search(text):
        raise InvalidParameterError(
            "comment", value, f"at most {room} characters without control characters (AWS allows 100 in all)"
        )
    return text


def s3_output(bucket: Any, prefix: Any) -> tuple[str | None, str | None]:
    """Return the S3 output bucket and prefix; a prefix needs a bucket."""
    if bucket in (None, ""):
        if prefix:
            raise InvalidParameterError("output_s3_key_prefix", prefix, "needs output_s3_bucket_name")
        return None, None
    if not isinstance(bucket, str) or not S3_BUCKET.match(bucket) or ".." in bucket:
        raise InvalidParameterError("output_s3_bucket_name", bucket, "not a valid S3 bucket name")
    if prefix is not None and (not isinstance(prefix, str) or len(prefix) > 500):
        raise InvalidParameterError("output_s3_key_prefix", prefix, "at most 500 characters")
    return bucket, prefix or None


def log_group(value: Any) -> str | None:
    """Return the CloudWatch log group name (``None`` when not set), or raise naming it."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not LOG_GROUP.match(value):
        raise InvalidParameterError(
            "cloudwatch_log_group_name", value, "not a valid CloudWatch log group name"
        )
    return value


def working_directory(value: Any) -> str | None:
    """Return the working directory (``None`` when not set), or raise naming it."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or CONTROL_CHARS.search(value) or len(value) > 4096:
        raise InvalidParameterError("working_directory", value, "a path without control characters")
    return value


def boolean(field: str, value: Any) -> bool:
    """A real boolean, or the text ``true`` / ``false`` a template renders; anything else is refused."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidParameterError(field, value, 'give true or false (a boolean, or the text "true"/"false")')
