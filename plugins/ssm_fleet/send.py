"""The send protocol of a fleet run: every host of an attempt gets at most one command.

SendCommand has no idempotency token, so each command carries the run token in its Comment
(:mod:`ssm_fleet.plan`) and the run's ledger (:mod:`ssm_fleet.ledger`) is read back from SSM before
anything is sent. Per chunk of 50 hosts (or one tag command for a fresh run by tag):

- a chunk this attempt already sent (an earlier try) is adopted, not sent again; a chunk sent
  twice (an answer lost after AWS acted) keeps one command and the extras are cancelled;
- throttling and never-connected errors are sent again, with backoff: nothing ran;
- an ambiguous answer (5xx, read timeout, dropped connection) is looked up by token for
  ``lookup_window`` seconds (SSM's reads lag its writes); if the command does not show up, the
  try fails *retryably* (:class:`SendUnconfirmed`) without sending again, and the next try's
  look-up decides: by then the lag has had the task's retry delay too;
- a refusal for good (access denied, invalid instance) cancels what this try sent and fails for
  good (:class:`SendRefused`): AWS would refuse it again.

A stop request (:meth:`FleetSender.stop`, the task's ``on_kill``) stops sending before the next
chunk and cancels what this try sent. Airflow glue lives in the operator; this module does the
AWS calls through the fleet hook.

Over 350 lines for a reason: a host's automatic re-send (:meth:`FleetSender.resend`, and
:class:`ResendRequests` that the wait's check drives) is the same protocol for one host, so it
reuses the look-up by token rather than copying it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ssm_fleet.check import DescribeInstances, FindRunCommands, Resend
from ssm_fleet.hooks.ssm import SendOutcome, SsmFleetHook, error_text, send_outcome
from ssm_fleet.invocations import CommandSummary, InvocationResult
from ssm_fleet.ledger import AttemptPlan, RunLedger
from ssm_fleet.plan import RESEND_CHUNK_BASE, CommandChunk, plan_chunks, resend_comment, user_comment
from ssm_fleet.resend import Due
from ssm_fleet.status import Status

#: SendCommand requests per chunk and try: throttled ones, and never-connected ones.
MAX_SENDS_PER_CHUNK = 5
#: First pause before sending a refused (throttled) chunk again; it doubles each time (at most 30 s).
SEND_BACKOFF_SECONDS = 1.0
#: Seconds a try looks for a command whose SendCommand answer was lost before it gives up (retryably).
LOOKUP_WINDOW_SECONDS = 30.0
#: Pauses between those look-ups.
LOOKUP_PAUSES = (0.0, 2.0, 3.0, 5.0, 10.0, 10.0)


class SendRefused(Exception):
    """SendCommand refused for good for one chunk.

    :param chunk: the chunk AWS refused.
    :param error: AWS's error.
    :param cancelled: the commands this try had sent, cancelled since.
    :param not_cancelled: ``"<id> (<error>)"`` of those that could not be cancelled.
    """

    def __init__(
        self,
        chunk: CommandChunk,
        error: BaseException,
        cancelled: Sequence[str],
        not_cancelled: Sequence[str],
    ):
        super().__init__(f"{chunk.describe()}: {error_text(error)}")
        self.chunk, self.error = chunk, error
        self.cancelled, self.not_cancelled = list(cancelled), list(not_cancelled)


class SendUnconfirmed(Exception):
    """A send whose answer was lost, and whose command no look-up found: the next try decides."""


class SendStopped(Exception):
    """The task was killed while sending: nothing more is sent."""


@dataclass
class SendResult:
    """What an attempt sent and what its wait must watch.

    :param plan: the attempt's plan over hosts.
    :param watched: the commands that speak for the attempt's hosts, in speaking order.
    :param sent: the commands this try created.
    :param adopted: the commands of this attempt an earlier try had sent.
    """

    plan: AttemptPlan
    watched: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)


def _chunk_of(command: CommandSummary) -> tuple[str, ...]:
    return tuple(command.instance_ids)


class FleetSender:
    """Sends one attempt of a run through the fleet hook, by the rules of this module.

    :param hook: the fleet hook.
    :param digest: the run token's digest.
    :param attempt: the attempt being sent.
    :param since: commands of the run were sent after this moment (the ListCommands filter).
    :param document_name: the SSM document (narrows ListCommands).
    :param log: where to log what happens.
    :param sleep: how to pause (tests pass a fake).
    """

    def __init__(
        self,
        hook: SsmFleetHook,
        *,
        digest: str,
        attempt: int,
        since: datetime,
        document_name: str,
        log: logging.Logger | Any,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.hook, self.digest, self.attempt, self.since = hook, digest, attempt, since
        self.document_name, self.log, self.sleep = document_name, log, sleep
        self._stop = threading.Event()
        self._sent_now: list[str] = []

    # -- reading the ledger ----------------------------------------------------------------------------
    def run_commands(self) -> list[dict[str, Any]]:
        """Every command carrying the run token (all attempts), through ListCommands."""
        return self.hook.find_run_commands(self.digest, self.since, self.document_name)

    def read_ledger(self) -> RunLedger:
        """The run's ledger: its commands, and the invocations of each (ListCommandInvocations)."""
        commands = [CommandSummary.from_api(c) for c in self.run_commands()]
        invocations = [
            InvocationResult.from_api(item)
            for command in commands
            for item in self.hook.list_invocations(command.command_id, details=False)
        ]
        return RunLedger(commands, invocations)

    # -- sending -----------------------------------------------------------------------------------------
    def send(
        self,
        ledger: RunLedger,
        plan: AttemptPlan,
        send_kwargs: Mapping[str, Any],
        *,
        tags: Mapping[str, Sequence[str]] | None = None,
        comment: str = "",
        on_sent: Callable[[list[str]], None] | None = None,
    ) -> SendResult:
        """Send what ``plan`` says this attempt still has to send; adopt what an earlier try sent."""
        result = SendResult(plan)
        self._cancel_duplicates(ledger)
        mine = ledger.commands_of(self.attempt)
        result.adopted = [c.command_id for c in mine if not c.cancelled]
        for command_id in result.adopted:
            self.log.info(
                "Adopting command %s, sent by an earlier try of attempt %s", command_id, self.attempt
            )
        for chunk in self._chunks_to_send(ledger, plan, tags):
            if self._stop.is_set():
                raise SendStopped(f"stopped before {chunk.describe()}")
            result.sent += self._send_chunk(chunk, send_kwargs, comment, result.sent)
            if on_sent:
                on_sent(list(result.sent))
        watched = ledger.speaking_commands([*plan.keep, *plan.adopt], self.attempt)
        result.watched = list(dict.fromkeys([*watched, *result.sent]))
        return result

    def _cancel_duplicates(self, ledger: RunLedger) -> None:
        for duplicate in ledger.duplicates:
            if duplicate.cancelled:
                continue
            self.log.warning(
                "Command %s is a second copy of chunk %s of attempt %s (SendCommand ran twice): cancelled",
                duplicate.command_id,
                duplicate.chunk,
                duplicate.attempt,
            )
            self.hook.cancel_command(duplicate.command_id)

    def _chunks_to_send(
        self, ledger: RunLedger, plan: AttemptPlan, tags: Mapping[str, Sequence[str]] | None
    ) -> list[CommandChunk]:
        """The chunks still to send: the plan's, minus hosts an earlier try of this attempt sent to.

        Chunks are numbered from the plan alone, so a try that plans what an earlier try planned
        gives each chunk the same number, and a chunk whose answer was lost then sent again shows
        up as a duplicate of one chunk (kept once, the copy cancelled).
        """
        covered = ledger.covered(self.attempt)
        if covered is None or not plan.send:
            return []
        if plan.fresh and tags and not covered:
            return plan_chunks(self.digest, attempt=self.attempt, tags=tags)
        chunks = plan_chunks(self.digest, attempt=self.attempt, instance_ids=list(plan.send))
        existing = {c.chunk: c for c in ledger.commands_of(self.attempt) if not c.cancelled and not c.resend}
        todo, leftover = [], []
        for chunk in chunks:
            already = existing.get(chunk.index)
            if already is not None and _chunk_of(already) == chunk.instance_ids:
                continue
            missing = [h for h in chunk.instance_ids if h not in covered]
            if already is None and len(missing) == len(chunk.instance_ids):
                todo.append(chunk)
            else:
                leftover += missing
        if leftover:
            start = max([len(chunks), *existing]) + 1
            extra = plan_chunks(self.digest, attempt=self.attempt, instance_ids=leftover)
            todo += [
                CommandChunk(start + n, start + len(extra) - 1, self.digest, self.attempt, c.instance_ids)
                for n, c in enumerate(extra)
            ]
        return todo

    def _send_chunk(
        self, chunk: CommandChunk, kwargs: Mapping[str, Any], comment: str, sent_this_try: list[str]
    ) -> list[str]:
        """Send one chunk; a refusal for good cancels what this try sent and raises :class:`SendRefused`."""
        try:
            command_id = self._send_once(chunk, kwargs, comment)
        except _Refused as refused:
            cancelled, failed = self.cancel(sent_this_try, f"{chunk.describe()} could not be sent")
            raise SendRefused(chunk, refused.error, cancelled, failed) from refused.error
        self._sent_now.append(command_id)
        return [command_id]

    def _send_once(self, chunk: CommandChunk, kwargs: Mapping[str, Any], comment: str) -> str:
        for send in range(1, MAX_SENDS_PER_CHUNK + 1):
            try:
                command = self.hook.send_command_once(
                    **kwargs, **chunk.target_kwargs(), Comment=chunk.comment(comment)
                )
            except (ClientError, BotoCoreError) as error:
                outcome = send_outcome(error)
                if outcome is SendOutcome.REFUSED:
                    raise _Refused(error) from error
                if outcome is SendOutcome.AMBIGUOUS:
                    return self._look_up(chunk, error)
                delay = min(SEND_BACKOFF_SECONDS * 2 ** (send - 1), 30.0)
                self.log.warning(
                    "SendCommand for %s not accepted (%s, send %s/%s); sending again in %ss",
                    chunk.describe(),
                    error_text(error),
                    send,
                    MAX_SENDS_PER_CHUNK,
                    delay,
                )
                self.sleep(delay)
                continue
            self.log.info("Sent command %s (%s)", command["CommandId"], chunk.describe())
            return str(command["CommandId"])
        raise SendUnconfirmed(
            f"SendCommand for {chunk.describe()} was not accepted after {MAX_SENDS_PER_CHUNK} sends"
        )

    def _look_up(self, chunk: CommandChunk, error: BaseException) -> str:
        """After an ambiguous answer: find the chunk's command by token, or fail retryably."""
        self.log.warning(
            "SendCommand for %s: the answer was lost (%s); looking the command up by its token, "
            "never sending it again in this try",
            chunk.describe(),
            error_text(error),
        )
        waited = 0.0
        for pause in LOOKUP_PAUSES:
            if waited + pause > LOOKUP_WINDOW_SECONDS:
                break
            self.sleep(pause)
            waited += pause
            commands = (CommandSummary.from_api(c) for c in self.run_commands())
            live = [
                c
                for c in commands
                if (c.attempt, c.chunk) == (chunk.attempt, chunk.index)
                and not c.cancelled
                and (not c.resend or c.instance_ids == chunk.instance_ids)
            ]
            if live:
                self.log.info("Found command %s for %s: adopting it", live[0].command_id, chunk.describe())
                return live[0].command_id
        raise SendUnconfirmed(
            f"SendCommand for {chunk.describe()}: the answer was lost ({error_text(error)}) and no command "
            f"with its token showed up within {LOOKUP_WINDOW_SECONDS:.0f}s; not sending again in this try: "
            "the next try looks it up again and sends only what is missing"
        )

    # -- a host's automatic re-send (the wait's, see ssm_fleet.resend) -----------------------------------
    def resend(self, due: Due, source: Mapping[str, Any]) -> str | None:
        """Send ``due``'s host the batch of ``source`` again, at most once; its command id, or ``None``.

        Exactly once, as for a chunk: the run's commands are read first, and a live command with
        this host's re-send token is adopted, never sent again; throttling is sent again with
        backoff; an ambiguous answer is looked up by token for ``LOOKUP_WINDOW_SECONDS`` and, not
        found, answers ``None`` without sending again (the next check reads the ledger first).
        A duplicate can still happen in one case: SSM's reads lag its write by longer than that
        look-up and the next check's own read (the poke interval): the next check then sends a
        second copy. Both carry the same token, so once listed the ledger keeps the earliest live
        copy (:func:`ssm_fleet.ledger.split_duplicates`) and the wait cancels the other before it
        starts, unless it already ran. A refusal for good (the host terminated...) answers ``None``
        and is logged: the host is judged by its latest invocation once its re-sends or the bound
        run out.
        """
        chunk = HostResend(
            RESEND_CHUNK_BASE + due.resend, 0, self.digest, self.attempt, instance_ids=(due.instance_id,)
        )
        for command in map(CommandSummary.from_api, self.run_commands()):
            mine = (command.attempt, command.resend, command.instance_ids) == (
                self.attempt,
                due.resend,
                chunk.instance_ids,
            )
            if mine and not command.cancelled:
                self.log.info(
                    "Re-send %s of %s already sent: command %s",
                    due.resend,
                    due.instance_id,
                    command.command_id,
                )
                return command.command_id
        try:
            command_id = self._send_once(chunk, resend_kwargs(source), user_comment(source.get("Comment")))
        except _Refused as refused:
            self.log.error("Could not re-send %s: %s", due.instance_id, refused)
            return None
        except SendUnconfirmed as unconfirmed:
            self.log.warning("%s", unconfirmed)
            return None
        self.log.warning(
            "%s: %s, re-sent as command %s (re-send %s of the attempt)",
            due.instance_id,
            due.reason,
            command_id,
            due.resend,
        )
        return command_id

    # -- stopping and cleaning up -------------------------------------------------------------------------
    def stop(self, reason: str) -> tuple[list[str], list[str]]:
        """Send nothing more, and cancel what this try sent (the task is being killed)."""
        self._stop.set()
        return self.cancel(self._sent_now, reason)

    def cancel(self, command_ids: Iterable[str], reason: str) -> tuple[list[str], list[str]]:
        """Cancel commands; returns the ids cancelled and ``"<id> (<error>)"`` of those that were not."""
        cancelled, failed = [], []
        for command_id in dict.fromkeys(command_ids):
            try:
                self.hook.cancel_command(command_id)
            except (ClientError, BotoCoreError) as error:
                failed.append(f"{command_id} ({error_text(error)})")
                continue
            self.log.warning("Cancelled command %s: %s", command_id, reason)
            cancelled.append(command_id)
        return cancelled, failed


