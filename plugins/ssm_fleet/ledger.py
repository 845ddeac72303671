"""The run ledger: one record per host of everything a DAG run has done to it, over every attempt.

Pure Python with no Airflow import and no AWS call. It is built from SSM's own answers about the
commands that carry the run's token (:mod:`ssm_fleet.plan`): ListCommands and ListCommandInvocations
read into :class:`~ssm_fleet.invocations.CommandSummary` and
:class:`~ssm_fleet.invocations.InvocationResult`. It alone answers what the tasks of a run ask:

- which hosts an attempt sends to, which it adopts because their batch still runs, and which left
  the fleet (:meth:`RunLedger.plan`, the Clear and redrive rules);
- each host's invocations in order and its latest outcome (:attr:`RunLedger.hosts`);
- the verdict over hosts (:meth:`RunLedger.verdict`).

A chunk that SendCommand created twice (an answer lost after AWS acted) has one command that
speaks for its hosts, the *kept* one: the earliest that was not cancelled, else the latest. The
others are *duplicates*: they are cancelled by the sender and never count for a host or as a
command problem.
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ssm_fleet.invocations import CommandSummary, InvocationResult
from ssm_fleet.status import explain, is_running, is_success
from ssm_fleet.verdict import FailurePolicy, FailureTolerance, FleetVerdict, decide

#: How a host that no earlier command ever listed is counted in a plan's reasons.
NEVER_STARTED = "never started"
#: How a host that succeeded but is sent again because redrive is off is counted.
REDRIVE_OFF = "redrive off"


@dataclass(frozen=True)
class HostRecord:
    """Every invocation one host had in the run, oldest attempt first.

    :param instance_id: the managed instance id.
    :param invocations: its invocations, by attempt, then in the order their commands speak.
    """

    instance_id: str
    invocations: tuple[InvocationResult, ...]

    @property
    def latest(self) -> InvocationResult:
        """The host's newest invocation."""
        return self.invocations[-1]

    def before(self, attempt: int) -> InvocationResult | None:
        """The latest invocation of an attempt earlier than ``attempt``, if any."""
        earlier = [i for i in self.invocations if i.attempt < attempt]
        return earlier[-1] if earlier else None


class HostAction(enum.StrEnum):
    """What an attempt does with one host."""

    SEND = "send"
    ADOPT = "adopt"
    KEEP = "keep"
    GONE = "gone"


@dataclass(frozen=True)
class AttemptPlan:
    """What one attempt of a run does with each host (see :meth:`RunLedger.plan`).

    :param attempt: the attempt (1, then one more per Clear of the run).
    :param send: hosts that get a new command in this attempt, in the fleet's order.
    :param adopt: hosts whose batch still runs from an earlier attempt: watched, never sent again.
    :param keep: hosts whose latest invocation succeeded and are not sent again (redrive on).
    :param gone: hosts of earlier attempts no longer in the fleet: named, not sent, not counted.
    :param reasons: why the hosts of ``send`` go, counted (``Failed``, ``never started``...).
    :param fresh: no earlier attempt sent anything: the whole fleet goes (tag targets allowed).
    """

    attempt: int
    send: tuple[str, ...] = ()
    adopt: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    gone: tuple[str, ...] = ()
    reasons: tuple[tuple[str, int], ...] = ()
    fresh: bool = True

    @property
    def fleet(self) -> tuple[str, ...]:
        """Every host the attempt's verdict covers."""
        return tuple(sorted({*self.send, *self.adopt, *self.keep}))

    def describe(self) -> str:
        """E.g. ``Attempt 2: sends to 3 of 120 hosts (2 Failed, 1 Cancelled); 117 already succeeded``."""
        why = ", ".join(f"{n} {reason}" for reason, n in self.reasons)
        line = f"Attempt {self.attempt}: sends to {len(self.send)} of {len(self.fleet)} host(s)"
        line += f" ({why})" if why else ""
        if self.keep:
            line += f"; {len(self.keep)} already succeeded (not sent again)"
        if self.adopt:
            line += f"; {len(self.adopt)} still running from an earlier attempt (watched, not sent again)"
        if self.gone:
            shown = ", ".join(self.gone[:10]) + (", ..." if len(self.gone) > 10 else "")
            line += f"; {len(self.gone)} gone from the fleet (not sent, not counted): {shown}"
        return line


