"""The trigger form of the nightly batch: JSON-schema Params built from the validation rules."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from cots_ssm import validation
from cots_ssm.config import BatchConfig

SNS_TOPIC_ARN = r"^(arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?)?$"
TOLERANCE = r"^([0-9]+|([0-9]|[1-9][0-9]|100)%)$"
NO_CONTROL_CHARS = r"^[^\x00-\x1f\x7f]*$"


def trigger_form(config: BatchConfig) -> dict[str, Any]:
    """Params with a title, a description and a JSON schema each; defaults from ``config``."""
    return {
        "instance_ids": Param(
            config.instance_ids,
            type="array",
            items={"type": "string", "pattern": validation.INSTANCE_ID.pattern},
            uniqueItems=True,
            title="Instance ids",
            description="EC2 instance ids to run on, one per line (i-0123456789abcdef0). "
            "Leave empty to select instances by tags instead.",
        ),
        "target_tags": Param(
            config.target_tags,
            type="object",
            maxProperties=validation.MAX_TARGETS,
            propertyNames={"pattern": validation.TAG_KEY.pattern},
            additionalProperties={
                "type": "array",
                "minItems": 1,
                "maxItems": validation.MAX_TAG_VALUES,
                "items": {"type": "string", "pattern": validation.TAG_VALUE.pattern},
            },
            title="Target tags",
            description='Tags selecting the instances, e.g. {"Role": ["cots"]}; keys are ANDed. '
            "Set to {} when you give instance ids.",
        ),
        "script_arguments": Param(
            config.script_arguments,
            type="array",
            items={"type": "string", "pattern": NO_CONTROL_CHARS},
            title="Script arguments",
            description=f"Arguments passed to {config.script}, one per line; each is shell-quoted.",
        ),
        "execution_timeout_seconds": Param(
            config.execution_timeout_seconds,
            type="integer",
            minimum=validation.EXECUTION_TIMEOUT_RANGE[0],
            maximum=validation.EXECUTION_TIMEOUT_RANGE[1],
            title="Execution timeout (s)",
            description="SSM kills the script on an instance after this many seconds (1-172800).",
        ),
        "delivery_timeout_seconds": Param(
            config.delivery_timeout_seconds,
            type="integer",
            minimum=validation.DELIVERY_TIMEOUT_RANGE[0],
            maximum=validation.DELIVERY_TIMEOUT_RANGE[1],
            title="Delivery timeout (s)",
            description="An instance that has not started the script by then never runs it (30-2592000).",
        ),
        "max_failed_instances": Param(
            str(config.max_failed_instances),
            type="string",
            pattern=TOLERANCE,
            title="Failures tolerated",
            description="How many instances may fail and the run still succeed: a number or a percentage.",
        ),
        "poll_interval_seconds": Param(
            config.poll_interval_seconds,
            type="integer",
            minimum=1,
            maximum=86_400,
            title="Poll interval (s)",
            description="Seconds between two status checks; no worker slot is held in between.",
        ),
        "sns_topic_arn": Param(
            config.sns_topic_arn,
            type="string",
            pattern=SNS_TOPIC_ARN,
            title="SNS topic ARN",
            description="Topic of the failure alert (FIFO topics too). Empty: the alert is only logged.",
        ),
    }
