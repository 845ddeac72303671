"""Send a shell batch to a fleet of instances through SSM Run Command (sends, does not wait)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from botocore.exceptions import BotoCoreError, ClientError

from cots_ssm import documents, validation
from cots_ssm.compat import AirflowException, AirflowFailException, AirflowSkipException
from cots_ssm.hooks.ssm import DEFAULT_BOTOCORE_CONFIG, SendOutcome, SsmFleetHook, error_text, send_outcome
from cots_ssm.links.ssm import CloudWatchOutputLink, SsmRunCommandLink, log_group_fragment
from cots_ssm.plan import (
    TOKEN_CHARS,
    CommandChunk,
    attempt_of,
    chunk_commands,
    current_attempt,
    is_cancelled,
    lookup_since,
    plan_chunks,
    run_token_digest,
)
from cots_ssm.redrive import plan_redrive
from cots_ssm.status import InvocationResult, Outcome, PingStatus

if TYPE_CHECKING:
    from airflow.sdk import Context

SHELL_DOCUMENTS = frozenset({"AWS-RunShellScript"})
#: SendCommand requests per chunk and try: throttled ones, and lost answers found to have done nothing.
MAX_SEND_ATTEMPTS = 5
#: Seconds between the two ListCommands look-ups after a lost SendCommand answer.
LOOKUP_PAUSE_SECONDS = 2.0
#: First pause before sending a refused (throttled) or lost chunk again; it doubles each time.
SEND_BACKOFF_SECONDS = 1.0


class RunDidNotSucceed(AirflowFailException):
    """The run failed for a reason another task has already reported (and alerted about)."""

    already_reported = True


class _Refused(Exception):
    """SendCommand refused for good for one chunk (carries the chunk and AWS's error)."""

    def __init__(self, chunk: CommandChunk, error: BaseException):
        super().__init__(chunk.describe())
        self.chunk, self.error = chunk, error


class _FleetTargetsOperator(AwsBaseOperator[SsmFleetHook]):
    """Base of the operators that target a fleet: exactly one of ``instance_ids`` / ``target_tags``.

    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    """

    aws_hook_class = SsmFleetHook
    instance_ids: Any
    target_tags: Any
    preflight: bool | str

    def _targets(self) -> tuple[list[str] | None, dict[str, list[str]] | None]:
        ids, tags = validation.from_template(self.instance_ids), validation.from_template(self.target_tags)
        validation.exactly_one_target(ids, tags)
        self.preflight = validation.boolean("preflight", self.preflight)
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
    Airflow run and attempt. SendCommand goes out at most once per chunk and try: throttling is
    retried, a lost answer (5xx, timeout, dropped connection) is looked up by its token before
    anything is sent again, and a permanent refusal cancels what the try sent and fails for good.
    A retry adopts what an earlier try sent; a Clear of the run is a redrive (see ``redrive``).
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
    :param cloudwatch_output: send output to CloudWatch Logs; a boolean or "true"/"false" (default: True).
    :param cloudwatch_log_group_name: the log group (default: SSM's ``/aws/ssm/<document>``).
    :param comment: a comment shown in the SSM console (at most 65 chars: the run token is added).
    :param preflight: fail, naming them, if instances are unknown or not ``Online``; templated,
        a boolean or "true"/"false" (default: True).
    :param adopt_existing: adopt commands an earlier try of the same attempt sent (default: True).
    :param redrive: after a Clear of the run, send the batch only to the instances whose latest
        invocation in the run did not succeed, and keep watching the earlier commands; False sends
        it to the whole fleet again. Templated, a boolean or "true"/"false" (default: True).
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
        "redrive",
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
        cloudwatch_output: bool | str = True,
        cloudwatch_log_group_name: str | None = None,
        comment: str = "",
        preflight: bool | str = True,
        adopt_existing: bool = True,
        redrive: bool | str = True,
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
        self.redrive = redrive

    # -- stage 1: everything checked before AWS is called -------------------------------------------
    def _document_parameters(self) -> dict[str, list[str]]:
        return documents.document_parameters(
            self.document_name,
            commands=self.commands,
            script_arguments=self.script_arguments,
            parameters=self.parameters,
            execution_timeout_seconds=self.execution_timeout_seconds,
            working_directory=self.working_directory,
        )

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
        if validation.boolean("cloudwatch_output", self.cloudwatch_output):
            config: dict[str, Any] = {"CloudWatchOutputEnabled": True}
            group = validation.log_group(self.cloudwatch_log_group_name)
            if group:
                config["CloudWatchLogGroupName"] = group
            kwargs["CloudWatchOutputConfig"] = config
        return kwargs

    # -- stage 3: send each chunk at most once, or adopt what an earlier try sent ----------------------
    def _find_chunk(self, chunk: CommandChunk, since: datetime) -> list[Mapping[str, Any]]:
        """The commands carrying ``chunk``'s token, looked up twice: ListCommands may lag a moment."""
        for pause in (0.0, LOOKUP_PAUSE_SECONDS):
            time.sleep(pause)
            listed = self.hook.list_commands_since(since, self.document_name)
            found = chunk_commands(chunk.digest, chunk.attempt, listed).get(chunk.index, [])
            if found:
                return found
        return []

    def _adopt(self, chunk: CommandChunk, commands: Sequence[Mapping[str, Any]]) -> list[str] | None:
        """Adopt what was sent for ``chunk``; cancel extra copies. Ids in verdict order, kept one last."""
        live = [c for c in commands if not is_cancelled(c)]
        if not live:
            return None
        for command in live:
            if not chunk.matches(command):
                raise AirflowFailException(
                    f"Command {command['CommandId']} ({chunk.describe()}) was sent by an earlier try of "
                    "this run to other instances than this try targets; not sending again. Trigger a new "
                    "DAG run to run the batch on the new targets."
                )
        kept, extras = live[0], live[1:]
        self.log.info(
            "Adopting command %s (%s), already sent for this run", kept["CommandId"], chunk.describe()
        )
        for extra in extras:
            self.log.warning(
                "Command %s carries the same token as %s (%s): SendCommand ran twice. Cancelling the extra "
                "one; its invocations stay watched.",
                extra["CommandId"],
                kept["CommandId"],
                chunk.describe(),
            )
            self.hook.cancel_command(extra["CommandId"])
        cancelled = [c["CommandId"] for c in commands if is_cancelled(c)]
        return [*cancelled, *(e["CommandId"] for e in extras), kept["CommandId"]]

    def _send_once(self, chunk: CommandChunk, kwargs: Mapping[str, Any], since: datetime) -> list[str]:
        """Send one chunk: throttling is retried, a lost answer is looked up before sending again."""
        comment = chunk.comment(self.comment or "")
        for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
            try:
                command = self.hook.send_command_once(**kwargs, **chunk.target_kwargs(), Comment=comment)
            except (ClientError, BotoCoreError) as error:
                outcome = send_outcome(error)
                if outcome is SendOutcome.REFUSED:
                    raise _Refused(chunk, error) from error
                if outcome is SendOutcome.AMBIGUOUS:
                    self.log.warning(
                        "SendCommand for %s: the answer was lost (%s); looking the command up by its token "
                        "before sending anything again",
                        chunk.describe(),
                        error_text(error),
                    )
                    adopted = self._adopt(chunk, self._find_chunk(chunk, since))
                    if adopted:
                        return adopted
                delay = min(SEND_BACKOFF_SECONDS * 2 ** (attempt - 1), 30.0)
                self.log.warning(
                    "SendCommand for %s not accepted (%s, attempt %s/%s); sending again in %ss",
                    chunk.describe(),
                    error_text(error),
                    attempt,
                    MAX_SEND_ATTEMPTS,
                    delay,
                )
                time.sleep(delay)
                continue
            self.log.info("Sent command %s (%s)", command["CommandId"], chunk.describe())
            return [command["CommandId"]]
        raise AirflowException(
            f"SendCommand for {chunk.describe()} was not accepted after {MAX_SEND_ATTEMPTS} attempts; "
            "the next try looks up what was sent and sends only what is missing"
        )

    def _send_chunks(
        self,
        chunks: list[CommandChunk],
        sent: Mapping[int, Sequence[Mapping[str, Any]]],
        kwargs: Mapping[str, Any],
        watched: list[str],
        context: Context,
    ) -> list[str]:
        """Send (or adopt) every chunk; ``command_ids`` is in XCom as soon as each one is known."""
        command_ids = list(watched)
        this_attempt: list[str] = []
        since = lookup_since(context)
        for chunk in chunks:
            try:
                ids = (self._adopt(chunk, sent[chunk.index]) if chunk.index in sent else None) or (
                    self._send_once(chunk, kwargs, since)
                )
            except _Refused as refused:
                self._fail_refused(refused, this_attempt)
            this_attempt += ids
            command_ids += ids
            context["ti"].xcom_push(key="command_ids", value=command_ids)
        return command_ids

    def _fail_refused(self, refused: _Refused, this_attempt: list[str]) -> NoReturn:
        """A permanent error: cancel what this attempt sent, then fail for good (no retry re-sends)."""
        not_cancelled = []
        for command_id in this_attempt:
            try:
                self.hook.cancel_command(command_id)
                self.log.warning(
                    "Cancelled command %s: %s could not be sent", command_id, refused.chunk.describe()
                )
            except (ClientError, BotoCoreError) as error:
                not_cancelled.append(f"{command_id} ({error_text(error)})")
        cleanup = (
            f"Cancelled the {len(this_attempt)} command(s) already sent ({', '.join(this_attempt)})."
            if this_attempt
            else "Nothing else had been sent."
        )
        if not_cancelled:
            cleanup += f" Could NOT cancel: {', '.join(not_cancelled)}; the teardown tries again."
        raise AirflowFailException(
            f"SendCommand refused for {refused.chunk.describe()}: {error_text(refused.error)}. {cleanup} "
            "Not retried: AWS would refuse it again. Fix the cause, then Clear the run: instances that "
            "already succeeded are not run again."
        )

    # -- stage 2: what this try sends: the whole fleet, or a redrive of what did not succeed -------------
    def _plan(
        self,
        digest: str,
        attempt: int,
        earlier: Sequence[Mapping[str, Any]],
        targets: tuple[list[str] | None, dict[str, list[str]] | None],
        resolved: list[str],
        redrive: bool,
    ) -> tuple[list[CommandChunk], list[str], list[str]]:
        """The chunks to send, the earlier commands to keep watching, and the run's fleet."""
        ids, tags = targets
        if not earlier:
            return plan_chunks(digest, attempt=attempt, instance_ids=ids, tags=tags), [], resolved
        if not redrive:
            self.log.info("Attempt %s: redrive is off, the whole fleet runs the batch again", attempt)
            return plan_chunks(digest, attempt=attempt, instance_ids=ids, tags=tags), [], resolved
        invocations = [
            InvocationResult.from_api(item)
            for command in earlier
            for item in self.hook.list_invocations(command["CommandId"], details=False)
        ]
        redrive_plan = plan_redrive(invocations, resolved)
        self.log.info("%s (attempt %s)", redrive_plan.describe(), attempt)
        chunks = plan_chunks(digest, attempt=attempt, instance_ids=list(redrive_plan.rerun))
        return chunks, [c["CommandId"] for c in earlier], list(redrive_plan.fleet)

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            targets = self._targets()
            send_kwargs = self.build_send_kwargs()
            validation.comment(self.comment, reserved=TOKEN_CHARS)
            redrive = validation.boolean("redrive", self.redrive)
        except validation.InvalidParameterError as error:
            raise AirflowFailException(f"Task {self.task_id}: {error}. Nothing was sent to AWS.") from None
        resolved = self.resolve_instances(*targets)
        ti = context["ti"]
        digest = run_token_digest(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))
        attempt = current_attempt(context)
        mine = self.hook.find_run_commands(digest, lookup_since(context), self.document_name)
        earlier = [c for c in mine if attempt_of(c) < attempt]
        chunks, watched, fleet = self._plan(digest, attempt, earlier, targets, resolved, redrive)
        sent = chunk_commands(digest, attempt, mine) if self.adopt_existing else {}
        command_ids = self._send_chunks(chunks, sent, send_kwargs, watched, context)
        log_group = self._log_group(send_kwargs)
        self._persist_links(context, command_ids[len(watched) :] or command_ids, log_group)
        result = {
            "command_ids": command_ids,
            "instance_ids": fleet,
            "attempt": attempt,
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

    The run's commands are found by their token through ListCommands (every attempt), so a cleared
    or empty XCom never hides one; ``command_ids`` only adds ids already known. Every cancel is
    tried; if one fails the task fails, naming it, so its ``on_failure_callback`` alerts.

    :param command_ids: command ids already known, e.g. from XCom (optional: a shortcut).
    :param run_task_id: the task that sent the commands; its token finds them (default: ``run``).
    :param document_name: the SSM document the commands ran (narrows ListCommands; default:
        ``AWS-RunShellScript``).
    :param fail_on_leftovers: fail (without retry, naming them) after cancelling commands that
        were still pending or in progress: the run ended before its fleet did (marked failed, or a
        task failed mid-send), and that must not end as a success (default: True).
    :param verdict_task_id: a sensor whose XCom ``verdict`` decides the run: after cleaning up,
        fail with :class:`RunDidNotSucceed` (already reported by that task: no second alert)
        unless it says ``succeeded``. Use it when the teardown decides the run's state
        (``on_failure_fail_dagrun``), as Airflow then judges the run by its teardown alone
        (default: None, no judgement).
    :param run_skipped: templated; true when the run was skipped on purpose before anything was
        sent (e.g. a short circuit returned False): the teardown then skips itself, without any
        AWS call (default: False).
    :param aws_conn_id: the Airflow AWS connection (default: ``aws_default``).
    """

    aws_hook_class = SsmFleetHook
    template_fields: Sequence[str] = aws_template_fields("command_ids", "run_skipped")
    ui_color = "#e8a0a0"

    def __init__(
        self,
        *,
        command_ids: Sequence[str] | str | None = None,
        run_task_id: str = "run",
        document_name: str = "AWS-RunShellScript",
        fail_on_leftovers: bool = True,
        verdict_task_id: str | None = None,
        run_skipped: bool | str = False,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(botocore_config=botocore_config or DEFAULT_BOTOCORE_CONFIG, **kwargs)
        self.command_ids = command_ids
        self.run_task_id = run_task_id
        self.document_name = document_name
        self.fail_on_leftovers = fail_on_leftovers
        self.verdict_task_id = verdict_task_id
        self.run_skipped = run_skipped

    def execute(self, context: Context) -> list[str]:
        if validation.boolean("run_skipped", self.run_skipped):
            raise AirflowSkipException("The run was skipped before anything was sent: nothing to clean up")
        known = validation.from_template(self.command_ids)
        known = [known] if isinstance(known, str) and known else list(known or ())
        ti = context["ti"]
        digest = run_token_digest(ti.dag_id, ti.run_id, self.run_task_id, getattr(ti, "map_index", -1))
        report = self.hook.cancel_run(digest, lookup_since(context), self.document_name, known)
        for command_id in report.cancelled:
            self.log.warning("Cancelled command %s: it was still running when the run ended", command_id)
        if report.failed:
            raise AirflowException(
                f"Could not cancel {len(report.failed)} command(s) still running on the fleet: "
                + "; ".join(report.failed)
                + ". Their instances may still be running the batch: cancel them in the SSM console."
            )
        if not report.cancelled:
            self.log.info("%s command(s) of this run found, none still running", len(report.found))
        if report.live and self.fail_on_leftovers:
            raise AirflowFailException(
                f"The run ended while {len(report.live)} command(s) were still running on the fleet "
                f"(the run was marked failed, or a task failed before the verdict); cancelled them: "
                f"{', '.join(report.live)}. Their instances did not finish the batch: Clear the run to "
                "re-run the instances that did not succeed."
            )
        self._judge(ti)
        return list(report.cancelled)

    def _judge(self, ti: Any) -> None:
        if not self.verdict_task_id:
            return
        verdict = ti.xcom_pull(task_ids=self.verdict_task_id, key="verdict") or {}
        outcome = verdict.get("outcome") or "no verdict"
        if outcome != Outcome.SUCCEEDED.value:
            raise RunDidNotSucceed(
                f"Cleanup done; the fleet run did not succeed ({outcome}): see task {self.verdict_task_id}"
            )