class _Refused(Exception):
    def __init__(self, error: BaseException):
        super().__init__(error_text(error))
        self.error = error


#: The options of a ListCommands ``Command`` a re-send repeats (rate controls mean nothing for one host).
RESEND_KEYS = (
    "DocumentName",
    "DocumentVersion",
    "Parameters",
    "TimeoutSeconds",
    "OutputS3BucketName",
    "OutputS3KeyPrefix",
    "CloudWatchOutputConfig",
)


def resend_kwargs(source: Mapping[str, Any]) -> dict[str, Any]:
    """SendCommand arguments repeating ``source`` (a ListCommands ``Command``), but targets and Comment."""
    kwargs = {key: source[key] for key in RESEND_KEYS if source.get(key)}
    if not (kwargs.get("CloudWatchOutputConfig") or {}).get("CloudWatchOutputEnabled"):
        kwargs.pop("CloudWatchOutputConfig", None)
    if source.get("ServiceRole"):
        kwargs["ServiceRoleArn"] = source["ServiceRole"]
        if source.get("NotificationConfig", {}).get("NotificationArn"):
            kwargs["NotificationConfig"] = source["NotificationConfig"]
    return kwargs


@dataclass(frozen=True)
class HostResend(CommandChunk):
    """The one-host command of a re-send: its token is the host's re-send number (``re<k>``)."""

    def comment(self, user_comment: str = "") -> str:
        """The Comment of the re-send: the user's part, then the re-send token."""
        return resend_comment(self.digest, self.attempt, self.index - RESEND_CHUNK_BASE, user_comment)

    def describe(self) -> str:
        """E.g. ``re-send 1 of i-0abc...``."""
        return f"re-send {self.index - RESEND_CHUNK_BASE} of {', '.join(self.instance_ids)}"