def _order_key(command: CommandSummary) -> tuple[int, int, str, str]:
    return (command.attempt, command.chunk, command.requested_at, command.command_id)


def split_duplicates(
    commands: Iterable[CommandSummary],
) -> tuple[list[CommandSummary], list[CommandSummary]]:
    """The commands that speak for their hosts (kept), and the duplicate sends of a chunk.

    Per chunk of an attempt (per host and number for a re-send) the kept command is the earliest
    not cancelled, else the latest one.
    Both lists are in speaking order: attempt, chunk, then time of the request.
    """
    groups: dict[tuple[int, int, tuple[str, ...]] | str, list[CommandSummary]] = {}
    for command in sorted(commands, key=_order_key):
        # A re-send is one host's: its copies share the host as well as the number (a re-send known
        # only through an invocation, its host unknown, is its own group).
        hosts = command.instance_ids if command.resend else ()
        grouped = command.chunk and (hosts or not command.resend)
        key = (command.attempt, command.chunk, hosts) if grouped else command.command_id
        groups.setdefault(key, []).append(command)
    kept: list[CommandSummary] = []
    duplicates: list[CommandSummary] = []
    for group in groups.values():
        live = [c for c in group if not c.cancelled]
        speaker = live[0] if live else group[-1]
        kept.append(speaker)
        duplicates.extend(c for c in group if c is not speaker)
    return sorted(kept, key=_order_key), sorted(duplicates, key=_order_key)


