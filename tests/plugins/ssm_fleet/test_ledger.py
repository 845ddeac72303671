"""The run ledger: per-host records, the attempt plan (Clear semantics) and the verdict over hosts."""

import pytest

from ssm_fleet.invocations import CommandSummary
from ssm_fleet.ledger import NEVER_STARTED, REDRIVE_OFF, RunLedger, split_duplicates
from ssm_fleet.render import progress_line
from ssm_fleet.status import Status, StatusDetails
from ssm_fleet.verdict import Outcome

from .ssm_answers import command, fleet_verdict, invocation

HOSTS = [f"i-{n:017x}" for n in range(1, 7)]
A, B, C, D, E, F = HOSTS


def first_attempt(statuses):
    """Attempt 1 by tag: one command whose invocations end (or run) with the given statuses."""
    done = all(s not in (Status.IN_PROGRESS, Status.PENDING) for s in statuses.values())
    commands = [
        command("c1", Status.SUCCESS if done else Status.IN_PROGRESS, target_count=len(statuses), chunk=1)
    ]
    invocations = [
        invocation(
            host,
            status,
            code=0 if status is Status.SUCCESS else (-1 if status is Status.IN_PROGRESS else 4),
            command_id="c1",
            attempt=1,
        )
        for host, status in statuses.items()
    ]
    return commands, invocations


class TestPlanOfAFreshRun:
    def test_every_host_is_sent_and_the_plan_may_target_tags(self):
        plan = RunLedger([], []).plan(1, HOSTS)
        assert plan.send == tuple(HOSTS) and plan.fresh
        assert plan.reasons == ((NEVER_STARTED, 6),)


class TestClearSemantics:
    """The README's Clear table: what attempt 2 does with each host, by state and redrive."""

    def test_finished_redrive_on_sends_only_the_hosts_without_success(self):
        ledger = RunLedger(*first_attempt({A: Status.SUCCESS, B: Status.FAILED, C: Status.TIMED_OUT}))
        plan = ledger.plan(2, [A, B, C], redrive=True)
        assert (plan.send, plan.keep, plan.adopt) == ((B, C), (A,), ())
        assert dict(plan.reasons) == {"Failed": 1, "TimedOut": 1} and not plan.fresh

    def test_finished_redrive_off_sends_every_host_again(self):
        ledger = RunLedger(*first_attempt({A: Status.SUCCESS, B: Status.FAILED}))
        plan = ledger.plan(2, [A, B], redrive=False)
        assert (plan.send, plan.keep) == ((A, B), ())
        assert dict(plan.reasons) == {REDRIVE_OFF: 2}

    @pytest.mark.parametrize("redrive", [True, False])
    def test_running_hosts_are_adopted_never_sent_a_second_copy(self, redrive):
        ledger = RunLedger(*first_attempt({A: Status.IN_PROGRESS, B: Status.IN_PROGRESS, C: Status.FAILED}))
        plan = ledger.plan(2, [A, B, C], redrive=redrive)
        assert plan.adopt == (A, B)
        assert plan.send == (C,), "only a host whose batch ended goes again"
        assert plan.fleet == (A, B, C)

    def test_running_redrive_off_sends_the_succeeded_ones_again_but_not_the_running(self):
        ledger = RunLedger(*first_attempt({A: Status.IN_PROGRESS, B: Status.SUCCESS}))
        plan = ledger.plan(2, [A, B], redrive=False)
        assert (plan.adopt, plan.send) == ((A,), (B,))

    def test_a_failed_host_that_left_the_fleet_is_named_not_sent(self):
        ledger = RunLedger(*first_attempt({A: Status.SUCCESS, B: Status.FAILED, C: Status.FAILED}))
        plan = ledger.plan(2, [A, C], redrive=True)
        assert (plan.send, plan.gone) == ((C,), (B,))
        assert "1 gone from the fleet (not sent, not counted): " + B in plan.describe()

    def test_a_host_new_in_the_fleet_is_sent(self):
        ledger = RunLedger(*first_attempt({A: Status.SUCCESS}))
        plan = ledger.plan(2, [A, B])
        assert (plan.send, plan.keep) == ((B,), (A,))
        assert dict(plan.reasons) == {NEVER_STARTED: 1}

    def test_clear_twice_a_host_that_failed_twice_goes_a_third_time(self):
        commands, invocations = first_attempt({A: Status.SUCCESS, B: Status.FAILED, C: Status.SUCCESS})
        commands.append(command("c2", Status.FAILED, ids=[B], attempt=2, chunk=1))
        invocations.append(invocation(B, Status.FAILED, code=4, command_id="c2", attempt=2))
        plan = RunLedger(commands, invocations).plan(3, [A, B, C])
        assert (plan.send, plan.keep) == ((B,), (A, C))
        record = RunLedger(commands, invocations).hosts[B]
        assert [(i.attempt, i.status) for i in record.invocations] == [(1, Status.FAILED), (2, Status.FAILED)]

    def test_the_plan_of_a_retry_ignores_what_the_attempt_itself_already_sent(self):
        commands, invocations = first_attempt({A: Status.SUCCESS, B: Status.FAILED})
        commands.append(command("c2", Status.IN_PROGRESS, ids=[B], attempt=2, chunk=1))
        invocations.append(invocation(B, Status.IN_PROGRESS, code=-1, command_id="c2", attempt=2))
        ledger = RunLedger(commands, invocations)
        assert ledger.plan(2, [A, B]).send == (B,), "the same plan as the attempt's first try"
        assert ledger.covered(2) == {B}


