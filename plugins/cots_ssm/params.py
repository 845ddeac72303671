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

from cots_ssm import overrides
from cots_ssm.config import BatchConfig
from cots_ssm.jobs.schema import shared_rule
from ssm_fleet import validation


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


class _SharedSchema(dict[str, Any]):
    """A Param's JSON schema, shared by the Param's copies rather than copied with it.

    Airflow deep-copies a DAG's Params for every operator it builds (over 20 times per DAG here),
    which made the schemas most of a job's parse time; they are never changed after the DAG is built.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> _SharedSchema:
        return self


# Airflow checks each Param's schema against its dialect's metaschema whenever it validates the Param
# (at every DAG build): Draft 7's takes a third of the time of 2020-12's, the default. The rules use
# only keywords both drafts read alike; a test runs the form and the file over the same values.
PARAM_DIALECT = "http://json-schema.org/draft-07/schema#"


def _param(
    default: Any, definition: str, *, title: str, description: str, choices: list[str] | None = None
) -> Param:
    """A Param whose rules are the jobs file schema's ``definition``, narrowed to ``choices`` if given."""
    schema = _SharedSchema({"$schema": PARAM_DIALECT, **shared_rule(definition), "title": title})
    if choices is not None:
        schema["enum"] = choices
    return Param(default, description, schema=schema)


def trigger_form(config: BatchConfig) -> dict[str, Any]:
    """Params with a title, a description and a JSON schema each; defaults from ``config``.

    Each value rule is the jobs file's schema definition (``cots_ssm.jobs.schema``), so the form and
    the file check refuse and accept the same values; the failure tolerance and policy are narrowed
    to the job's bounds (``cots_ssm.overrides``). The alert topic is no field: it is the job's.
    """
    return {
        "instance_ids": _param(
            config.instance_ids,
            "instanceIds",
            title="Instance ids",
            description="EC2 instance ids to run on, one per line (i-0123456789abcdef0). "
            "Given alone, the run targets exactly these (the default tags step aside).",
        ),
        "target_tags": _param(
            config.target_tags,
            "targetTags",
            title="Target tags",
            description='Tags selecting the instances, e.g. {"Role": ["cots"]}; keys are ANDed. '
            "Change these or the instance ids, not both: a trigger giving both is refused.",
        ),
        "script_arguments": _param(
            config.script_arguments,
            "scriptArguments",
            title="Script arguments",
            description=f"Arguments passed to {config.script}, one per line; each is shell-quoted.",
        ),
        "execution_timeout_seconds": _param(
            config.execution_timeout_seconds,
            "executionTimeoutSeconds",
            title="Execution timeout (s)",
            description="SSM kills the script on an instance after this many seconds (1-172800).",
        ),
        "delivery_timeout_seconds": _param(
            config.delivery_timeout_seconds,
            "deliveryTimeoutSeconds",
            title="Delivery timeout (s)",
            description="An instance that has not started the script by then never runs it (30-2592000).",
        ),
        "max_failed_instances": _param(
            str(config.max_failed_instances),
            "failureTolerance",
            title="Failures tolerated",
            description="How many instances may fail and the run still succeed: a number or a percentage, "
            f"at most {config.max_failed_instances_bound or config.max_failed_instances} (the job's bound). "
            "A change shows in the report, the alert and the fleet page.",
            choices=overrides.tolerance_choices(
                str(config.max_failed_instances), config.max_failed_instances_bound
            ),
        ),
        "failure_policy": _param(
            config.failure_policy,
            "failurePolicy",
            title="When too many fail",
            description="finish: let the other instances end their batch, then fail the run; "
            "cancel: cancel them and fail at once.",
            choices=list(config.failure_policy_choices),
        ),
        "redrive": Param(
            True,
            type="boolean",
            title="Clear re-runs only what failed",
            description="On a Clear of this run, send the batch again only to the instances that did "
            "not succeed (redrive). Off: a Clear runs it on the whole fleet again.",
        ),
        "poll_interval_seconds": _param(
            config.poll_interval_seconds,
            "pollIntervalSeconds",
            title="Poll interval (s)",
            description="Seconds between two status checks; no worker slot is held in between.",
        ),
        "deferrable": _param(
            config.deferrable,
            "deferrable",
            title="Wait in the triggerer",
            description="On: the wait holds no worker slot at all (the triggerer checks); off: a "
            "worker slot for the seconds of each check, every poll interval.",
        ),
    }