class RunLedger:
    """The per-host record of one run, from its commands and their invocations.

    :param commands: the run's commands as SSM describes them (ListCommands), any attempt. A
        command whose id appears only in ``invocations`` is taken as still running.
    :param invocations: invocations of those commands (ListCommandInvocations), any order.
    """

    def __init__(self, commands: Iterable[CommandSummary], invocations: Iterable[InvocationResult]):
        by_id = {c.command_id: c for c in commands}
        unique = {(i.command_id, i.instance_id): i for i in invocations}
        for invocation in unique.values():
            if invocation.command_id not in by_id:
                by_id[invocation.command_id] = CommandSummary.running(
                    invocation.command_id, invocation.attempt, invocation.chunk, invocation.resend
                )
        self.commands, self.duplicates = split_duplicates(by_id.values())
        position = {c.command_id: n for n, c in enumerate(self.commands)}
        counting = sorted(
            (i for i in unique.values() if i.command_id in position), key=lambda i: position[i.command_id]
        )
        listed: dict[str, list[InvocationResult]] = {}
        self.listed_by: dict[str, set[str]] = {c.command_id: set() for c in self.commands}
        for invocation in counting:
            listed.setdefault(invocation.instance_id, []).append(invocation)
            self.listed_by[invocation.command_id].add(invocation.instance_id)
        self.hosts: dict[str, HostRecord] = {
            host: HostRecord(host, tuple(items)) for host, items in sorted(listed.items())
        }

    @classmethod
    def from_api(
        cls, commands: Iterable[Mapping[str, object]], invocations: Iterable[Mapping[str, object]]
    ) -> RunLedger:
        """Build from raw ListCommands ``Commands`` and ListCommandInvocations ``CommandInvocations``."""
        return cls(
            [CommandSummary.from_api(c) for c in commands],
            [InvocationResult.from_api(i) for i in invocations],
        )

    # -- questions of one attempt ------------------------------------------------------------------------
    def commands_of(self, attempt: int) -> list[CommandSummary]:
        """The kept commands an attempt sent."""
        return [c for c in self.commands if c.attempt == attempt]

    def covered(self, attempt: int) -> set[str] | None:
        """Hosts an attempt has already sent to (``None``: all of them, a tag command was sent)."""
        hosts: set[str] = set()
        for command in self.commands_of(attempt):
            if command.cancelled:
                continue
            if command.by_tag or not command.instance_ids:
                return None
            hosts.update(command.instance_ids)
        return hosts

    def plan(self, attempt: int, fleet_now: Collection[str], *, redrive: bool = True) -> AttemptPlan:
        """What ``attempt`` does with each host, from what earlier attempts did.

        A host whose batch still runs from an earlier attempt is adopted (watched, never sent a
        second copy, never cancelled); among hosts whose batch ended, redrive on sends to those
        whose latest invocation did not succeed, redrive off to all of them; a host never sent
        to is sent to; a host of an earlier attempt that is not in ``fleet_now`` left the fleet
        (terminated, untagged) and is named, not sent.
        """
        fleet = set(fleet_now)
        earlier = {h: r.before(attempt) for h, r in self.hosts.items()}
        earlier = {h: i for h, i in earlier.items() if i is not None}
        actions: dict[str, list[str]] = {action: [] for action in HostAction}
        reasons: Counter[str] = Counter()
        # The fleet's own order (chunks of 50 follow it), then hosts only earlier attempts knew.
        for host in [*dict.fromkeys(fleet_now), *sorted(set(earlier) - fleet)]:
            last = earlier.get(host)
            if host not in fleet:
                action = HostAction.GONE if not (last and is_running(last.status)) else HostAction.ADOPT
            elif last is None:
                action, reason = HostAction.SEND, NEVER_STARTED
            elif is_running(last.status):
                action = HostAction.ADOPT
            elif is_success(last.status) and redrive:
                action = HostAction.KEEP
            else:
                action, reason = HostAction.SEND, last.status.value if redrive else REDRIVE_OFF
            if action is HostAction.SEND:
                reasons[reason] += 1
            actions[action].append(host)
        return AttemptPlan(
            attempt=attempt,
            send=tuple(actions[HostAction.SEND]),
            adopt=tuple(actions[HostAction.ADOPT]),
            keep=tuple(actions[HostAction.KEEP]),
            gone=tuple(actions[HostAction.GONE]),
            reasons=tuple(sorted(reasons.items(), key=lambda item: (-item[1], item[0]))),
            fresh=not earlier,
        )

    def speaking_commands(self, hosts: Collection[str], attempt: int) -> list[str]:
        """The command ids a wait must read for ``hosts``: each one's latest command, and ``attempt``'s."""
        wanted = {self.hosts[h].latest.command_id for h in hosts if h in self.hosts}
        wanted |= {c.command_id for c in self.commands_of(attempt)}
        return [c.command_id for c in self.commands if c.command_id in wanted]

    # -- the verdict ---------------------------------------------------------------------------------------
    def verdict(
        self,
        tolerance: FailureTolerance | int | str = 0,
        policy: FailurePolicy | str = FailurePolicy.FINISH,
        *,
        gone: Sequence[str] = (),
        waiting: Collection[str] = (),
    ) -> FleetVerdict:
        """The verdict over hosts: each host's latest invocation, hosts in ``gone`` left out.

        Hosts an id command names but SSM has not listed yet, and the part of a tag command's target
        count not listed yet, are still to come; any command still running keeps the fleet running.
        Hosts in ``waiting`` (to be re-sent by the wait, :mod:`ssm_fleet.resend`) are still to come too.
        """
        limit, rule = FailureTolerance.parse(tolerance), FailurePolicy.parse(policy)
        left = set(gone)
        latest = tuple(r.latest for h, r in self.hosts.items() if h not in left)
        awaited: set[str] = {h for h in waiting if h not in left}
        remainder = 0
        for command in self.commands:
            listed = self.listed_by[command.command_id]
            if command.instance_ids:
                awaited |= {h for h in command.instance_ids if h not in listed and h not in left}
            else:
                remainder += max(0, command.target_count - len(listed))
        # A host awaited from a later command whose older invocation is listed is not settled yet.
        awaited_known = {h for h in awaited if h in self.hosts}
        shown = tuple(i for i in latest if i.instance_id not in awaited_known)
        expected = len(shown) + len(awaited) + remainder
        problems = tuple(p for c in self.commands if (p := self._problem(c)))
        return decide(
            expected=expected,
            latest=shown,
            problems=problems,
            commands_running=not self.commands or any(is_running(c.status) for c in self.commands),
            counts_known=all(c.expected_count for c in self.commands),
            tolerance=limit,
            policy=rule,
            gone=tuple(sorted(left)),
        )

    def _problem(self, command: CommandSummary) -> str | None:
        """A kept command that ended without listing any host is a failure no host shows."""
        if is_running(command.status) or self.listed_by[command.command_id] or command.expected_count:
            return None
        return (
            f"command {command.command_id} ended {command.status.value} ({command.status_details}) "
            f"with no invocation - {explain(command.status_details)}"
        )