class TestDuplicates:
    def test_the_earliest_live_copy_of_a_chunk_speaks_the_others_are_duplicates(self):
        first = command("c-a", Status.IN_PROGRESS, ids=[A], chunk=1, at="2026-11-26T02:00:01")
        second = command("c-b", Status.IN_PROGRESS, ids=[A], chunk=1, at="2026-11-26T02:00:02")
        kept, duplicates = split_duplicates([second, first])
        assert [c.command_id for c in kept] == ["c-a"] and [c.command_id for c in duplicates] == ["c-b"]

    def test_a_cancelled_copy_never_speaks_over_a_live_one(self):
        cancelled = command("c-a", Status.CANCELLED, ids=[A], chunk=1, at="1")
        live = command("c-b", Status.SUCCESS, ids=[A], chunk=1, at="2")
        kept, _ = split_duplicates([cancelled, live])
        assert [c.command_id for c in kept] == ["c-b"]

    def test_a_duplicate_tag_command_cancelled_before_ssm_resolved_it_is_no_command_problem(self):
        kept = command("c-a", Status.SUCCESS, target_count=2, chunk=1, at="1")
        duplicate = command("c-b", Status.CANCELLED, chunk=1, at="2")
        invocations = [invocation(h, command_id="c-a", attempt=1) for h in (A, B)]
        verdict = fleet_verdict([kept, duplicate], invocations)
        assert verdict.outcome is Outcome.SUCCEEDED and verdict.problems == ()

    def test_a_cancelled_duplicate_id_command_with_no_invocation_does_not_inflate_the_fleet(self):
        kept = command("c-a", Status.SUCCESS, ids=[A, B], chunk=1, at="1")
        duplicate = command("c-b", Status.CANCELLED, ids=[A, B], chunk=1, at="2")
        invocations = [invocation(h, command_id="c-a", attempt=1) for h in (A, B)]
        verdict = fleet_verdict([kept, duplicate], invocations)
        assert (verdict.outcome, verdict.expected) == (Outcome.SUCCEEDED, 2)

    def test_the_invocations_of_a_duplicate_do_not_count_for_its_hosts(self):
        kept = command("c-a", Status.SUCCESS, ids=[A], chunk=1, at="1")
        duplicate = command("c-b", Status.CANCELLED, ids=[A], chunk=1, at="2")
        invocations = [
            invocation(A, command_id="c-a", attempt=1),
            invocation(A, Status.CANCELLED, code=-1, command_id="c-b", attempt=1),
        ]
        ledger = RunLedger([kept, duplicate], invocations)
        assert [i.command_id for i in ledger.hosts[A].invocations] == ["c-a"]
        assert ledger.verdict().outcome is Outcome.SUCCEEDED


class TestVerdictOverHosts:
    def test_a_host_awaited_from_a_later_attempt_is_not_judged_by_its_earlier_failure(self):
        commands, invocations = first_attempt({A: Status.SUCCESS, B: Status.FAILED})
        commands.append(command("c2", Status.SUCCESS, ids=[B], attempt=2, chunk=1))
        verdict = fleet_verdict(commands, invocations)
        assert verdict.outcome is Outcome.RUNNING and verdict.failed == ()
        assert progress_line(verdict) == "1/2 hosts done: 1 Success; 1 not listed yet"

    def test_hosts_gone_from_the_fleet_are_named_and_not_counted(self):
        commands, invocations = first_attempt({A: Status.SUCCESS, B: Status.FAILED})
        verdict = fleet_verdict(commands, invocations, gone=[B])
        assert (verdict.outcome, verdict.expected, verdict.gone) == (Outcome.SUCCEEDED, 1, (B,))
        assert f"1 gone from the fleet, not counted ({B})" in progress_line(verdict)

    def test_a_tolerance_counts_hosts_not_commands(self):
        commands, invocations = first_attempt({A: Status.FAILED, B: Status.SUCCESS, C: Status.SUCCESS})
        commands.append(command("c2", Status.FAILED, ids=[A], attempt=2, chunk=1))
        invocations.append(invocation(A, Status.FAILED, code=4, command_id="c2", attempt=2))
        verdict = fleet_verdict(commands, invocations, tolerance=1)
        assert (verdict.outcome, verdict.expected, len(verdict.failed)) == (Outcome.SUCCEEDED, 3, 1)

    def test_a_command_that_ended_with_no_instance_in_its_tag_is_a_problem(self):
        empty = CommandSummary("c1", Status.FAILED, StatusDetails.NO_INSTANCES_IN_TAG.value, chunk=1)
        verdict = fleet_verdict([empty], [])
        assert verdict.outcome is Outcome.FAILED and "no instance matched" in verdict.problems[0]

    def test_speaking_commands_are_the_latest_of_each_host_and_this_attempts(self):
        commands, invocations = first_attempt({A: Status.SUCCESS, B: Status.FAILED})
        commands.append(command("c2", Status.IN_PROGRESS, ids=[B], attempt=2, chunk=1))
        invocations.append(invocation(B, Status.IN_PROGRESS, code=-1, command_id="c2", attempt=2))
        ledger = RunLedger(commands, invocations)
        assert ledger.speaking_commands([A, B], 2) == ["c1", "c2"]
        assert ledger.speaking_commands([B], 2) == ["c2"]