class ResendRequests:
    """Carries out a check's re-send requests (FindRunCommands, DescribeInstances, Resend), synchronously.

    The sensor calls it directly, the trigger in a thread. What this wait sent is remembered and
    added to the run's commands as long as ListCommands does not list it yet (its reads lag), so a
    poke-mode sensor or a trigger never decides again on a re-send it already made.

    :param hook: the fleet hook.
    :param log: where to log.
    """

    def __init__(self, hook: SsmFleetHook, log: logging.Logger | Any):
        self.hook, self.log = hook, log
        self.sent: dict[str, dict[str, Any]] = {}

    def __call__(self, request: FindRunCommands | DescribeInstances | Resend) -> Any:
        """Carry out one request of the check's re-send round; answer it."""
        if isinstance(request, FindRunCommands):
            found = self.hook.find_run_commands(request.digest, request.since)
            listed = {c.get("CommandId") for c in found}
            return [*found, *(c for cid, c in self.sent.items() if cid not in listed)]
        if isinstance(request, DescribeInstances):
            return self.hook.describe_instances(instance_ids=list(request.instance_ids))
        sender = FleetSender(
            self.hook,
            digest=request.digest,
            attempt=request.attempt,
            since=request.since,
            document_name=str(request.source.get("DocumentName") or ""),
            log=self.log,
        )
        command_id = sender.resend(request.due, request.source)
        if command_id:
            self.sent.setdefault(
                command_id,
                {
                    "CommandId": command_id,
                    "Comment": resend_comment(request.digest, request.attempt, request.due.resend),
                    "InstanceIds": [request.due.instance_id],
                    "Status": Status.PENDING.value,
                    "RequestedDateTime": datetime.now(UTC),
                },
            )
        return command_id
