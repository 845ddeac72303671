"""The Run Command API of one emulator.

SendCommand, ListCommands, ListCommandInvocations, GetCommandInvocation, CancelCommand and
DescribeInstanceInformation. Each method takes the caller's account, region and the request's
JSON parameters and returns the response as a dict for moto's serializer; errors are moto SSM
exceptions.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from ssm_emulator.exceptions import (
    DuplicateInstanceId,
    InvalidCommandId,
    InvalidFilterKey,
    InvalidFilterValue,
    InvalidInstanceId,
    InvalidPluginName,
    InvocationDoesNotExist,
    send_command_denied,
)
from ssm_emulator.faults import FaultState
from ssm_emulator.instance_filters import instance_predicates
from ssm_emulator.instances import InstanceRegistry, ManagedInstance
from ssm_emulator.models import EmulatedCommand, Invocation
from ssm_emulator.pagination import check_max_results, paginate
from ssm_emulator.statuses import NOT_STARTED_CODE, Details, Status, matches_status_filter
from ssm_emulator.validation import (
    PLUGIN_NAME,
    SendCommandRequest,
    check_instance_id_format,
    validate_send_command,
)

_COMMAND_ID_RE = re.compile(r"^[0-9a-f-]{36}$")
_FILTER_KEYS = ("InvokedAfter", "InvokedBefore", "Status", "DocumentName", "ExecutionStage")


class RunCommandService:
    """Holds the commands of one emulator and answers the Run Command API."""

    def __init__(self, faults: FaultState, registry: InstanceRegistry) -> None:
        self.lock = threading.RLock()
        self.faults = faults
        self.registry = registry
        self._commands: dict[str, EmulatedCommand] = {}
        self._active: list[EmulatedCommand] = []
        self._seq = itertools.count()
        #: Set by the server: called after a command is created or cancelled.
        self.on_change: Callable[[], None] = lambda: None

    # -- used by the scheduler (lock held) ----------------------------------------------------
    def active_commands(self) -> list[EmulatedCommand]:
        """Return the commands that still have active invocations, dropping finished ones."""
        self._active = [command for command in self._active if not command.done]
        return list(self._active)

    # -- SendCommand ---------------------------------------------------------------------------
    def send_command(self, account_id: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        request = validate_send_command(params)
        with self.lock:
            targets = self._resolve_targets(account_id, region, request)
            self._check_authorized(account_id, region, targets)
            names = {i.instance_id: i.private_dns_name for i in targets}
            command = EmulatedCommand(
                account_id=account_id,
                region=region,
                request=request,
                target_ids=[i.instance_id for i in targets],
                instance_names=names,
                sent_monotonic=time.monotonic(),
                delivery_seconds=request.timeout_seconds * self.faults.time_scale,
                consistency_delay=self.faults.consistency_delay,
                # Only tag targets wait for SSM to resolve them; instance ids are known at once.
                resolve_delay=self.faults.take_resolve_delay() if not request.instance_ids else 0.0,
            )
            command.seq = next(self._seq)
            self._commands[command.command_id] = command
            self._active.append(command)
            response = {"Command": command.response_object(sent=True)}
        self.on_change()
        return response

    def _resolve_targets(
        self, account_id: str, region: str, request: SendCommandRequest
    ) -> list[ManagedInstance]:
        if request.instance_ids:
            return [self._managed(account_id, region, iid) for iid in request.instance_ids]
        candidates = self.registry.in_region(account_id, region)
        for target in request.targets:
            key, values = target["Key"], set(target["Values"])
            if key == "InstanceIds":
                for instance_id in target["Values"]:
                    self._managed(account_id, region, instance_id)
                candidates = [i for i in candidates if i.instance_id in values]
            elif key == "tag-key":
                candidates = [i for i in candidates if values & set(i.tags())]
            else:
                tag = key[len("tag:") :]
                candidates = [i for i in candidates if i.tags().get(tag) in values]
        return candidates

    def _check_authorized(self, account_id: str, region: str, targets: list[ManagedInstance]) -> None:
        # Emulates a least-privilege role: ssm:SendCommand allowed only on instances with a tag.
        required = self.faults.required_tag()
        if required is None:
            return
        key, value = required
        for instance in targets:
            if instance.tags().get(key) != value:
                raise send_command_denied(account_id, region, instance.instance_id)

    def _managed(self, account_id: str, region: str, instance_id: str) -> ManagedInstance:
        instance = self.registry.get(account_id, region, instance_id)
        if instance is None:
            raise InvalidInstanceId(
                f"Instances [[{instance_id}]] not in a valid state for account {account_id}: "
                f"no SSM-managed instance with this id in {region}."
            )
        return instance

    # -- ListCommands ----------------------------------------------------------------------------
    def list_commands(self, account_id: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        max_results = check_max_results(params.get("MaxResults"), 1, 50, 50)
        matches = _command_filters(params.get("Filters") or [], allow_stage=True)
        with self.lock:
            commands = self._visible(self._commands_in(account_id, region), "ListCommands")
            if params.get("CommandId"):
                # A command SSM's read side does not show yet is listed as nothing, not as unknown.
                command = self._command(account_id, region, params["CommandId"])
                commands = self._visible([command], "ListCommands")
            if params.get("InstanceId"):
                instance_id = params["InstanceId"]
                commands = [
                    c
                    for c in self._resolved(commands)
                    if any(i.instance_id == instance_id for i in c.invocations)
                ]
            commands = [c for c in commands if all(match(c, c.status, c.status_details) for match in matches)]
            page, token = paginate(commands, lambda c: (-c.seq,), max_results, params.get("NextToken"))
            result: dict[str, Any] = {"Commands": [c.response_object() for c in page]}
        if token:
            result["NextToken"] = token
        return result

    # -- ListCommandInvocations ---------------------------------------------------------------
    def list_command_invocations(
        self, account_id: str, region: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        max_results = check_max_results(params.get("MaxResults"), 1, 50, 50)
        matches = _command_filters(params.get("Filters") or [], allow_stage=False)
        command_id, instance_id = params.get("CommandId"), params.get("InstanceId")
        if command_id:
            _check_command_id(command_id)
        if instance_id:
            check_instance_id_format(instance_id)
        with self.lock:
            commands = self._visible(self._commands_in(account_id, region), "ListCommandInvocations")
            commands = self._resolved(commands)
            if command_id:
                commands = [c for c in commands if c.command_id == command_id]
            invocations = [
                (command.seq, index, inv)
                for command in commands
                for index, inv in enumerate(command.invocations)
                if (not instance_id or inv.instance_id == instance_id)
                and all(match(command, inv.status, inv.details) for match in matches)
            ]
            page, token = paginate(invocations, lambda t: (-t[0], t[1]), max_results, params.get("NextToken"))
            details = bool(params.get("Details"))
            items = [self._as_read(inv.list_item(details), inv.instance_id) for _, _, inv in page]
            result: dict[str, Any] = {"CommandInvocations": items}
        if token:
            result["NextToken"] = token
        return result

    # -- GetCommandInvocation -------------------------------------------------------------------
    def get_command_invocation(self, account_id: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        command_id, instance_id = params.get("CommandId", ""), params.get("InstanceId", "")
        _check_command_id(command_id)
        check_instance_id_format(instance_id)
        plugin = params.get("PluginName")
        if plugin and plugin not in (PLUGIN_NAME, PLUGIN_NAME.split(":", 1)[1]):
            raise InvalidPluginName(
                f"Plugin {plugin} is not part of {command_id} (its plugin is {PLUGIN_NAME})."
            )
        with self.lock:
            found = self._commands.get(command_id)
            mine = [c for c in [found] if c and c.account_id == account_id and c.region == region]
            for command in self._resolved(self._visible(mine, "GetCommandInvocation")):
                for invocation in command.invocations:
                    if invocation.instance_id == instance_id:
                        return self._as_read(invocation.get_result(), instance_id)
        raise InvocationDoesNotExist(f"No invocation of command {command_id} on instance {instance_id}.")

    # -- CancelCommand -----------------------------------------------------------------------
    def cancel_command(self, account_id: str, region: str, params: dict[str, Any]) -> dict[str, Any]:
        command_id = params.get("CommandId", "")
        instance_ids = list(params.get("InstanceIds") or [])
        if len(set(instance_ids)) != len(instance_ids):
            raise DuplicateInstanceId("An instance id is specified more than once.")
        with self.lock:
            command = self._command(account_id, region, command_id)
            if command.awaiting_targets() and not instance_ids:
                command.drop_targets()  # cancelled before SSM resolved its targets: nothing ever runs
            by_id = {inv.instance_id: inv for inv in command.invocations}
            unknown = [iid for iid in instance_ids if iid not in by_id]
            if unknown:
                raise InvalidInstanceId(f"Instances {unknown} are not targets of command {command_id}.")
            if not instance_ids:
                command.cancel_requested = True
            for invocation in [by_id[iid] for iid in instance_ids] or command.invocations:
                _cancel(invocation)
            command.refresh()
        self.on_change()
        return {}

    # -- DescribeInstanceInformation ----------------------------------------------------------------
    def describe_instance_information(
        self, account_id: str, region: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        max_results = check_max_results(params.get("MaxResults"), 5, 50, 50)
        predicates = instance_predicates(params)
        instances = [
            instance
            for instance in self.registry.in_region(account_id, region)
            if all(predicate(instance, instance.tags()) for predicate in predicates)
        ]
        page, token = paginate(instances, lambda i: (i.seq,), max_results, params.get("NextToken"))
        result: dict[str, Any] = {"InstanceInformationList": [i.information() for i in page]}
        if token:
            result["NextToken"] = token
        return result

    # -- knobs -------------------------------------------------------------------------------------
    def catch_up(self) -> int:
        """End every command's consistency delay now (the reads catch up); return how many were hidden."""
        now = time.monotonic()
        with self.lock:
            hidden = [c for c in self._commands.values() if c.visible_after > now]
            for command in hidden:
                command.visible_after = now
        return len(hidden)

    # -- helpers ---------------------------------------------------------------------------------
    def _commands_in(self, account_id: str, region: str) -> list[EmulatedCommand]:
        return [c for c in self._commands.values() if c.account_id == account_id and c.region == region]

    def _visible(self, commands: list[EmulatedCommand], action: str) -> list[EmulatedCommand]:
        """Drop the commands that the read `action` does not show yet (the consistency delay)."""
        if not self.faults.lags(action):
            return commands
        now = time.monotonic()
        return [c for c in commands if c.visible_after <= now]

    @staticmethod
    def _resolved(commands: list[EmulatedCommand]) -> list[EmulatedCommand]:
        """Drop the commands whose targets SSM has not resolved yet (they have no invocation yet)."""
        now = time.monotonic()
        return [c for c in commands if not c.awaiting_targets(now)]

    def _as_read(self, item: dict[str, Any], instance_id: str) -> dict[str, Any]:
        """An invocation as one read shows it: with the odd status or the empty plugins the knobs set."""
        odd = self.faults.read_status(instance_id)
        if odd is not None:
            item["Status"] = item["StatusDetails"] = odd
            for plugin in item.get("CommandPlugins") or ():
                plugin["Status"] = plugin["StatusDetails"] = odd
        if "CommandPlugins" in item and self.faults.plugins_empty(instance_id):
            item["CommandPlugins"] = []
        return item

    def _command(self, account_id: str, region: str, command_id: str) -> EmulatedCommand:
        _check_command_id(command_id)
        command = self._commands.get(command_id)
        if command is None or command.account_id != account_id or command.region != region:
            raise InvalidCommandId(f"Command {command_id} does not exist in {region}.")
        return command


