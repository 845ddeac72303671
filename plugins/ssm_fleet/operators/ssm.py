"""Send a shell batch to a fleet of instances through SSM Run Command (sends, does not wait).

Over 350 lines for a reason: the run operator, the preflight operator and the targets check they
share are one send path; the cleanup operator is in :mod:`ssm_fleet.operators.cancel`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.base_aws import AwsBaseOperator
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields

from ssm_fleet import documents, validation
from ssm_fleet.errors import FleetRunError, FleetRunFailed
from ssm_fleet.hooks.ssm import DEFAULT_BOTOCORE_CONFIG, SsmFleetHook, error_text
from ssm_fleet.ledger import RunLedger
from ssm_fleet.links.ssm import CloudWatchOutputLink, SsmRunCommandLink, log_group_fragment
from ssm_fleet.plan import TOKEN_CHARS, current_attempt, lookup_since, run_token_digest
from ssm_fleet.send import FleetSender, SendRefused, SendStopped, SendUnconfirmed
from ssm_fleet.spec import FleetRun
from ssm_fleet.status import PingStatus

if TYPE_CHECKING:
    from airflow.sdk import Context


def is_last_try(ti: Any, retries: int) -> bool:
    """Whether this try of the task is its last one (no retry follows a failure)."""
    max_tries = getattr(ti, "max_tries", None)
    max_tries = retries if not isinstance(max_tries, int) else max_tries
    return int(getattr(ti, "try_number", 1) or 1) > max_tries


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
            raise FleetRunFailed(
                f"No SSM-managed instance has the tags {tags}: nothing to run on.",
                headline="no host has the tags, nothing sent",
            )
        problems = [f"{i}: unknown to SSM or not managed" for i in ids or () if i not in found]
        problems += [
            f"{i}: PingStatus {info.get('PingStatus')} (last ping {info.get('LastPingDateTime')})"
            for i, info in sorted(found.items())
            if info.get("PingStatus") != PingStatus.ONLINE
        ]
        if problems and self.preflight:
            raise FleetRunFailed(
                f"Preflight: {len(problems)} instance(s) cannot run the command; nothing was sent.\n"
                + "\n".join(f"- {p}" for p in problems)
                + "\n(set preflight=False to send anyway)",
                headline=f"preflight refused {len(problems)} host(s), nothing sent",
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
    :class:`~ssm_fleet.sensors.ssm.SsmRunCommandFleetSensor`. Returns (and pushes to XCom under the
    keys of the same names) ``command_ids`` and the resolved ``instance_ids``.

    :param instance_ids: the instance ids to run on (give this or ``target_tags``).
    :param target_tags: tags that select the instances, e.g. ``{"Role": ["batch"]}`` (keys are ANDed).
    :param commands: the shell lines of ``AWS-RunShellScript``.
    :param script_arguments: arguments appended, each shell-quoted, to the last command line.
    :param document_name: the SSM document (default: ``fleet_run``'s, else ``AWS-RunShellScript``).
    :param fleet_run: the run's tasks and document (:class:`~ssm_fleet.spec.FleetRun`), shared with
        the wait, the cleanup and the notifiers: the task id defaults to its ``send_task_id``, and a
        ``task_id`` or ``document_name`` that disagrees with it is refused (default: none).
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
        document_name: str | None = None,
        fleet_run: FleetRun | None = None,
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
        redrive: bool | str = True,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        if fleet_run is not None:
            kwargs.setdefault("task_id", fleet_run.send_task_id)
            fleet_run.check_sender(kwargs["task_id"], document_name)
        super().__init__(botocore_config=botocore_config or DEFAULT_BOTOCORE_CONFIG, **kwargs)
        self.instance_ids = instance_ids
        self.target_tags = target_tags
        self.commands = commands
        self.script_arguments = script_arguments
        self.document_name = document_name or (fleet_run or FleetRun()).document_name
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

    # -- stage 2: the plan over hosts, from the run's ledger; stage 3: send what it says ------------------
    def _fleet_now(self, ledger: RunLedger, ids: list[str] | None, resolved: list[str]) -> list[str]:
        """The hosts of the fleet now; after a Clear, ids SSM no longer knows have left it."""
        if not ids or self.preflight or not ledger.hosts:
            return resolved
        known = {i["InstanceId"] for i in self.hook.describe_instances(instance_ids=ids)}
        return [i for i in resolved if i in known]

    def execute(self, context: Context) -> dict[str, Any]:
        """Send the batch to the hosts this attempt must run, adopting what it sent already."""
        try:
            ids, tags = self._targets()
            send_kwargs = self.build_send_kwargs()
            validation.comment(self.comment, reserved=TOKEN_CHARS)
            redrive = validation.boolean("redrive", self.redrive)
        except validation.InvalidParameterError as error:
            raise FleetRunFailed(
                f"Task {self.task_id}: {error}. Nothing was sent to AWS.",
                headline="invalid parameters, nothing sent",
            ) from None
        resolved = self.resolve_instances(ids, tags)
        ti = context["ti"]
        attempt = current_attempt(context)
        self._sender = FleetSender(
            self.hook,
            digest=run_token_digest(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1)),
            attempt=attempt,
            since=lookup_since(context),
            document_name=self.document_name,
            log=self.log,
        )
        ledger = self._sender.read_ledger()
        plan = ledger.plan(attempt, self._fleet_now(ledger, ids, resolved), redrive=redrive)
        self.log.info("%s", plan.describe())
        if not redrive and not plan.fresh:
            self.log.info("Attempt %s: redrive is off, every host whose batch ended runs it again", attempt)

        def progress(sent: list[str]) -> None:
            ti.xcom_push(key="command_ids", value=[*ledger.speaking_commands(plan.fleet, attempt), *sent])

        progress([])

        try:
            result = self._sender.send(
                ledger, plan, send_kwargs, tags=tags, comment=self.comment, on_sent=progress
            )
        except SendRefused as refused:
            raise FleetRunFailed(
                _refused_text(refused), headline="SendCommand refused, run stopped"
            ) from None
        except (SendUnconfirmed, SendStopped) as error:
            if is_last_try(ti, self.retries or 0):
                self._give_up(attempt, str(error))
            raise FleetRunError(f"Task {self.task_id}, attempt {attempt}: {error}") from None
        log_group = self._log_group(send_kwargs)
        self._persist_links(context, result.sent or result.watched, log_group)
        handed_on = {
            "attempt": attempt,
            "command_ids": result.watched,
            "instance_ids": list(plan.fleet),
            "sent_to": list(plan.send),
            "gone": list(plan.gone),
            "document_name": self.document_name,
            "region_name": self.hook.conn_region_name,
            "log_group": log_group,
        }
        for key in ("attempt", "command_ids", "instance_ids", "gone"):
            ti.xcom_push(key=key, value=handed_on[key])
        return handed_on

    def _give_up(self, attempt: int, why: str) -> None:
        """The last try could not confirm its sends: cancel what the attempt sent, fail for good."""
        assert self._sender is not None
        sent = [c.command_id for c in self._sender.read_ledger().commands_of(attempt) if not c.cancelled]
        cancelled, failed = self._sender.cancel(sent, "the last try of the send did not complete")
        cleanup = f"Cancelled what attempt {attempt} had sent: {', '.join(cancelled) or 'nothing'}."
        if failed:
            cleanup += f" Could NOT cancel: {', '.join(failed)}; the teardown tries again."
        raise FleetRunFailed(
            f"Task {self.task_id}, attempt {attempt}, last try: {why}. {cleanup} Clear the run once SSM "
            "answers again: hosts that succeeded are not run again.",
            headline="send not confirmed, run stopped",
        )

    def on_kill(self) -> None:
        """Killed (the run marked failed, a timeout): send nothing more, cancel what this try sent."""
        sender = getattr(self, "_sender", None)
        if sender is not None:
            cancelled, failed = sender.stop("the task was killed while sending")
            if failed:
                self.log.error("Could not cancel %s: cancel them in the SSM console", ", ".join(failed))

    def _log_group(self, send_kwargs: Mapping[str, Any]) -> str | None:
        config = send_kwargs.get("CloudWatchOutputConfig")
        if not config:
            return None
        return config.get("CloudWatchLogGroupName") or f"/aws/ssm/{self.document_name}"

    def _persist_links(self, context: Context, command_ids: list[str], log_group: str | None) -> None:
        region, partition = self.hook.conn_region_name, self.hook.conn_partition
        if command_ids:
            SsmRunCommandLink.persist(context, self, region, partition, command_id=command_ids[0])
        if log_group:
            CloudWatchOutputLink.persist(
                context, self, region, partition, log_group=log_group_fragment(log_group)
            )


def _refused_text(refused: SendRefused) -> str:
    cleanup = (
        f"Cancelled the {len(refused.cancelled)} command(s) this try had sent "
        f"({', '.join(refused.cancelled)})."
        if refused.cancelled
        else "Nothing else had been sent by this try."
    )
    if refused.not_cancelled:
        cleanup += f" Could NOT cancel: {', '.join(refused.not_cancelled)}; the teardown tries again."
    return (
        f"SendCommand refused for {refused.chunk.describe()}: {error_text(refused.error)}. {cleanup} "
        "Not retried: AWS would refuse it again. Fix the cause, then Clear the run: hosts that "
        "already succeeded are not run again."
    )


class SsmFleetPreflightOperator(_FleetTargetsOperator):
    """Check a fleet before anything is sent: the targets, the script arguments, every instance online.

    Returns the resolved instance ids (also in XCom under ``instance_ids``); fails naming every
    instance that is unknown to SSM or not ``Online``, and every invalid value, field by field.

    :param instance_ids: the instance ids to check (give this or ``target_tags``).
    :param target_tags: tags selecting the instances, e.g. ``{"Role": ["batch"]}``.
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
        """Check the fleet before anything is sent; push and return the instances online in SSM."""
        try:
            ids, tags = self._targets()
            validation.script_arguments(validation.from_template(self.script_arguments))
        except validation.InvalidParameterError as error:
            raise FleetRunFailed(
                f"Task {self.task_id}: {error}. Nothing was sent to AWS.",
                headline="invalid parameters, nothing sent",
            ) from None
        resolved = self.resolve_instances(ids, tags)
        self.log.info("%s instance(s) online and managed by SSM: %s", len(resolved), ", ".join(resolved))
        context["ti"].xcom_push(key="instance_ids", value=resolved)
        return resolved
