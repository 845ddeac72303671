"""The trigger form of a batch job: JSON-schema Params whose rules come from the jobs file schema.

Which instances a run targets (its trigger contract): ``instance_ids`` and ``target_tags`` both
have defaults (the configured fleet), and a trigger (REST, CLI or form) may give either. A value
equal to its default counts as not given, so:

- only ``instance_ids`` given: the run targets exactly those instances (the default tags step aside);
- only ``target_tags`` given: the run targets the instances carrying those tags;
- neither: the configured fleet;
- both given, each different from its default: refused before anything is sent, naming both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import Param

from cots_ssm import validation
from cots_ssm.config import BatchConfig
from cots_ssm.jobs.schema import rule


def choose_targets(
    instance_ids: Any, target_tags: Any, *, default_ids: Sequence[str], default_tags: Mapping[str, Any]
) -> dict[str, Any]:
    """Apply the trigger contract above: ``{"instance_ids": ..., "target_tags": ...}``, one of them empty.

    When both were given, both are returned as they are: the operators refuse that, naming both.
    """
    ids, tags = validation.from_template(instance_ids), validation.from_template(target_tags)
    ids_given = bool(ids) and list(ids) != list(default_ids)
    tags_given = bool(tags) and tags != dict(default_tags)
    if ids_given and tags_given:
        return {"instance_ids": ids, "target_tags": tags}
    if ids_given or (ids and not tags_given and not default_tags):
        return {"instance_ids": ids, "target_tags": {}}
    return {"instance_ids": [], "target_tags": tags or dict(default_tags)}


def trigger_form(config: BatchConfig) -> dict[str, Any]:
    """Params with a title, a description and a JSON schema each; defaults from ``config``.

    Each value rule is the jobs file's schema definition (``cots_ssm.jobs.schema``), so the form and
    the file check refuse and accept the same values.
    """
    return {
        "instance_ids": Param(
            config.instance_ids,
            **rule("instanceIds"),
            title="Instance ids",
            description="EC2 instance ids to run on, one per line (i-0123456789abcdef0). "
            "Given alone, the run targets exactly these (the default tags step aside).",
        ),
        "target_tags": Param(
            config.target_tags,
            **rule("targetTags"),
            title="Target tags",
            description='Tags selecting the instances, e.g. {"Role": ["cots"]}; keys are ANDed. '
            "Change these or the instance ids, not both: a trigger giving both is refused.",
        ),
        "script_arguments": Param(
            config.script_arguments,
            **rule("scriptArguments"),
            title="Script arguments",
            description=f"Arguments passed to {config.script}, one per line; each is shell-quoted.",
        ),
        "execution_timeout_seconds": Param(
            config.execution_timeout_seconds,
            **rule("executionTimeoutSeconds"),
            title="Execution timeout (s)",
            description="SSM kills the script on an instance after this many seconds (1-172800).",
        ),
        "delivery_timeout_seconds": Param(
            config.delivery_timeout_seconds,
            **rule("deliveryTimeoutSeconds"),
            title="Delivery timeout (s)",
            description="An instance that has not started the script by then never runs it (30-2592000).",
        ),
        "max_failed_instances": Param(
            str(config.max_failed_instances),
            **rule("failureTolerance"),
            title="Failures tolerated",
            description="How many instances may fail and the run still succeed: a number or a percentage.",
        ),
        "failure_policy": Param(
            config.failure_policy,
            **rule("failurePolicy"),
            title="When too many fail",
            description="finish: let the other instances end their batch, then fail the run; "
            "cancel: cancel them and fail at once.",
        ),
        "redrive": Param(
            True,
            type="boolean",
            title="Clear re-runs only what failed",
            description="On a Clear of this run, send the batch again only to the instances that did "
            "not succeed (redrive). Off: a Clear runs it on the whole fleet again.",
        ),
        "poll_interval_seconds": Param(
            config.poll_interval_seconds,
            **rule("pollIntervalSeconds"),
            title="Poll interval (s)",
            description="Seconds between two status checks; no worker slot is held in between.",
        ),
        "sns_topic_arn": Param(
            config.sns_topic_arn,
            **rule("snsTopicArn"),
            title="SNS topic ARN",
            description="Topic of the failure alert (FIFO topics too). Empty: the alert is only logged.",
        ),
    }
