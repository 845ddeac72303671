"""SSM errors the emulator raises, as moto SSM exceptions.

moto serializes a `moto.ssm.exceptions.SSMException` with the error shape of the same name in
botocore's SSM model, so the client sees `__type` = the class's `code` and HTTP 400. Each class
below names an error shape of that model, except `AccessDeniedException`, which AWS answers for
every service when IAM refuses a call (also HTTP 400 for SSM).
"""

from __future__ import annotations

from moto.ssm.exceptions import SSMException


class _NamedSSMError(SSMException):
    code = "UnspecifiedErrorCode"

    def __init__(self, message: str) -> None:
        super().__init__(self.code, message)


class InvalidInstanceId(_NamedSSMError):
    """An instance is unknown, not SSM-managed, or malformed."""

    code = "InvalidInstanceId"


class DuplicateInstanceId(_NamedSSMError):
    """An instance id appears twice in one request."""

    code = "DuplicateInstanceId"


class InvocationDoesNotExist(_NamedSSMError):
    """No invocation for this command id and instance id (yet)."""

    code = "InvocationDoesNotExist"


class InvalidCommandId(_NamedSSMError):
    """A command id is malformed or unknown."""

    code = "InvalidCommandId"


class InvalidParameters(_NamedSSMError):
    """The document parameters are missing, unknown or invalid."""

    code = "InvalidParameters"


class InvalidDocument(_NamedSSMError):
    """The document does not exist (the emulator runs only AWS-RunShellScript)."""

    code = "InvalidDocument"


class InvalidDocumentVersion(_NamedSSMError):
    """The document version does not exist (AWS-RunShellScript has version 1)."""

    code = "InvalidDocumentVersion"


class InvalidTarget(_NamedSSMError):
    """A target key is not supported (the emulator resolves `InstanceIds`, `tag:<key>`, `tag-key`)."""

    code = "InvalidTarget"


class InvalidPluginName(_NamedSSMError):
    """GetCommandInvocation was asked for a plugin the document does not have."""

    code = "InvalidPluginName"


class InvalidNextToken(_NamedSSMError):
    """A NextToken was not issued by this emulator."""

    code = "InvalidNextToken"


class InvalidFilterKey(_NamedSSMError):
    """A filter key is not supported by the operation."""

    code = "InvalidFilterKey"


class InvalidFilterValue(_NamedSSMError):
    """A ListCommands / ListCommandInvocations filter value is malformed."""

    code = "InvalidFilterValue"


class InvalidInstanceInformationFilterValue(_NamedSSMError):
    """A DescribeInstanceInformation filter value is not valid."""

    code = "InvalidInstanceInformationFilterValue"


class AccessDeniedException(_NamedSSMError):
    """IAM refused the call: the caller's policy does not allow it on this resource."""

    code = "AccessDeniedException"


class ValidationException(_NamedSSMError):
    """A request parameter violates a constraint of the API model."""

    code = "ValidationException"


#: The caller the emulator stands for when it refuses a call: MWAA's execution role.
EXECUTION_ROLE_SESSION = "assumed-role/airflow-execution-role/airflow"


def send_command_denied(account_id: str, region: str, instance_id: str) -> AccessDeniedException:
    """Build IAM's refusal of ssm:SendCommand on one instance, worded as AWS words it."""
    return AccessDeniedException(
        f"User: arn:aws:sts::{account_id}:{EXECUTION_ROLE_SESSION} is not authorized to perform: "
        f"ssm:SendCommand on resource: arn:aws:ec2:{region}:{account_id}:instance/{instance_id} "
        "because no identity-based policy allows the ssm:SendCommand action"
    )


def constraint_error(value: object, member: str, constraint: str) -> ValidationException:
    """Build AWS's "1 validation error detected" message for one member."""
    return ValidationException(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
        f"Member must {constraint}"
    )