def _cancel(invocation: Invocation) -> None:
    if invocation.status is Status.PENDING:
        invocation.finish(Status.CANCELLED, Details.CANCELLED, NOT_STARTED_CODE)
    elif invocation.status is Status.IN_PROGRESS:
        invocation.status, invocation.details = Status.CANCELLING, Details.CANCELLING
        invocation.cancel_requested = True


def _check_command_id(command_id: str) -> None:
    if not _COMMAND_ID_RE.match(command_id or ""):
        raise InvalidCommandId(f"Command id {command_id!r} is not valid (36 characters expected).")


Match = Callable[[EmulatedCommand, str, str], bool]


def _command_filters(filters: list[dict[str, str]], allow_stage: bool) -> list[Match]:
    matches: list[Match] = []
    for item in filters:
        key, value = item.get("key", ""), item.get("value", "")
        if key not in _FILTER_KEYS or (key == "ExecutionStage" and not allow_stage):
            raise InvalidFilterKey(f"Filter key {key} is not supported here.")
        matches.append(_command_filter(key, value))
    return matches


def _command_filter(key: str, value: str) -> Match:
    if key in ("InvokedAfter", "InvokedBefore"):
        moment = _parse_time(value)
        if key == "InvokedAfter":
            return lambda command, _s, _d: command.requested_at >= moment
        return lambda command, _s, _d: command.requested_at <= moment
    if key == "Status":
        return lambda _c, status, details: matches_status_filter(value, status, details)
    if key == "DocumentName":
        return lambda command, _s, _d: command.document_name == value
    if value not in ("Executing", "Complete"):
        raise InvalidFilterValue(f"ExecutionStage must be Executing or Complete, not {value}.")
    return lambda command, _s, _d: (value == "Complete") == command.done


def _parse_time(value: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as error:
        raise InvalidFilterValue(f"{value} is not an ISO 8601 time such as 2024-07-07T00:00:00Z.") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
