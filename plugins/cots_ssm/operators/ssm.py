"""Send a shell batch to a fleet of instances through SSM Run Command (sends, does not wait)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from botocore.exceptions import ClientError

from cots_ssm import validation
from cots_ssm.compat import AirflowFailException
from cots_ssm.hooks.ssm import DEFAULT_BOTOCORE_CONFIG, SsmFleetHook, is_transient
from cots_ssm.links.ssm import CloudWatchOutputLink, SsmRunCommandLink, log_group_fragment
from cots_ssm.plan import TOKEN_CHARS, CommandChunk, plan_chunks, run_digest, sent_chunks
from cots_ssm.status import PingStatus, Status, parse_status

if TYPE_CHECKING:
    from airflow.sdk import Context

SHELL_DOCUMENTS = frozenset({"AWS-RunShellScript"})
NOT_ADOPTABLE = frozenset({Status.CANCELLED, Status.CANCELLING})


class _FleetTargetsOperator(AwsBaseOperator[SsmFleetHook]):
    """Base of the operators that target a fleet: exactly one of ``instance_ids`` / ``target_tags``.

    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    """

    aws_hook_class = SsmFleetHook
    instance_ids: Any
    target_tags: Any
    preflight: bool

    def _targets(self) -> tuple[list[str] | None, dict[str, list[str]] | None]:
        ids, tags = validation.from_template(self.instance_ids), validation.from_template(self.target_tags)
        validation.exactly_one_target(ids, tags)
        if ids:
            return validation.instance_ids(ids), None
        return None, validation.target_tags(tags)

    def resolve_instances(self, ids: list[str] | None, tags: dict[str, list[str]] | None) -> list[str]:
        """The managed instances the run targets; fails naming any that is unknown or offline."""
        if not self.preflight and ids:
            return ids
        found = {i["InstanceId"]: i for i in self.hook.describe_instances(instance_ids=ids, tags=tags)}
        if tags and not found:
            raise AirflowFailException(f"No SSM-managed instance has the tags {tags}: nothing to run on.")
        problems = [f"{i}: unknown to SSM or not managed" for i in ids or () if i not in found]
        problems += [
            f"{i}: PingStatus {info.get('PingStatus')} (last ping {info.get('LastPingDateTime')})"
            for i, info in sorted(found.items())
            if info.get("PingStatus") != PingStatus.ONLINE
        ]
        if problems and self.preflight:
            raise AirflowFailException(
                f"Preflight: {len(problems)} instance(s) cannot run the command; nothing was sent.\n"
                + "\n".join(f"- {p}" for p in problems)
                + "\n(set preflight=False to send anyway)"
            )
        return ids or sorted(found)


class SsmRunCommandOperator(_FleetTargetsOperator):
    """Send a command to every instance of a fleet through SSM Run Command, safely.

    It validates every AWS limit before any call, checks that the instances are online, splits
    more than 50 instance ids into several commands, and marks each command with a token of the
    Airflow run: a retry adopts the commands an earlier try sent instead of sending the batch again.
    It does not wait; pair it with
    :class:`~cots_ssm.sensors.ssm.SsmRunCommandFleetSensor`. Returns (and pushes to XCom under the
    keys of the same names) ``command_ids`` and the resolved ``instance_ids``.

    :param instance_ids: the instance ids to run on (give this or ``target_tags``).
    :param target_tags: tags that select the instances, e.g. ``{"Role": ["cots"]}`` (keys are ANDed).
    :param commands: the shell lines of ``AWS-RunShellScript``.
    :param script_arguments: arguments appended, each shell-quoted, to the last command line.
    :param document_name: the SSM document (default: ``AWS-RunShellScript``).
    :param parameters: extra document parameters (for other documents).
    :param working_directory: the directory the script runs in on each instance.
    :param execution_timeout_seconds: the document's ``executionTimeout``, 1-172800 (default: 3600).
    :param delivery_timeout_seconds: SendCommand ``TimeoutSeconds``, 30-2592000: a command not
        started by then never runs (default: 600).
    :param max_concurrency: SSM ``MaxConcurrency``, a number or a percentage (default: SSM's 50).
    :param max_errors: SSM ``MaxErrors``, a number or a percentage (default: SSM's).
    :param output_s3_bucket_name: S3 bucket for the full output.
    :param output_s3_key_prefix: S3 key prefix for the full output.
    :param cloudwatch_output: send output to CloudWatch Logs (default: True).
    :param cloudwatch_log_group_name: the log group (default: SSM's ``/aws/ssm/<document>``).
    :param comment: a comment shown in the SSM console (at most 70 chars: a retry token is added).
    :param preflight: fail, naming them, if instances are unknown or not ``Online`` (default: True).
    :param adopt_existing: adopt commands an earlier try of the same run sent (default: True).
    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    """

    aws_hook_class = SsmFleetHook
    template_fields: Sequence[str] = aws_template_fields(
        "instance_ids",
        "target_tags",
        "commands",
        "script_arguments",
        "document_name",
        "parameters",
        "working_directory",
        "execution_timeout_seconds",
        "delivery_timeout_seconds",
        "max_concurrency",
        "max_errors",
        "output_s3_bucket_name",
        "output_s3_key_prefix",
        "cloudwatch_output",
        "cloudwatch_log_group_name",
        "comment",
        "preflight",
    )
    template_fields_renderers = {"commands": "json", "parameters": "json", "target_tags": "json"}
    operator_extra_links = (SsmRunCommandLink(), CloudWatchOutputLink())
    ui_color = "#f9c915"

    def __init__(
        self,
        *,
        instance_ids: Sequence[str] | str | None = None,
        target_tags: Mapping[str, Sequence[str]] | str | None = None,
        commands: Sequence[str] | str | None = None,
        script_arguments: Sequence[str] | str | None = None,
        document_name: str = "AWS-RunShellScript",
        parameters: Mapping[str, Any] | None = None,
        working_directory: str | None = None,
        execution_timeout_seconds: int | str = 3600,
        delivery_timeout_seconds: int | str = 600,
        max_concurrency: str | int | None = None,
        max_errors: str | int | None = None,
        output_s3_bucket_name: str | None = None,
        output_s3_key_prefix: str | None = None,
        cloudwatch_output: bool = True,
        cloudwatch_log_group_name: str | None = None,
        comment: str = "",
        preflight: bool = True,
        adopt_existing: bool = True,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(botocore_config=botocore_config or DEFAULT_BOTOCORE_CONFIG, **kwargs)
        self.instance_ids = instance_ids
        self.target_tags = target_tags
        self.commands = commands
        self.script_arguments = script_arguments
        self.document_name = document_name
        self.parameters = parameters
        self.working_directory = working_directory
        self.execution_timeout_seconds = execution_timeout_seconds
        self.delivery_timeout_seconds = delivery_timeout_seconds
        self.max_concurrency = max_concurrency
        self.max_errors = max_errors
        self.output_s3_bucket_name = output_s3_bucket_name
        self.output_s3_key_prefix = output_s3_key_prefix
        self.cloudwatch_output = cloudwatch_output
        self.cloudwatch_log_group_name = cloudwatch_log_group_name
        self.comment = comment
        self.preflight = preflight
        self.adopt_existing = adopt_existing

    # -- stage 1: everything checked before AWS is called -------------------------------------------
    def _document_parameters(self) -> dict[str, list[str]]:
        params = {k: v if isinstance(v, list) else [str(v)] for k, v in (self.parameters or {}).items()}
        lines = self.commands
        if self.document_name in SHELL_DOCUMENTS or lines:
            lines = validation.commands(validation.from_template(lines))
            arguments = validation.script_arguments(validation.from_template(self.script_arguments))
            if arguments:
                lines = [*lines[:-1], validation.quoted_command(lines[-1], arguments)]
            params["commands"] = lines
        if self.document_name in SHELL_DOCUMENTS:
            timeout = validation.integer_in_range(
                "execution_timeout_seconds",
                self.execution_timeout_seconds,
                *validation.EXECUTION_TIMEOUT_RANGE,
            )
            params["executionTimeout"] = [str(timeout)]
        directory = validation.working_directory(self.working_directory)
        if directory:
            params["workingDirectory"] = [directory]
        return params

    def build_send_kwargs(self) -> dict[str, Any]:
        """Every SendCommand argument but the targets and the Comment, validated."""
        kwargs: dict[str, Any] = {
            "DocumentName": validation.document_name(self.document_name),
            "Parameters": self._document_parameters(),
            "TimeoutSeconds": validation.integer_in_range(
                "delivery_timeout_seconds", self.delivery_timeout_seconds, *validation.DELIVERY_TIMEOUT_RANGE
            ),
        }
        for field, key in (("max_concurrency", "MaxConcurrency"), ("max_errors", "MaxErrors")):
            value = validation.rate_control(field, getattr(self, field))
            if value is not None:
                kwargs[key] = value
        bucket, prefix = validation.s3_output(self.output_s3_bucket_name, self.output_s3_key_prefix)
        if bucket:
            kwargs["OutputS3BucketName"] = bucket
            if prefix:
                kwargs["OutputS3KeyPrefix"] = prefix
        if self.cloudwatch_output:
            config: dict[str, Any] = {"CloudWatchOutputEnabled": True}
            group = validation.log_group(self.cloudwatch_log_group_name)
            if group:
                config["CloudWatchLogGroupName"] = group
            kwargs["CloudWatchOutputConfig"] = config
        return kwargs

    # -- stage 3: send, or adopt what an earlier try sent ------------------------------------------------
    def _earlier_commands(self, digest: str, context: Context) -> dict[int, Mapping[str, Any]]:
        if not self.adopt_existing:
            return {}
        dag_run = context.get("dag_run")
        since = getattr(dag_run, "run_after", None) or getattr(dag_run, "start_date", None)
        since = (since or datetime.now(UTC) - timedelta(days=1)) - timedelta(hours=1)
        listed = self.hook.list_commands_since(since, self.document_name)
        found = sent_chunks(digest, listed)
        return {i: c for i, c in found.items() if parse_status(c["Status"]) not in NOT_ADOPTABLE}

    def _adopt(self, chunk: CommandChunk, command: Mapping[str, Any]) -> str:
        command_id: str = command["CommandId"]
        if not chunk.matches(command):
            raise AirflowFailException(
                f"Command {command_id} (chunk {chunk.index}/{chunk.total}) was sent by an earlier "
                "try of this run to other instances than this try targets; not sending again. "
                "Trigger a new DAG run to run the batch on the new targets."
            )
        self.log.info(
            "Adopting command %s (chunk %s/%s) sent by an earlier try", command_id, chunk.index, chunk.total
        )
        return command_id

    def _send_chunks(
        self,
        chunks: list[CommandChunk],
        earlier: Mapping[int, Mapping[str, Any]],
        kwargs: Mapping[str, Any],
        ti: Any,
    ) -> list[str]:
        """Send (or adopt) every chunk; ``command_ids`` is in XCom after each one, for the teardown."""
        sent_now: list[str] = []
        command_ids: list[str] = []
        for chunk in chunks:
            if chunk.index in earlier:
                command_ids.append(self._adopt(chunk, earlier[chunk.index]))
                continue
            try:
                command = self.hook.send_command(
                    **kwargs, **chunk.target_kwargs(), Comment=chunk.comment(self.comment or "")
                )
            except ClientError as error:
                if not is_transient(error):
                    self._cancel_partial(sent_now)
                raise
            sent_now.append(command["CommandId"])
            command_ids.append(command["CommandId"])
            ti.xcom_push(key="command_ids", value=command_ids)
            self.log.info("Sent command %s (chunk %s/%s)", command["CommandId"], chunk.index, chunk.total)
        return command_ids

    def _cancel_partial(self, command_ids: list[str]) -> None:
        """A permanent error mid-way: cancel what this try sent so no half fleet runs unwatched."""
        for command_id in command_ids:
            self.log.warning("Cancelling command %s: a later chunk could not be sent", command_id)
            self.hook.cancel_command(command_id)

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            ids, tags = self._targets()
            send_kwargs = self.build_send_kwargs()
            validation.comment(self.comment, reserved=TOKEN_CHARS)
        except validation.InvalidParameterError as error:
            raise AirflowFailException(f"Task {self.task_id}: {error}. Nothing was sent to AWS.") from None
        resolved = self.resolve_instances(ids, tags)
        ti = context["ti"]
        digest = run_digest(ti.dag_id, ti.run_id, ti.task_id, str(getattr(ti, "map_index", -1)))
        chunks = plan_chunks(digest, instance_ids=ids, tags=tags)
        command_ids = self._send_chunks(chunks, self._earlier_commands(digest, context), send_kwargs, ti)
        log_group = self._log_group(send_kwargs)
        self._persist_links(context, command_ids, log_group)
        result = {
            "command_ids": command_ids,
            "instance_ids": resolved,
            "document_name": self.document_name,
            "region_name": self.hook.conn_region_name,
            "log_group": log_group,
        }
        for key in ("command_ids", "instance_ids"):
            ti.xcom_push(key=key, value=result[key])
        return result

    def _log_group(self, send_kwargs: Mapping[str, Any]) -> str | None:
        config = send_kwargs.get("CloudWatchOutputConfig")
        if not config:
            return None
        return config.get("CloudWatchLogGroupName") or f"/aws/ssm/{self.document_name}"

    def _persist_links(self, context: Context, command_ids: list[str], log_group: str | None) -> None:
        region, partition = self.hook.conn_region_name, self.hook.conn_partition
        SsmRunCommandLink.persist(context, self, region, partition, command_id=command_ids[0])
        if log_group:
            CloudWatchOutputLink.persist(
                context, self, region, partition, log_group=log_group_fragment(log_group)
            )


class SsmFleetPreflightOperator(_FleetTargetsOperator):
    """Check a fleet before anything is sent: the targets, the script arguments, every instance online.

    Returns the resolved instance ids (also in XCom under ``instance_ids``); fails naming every
    instance that is unknown to SSM or not ``Online``, and every invalid value, field by field.

    :param instance_ids: the instance ids to check (give this or ``target_tags``).
    :param target_tags: tags selecting the instances, e.g. ``{"Role": ["cots"]}``.
    :param script_arguments: arguments the run will pass to the script (checked, not used).
    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    """

    aws_hook_class = SsmFleetHook
    template_fields: Sequence[str] = aws_template_fields("instance_ids", "target_tags", "script_arguments")
    ui_color = "#fdf1b8"

    def __init__(
        self,
        *,
        instance_ids: Sequence[str] | str | None = None,
        target_tags: Mapping[str, Sequence[str]] | str | None = None,
        script_arguments: Sequence[str] | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(botocore_config=botocore_config or DEFAULT_BOTOCORE_CONFIG, **kwargs)
        self.instance_ids = instance_ids
        self.target_tags = target_tags
        self.script_arguments = script_arguments
        self.preflight = True

    def execute(self, context: Context) -> list[str]:
        try:
            ids, tags = self._targets()
            validation.script_arguments(validation.from_template(self.script_arguments))
        except validation.InvalidParameterError as error:
            raise AirflowFailException(f"Task {self.task_id}: {error}. Nothing was sent to AWS.") from None
        resolved = self.resolve_instances(ids, tags)
        self.log.info("%s instance(s) online and managed by SSM: %s", len(resolved), ", ".join(resolved))
        context["ti"].xcom_push(key="instance_ids", value=resolved)
        return resolved


class SsmCancelCommandsOperator(AwsBaseOperator[SsmFleetHook]):
    """Cancel the commands of a run that are still running (a teardown: run it with ``all_done``).

    :param command_ids: the command ids sent by the run (empty or missing: nothing to do).
    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    """

    aws_hook_class = SsmFleetHook
    template_fields: Sequence[str] = aws_template_fields("command_ids")
    ui_color = "#e8a0a0"

    def __init__(
        self,
        *,
        command_ids: Sequence[str] | str | None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(botocore_config=botocore_config or DEFAULT_BOTOCORE_CONFIG, **kwargs)
        self.command_ids = command_ids

    def execute(self, context: Context) -> list[str]:
        ids = validation.from_template(self.command_ids)
        ids = [ids] if isinstance(ids, str) and ids else list(ids or ())
        if not ids:
            self.log.info("No command was sent by this run: nothing to cancel")
            return []
        cancelled = self.hook.cancel_running(ids)
        for command_id in cancelled:
            self.log.warning("Cancelled command %s: it was still running when the run ended", command_id)
        if not cancelled:
            self.log.info("All %s command(s) had already finished: nothing to cancel", len(ids))
        return cancelled
